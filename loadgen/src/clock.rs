//! The process's one time line. Everything inside loadgen is an [`Instant`] (and a
//! [`Duration`] between two); numbers of seconds or microseconds exist only at the edges,
//! and this is where they are made: microseconds in the message texts (read back by this
//! same process), Unix and run-relative seconds in the files a run writes.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The start of the run, as a monotonic instant and as wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
    /// Unix seconds at `epoch`.
    epoch_unix: f64,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn start() -> Clock {
        let epoch_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Clock {
            epoch: Instant::now(),
            epoch_unix,
        }
    }

    /// The start of the run.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Time since the epoch (zero for instants before it).
    pub fn since_epoch(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.epoch)
    }

    /// Wall-clock Unix seconds of `at`, for aligning with samples taken by other processes.
    pub fn unix(&self, at: Instant) -> f64 {
        self.epoch_unix + self.since_epoch(at).as_secs_f64()
    }

    /// `at` as microseconds since the epoch (written into message texts).
    pub fn micros(&self, at: Instant) -> u64 {
        self.since_epoch(at).as_micros() as u64
    }

    /// Microseconds since the epoch (read from a message text) as an instant; `None`
    /// when no instant is that far away.
    pub fn at_micros(&self, us: u64) -> Option<Instant> {
        self.epoch.checked_add(Duration::from_micros(us))
    }
}

/// A stretch of the run's time line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    /// How long it lasts (zero if it ends before it starts).
    pub fn len(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }
}

#[cfg(test)]
mod tests;
