use super::*;

#[test]
fn a_burst_then_the_rate() {
    let t0 = Instant::now();
    let mut pace = Pace::new(t0);
    for _ in 0..BURST {
        assert!(pace.take(t0));
    }
    assert!(!pace.take(t0), "the burst is used up");
    let next = pace.next_token();
    assert_eq!(next, t0 + Duration::from_secs(1) / PER_SEC);
    assert!(!pace.take(next - Duration::from_millis(1)));
    assert!(pace.take(next));
    // A second later, PER_SEC more, not more.
    let later = next + Duration::from_secs(1);
    for _ in 0..PER_SEC {
        assert!(pace.take(later));
    }
    assert!(!pace.take(later));
}

#[test]
fn the_pace_stays_under_the_servers_default_limit() {
    // Whatever the timing, the messages sent in any window of t seconds are at most
    // BURST + PER_SEC * t, within the server's default burst + rate * t.
    let server = kaichat_proto::hub::Rules::default();
    assert!(BURST < server.rate_burst && PER_SEC < server.rate_limit);
}
