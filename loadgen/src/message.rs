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
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let clock = Clock::start();
        let s = Stamp {
            sender: 18_999,
            seq: 3,
            due: clock.at_micros(61_000_123).unwrap(),
            sent: clock.at_micros(61_000_456).unwrap(),
        };
        let mut text = String::new();
        s.encode(&clock, &mut text);
        assert!(text.len() < 100);
        assert!(text.starts_with("kc 18999 3 61000123 61000456 "), "{text}");
        assert_eq!(Stamp::parse(text.as_bytes(), &clock), Some(s));
    }

    #[test]
    fn foreign_texts_are_not_stamps() {
        let clock = Clock::start();
        for t in [
            &b""[..],
            b"hello",
            b"kc",
            b"kc 1 2 3",
            b"kc x 2 3 4",
            b"kc -1 2 3 4",
            b"kc 1 2 3 99999999999999999999999",
            b"\xff\xfe",
            b"KC 1 2 3 4",
        ] {
            assert_eq!(Stamp::parse(t, &clock), None, "{t:?}");
        }
        assert!(Stamp::parse(b"kc 1 2 3 4", &clock).is_some());
    }

    #[test]
    fn skipped_notices() {
        assert_eq!(parse_skipped(b"12 messages were skipped"), Some(12));
        assert_eq!(parse_skipped(b"1 messages were skipped"), Some(1));
        assert_eq!(parse_skipped(b"amy joined"), None);
        assert_eq!(parse_skipped(b"x messages were skipped"), None);
        assert_eq!(parse_skipped(b"-3 messages were skipped"), None);
        assert_eq!(parse_skipped(b"messages were skipped"), None);
    }
}
