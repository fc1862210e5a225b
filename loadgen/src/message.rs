//! The text of the chat messages loadgen sends, and the server notices it reads.
//!
//! A message carries who sent it, its sequence number, the time it was due and the time it
//! was handed to the connection (microseconds since the process's [`Clock`] epoch),
//! so that whichever member reads it can compute the delivery latency and decide whether
//! it was owed the message. Everything parsed here came from the server: a text that does
//! not parse is counted, never trusted and never a panic.

use std::fmt::Write;
use std::time::Instant;

use crate::clock::Clock;

/// The first word of every loadgen message.
const TAG: &str = "kc";

/// What a loadgen message says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Index of the sending client.
    pub sender: u32,
    /// The sender's message number, from 0.
    pub seq: u32,
    /// When the message was due.
    pub due: Instant,
    /// When it was handed to the sender's connection.
    pub sent: Instant,
}

impl Stamp {
    /// The message text, with a short human-readable tail so the history looks like chat.
    pub fn encode(&self, clock: &Clock, out: &mut String) {
        out.clear();
        // Writing into a String cannot fail.
        let _ = write!(
            out,
            "{TAG} {} {} {} {} hello from loadgen",
            self.sender,
            self.seq,
            clock.micros(self.due),
            clock.micros(self.sent)
        );
    }

    /// Reads a text made by [`Stamp::encode`] with the same clock; `None` for anything else.
    pub fn parse(text: &[u8], clock: &Clock) -> Option<Stamp> {
        let text = std::str::from_utf8(text).ok()?;
        let mut words = text.split(' ');
        if words.next()? != TAG {
            return None;
        }
        Some(Stamp {
            sender: words.next()?.parse().ok()?,
            seq: words.next()?.parse().ok()?,
            due: clock.at_micros(words.next()?.parse().ok()?)?,
            sent: clock.at_micros(words.next()?.parse().ok()?)?,
        })
    }
}

/// The count in a `<N> messages were skipped` notice (contract section 5); `None` for any
/// other text.
pub fn parse_skipped(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    let n = text.strip_suffix(" messages were skipped")?;
    n.parse().ok()
}

#[cfg(test)]
mod tests;
