//! Pacing the messages a person sends (PROTOCOL.md §20): a server refuses SEND_MESSAGE
//! beyond its rate limit (by default 10 a second after 20 at once), so a pasted or piped
//! block of lines would lose every line past the burst. `kaichat` keeps its own pace under
//! the default limit instead: [`BURST`] messages at once, then [`PER_SEC`] a second, and
//! lets everything typed after a waiting message wait behind it, so that order is kept.

use std::time::{Duration, Instant};

/// Messages sent at once before the pace applies (the server's default burst is 20).
pub const BURST: u32 = 16;
/// Messages a second after the burst (the server's default rate is 10).
pub const PER_SEC: u32 = 8;

/// A token bucket: full at the start, a token every `1 / PER_SEC` s, at most `BURST`.
#[derive(Debug)]
pub struct Pace {
    tokens: u32,
    /// When the last token was added (or the bucket was last full).
    refilled: Instant,
}

impl Pace {
    pub fn new(now: Instant) -> Pace {
        Pace {
            tokens: BURST,
            refilled: now,
        }
    }

    fn interval() -> Duration {
        Duration::from_secs(1) / PER_SEC
    }

    fn refill(&mut self, now: Instant) {
        while self.tokens < BURST && now >= self.refilled + Pace::interval() {
            self.tokens += 1;
            self.refilled += Pace::interval();
        }
        if self.tokens == BURST {
            self.refilled = now;
        }
    }

    /// Takes a token at `now` if there is one: the message may go.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// When the next token comes, if there is none now.
    pub fn next_token(&self) -> Instant {
        self.refilled + Pace::interval()
    }
}

#[cfg(test)]
mod tests;
