//! The reactor's clock, in milliseconds since the server started: deadlines, latencies and
//! the poll's timeout all read it. Never a wall clock: it only moves forward.

use std::time::{Duration, Instant};

/// The reactor's clock: milliseconds since the server started, rounded down. Read once per
/// loop iteration for deadlines, and by a connection for the first PDU it takes after a
/// socket read, so that a PDU is never stamped earlier than it arrived.
pub(crate) struct Clock {
    start: Instant,
}

impl Clock {
    pub(super) fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Microseconds since the server started, for latencies shorter than a millisecond.
    pub fn micros(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Time left until the clock's next whole second, when the wheel's next slot is due.
    pub(super) fn until_next_second(&self) -> Duration {
        let into_second = self.start.elapsed().subsec_nanos();
        Duration::from_nanos(u64::from(1_000_000_000 - into_second))
    }
}
