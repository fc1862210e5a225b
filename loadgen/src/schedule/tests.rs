use super::*;
use std::sync::OnceLock;

/// An instant `us` microseconds after a fixed base.
fn t(us: u64) -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now) + Duration::from_micros(us)
}

fn d(us: u64) -> Duration {
    Duration::from_micros(us)
}

#[test]
fn phases_are_seeded_spread_and_in_range() {
    let period = Duration::from_secs(3);
    let phases = |seed, stream| -> Vec<Duration> {
        (0..1000).map(|c| phase(seed, c, stream, period)).collect()
    };
    let a = phases(7, STREAM_QUERY);
    assert_eq!(a, phases(7, STREAM_QUERY), "same seed, same phases");
    assert!(a.iter().all(|&p| p < period));
    assert_ne!(a, phases(8, STREAM_QUERY), "another seed, other phases");
    assert_ne!(a, phases(7, STREAM_MESSAGE), "streams are independent");
    // Roughly uniform: each third of the period gets about a third of the clients.
    for third in 0..3 {
        let n = a
            .iter()
            .filter(|&&p| (p.as_micros() / (period.as_micros() / 3)) as u64 == third)
            .count();
        assert!((250..420).contains(&n), "third {third}: {n}");
    }
    assert_eq!(phase(1, 1, 1, Duration::ZERO), Duration::ZERO);
}

#[test]
fn periodic_queries_are_due_on_the_grid() {
    let mut s = QuerySchedule::new(t(1_000), d(3_000));
    assert_eq!(s.next_wake(), Some(t(1_000)));
    assert_eq!(s.take_due(t(999)), None);
    assert_eq!(s.take_due(t(1_200)), Some(t(1_000)));
    assert_eq!(s.next_wake(), None, "outstanding: wait for the answer");
    assert_eq!(s.complete(t(1_500)), Some(t(1_000)));
    assert_eq!(s.next_wake(), Some(t(4_000)));
    assert_eq!(s.take_due(t(4_000)), Some(t(4_000)));
    assert_eq!(s.complete(t(4_100)), Some(t(4_000)));
}

#[test]
fn a_late_answer_delays_but_never_pipelines() {
    let mut s = QuerySchedule::new(t(0), d(3_000));
    assert_eq!(s.take_due(t(0)), Some(t(0)));
    // The answer takes 7 ms: QUERYs due at 3 and 6 ms could not go out.
    assert_eq!(s.take_due(t(3_000)), None);
    assert_eq!(s.take_due(t(6_000)), None);
    assert_eq!(s.complete(t(7_000)), Some(t(0)));
    // Each goes out as soon as the previous answer is in, measured from its own due time.
    assert_eq!(s.take_due(t(7_000)), Some(t(3_000)));
    assert_eq!(s.take_due(t(7_000)), None);
    assert_eq!(s.complete(t(7_500)), Some(t(3_000)));
    assert_eq!(s.take_due(t(7_500)), Some(t(6_000)));
    assert_eq!(s.complete(t(7_600)), Some(t(6_000)));
    assert_eq!(s.next_wake(), Some(t(9_000)), "caught up");
}

#[test]
fn flat_out_sends_when_the_answer_completes() {
    let mut s = QuerySchedule::new(t(10), Duration::ZERO);
    assert_eq!(s.take_due(t(10)), Some(t(10)));
    assert_eq!(s.take_due(t(50)), None);
    assert_eq!(s.complete(t(60)), Some(t(10)));
    assert_eq!(s.take_due(t(61)), Some(t(60)));
    assert_eq!(s.complete(t(70)), Some(t(60)));
    s.stop();
    assert_eq!(s.next_wake(), None);
    assert_eq!(s.take_due(t(1_000)), None);
}

#[test]
fn stopping_keeps_the_outstanding_answer() {
    let mut s = QuerySchedule::new(t(0), Duration::ZERO);
    assert_eq!(s.take_due(t(0)), Some(t(0)));
    s.stop();
    assert_eq!(s.outstanding(), Some(t(0)));
    assert_eq!(s.complete(t(5)), Some(t(0)));
    assert_eq!(s.next_wake(), None);
    assert_eq!(QuerySchedule::stopped().next_wake(), None);
}

#[test]
fn periodic_messages_catch_up() {
    let mut m = Periodic::new(t(100), d(1_000));
    assert_eq!(m.take_due(t(50)), None);
    assert_eq!(m.take_due(t(2_500)), Some(t(100)));
    assert_eq!(m.take_due(t(2_500)), Some(t(1_100)));
    assert_eq!(m.take_due(t(2_500)), Some(t(2_100)));
    assert_eq!(m.take_due(t(2_500)), None);
    assert_eq!(m.next_wake(), Some(t(3_100)));
    assert_eq!(Periodic::new(t(0), Duration::ZERO).next_wake(), None);
    assert_eq!(Periodic::never().take_due(t(u64::from(u32::MAX))), None);
}
