//! The established connection (contract sections 5 and 6) against the real server:
//! channels, acknowledgements, messages, QUERY answers, replay, the history bound and the
//! skip notice, channel close, spoofing, and error notices.

mod common;

use common::*;

const LE: ByteOrder = ByteOrder::Little;

/// Makes sure everything `c` sent before has been processed (PDUs are answered in order).
fn sync(c: &mut TestClient) {
    c.assert_alive();
}

#[test]
fn join_leave_are_acknowledged_and_leave_notices() {
    let server = Server::start(&[]);
    let mut a = server.member("amy", "@room");
    let mut b = server.member("ben", "@room");
    b.leave(); // the helper checks the ack: SERVER, the channel left
    assert_eq!(
        a.query_entries(),
        entries(&[
            ("SERVER", "amy joined"),
            ("SERVER", "ben joined"),
            ("SERVER", "ben left"),
        ])
    );
    // The notices carry the channel, a space separator and flag 0.
    b.join("@room");
    let got = a.query();
    assert_eq!(got.len(), 1);
    let n = &got[0];
    assert_eq!(n.username(), b"SERVER");
    assert_eq!(n.as_bytes()[10], b' ');
    assert_eq!(n.channel(), b"@room");
    assert_eq!(n.as_bytes()[61], 0);
    assert_eq!(n.params_text(), b"ben joined");
    // Leaving when not in a channel is an error; the connection stays.
    b.leave();
    b.send(&Pdu::leave(LE));
    b.expect_error();
    b.assert_alive();
}

#[test]
fn invalid_channel_names_are_rejected_and_change_nothing() {
    let server = Server::start(&[]);
    let mut c = server.member("cat", "@home");
    let mut long51 = join_pdu(LE, b"cat", &[b'@'; 50]);
    long51.bytes_mut()[61] = b'x';
    let mut nul_prefix = join_pdu(LE, b"cat", b"");
    nul_prefix.bytes_mut()[11..15].copy_from_slice(b"\0abc");
    let bad = [
        ("51 bytes", long51),
        ("no @", join_pdu(LE, b"cat", b"rust")),
        ("space", join_pdu(LE, b"cat", b"@a b")),
        ("only @", join_pdu(LE, b"cat", b"@")),
        ("empty", join_pdu(LE, b"cat", b"")),
        ("empty then garbage", nul_prefix),
        ("control byte", join_pdu(LE, b"cat", b"@a\x01")),
        ("non-ASCII", join_pdu(LE, b"cat", "@café".as_bytes())),
    ];
    for (why, pdu) in bad {
        c.send(&pdu);
        let got = c.recv();
        assert_ne!(
            c.command_of(&got),
            Command::JoinChannel,
            "invalid channel ({why}) acknowledged: {got:?}"
        );
        assert_error_notice(c.command_of(&got), &got);
    }
    // Still in @home, nothing new there.
    assert_eq!(c.query_entries(), entries(&[("SERVER", "cat joined")]));
    // A 50-byte name is fine.
    let fifty = format!("@{}", "x".repeat(49));
    c.join(&fifty);
    assert_eq!(
        c.query_entries(),
        entries(&[("SERVER", "cat joined")]),
        "the notice in the 50-byte channel"
    );
    // And from outside any channel, a bad name leaves the client outside.
    c.leave();
    c.send(&join_pdu(LE, b"cat", b"nohash"));
    c.expect_error();
    assert!(c.query().is_empty());
}

#[test]
fn joining_the_same_channel_again_is_acknowledged_and_changes_nothing() {
    let server = Server::start(&[]);
    let mut a = server.member("ann", "@same");
    let mut b = server.member("bob", "@same");
    assert_eq!(
        b.query_entries(),
        entries(&[("SERVER", "ann joined"), ("SERVER", "bob joined")])
    );
    b.say("one");
    b.join("@same");
    b.say("two");
    sync(&mut b);
    assert_eq!(
        a.query_entries(),
        entries(&[
            ("SERVER", "ann joined"),
            ("SERVER", "bob joined"),
            ("bob", "one"),
            ("bob", "two"),
        ])
    );
    // bob's read position did not move back either: no replay, no second notice.
    assert!(b.query().is_empty());
}

#[test]
fn joining_another_channel_leaves_the_old_one() {
    let server = Server::start(&[]);
    let mut a = server.member("ava", "@one");
    let mut b = server.member("bea", "@one");
    b.join("@two"); // only the JOIN is acknowledged: the helper reads exactly one PDU
    b.assert_alive(); // and no LEAVE ack is pending
    assert_eq!(
        a.query_entries(),
        entries(&[
            ("SERVER", "ava joined"),
            ("SERVER", "bea joined"),
            ("SERVER", "bea left"),
        ])
    );
    a.say("still here?");
    sync(&mut a);
    // bea now only reads @two.
    assert_eq!(b.query_entries(), entries(&[("SERVER", "bea joined")]));
    b.leave();
}

#[test]
fn channel_names_compare_byte_for_byte() {
    let server = Server::start(&[]);
    let mut a = server.member("up", "@Rust");
    let mut b = server.member("low", "@rust");
    a.say("upper");
    b.say("lower");
    sync(&mut a);
    sync(&mut b);
    assert_eq!(
        a.query_entries(),
        entries(&[("SERVER", "up joined")]),
        "@Rust sees nothing of @rust"
    );
    assert_eq!(b.query_entries(), entries(&[("SERVER", "low joined")]));
}

#[test]
fn send_outside_a_channel_or_empty_is_an_error() {
    let server = Server::start(&[]);
    let mut c = server.login("dan");
    c.say("nobody hears");
    c.expect_error();
    c.join("@d");
    c.send(&Pdu::send_message(LE, b""));
    c.expect_error();
    // A NUL first byte with garbage after it is empty too.
    let mut p = Pdu::send_message(LE, b"");
    p.bytes_mut()[261..265].copy_from_slice(b"junk");
    c.send(&p);
    c.expect_error();
    c.assert_alive();
    assert_eq!(c.query_entries(), entries(&[("SERVER", "dan joined")]));
}

#[test]
fn query_outside_a_channel_is_just_the_up_to_date_pdu() {
    let server = Server::start(&[]);
    let mut c = server.login("eli");
    c.send(&Pdu::query(LE));
    let marker = c.expect(Command::ReceiveMessage);
    assert_eq!(marker.username(), b"SERVER");
    assert_eq!(marker.as_bytes()[10], b' ');
    assert_eq!(marker.channel(), b"", "empty channel outside a channel");
    assert_eq!(marker.as_bytes()[61], 1, "up-to-date flag at prefix[61]");
    assert!(marker.as_bytes()[62..256].iter().all(|&b| b == 0));
    assert!(marker.params().iter().all(|&b| b == 0));
    c.assert_alive(); // nothing else was sent
}

#[test]
fn messages_reach_other_members_with_the_exact_layout() {
    let server = Server::start(&[]);
    let mut a = server.member("fay", "@lay");
    let mut b = server.member("gus", "@lay");
    b.query();
    // Garbage after the message's NUL is not relayed.
    let mut p = Pdu::send_message(LE, b"hello");
    p.bytes_mut()[266..270].copy_from_slice(b"XXXX");
    a.send(&p);
    let full = vec![b'z'; 2000];
    a.send(&Pdu::send_message(LE, &full));
    let utf8 = "grüße, 世界\n\t\x01\x7f";
    a.say(utf8);
    sync(&mut a);

    b.send(&Pdu::query(LE));
    let m = b.expect(Command::ReceiveMessage);
    assert_eq!(m.command_bytes(), [5, 0, 0, 0]);
    assert_eq!(&m.prefix()[..11], b"fay\0\0\0\0\0\0\0 ");
    assert_eq!(m.channel(), b"@lay");
    assert!(m.prefix()[15..].iter().all(|&b| b == 0), "{m:?}");
    assert_eq!(m.params_text(), b"hello");
    assert!(
        m.params()[5..].iter().all(|&b| b == 0),
        "senders zero after NUL"
    );
    let m = b.expect(Command::ReceiveMessage);
    assert_eq!(m.params(), &full[..], "a 2000-byte message fills params");
    assert_eq!(m.as_bytes()[61], 0);
    let m = b.expect(Command::ReceiveMessage);
    assert_eq!(m.params_text(), utf8.as_bytes());
    let marker = b.expect(Command::ReceiveMessage);
    assert!(marker.up_to_date(), "{marker:?}");
    assert_eq!(marker.channel(), b"@lay");
    // The read position moved past everything sent.
    assert!(b.query().is_empty());
}

#[test]
fn own_messages_are_left_out_ignoring_case_and_after_reconnecting() {
    let server = Server::start(&["--replay", "50"]);
    let mut keeper = server.member("keeper", "@own");
    let mut a = server.member("Alice", "@own");
    a.say("mine 1");
    keeper.say("theirs 1");
    sync(&mut keeper);
    a.say("mine 2");
    let got = a.query_entries();
    assert_eq!(
        got,
        entries(&[
            ("SERVER", "keeper joined"),
            ("SERVER", "Alice joined"),
            ("keeper", "theirs 1"),
        ])
    );
    a.quit();
    a.expect_clean_close();

    // The same user, another letter case, on a new connection.
    let mut again = server.member("aLICE", "@own");
    let got = again.query_entries();
    assert_eq!(
        got,
        entries(&[
            ("SERVER", "keeper joined"),
            ("SERVER", "Alice joined"),
            ("keeper", "theirs 1"),
            ("SERVER", "Alice left"),
            ("SERVER", "aLICE joined"),
        ]),
        "messages written as Alice are not shown to aLICE"
    );
    // keeper sees everything from both spellings.
    let got = keeper.query_entries();
    assert_eq!(
        got,
        entries(&[
            ("SERVER", "keeper joined"),
            ("SERVER", "Alice joined"),
            ("Alice", "mine 1"),
            ("Alice", "mine 2"),
            ("SERVER", "Alice left"),
            ("SERVER", "aLICE joined"),
        ])
    );
}

#[test]
fn a_joiner_is_replayed_the_last_r_entries() {
    let server = Server::start(&["--replay", "3"]);
    let mut a = server.member("old", "@r");
    for i in 1..=6 {
        a.say(&format!("m{i}"));
    }
    sync(&mut a);
    let mut b = server.member("new", "@r");
    assert_eq!(
        b.query_entries(),
        entries(&[
            ("old", "m4"),
            ("old", "m5"),
            ("old", "m6"),
            ("SERVER", "new joined"),
        ])
    );
    a.say("m7");
    sync(&mut a);
    assert_eq!(b.query_entries(), entries(&[("old", "m7")]));
}

#[test]
fn the_default_replay_is_twenty_entries() {
    let server = Server::start(&["--rate-limit", "0"]);
    let mut a = server.member("old", "@r20");
    for i in 1..=30 {
        a.say(&format!("m{i}"));
    }
    sync(&mut a);
    let mut b = server.member("new", "@r20");
    let got = b.query_entries();
    let mut want: Vec<(String, String)> = (11..=30)
        .map(|i| ("old".to_string(), format!("m{i}")))
        .collect();
    want.push(("SERVER".into(), "new joined".into()));
    assert_eq!(got, want);
}

#[test]
fn history_is_bounded_and_skipped_entries_are_counted() {
    let server = Server::start(&["--history", "5", "--replay", "5"]);
    let mut a = server.member("amos", "@h");
    let mut b = server.member("bert", "@h");
    assert_eq!(
        b.query_entries(),
        entries(&[("SERVER", "amos joined"), ("SERVER", "bert joined")])
    );
    for i in 1..=8 {
        a.say(&format!("m{i}"));
    }
    sync(&mut a);
    // Entries after bert's position: m1..m8; m1..m3 were evicted.
    let got = b.query();
    let texts: Vec<_> = got.iter().map(entry).collect();
    assert_eq!(
        texts,
        entries(&[
            ("SERVER", "3 messages were skipped"),
            ("amos", "m4"),
            ("amos", "m5"),
            ("amos", "m6"),
            ("amos", "m7"),
            ("amos", "m8"),
        ])
    );
    let skip = &got[0];
    assert_eq!(skip.as_bytes()[10], b' ');
    assert_eq!(skip.as_bytes()[61], 0);
    // amos never queried: his position is before `amos joined`. Evicted past it: both
    // joined notices and m1..m3 (his own count too); what is left is all his own.
    assert_eq!(
        a.query_entries(),
        entries(&[("SERVER", "5 messages were skipped")])
    );
    // The skip notice is not a history entry and is made once.
    assert!(b.query().is_empty());
    assert!(a.query().is_empty());
}

#[test]
fn a_channel_closes_when_its_last_member_leaves() {
    let server = Server::start(&[]);
    // By LEAVE.
    let mut a = server.member("first", "@tmp");
    a.say("old news");
    a.leave();
    let mut b = server.member("second", "@tmp");
    assert_eq!(
        b.query_entries(),
        entries(&[("SERVER", "second joined")]),
        "a new channel of the same name has no old history"
    );
    // By QUIT.
    b.say("gone soon");
    b.quit();
    b.expect_clean_close();
    // By joining another channel.
    let mut c = server.member("third", "@tmp");
    assert_eq!(c.query_entries(), entries(&[("SERVER", "third joined")]));
    c.say("x");
    c.join("@elsewhere");
    c.join("@tmp");
    assert_eq!(c.query_entries(), entries(&[("SERVER", "third joined")]));
    // By TCP close without QUIT.
    c.say("y");
    sync(&mut c);
    drop(c);
    let deadline = std::time::Instant::now() + ANSWER;
    loop {
        // The server may take a moment to notice the close.
        let mut d = server.member("fourth", "@tmp");
        let got = d.query_entries();
        if got == entries(&[("SERVER", "fourth joined")]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the channel never closed after its last member disconnected: {got:?}"
        );
        d.quit();
        d.expect_clean_close();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn the_server_ignores_the_username_a_client_writes_in_a_prefix() {
    let server = Server::start(&[]);
    let mut watcher = server.member("watcher", "@spoof");
    let mut m = server.login("mallory");
    // JOIN with somebody else's name in the prefix.
    m.send(&join_pdu(LE, b"watcher", b"@spoof"));
    let ack = m.expect(Command::JoinChannel);
    assert_eq!(ack.username(), b"SERVER");
    m.channel = b"@spoof".to_vec();
    // SEND_MESSAGE with names in the prefix, including SERVER.
    for fake in [&b"watcher"[..], b"SERVER", b"server"] {
        let mut p = Pdu::send_message(LE, b"trust me");
        p.set_username(fake);
        m.send(&p);
    }
    sync(&mut m);
    assert_eq!(
        watcher.query_entries(),
        entries(&[
            ("SERVER", "watcher joined"),
            ("SERVER", "mallory joined"),
            ("mallory", "trust me"),
            ("mallory", "trust me"),
            ("mallory", "trust me"),
        ])
    );
    // mallory's own messages are left out for mallory, not for watcher.
    assert_eq!(
        m.query_entries(),
        entries(&[("SERVER", "watcher joined"), ("SERVER", "mallory joined")])
    );
}

#[test]
fn an_established_client_gets_error_notices_for_what_it_may_not_send() {
    let server = Server::start(&[]);
    let mut peer = server.member("peer", "@err");
    let mut c = server.member("errs", "@err");
    let mut unknown9 = Pdu::ping(LE);
    unknown9.bytes_mut()[256..260].copy_from_slice(&[9, 0, 0, 0]);
    let mut unknown_max = Pdu::ping(LE);
    unknown_max.bytes_mut()[256..260].copy_from_slice(&[0xff; 4]);
    let mut unknown_mixed = Pdu::ping(LE);
    unknown_mixed.bytes_mut()[256..260].copy_from_slice(&[1, 0, 0, 1]);
    let cases = [
        (
            "RECEIVE_MESSAGE",
            Pdu::receive(LE, b"errs", Some(&channel_name("@err")), b"fake"),
        ),
        (
            "RECEIVE_MESSAGE as SERVER",
            Pdu::notice(LE, Some(&channel_name("@err")), b"errs is an admin"),
        ),
        ("VERSION_NEGOTIATION again", Pdu::client_version(LE, 1)),
        ("CLIENT_INFO again", Pdu::client_info(LE, b"other")),
        ("code 9", unknown9),
        ("code 0xffffffff", unknown_max),
        ("bytes 1,0,0,1", unknown_mixed),
    ];
    for (why, pdu) in cases {
        c.send(&pdu);
        let got = c.recv();
        let command = c.command_of(&got);
        assert!(
            command == Command::ReceiveMessage && got.params_text().starts_with(b"error: "),
            "{why}: expected an error notice, got {got:?}"
        );
        assert_error_notice(command, &got);
    }
    // Nothing changed: same name, same channel, PING answered, nothing injected.
    c.assert_alive();
    c.say("still errs");
    sync(&mut c);
    assert_eq!(
        peer.query_entries(),
        entries(&[
            ("SERVER", "peer joined"),
            ("SERVER", "errs joined"),
            ("errs", "still errs"),
        ])
    );
    // PING outside a channel is answered too.
    c.leave();
    c.assert_alive();
}

#[test]
fn only_the_clients_own_channel_is_returned() {
    let server = Server::start(&[]);
    let mut a = server.member("x1", "@a");
    let mut b = server.member("x2", "@b");
    let mut a2 = server.member("x3", "@a");
    b.say("in b");
    a2.say("in a");
    sync(&mut b);
    sync(&mut a2);
    assert_eq!(
        a.query_entries(),
        entries(&[
            ("SERVER", "x1 joined"),
            ("SERVER", "x3 joined"),
            ("x3", "in a"),
        ])
    );
    assert_eq!(b.query_entries(), entries(&[("SERVER", "x2 joined")]));
}

#[test]
fn answers_follow_request_order_and_a_long_answer_is_never_interleaved() {
    let server = Server::start(&["--replay", "500", "--rate-limit", "0"]);
    let mut talker = server.member("talker", "@long");
    let mut batch = Vec::new();
    for i in 0..500 {
        batch.extend_from_slice(Pdu::send_message(LE, format!("long {i}").as_bytes()).as_bytes());
    }
    talker.write(&batch);
    sync(&mut talker);

    let mut reader = server.login("reader");
    let mut requests = Vec::new();
    for pdu in [
        join_pdu(LE, b"reader", b"@long"),
        Pdu::query(LE),
        Pdu::send_message(LE, b""), // error, answered at once but after the answer
        Pdu::ping(LE),
        Pdu::query(LE),
        Pdu::leave(LE),
        Pdu::leave(LE), // error: not in a channel
    ] {
        requests.extend_from_slice(pdu.as_bytes());
    }
    reader.write(&requests);
    // Meanwhile the channel keeps moving.
    let mut extra = Vec::new();
    for i in 0..100 {
        extra.extend_from_slice(Pdu::send_message(LE, format!("extra {i}").as_bytes()).as_bytes());
    }
    talker.write(&extra);

    let ack = reader.expect(Command::JoinChannel);
    assert_eq!(ack.channel(), b"@long");
    reader.channel = b"@long".to_vec();
    let first: Vec<_> = reader.read_answer().iter().map(entry).collect();
    assert!(first.len() >= 501, "{} entries", first.len());
    for (i, e) in first[..500].iter().enumerate() {
        assert_eq!(e, &("talker".to_string(), format!("long {i}")));
    }
    assert_eq!(
        first[500],
        ("SERVER".to_string(), "reader joined".to_string())
    );
    reader.expect_error();
    reader.expect_pong();
    let second: Vec<_> = reader.read_answer().iter().map(entry).collect();
    let ack = reader.expect(Command::LeaveChannel);
    assert_eq!(ack.channel(), b"@long");
    reader.channel.clear();
    reader.expect_error();

    // Every extra message arrived exactly once, in order, in one answer or the other.
    let mut moving: Vec<_> = first[501..].to_vec();
    moving.extend(second);
    for (i, e) in moving.iter().enumerate() {
        assert_eq!(e, &("talker".to_string(), format!("extra {i}")));
    }
}

#[test]
fn join_ignores_an_empty_or_foreign_username_field() {
    let server = Server::start(&[]);
    let mut c = server.login("blank");
    c.send(&join_pdu(LE, b"", b"@blank"));
    let ack = c.expect(Command::JoinChannel);
    assert_eq!(ack.channel(), b"@blank");
    c.channel = b"@blank".to_vec();
    assert_eq!(c.query_entries(), entries(&[("SERVER", "blank joined")]));
}

#[test]
fn replay_zero_shows_a_joiner_only_what_comes_after() {
    let server = Server::start(&["--replay", "0"]);
    let mut a = server.member("early", "@r0");
    a.say("before");
    sync(&mut a);
    let mut b = server.member("later", "@r0");
    a.say("after");
    sync(&mut a);
    assert_eq!(
        b.query_entries(),
        entries(&[("SERVER", "later joined"), ("early", "after")])
    );
}
