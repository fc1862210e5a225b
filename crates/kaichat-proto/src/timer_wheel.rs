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
mod tests {
    use super::*;

    fn advance(wheel: &mut TimerWheel<u32>, now: u64) -> Vec<u32> {
        let mut fired = Vec::new();
        wheel.advance(now, &mut fired);
        fired.sort_unstable();
        fired
    }

    #[test]
    fn fires_at_due_second_not_before() {
        let mut wheel = TimerWheel::new(0);
        wheel.arm(3, 7);
        assert!(advance(&mut wheel, 2).is_empty());
        assert_eq!(advance(&mut wheel, 3), vec![7]);
        assert!(wheel.is_empty());
        assert!(advance(&mut wheel, 4).is_empty());
    }

    #[test]
    fn several_entries_in_one_slot() {
        let mut wheel = TimerWheel::new(10);
        for key in 0..5 {
            wheel.arm(12, key);
        }
        assert_eq!(wheel.len(), 5);
        assert_eq!(advance(&mut wheel, 12), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn hash_collision_waits_for_its_round() {
        // 5 and 5 + 256 share a slot; the later one must not fire a revolution early.
        let mut wheel = TimerWheel::new(0);
        wheel.arm(5, 1);
        wheel.arm(5 + SLOTS as u64, 2);
        assert_eq!(advance(&mut wheel, 5), vec![1]);
        assert!(advance(&mut wheel, 5 + SLOTS as u64 - 1).is_empty());
        assert_eq!(advance(&mut wheel, 5 + SLOTS as u64), vec![2]);
    }

    #[test]
    fn catches_up_after_a_stall() {
        let mut wheel = TimerWheel::new(0);
        wheel.arm(2, 1);
        wheel.arm(50, 2);
        wheel.arm(1000, 3);
        wheel.arm(1001, 4);
        // A stall of many revolutions visits each slot once and fires all that is due.
        assert_eq!(advance(&mut wheel, 1000), vec![1, 2, 3]);
        assert_eq!(wheel.now(), 1000);
        assert_eq!(advance(&mut wheel, 1001), vec![4]);
    }

    #[test]
    fn past_due_fires_at_next_advance() {
        let mut wheel = TimerWheel::new(100);
        wheel.arm(90, 1);
        wheel.arm(100, 2);
        assert_eq!(advance(&mut wheel, 101), vec![1, 2]);
    }

    #[test]
    fn time_never_goes_back() {
        let mut wheel = TimerWheel::new(10);
        wheel.arm(11, 1);
        assert!(advance(&mut wheel, 5).is_empty());
        assert_eq!(wheel.now(), 10);
        assert_eq!(advance(&mut wheel, 11), vec![1]);
    }

    #[test]
    fn cancel_by_invalidation_of_a_reused_slot() {
        // The owner keeps (key, generation): an entry for a freed and reused slot fires,
        // and the owner sees the generation differs and ignores it.
        let mut wheel: TimerWheel<(usize, u32)> = TimerWheel::new(0);
        wheel.arm(5, (0, 1)); // connection 0, generation 1, then closed
        wheel.arm(30, (0, 2)); // slot 0 reused by generation 2
        let mut fired = Vec::new();
        wheel.advance(5, &mut fired);
        let live_generation = 2;
        assert!(fired.iter().all(|&(_, gen)| gen != live_generation));
    }
}
