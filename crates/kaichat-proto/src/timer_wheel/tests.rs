//! Unit tests of the timer wheel: firing times, catching up, and cancelling by
//! invalidation.

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
