use super::*;

#[test]
fn sanitize_escapes_controls() {
    assert_eq!(sanitize(b"hello"), "hello");
    assert_eq!(sanitize(b"a\nb"), "a\\nb");
    assert_eq!(sanitize(b"\x1b[2J"), "\\u{1b}[2J");
    assert_eq!(sanitize(b"caf\xc3\xa9"), "café");
    assert_eq!(sanitize(b"\xff"), "\u{fffd}");
}

#[test]
fn plain_lines() {
    let t = "12:00:00";
    let m = Line::Message {
        sender: "bob".into(),
        channel: "@c".into(),
        text: "hi there".into(),
    };
    assert_eq!(plain(&m, t), "message 12:00:00 bob @c hi there");
    let n = Line::Notice {
        channel: String::new(),
        text: "x".into(),
    };
    assert_eq!(plain(&n, t), "notice 12:00:00 - x");
    assert_eq!(plain(&Line::Joined("@c".into()), t), "joined @c");
    assert_eq!(plain(&Line::Bye, t), "bye");
    assert_eq!(plain(&Line::Help("a\nb\n"), t), "info a\ninfo b");
}

#[test]
fn decorated_without_colour_has_no_escapes() {
    let m = Line::Message {
        sender: "bob".into(),
        channel: "@c".into(),
        text: "hi".into(),
    };
    let s = decorated(&m, "12:00:00", false);
    assert_eq!(s, "12:00:00 @c <bob> hi");
    assert!(decorated(&m, "12:00:00", true).contains('\x1b'));
}

#[test]
fn clock_format() {
    let c = clock();
    assert_eq!(c.len(), 8);
    assert_eq!(&c[2..3], ":");
}
