//! A channel entry as the cluster scripts write it (the stream field `e`, and after the
//! stream ID in a `kc:{<channel>}:live` message):
//! `<seq> <kind> <ms> <sender len> <target len> <by len> <reason len> <banned 0|1>\n`
//! then the bytes of sender, target, by and reason, then the entry's text (the rest).
//! Parsing never panics: Redis is a peer, and a key may hold what another program wrote.

use kaichat_proto::hub::{Entry, Kind};
use kaichat_proto::names::Username;
use kaichat_proto::network::Removal;

/// A parsed entry: its network sequence number, the entry, and the removal it carries.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    pub seq: u64,
    pub entry: Entry,
    pub removal: Option<Removal>,
}

/// What was wrong with a payload.
#[derive(Debug, PartialEq, Eq)]
pub struct BadPayload(&'static str);

impl std::fmt::Display for BadPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed channel entry from Redis: {}", self.0)
    }
}

/// Splits a live message into the stream ID and the payload.
pub fn split_live(message: &[u8]) -> Result<(&[u8], &[u8]), BadPayload> {
    let at = message
        .iter()
        .position(|&b| b == b' ')
        .ok_or(BadPayload("no stream ID"))?;
    Ok((&message[..at], &message[at + 1..]))
}

pub fn parse(payload: &[u8]) -> Result<Parsed, BadPayload> {
    let newline = payload
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(BadPayload("no header line"))?;
    let header = std::str::from_utf8(&payload[..newline]).map_err(|_| BadPayload("header"))?;
    let mut numbers = [0u64; 8];
    let mut fields = header.split(' ');
    for n in numbers.iter_mut() {
        *n = fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or(BadPayload("header field"))?;
    }
    let [seq, kind, ms, sender_len, target_len, by_len, reason_len, banned] = numbers;
    let kind = u8::try_from(kind)
        .ok()
        .and_then(Kind::from_code)
        .ok_or(BadPayload("kind"))?;
    let mut rest = &payload[newline + 1..];
    let mut take = |len: u64| -> Result<&[u8], BadPayload> {
        let len = usize::try_from(len).map_err(|_| BadPayload("length"))?;
        if len > rest.len() {
            return Err(BadPayload("length past the end"));
        }
        let (field, tail) = rest.split_at(len);
        rest = tail;
        Ok(field)
    };
    let sender = take(sender_len)?;
    let target = take(target_len)?;
    let by = take(by_len)?;
    let reason = take(reason_len)?;
    let sender = match sender {
        [] => None,
        name => Some(Username::new(name).map_err(|_| BadPayload("sender"))?),
    };
    let removal = match kind {
        Kind::Removal => Some(Removal {
            target: Username::new(target).map_err(|_| BadPayload("target"))?,
            by: Username::new(by).map_err(|_| BadPayload("by"))?,
            reason: reason.into(),
            banned: banned == 1,
        }),
        _ => None,
    };
    Ok(Parsed {
        seq,
        entry: Entry {
            sender,
            kind,
            time_ms: ms,
            text: rest.into(),
        },
        removal,
    })
}

#[cfg(test)]
mod tests;
