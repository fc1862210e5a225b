//! A hashed timer wheel with one-second slots for the deadlines of contract section 7.
//!
//! Arming is O(1): an entry goes into the slot of its due second. Cancelling is O(1) too,
//! by invalidation: the owner remembers which entry is live (a generation, a due time) and
//! ignores the others when they fire, so nothing is ever searched for or removed early.
//! Resetting an idle deadline is therefore a field write in the owner, not a wheel
//! operation. Entries due more than one revolution ahead stay in their slot until their
//! round comes (mio-extras' rule), so any deadline length works.
//!
//! The wheel never reads a clock: time is a number of seconds passed in by the caller.

/// Number of slots: a power of two above the default deadlines (30 s and 120 s), so those
/// never wait a full revolution.
const SLOTS: usize = 256;

struct Entry<K> {
    due: u64,
    key: K,
}

/// A one-second-granularity wheel of keys `K` (for the server, a connection's slab key
/// with its generation and due second).
pub struct TimerWheel<K> {
    slots: Vec<Vec<Entry<K>>>,
    /// The last second whose slot has been processed.
    now: u64,
    len: usize,
}

impl<K: Copy> TimerWheel<K> {
    /// An empty wheel whose clock starts at `now`.
    pub fn new(now: u64) -> TimerWheel<K> {
        TimerWheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            now,
            len: 0,
        }
    }

    /// Schedules `key` to fire at second `due`. A due time already past fires at the next
    /// `advance`.
    pub fn arm(&mut self, due: u64, key: K) {
        let due = due.max(self.now + 1);
        self.slots[(due as usize) & (SLOTS - 1)].push(Entry { due, key });
        self.len += 1;
    }

    /// Moves the clock to `now` and appends to `fired` every key due at or before it,
    /// catching up on every second skipped since the last call (a stalled loop loses
    /// no deadline).
    pub fn advance(&mut self, now: u64, fired: &mut Vec<K>) {
        if now <= self.now {
            return;
        }
        // After one full revolution every slot has been visited.
        let steps = (now - self.now).min(SLOTS as u64);
        for second in self.now + 1..=self.now + steps {
            let slot = &mut self.slots[(second as usize) & (SLOTS - 1)];
            let before = slot.len();
            slot.retain(|entry| {
                let due = entry.due <= now;
                if due {
                    fired.push(entry.key);
                }
                !due
            });
            self.len -= before - slot.len();
        }
        self.now = now;
    }

    /// The second up to which the wheel has fired.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Number of entries armed, live or stale.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is armed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests;
