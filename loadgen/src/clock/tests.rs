use super::*;

#[test]
fn round_trips() {
    let c = Clock::start();
    let at = c.at_micros(1_234_567).unwrap();
    assert_eq!(c.micros(at), 1_234_567);
    assert!((c.unix(at) - c.unix(c.epoch()) - 1.234567).abs() < 1e-6);
    assert_eq!(c.since_epoch(c.epoch()), Duration::ZERO);
    // A server-supplied number never panics, however large.
    let _ = c.at_micros(u64::MAX);
}
