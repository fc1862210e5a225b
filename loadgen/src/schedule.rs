//! When each simulated client is meant to act: seeded per-client phases, and the QUERY
//! and message schedules.
//!
//! Latency is measured from the time an action was *due*, not the time the reactor got
//! round to it (wrk2's answer to coordinated omission): a schedule hands out due times,
//! and the caller records `done − due`. A QUERY is never pipelined: while one answer is
//! outstanding the next QUERY waits, and when it goes out it is still measured from its
//! own due time. Nothing here reads a clock or touches a socket: the caller passes `now`.

use std::time::{Duration, Instant};

/// SplitMix64: small, fast and good enough to spread phases; the same seed gives the same
/// run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one stream of one client of one seeded run.
    pub fn new(seed: u64, client: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
        let a = r.next_u64() ^ client.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let b = Rng(a).next_u64() ^ stream.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7);
        Rng(b)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The streams of per-client randomness, so that changing one never shifts another.
pub const STREAM_QUERY: u64 = 1;
/// See [`STREAM_QUERY`].
pub const STREAM_MESSAGE: u64 = 2;
/// See [`STREAM_QUERY`].
pub const STREAM_PING: u64 = 3;

/// A client's phase within `period`: uniform in `[0, period)` in whole microseconds,
/// fixed by seed and client.
pub fn phase(seed: u64, client: u64, stream: u64, period: Duration) -> Duration {
    let period_us = period.as_micros().min(u128::from(u64::MAX)) as u64;
    Duration::from_micros(Rng::new(seed, client, stream).below(period_us))
}

/// One client's QUERY schedule: QUERY k is due at `first + k·interval`. With interval 0
/// (flat out) the next QUERY is due the moment the previous answer completes.
#[derive(Clone, Debug)]
pub struct QuerySchedule {
    next_due: Option<Instant>,
    interval: Duration,
    /// Due time of the QUERY whose answer has not completed.
    outstanding: Option<Instant>,
    /// No QUERY after the outstanding one, flat out or not.
    stopped: bool,
}

impl QuerySchedule {
    /// A schedule whose first QUERY is due at `first_due`.
    pub fn new(first_due: Instant, interval: Duration) -> QuerySchedule {
        QuerySchedule {
            next_due: Some(first_due),
            interval,
            outstanding: None,
            stopped: false,
        }
    }

    /// A schedule that never fires.
    pub fn stopped() -> QuerySchedule {
        QuerySchedule {
            next_due: None,
            interval: Duration::ZERO,
            outstanding: None,
            stopped: true,
        }
    }

    /// If a QUERY may go out at `now` (one is due and none is outstanding), marks it
    /// outstanding and returns its due time.
    pub fn take_due(&mut self, now: Instant) -> Option<Instant> {
        if self.outstanding.is_some() {
            return None;
        }
        let due = self.next_due.filter(|&d| d <= now)?;
        self.outstanding = Some(due);
        self.next_due = if self.interval.is_zero() {
            None // set when the answer completes
        } else {
            Some(due + self.interval)
        };
        Some(due)
    }

    /// The answer to the outstanding QUERY completed at `now`: returns its due time.
    pub fn complete(&mut self, now: Instant) -> Option<Instant> {
        let due = self.outstanding.take()?;
        if self.interval.is_zero() && self.next_due.is_none() && !self.stopped {
            self.next_due = Some(now);
        }
        Some(due)
    }

    /// Due time of the outstanding QUERY, if any.
    pub fn outstanding(&self) -> Option<Instant> {
        self.outstanding
    }

    /// When [`QuerySchedule::take_due`] will next have something: `None` while an answer is
    /// outstanding (completion wakes the client) or once stopped.
    pub fn next_wake(&self) -> Option<Instant> {
        match self.outstanding {
            Some(_) => None,
            None => self.next_due,
        }
    }

    /// No QUERY is scheduled after the outstanding one.
    pub fn stop(&mut self) {
        self.next_due = None;
        self.stopped = true;
    }
}

/// A fixed-rate schedule for actions that have no answer to wait for (messages): due at
/// `first + k·every`, sent as soon as due, several at once if the reactor fell behind.
#[derive(Clone, Debug)]
pub struct Periodic {
    next: Option<Instant>,
    every: Duration,
}

impl Periodic {
    /// Due at `first`, then every `every`; a zero `every` means never.
    pub fn new(first: Instant, every: Duration) -> Periodic {
        Periodic {
            next: (!every.is_zero()).then_some(first),
            every,
        }
    }

    /// A schedule that never fires.
    pub fn never() -> Periodic {
        Periodic {
            next: None,
            every: Duration::ZERO,
        }
    }

    /// The next due time at or before `now`, advancing past it.
    pub fn take_due(&mut self, now: Instant) -> Option<Instant> {
        let due = self.next.filter(|&d| d <= now)?;
        self.next = Some(due + self.every);
        Some(due)
    }

    /// When the next action is due.
    pub fn next_wake(&self) -> Option<Instant> {
        self.next
    }

    /// No more actions.
    pub fn stop(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests;
