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
    // The stale entry did fire (the owner is the one that ignores it), and the live one
    // stays armed until its own due time.
    assert_eq!(fired, vec![(0, 1)]);
    assert_eq!(wheel.len(), 1);
    fired.clear();
    wheel.advance(29_999, &mut fired);
    assert!(fired.is_empty());
    wheel.advance(30_000, &mut fired);
    assert_eq!(fired, vec![(0, live_generation)]);
}

#[test]
fn a_burst_of_entries_gives_its_room_back_when_it_fires() {
    // 10,000 deadlines in one second (a connection storm), then steady traffic of a few
    // entries per second: the slot that held the burst does not keep room for 10,000.
    let mut wheel = TimerWheel::new(0);
    let idle = wheel.capacity();
    for key in 0..10_000 {
        wheel.arm(5000, key);
    }
    assert!(wheel.capacity() >= 10_000);
    assert_eq!(advance(&mut wheel, 5000).len(), 10_000);
    assert!(
        wheel.capacity() <= idle + SLOT_MIN_CAPACITY,
        "room for {} entries kept after the burst fired",
        wheel.capacity()
    );
    // Steady churn, 3 entries a second for two revolutions: every slot stays small.
    let mut now = 5000;
    let mut key = 0;
    for _ in 0..2 * SLOTS {
        for _ in 0..3 {
            wheel.arm(now + 30_000, key);
            key += 1;
        }
        now += SLOT_MS;
        wheel.advance(now, &mut Vec::new());
    }
    assert!(
        wheel.capacity() <= SLOTS * SLOT_MIN_CAPACITY,
        "{}",
        wheel.capacity()
    );
}

#[test]
fn a_slot_that_shrank_keeps_its_later_entries() {
    // Shrinking happens after the due entries left: the entries of a later revolution
    // that share the slot stay, in room enough for them.
    let revolution = SLOTS as u64 * SLOT_MS;
    let mut wheel = TimerWheel::new(0);
    for key in 0..1000 {
        wheel.arm(5000, key);
    }
    for key in 1000..1100 {
        wheel.arm(5000 + revolution, key);
    }
    assert_eq!(advance(&mut wheel, 5000).len(), 1000);
    assert_eq!(wheel.len(), 100);
    assert!(wheel.capacity() < 1000);
    assert_eq!(
        advance(&mut wheel, 5000 + revolution),
        (1000..1100).collect::<Vec<_>>()
    );
}

#[test]
fn retain_drops_stale_entries_and_their_room_and_keeps_the_live_ones() {
    let mut wheel = TimerWheel::new(0);
    // 10,000 entries due in 30 s, of which only the even keys below 100 are still live.
    for key in 0..10_000u32 {
        wheel.arm(30_000, key);
    }
    wheel.arm(2000, 1_000_000);
    wheel.retain(|&key| key == 1_000_000 || (key < 100 && key % 2 == 0));
    assert_eq!(wheel.len(), 51);
    assert!(wheel.capacity() < 1000, "{}", wheel.capacity());
    assert_eq!(advance(&mut wheel, 2000), vec![1_000_000]);
    assert_eq!(
        advance(&mut wheel, 30_000),
        (0..100).step_by(2).collect::<Vec<_>>()
    );
    assert!(wheel.is_empty());
}
