use super::*;

#[test]
fn a_chat_entry_parses_with_its_sender_and_text() {
    let parsed = parse(b"7 0 1700000000123 5 0 0 0 0\nalicehello there").unwrap();
    assert_eq!(parsed.seq, 7);
    assert_eq!(parsed.entry.kind, Kind::Chat);
    assert_eq!(parsed.entry.time_ms, 1_700_000_000_123);
    assert_eq!(parsed.entry.sender.unwrap().as_bytes(), b"alice");
    assert_eq!(&*parsed.entry.text, b"hello there");
    assert_eq!(parsed.removal, None);
}

#[test]
fn a_removal_carries_its_target_operator_reason_and_ban() {
    let text = b"bob was banned by alice: spam";
    let payload = [&b"9 2 5 0 3 5 4 1\nbobalicespam"[..], text].concat();
    let parsed = parse(&payload).unwrap();
    let removal = parsed.removal.unwrap();
    assert_eq!(removal.target.as_bytes(), b"bob");
    assert_eq!(removal.by.as_bytes(), b"alice");
    assert_eq!(&*removal.reason, b"spam");
    assert!(removal.banned);
    assert_eq!(&*parsed.entry.text, text);
    assert_eq!(parsed.entry.sender, None);
}

#[test]
fn text_may_hold_newlines_and_spaces() {
    let parsed = parse(b"1 0 5 1 0 0 0 0\nxa\nb c").unwrap();
    assert_eq!(&*parsed.entry.text, b"a\nb c");
}

#[test]
fn malformed_payloads_are_errors_not_panics() {
    for bad in [
        &b""[..],
        b"1 0 5",
        b"1 0 5 1 0 0 0 0",
        b"x 0 5 1 0 0 0 0\nab",
        b"1 9 5 0 0 0 0 0\nab",
        b"1 0 5 99 0 0 0 0\nab",
        b"1 0 5 18446744073709551615 0 0 0 0\nab",
        b"1 2 5 0 0 0 0 0\nno target",
        b"1 0 5 3 0 0 0 0\na b",
    ] {
        assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn a_live_message_splits_at_the_first_space() {
    assert_eq!(
        split_live(b"1-0 7 0 5 0 0 0 0 0\nx").unwrap(),
        (&b"1-0"[..], &b"7 0 5 0 0 0 0 0\nx"[..])
    );
    assert!(split_live(b"nospace").is_err());
}
