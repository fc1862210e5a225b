//! When each simulated client is meant to act: the process clock, seeded per-client
//! phases, and the QUERY and message schedules.
//!
//! Latency is measured from the time an action was *due*, not the time the reactor got
//! round to it (wrk2's answer to coordinated omission, `notes/anchors-architecture.md`
//! §7): a schedule hands out due times, and the caller records `done − due`. A QUERY is
//! never pipelined: while one answer is outstanding the next QUERY waits, and when it goes
//! out it is still measured from its own due time. Nothing here reads a clock or touches a
//! socket; times are microseconds since the process's [`Clock`] epoch.

use std::time::{Duration, Instant};

/// The monotonic clock shared by every client of the process. Message texts carry its
/// microseconds, which is sound because senders and receivers live in this one process.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn start() -> Clock {
        Clock {
            epoch: Instant::now(),
        }
    }

    /// Microseconds since the epoch.
    pub fn now_us(&self) -> u64 {
        self.us(Instant::now())
    }

    /// An instant as microseconds since the epoch (0 for instants before it).
    pub fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Microseconds since the epoch as an instant.
    pub fn instant(&self, us: u64) -> Instant {
        self.epoch + Duration::from_micros(us)
    }
}

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

/// A client's phase within `period`: uniform in `[0, period)`, fixed by seed and client.
pub fn phase_us(seed: u64, client: u64, stream: u64, period_us: u64) -> u64 {
    Rng::new(seed, client, stream).below(period_us)
}

/// One client's QUERY schedule: QUERY k is due at `first + k·interval`. With interval 0
/// (flat out) the next QUERY is due the moment the previous answer completes.
#[derive(Clone, Debug)]
pub struct QuerySchedule {
    next_due: Option<u64>,
    interval: u64,
    /// Due time of the QUERY whose answer has not completed.
    outstanding: Option<u64>,
}

impl QuerySchedule {
    /// A schedule whose first QUERY is due at `first_due`.
    pub fn new(first_due: u64, interval_us: u64) -> QuerySchedule {
        QuerySchedule {
            next_due: Some(first_due),
            interval: interval_us,
            outstanding: None,
        }
    }

    /// A schedule that never fires.
    pub fn stopped() -> QuerySchedule {
        QuerySchedule {
            next_due: None,
            interval: 0,
            outstanding: None,
        }
    }

    /// If a QUERY may go out at `now` (one is due and none is outstanding), marks it
    /// outstanding and returns its due time.
    pub fn take_due(&mut self, now: u64) -> Option<u64> {
        if self.outstanding.is_some() {
            return None;
        }
        let due = self.next_due.filter(|&d| d <= now)?;
        self.outstanding = Some(due);
        self.next_due = if self.interval == 0 {
            None // set when the answer completes
        } else {
            Some(due + self.interval)
        };
        Some(due)
    }

    /// The answer to the outstanding QUERY completed at `now`: returns its due time.
    pub fn complete(&mut self, now: u64) -> Option<u64> {
        let due = self.outstanding.take()?;
        if self.interval == 0 && self.next_due.is_none() {
            self.next_due = Some(now);
        }
        Some(due)
    }

    /// Due time of the outstanding QUERY, if any.
    pub fn outstanding(&self) -> Option<u64> {
        self.outstanding
    }

    /// When [`QuerySchedule::take_due`] will next have something: `None` while an answer is
    /// outstanding (completion wakes the client) or once stopped.
    pub fn next_wake(&self) -> Option<u64> {
        match self.outstanding {
            Some(_) => None,
            None => self.next_due,
        }
    }

    /// No QUERY is scheduled after the outstanding one.
    pub fn stop(&mut self) {
        self.next_due = None;
        self.interval = 1; // so that completing does not restart a flat-out schedule
    }
}

/// A fixed-rate schedule for actions that have no answer to wait for (messages): due at
/// `first + k·every`, sent as soon as due, several at once if the reactor fell behind.
#[derive(Clone, Debug)]
pub struct Periodic {
    next: Option<u64>,
    every: u64,
}

impl Periodic {
    /// Due at `first`, then every `every_us`; `every_us == 0` means never.
    pub fn new(first: u64, every_us: u64) -> Periodic {
        Periodic {
            next: (every_us > 0).then_some(first),
            every: every_us,
        }
    }

    /// A schedule that never fires.
    pub fn never() -> Periodic {
        Periodic {
            next: None,
            every: 0,
        }
    }

    /// The next due time at or before `now`, advancing past it.
    pub fn take_due(&mut self, now: u64) -> Option<u64> {
        let due = self.next.filter(|&d| d <= now)?;
        self.next = Some(due + self.every);
        Some(due)
    }

    /// When the next action is due.
    pub fn next_wake(&self) -> Option<u64> {
        self.next
    }

    /// No more actions.
    pub fn stop(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_seeded_spread_and_in_range() {
        let period = 3_000_000;
        let a: Vec<u64> = (0..1000)
            .map(|c| phase_us(7, c, STREAM_QUERY, period))
            .collect();
        let b: Vec<u64> = (0..1000)
            .map(|c| phase_us(7, c, STREAM_QUERY, period))
            .collect();
        assert_eq!(a, b, "same seed, same phases");
        assert!(a.iter().all(|&p| p < period));
        let c: Vec<u64> = (0..1000)
            .map(|c| phase_us(8, c, STREAM_QUERY, period))
            .collect();
        assert_ne!(a, c, "another seed, other phases");
        let d: Vec<u64> = (0..1000)
            .map(|c| phase_us(7, c, STREAM_MESSAGE, period))
            .collect();
        assert_ne!(a, d, "streams are independent");
        // Roughly uniform: each third of the period gets about a third of the clients.
        for third in 0..3 {
            let n = a.iter().filter(|&&p| p / (period / 3) == third).count();
            assert!((250..420).contains(&n), "third {third}: {n}");
        }
        assert_eq!(phase_us(1, 1, 1, 0), 0);
    }

    #[test]
    fn periodic_queries_are_due_on_the_grid() {
        let mut s = QuerySchedule::new(1_000, 3_000);
        assert_eq!(s.next_wake(), Some(1_000));
        assert_eq!(s.take_due(999), None);
        assert_eq!(s.take_due(1_200), Some(1_000));
        assert_eq!(s.next_wake(), None, "outstanding: wait for the answer");
        assert_eq!(s.complete(1_500), Some(1_000));
        assert_eq!(s.next_wake(), Some(4_000));
        assert_eq!(s.take_due(4_000), Some(4_000));
        assert_eq!(s.complete(4_100), Some(4_000));
    }

    #[test]
    fn a_late_answer_delays_but_never_pipelines() {
        let mut s = QuerySchedule::new(0, 3_000);
        assert_eq!(s.take_due(0), Some(0));
        // The answer takes 7 ms: QUERYs due at 3 and 6 ms could not go out.
        assert_eq!(s.take_due(3_000), None);
        assert_eq!(s.take_due(6_000), None);
        assert_eq!(s.complete(7_000), Some(0));
        // Each goes out as soon as the previous answer is in, measured from its own due time.
        assert_eq!(s.take_due(7_000), Some(3_000));
        assert_eq!(s.take_due(7_000), None);
        assert_eq!(s.complete(7_500), Some(3_000));
        assert_eq!(s.take_due(7_500), Some(6_000));
        assert_eq!(s.complete(7_600), Some(6_000));
        assert_eq!(s.next_wake(), Some(9_000), "caught up");
    }

    #[test]
    fn flat_out_sends_when_the_answer_completes() {
        let mut s = QuerySchedule::new(10, 0);
        assert_eq!(s.take_due(10), Some(10));
        assert_eq!(s.take_due(50), None);
        assert_eq!(s.complete(60), Some(10));
        assert_eq!(s.take_due(61), Some(60));
        assert_eq!(s.complete(70), Some(60));
        s.stop();
        assert_eq!(s.next_wake(), None);
        assert_eq!(s.take_due(1_000), None);
    }

    #[test]
    fn stopping_keeps_the_outstanding_answer() {
        let mut s = QuerySchedule::new(0, 0);
        assert_eq!(s.take_due(0), Some(0));
        s.stop();
        assert_eq!(s.outstanding(), Some(0));
        assert_eq!(s.complete(5), Some(0));
        assert_eq!(s.next_wake(), None);
        assert_eq!(QuerySchedule::stopped().next_wake(), None);
    }

    #[test]
    fn periodic_messages_catch_up() {
        let mut m = Periodic::new(100, 1_000);
        assert_eq!(m.take_due(50), None);
        assert_eq!(m.take_due(2_500), Some(100));
        assert_eq!(m.take_due(2_500), Some(1_100));
        assert_eq!(m.take_due(2_500), Some(2_100));
        assert_eq!(m.take_due(2_500), None);
        assert_eq!(m.next_wake(), Some(3_100));
        assert_eq!(Periodic::new(0, 0).next_wake(), None);
        assert_eq!(Periodic::never().take_due(u64::MAX), None);
    }

    #[test]
    fn clock_round_trips() {
        let c = Clock::start();
        let at = c.instant(1_234_567);
        assert_eq!(c.us(at), 1_234_567);
    }
}
