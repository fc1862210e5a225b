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
//!
//! Memory follows the entries: a slot whose entries fired keeps at most a few times what it
//! still holds, so the room taken by a burst of deadlines (10,000 connections arriving in
//! one second all expire in one slot) is given back when they fire, not kept for good.

/// Number of slots: a power of two above the default deadlines (30 s and 120 s), so those
/// never wait a full revolution.
const SLOTS: usize = 256;
/// Milliseconds per slot.
const SLOT_MS: u64 = 1000;
/// Entries a slot keeps room for whatever it holds: below this, shrinking saves too little
/// to be worth a reallocation (256 slots × 16 × 24 bytes is 96 KiB for the server's keys).
const SLOT_MIN_CAPACITY: usize = 16;

struct Entry<K> {
    /// The millisecond at or after which the entry fires.
    due: u64,
    key: K,
}

/// Shrinks `slot` to twice what it holds (never below [`SLOT_MIN_CAPACITY`]) once it is
/// less than `1 / fraction` full. The one place the wheel gives memory back.
fn give_back<K>(slot: &mut Vec<Entry<K>>, fraction: usize) {
    if slot.capacity() > SLOT_MIN_CAPACITY && slot.len() < slot.capacity() / fraction {
        slot.shrink_to((slot.len() * 2).max(SLOT_MIN_CAPACITY));
    }
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
            // Give back what a burst left: at a quarter full, halve. The 4x hysteresis
            // keeps the cost amortized O(1) per entry under any pattern of arrivals.
            give_back(slot, 4);
        }
        self.second = second;
    }

    /// Keeps only the entries for which `live` is true, and shrinks the slots to fit what
    /// is left. O(entries): for an owner whose entries are mostly stale (cancelled by
    /// invalidation, their connections long gone), to give their room back before they
    /// come due, which may be minutes away.
    pub fn retain(&mut self, mut live: impl FnMut(&K) -> bool) {
        for slot in &mut self.slots {
            slot.retain(|entry| live(&entry.key));
            give_back(slot, 2);
        }
        self.len = self.slots.iter().map(Vec::len).sum();
    }

    /// The latest time the wheel was advanced to, in milliseconds.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Number of entries armed, live or stale.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Entries the slots have room for without reallocating: what the wheel's memory is
    /// sized by.
    pub fn capacity(&self) -> usize {
        self.slots.iter().map(Vec::capacity).sum()
    }

    /// Whether no entry is armed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests;
