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
mod tests {
    use super::*;

    fn advance(wheel: &mut TimerWheel<u32>, now: u64) -> Vec<u32> {
        let mut fired = Vec::new();
        wheel.advance(now, &mut fired);
        fired.sort_unstable();
        fired
    }

    #[test]
    fn fires_at_the_second_at_or_after_its_due_millisecond_not_before() {
        let mut wheel = TimerWheel::new(0);
        wheel.arm(2500, 7);
        wheel.arm(3000, 8);
        assert!(advance(&mut wheel, 2000).is_empty());
        assert!(advance(&mut wheel, 2499).is_empty());
        assert!(advance(&mut wheel, 2999).is_empty());
        assert_eq!(advance(&mut wheel, 3000), vec![7, 8]);
        assert!(wheel.is_empty());
        assert!(advance(&mut wheel, 4000).is_empty());
    }

    #[test]
    fn never_early_and_at_most_a_second_late() {
        // Due times all over a few seconds, the clock advanced in uneven steps: each entry
        // fires at the first advance at or after its due time, and less than a second after.
        let mut wheel = TimerWheel::new(0);
        let dues: Vec<u64> = (1..400).map(|i| i * 13 % 4700 + 1).collect();
        for (key, &due) in dues.iter().enumerate() {
            wheel.arm(due, key as u32);
        }
        let mut now = 0;
        let mut fired = Vec::new();
        while !wheel.is_empty() {
            now += 37;
            wheel.advance(now, &mut fired);
            for key in fired.drain(..) {
                let due = dues[key as usize];
                assert!(due <= now, "entry due at {due} ms fired at {now} ms");
                assert!(
                    now - due < 1000 + 37,
                    "entry due at {due} ms fired at {now} ms"
                );
            }
        }
    }

    #[test]
    fn several_entries_in_one_slot() {
        let mut wheel = TimerWheel::new(10_000);
        for key in 0..5 {
            wheel.arm(11_001 + u64::from(key) * 100, key);
        }
        assert_eq!(wheel.len(), 5);
        assert_eq!(advance(&mut wheel, 12_000), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn hash_collision_waits_for_its_round() {
        // 5 s and 5 s + 256 s share a slot; the later one must not fire a revolution early.
        let revolution = SLOTS as u64 * SLOT_MS;
        let mut wheel = TimerWheel::new(0);
        wheel.arm(5000, 1);
        wheel.arm(5000 + revolution, 2);
        assert_eq!(advance(&mut wheel, 5000), vec![1]);
        assert!(advance(&mut wheel, 5000 + revolution - 1).is_empty());
        assert_eq!(advance(&mut wheel, 5000 + revolution), vec![2]);
    }

    #[test]
    fn catches_up_after_a_stall() {
        let mut wheel = TimerWheel::new(0);
        wheel.arm(2000, 1);
        wheel.arm(50_000, 2);
        wheel.arm(1_000_000, 3);
        wheel.arm(1_000_001, 4);
        // A stall of many revolutions visits each slot once and fires all that is due.
        assert_eq!(advance(&mut wheel, 1_000_000), vec![1, 2, 3]);
        assert_eq!(wheel.now(), 1_000_000);
        assert!(advance(&mut wheel, 1_000_999).is_empty());
        assert_eq!(advance(&mut wheel, 1_001_000), vec![4]);
    }

    #[test]
    fn past_due_fires_at_next_second() {
        let mut wheel = TimerWheel::new(100_000);
        wheel.arm(90_000, 1);
        wheel.arm(100_000, 2);
        assert!(advance(&mut wheel, 100_999).is_empty());
        assert_eq!(advance(&mut wheel, 101_000), vec![1, 2]);
    }

    #[test]
    fn time_never_goes_back() {
        let mut wheel = TimerWheel::new(10_000);
        wheel.arm(11_000, 1);
        assert!(advance(&mut wheel, 5000).is_empty());
        assert_eq!(wheel.now(), 10_000);
        assert_eq!(advance(&mut wheel, 11_000), vec![1]);
    }

    #[test]
    fn cancel_by_invalidation_of_a_reused_slot() {
        // The owner keeps (key, generation): an entry for a freed and reused slot fires,
        // and the owner sees the generation differs and ignores it.
        let mut wheel: TimerWheel<(usize, u32)> = TimerWheel::new(0);
        wheel.arm(5000, (0, 1)); // connection 0, generation 1, then closed
        wheel.arm(30_000, (0, 2)); // slot 0 reused by generation 2
        let mut fired = Vec::new();
        wheel.advance(5000, &mut fired);
        let live_generation = 2;
        assert!(fired.iter().all(|&(_, gen)| gen != live_generation));
    }
}
