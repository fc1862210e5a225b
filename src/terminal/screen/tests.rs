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
    let c = clock_at(0);
    assert_eq!(c.len(), 8);
    assert_eq!(&c[2..3], ":");
}

#[test]
fn time_stamps_are_shown_as_local_time_of_the_entry() {
    // 1 s after the epoch, seen from any time zone: the seconds are those of the stamp.
    let t = clock_at(1_000);
    assert_eq!(t.len(), 8);
    assert_eq!(&t[6..8], "01");
    assert_eq!(clock_at(61_999)[3..], clock_at(61_000)[3..]);
    assert_eq!(&clock_at(61_000)[6..8], "01");
    assert_ne!(clock_at(1_000), clock_at(2_000));
    // Far beyond what time_t holds: no panic.
    assert_eq!(clock_at(u64::MAX).len(), 8);
}

#[test]
fn version_2_lines() {
    let t = "12:00:00";
    let ch = Line::Channel {
        channel: "@rust".into(),
        members: 12,
        history: 340,
    };
    assert_eq!(plain(&ch, t), "channel @rust 12 340");
    assert_eq!(
        decorated(&ch, t, false),
        "-- @rust  12 members, 340 messages"
    );
    let one = Line::Channel {
        channel: "@a".into(),
        members: 1,
        history: 1,
    };
    assert_eq!(decorated(&one, t, false), "-- @a  1 member, 1 message");
    assert_eq!(plain(&Line::Channels(2), t), "channels 2");
    assert_eq!(
        decorated(&Line::Channels(2), t, false),
        "-- 2 channels open"
    );
    assert_eq!(
        decorated(&Line::Channels(0), t, false),
        "-- no channel is open"
    );
    let names = Line::Names {
        channel: "@c".into(),
        operators: vec!["amy".into()],
        members: vec!["bob".into(), "cy".into()],
    };
    assert_eq!(plain(&names, t), "names @c 3 @amy bob cy");
    assert_eq!(decorated(&names, t, false), "-- @c (3 names): @amy bob cy");
    let kick = Line::Done {
        what: "kick",
        channel: "@c".into(),
        target: "bob".into(),
    };
    assert_eq!(plain(&kick, t), "done kick @c bob");
    assert_eq!(decorated(&kick, t, false), "-- bob kicked from @c");
    let server = Line::Done {
        what: "ban",
        channel: "*".into(),
        target: "dan".into(),
    };
    assert_eq!(
        decorated(&server, t, false),
        "-- dan banned from the server"
    );
    assert_eq!(plain(&Line::Removed("@c".into()), t), "removed @c");
    assert_eq!(
        decorated(&Line::Removed("@c".into()), t, false),
        "!! removed from @c"
    );
    assert_eq!(plain(&Line::Operator, t), "operator");
}
