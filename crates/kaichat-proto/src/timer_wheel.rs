//! A hashed timer wheel with one-second slots for the deadlines of contract section 7.
//!
//! Times are whole milliseconds; slots are seconds. An entry goes into the slot of the
//! first second at or after its due millisecond, so it never fires early: when the slot's
//! second comes, every entry in it is due. It fires at most one second late (the rest of
//! the second its due time falls in), plus however late the caller advances the wheel.
//!
//! Arming is O(1). Cancelling is O(1) too, by invalidation: the owner remembers which entry
//! is live (a generation, a due time) and ignores the others when they fire, so nothing is
//! ever searched for or removed early. Resetting an idle deadline is therefore a field
//! write in the owner, not a wheel operation. Entries due more than one revolution ahead
//! stay in their slot until their round comes (mio-extras' rule), so any deadline length
//! works.
//!
//! The wheel never reads a clock: time is a number of milliseconds passed in by the caller.

/// Number of slots: a power of two above the default deadlines (30 s and 120 s), so those
/// never wait a full revolution.
const SLOTS: usize = 256;
/// Milliseconds per slot.
const SLOT_MS: u64 = 1000;

struct Entry<K> {
    /// The millisecond at or after which the entry fires.
    due: u64,
    key: K,
}

/// A one-second-slot wheel of keys `K` (for the server, a connection's slab key with its
/// generation and due millisecond).
pub struct TimerWheel<K> {
    slots: Vec<Vec<Entry<K>>>,
    /// The last second whose slot has been processed.
    second: u64,
    /// The latest time passed to `advance` (or `new`), in milliseconds.
    now: u64,
    len: usize,
}

impl<K: Copy> TimerWheel<K> {
    /// An empty wheel whose clock starts at `now` (milliseconds).
    pub fn new(now: u64) -> TimerWheel<K> {
        TimerWheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            second: now / SLOT_MS,
            now,
            len: 0,
        }
    }

    /// Schedules `key` to fire at millisecond `due` or later: in the slot of the first
    /// second at or after `due`. A due time already past fires at the next second.
    pub fn arm(&mut self, due: u64, key: K) {
        let second = due.div_ceil(SLOT_MS).max(self.second + 1);
        self.slots[(second as usize) & (SLOTS - 1)].push(Entry { due, key });
        self.len += 1;
    }

    /// Moves the clock to `now` (milliseconds) and appends to `fired` every key due at or
    /// before it, catching up on every second skipped since the last call (a stalled loop
    /// loses no deadline). Cheap when no new second has begun: no slot is visited.
    pub fn advance(&mut self, now: u64, fired: &mut Vec<K>) {
        if now <= self.now {
            return;
        }
        self.now = now;
        let second = now / SLOT_MS;
        if second <= self.second {
            return;
        }
        // After one full revolution every slot has been visited.
        let steps = (second - self.second).min(SLOTS as u64);
        for visited in self.second + 1..=self.second + steps {
            let slot = &mut self.slots[(visited as usize) & (SLOTS - 1)];
            let before = slot.len();
            // Entries of a later revolution share the slot and stay for their round.
            slot.retain(|entry| {
                let due = entry.due <= now;
                if due {
                    fired.push(entry.key);
                }
                !due
            });
            self.len -= before - slot.len();
        }
        self.second = second;
    }

    /// The latest time the wheel was advanced to, in milliseconds.
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
