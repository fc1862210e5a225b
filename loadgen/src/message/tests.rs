use super::*;

#[test]
fn stamps_round_trip() {
    let clock = Clock::start();
    let s = Stamp {
        sender: 18_999,
        seq: 3,
        due: clock.at_micros(61_000_123).unwrap(),
        sent: clock.at_micros(61_000_456).unwrap(),
    };
    let mut text = String::new();
    s.encode(&clock, &mut text);
    assert!(text.len() < 100);
    assert!(text.starts_with("kc 18999 3 61000123 61000456 "), "{text}");
    assert_eq!(Stamp::parse(text.as_bytes(), &clock), Some(s));
}

#[test]
fn foreign_texts_are_not_stamps() {
    let clock = Clock::start();
    for t in [
        &b""[..],
        b"hello",
        b"kc",
        b"kc 1 2 3",
        b"kc x 2 3 4",
        b"kc -1 2 3 4",
        b"kc 1 2 3 99999999999999999999999",
        b"\xff\xfe",
        b"KC 1 2 3 4",
    ] {
        assert_eq!(Stamp::parse(t, &clock), None, "{t:?}");
    }
    assert!(Stamp::parse(b"kc 1 2 3 4", &clock).is_some());
}

#[test]
fn skipped_notices() {
    assert_eq!(parse_skipped(b"12 messages were skipped"), Some(12));
    assert_eq!(parse_skipped(b"1 messages were skipped"), Some(1));
    assert_eq!(parse_skipped(b"amy joined"), None);
    assert_eq!(parse_skipped(b"x messages were skipped"), None);
    assert_eq!(parse_skipped(b"-3 messages were skipped"), None);
    assert_eq!(parse_skipped(b"messages were skipped"), None);
}
