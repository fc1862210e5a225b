//! Protocol version 2 against the real server binary over real TLS
//! (`shared/spec/kaichat-v2.md`, documented for users in `docs/PROTOCOL.md` part 2): the
//! offered version and `--max-version 1`, v1 and v2 clients in one channel (push, echo,
//! time stamps, QUERY as the sync point), LIST_CHANNELS and NAMES, KICK, BAN and UNBAN
//! from every side, OPER, the server ban by address, the rate limit, and the v2 flags.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::*;

/// A PDU of `code` (any of 0 to 14) in `order`, everything else zero.
fn raw_command(order: ByteOrder, code: u32) -> Pdu {
    Pdu::new(Command::from_code(code).expect("a known code"), order)
}

/// Codes 9 to 14 are unknown commands on this (v1) connection, shaped as v2 reads them
/// (KICK and BAN of `target` from the client's channel): an error notice each, and the
/// connection goes on.
fn assert_v2_codes_unknown(c: &mut TestClient, target: &str) {
    for code in 9..=14 {
        let channel = String::from_utf8_lossy(&c.channel).into_owned();
        let pdu = match Command::from_code(code) {
            Some(Command::Names) => Pdu::names(c.order, channel.as_bytes()),
            Some(command @ (Command::Kick | Command::Ban | Command::Unban)) => {
                moderation(c, command, &channel, target, "no")
            }
            Some(Command::Oper) => Pdu::oper(c.order, b"password"),
            _ => raw_command(c.order, code),
        };
        c.send(&pdu);
        let error = expect_error_saying(c, &format!("unknown command code {code} "));
        assert_v1_shape(&error);
    }
    c.assert_alive();
}

// ---------------------------------------------------------------------------------------
// Negotiation
// ---------------------------------------------------------------------------------------

#[test]
fn the_server_offers_version_2_by_default_and_1_with_max_version_1() {
    let server = Server::start(&[]);
    assert_eq!(server.client().ping_version(), 2);

    let v1 = Server::start(&["--max-version", "1"]);
    let mut c = v1.client();
    assert_eq!(c.ping_version(), 1);
    // Selecting 2 from a v1-only server is selecting an unsupported version.
    c.send(&Pdu::client_version(c.order, 2));
    expect_error_saying(&mut c, "unsupported protocol version 2");
    c.expect_closed();

    // On a v1-only server, codes 9 to 14 are unknown commands: an operator's KICK changes
    // nothing.
    let mut old = v1.member("old", "@v1");
    let mut other = v1.member("other", "@v1");
    assert_v2_codes_unknown(&mut old, "other");
    other.say("still here");
    assert_eq!(
        query_v1(&mut old),
        entries(&[
            ("SERVER", "old joined"),
            ("SERVER", "other joined"),
            ("other", "still here")
        ])
    );
}

#[test]
fn a_v1_client_on_a_v2_server_sees_exactly_version_1() {
    let server = Server::start(&[]);
    let mut old = server.member("old", "@both");
    let mut new = server.member_v2("new", "@both");
    expect_entry(&mut new, "SERVER", "old joined");
    expect_entry(&mut new, "SERVER", "new joined");
    old.say("mine");
    new.say("theirs");
    expect_entry(&mut new, "old", "mine");
    expect_entry(&mut new, "new", "theirs");
    // No echo, no time stamps, and (below) none of v2's commands.
    assert_eq!(
        query_v1(&mut old),
        entries(&[
            ("SERVER", "old joined"),
            ("SERVER", "new joined"),
            ("new", "theirs"),
        ])
    );
    // Nothing is pushed to a v1 client: it only hears what it asks for.
    new.say("unasked");
    old.expect_silence(QUIET);
    assert_v2_codes_unknown(&mut old, "new");
    // Its error notices carry no time stamp either.
    old.send(&Pdu::send_message(old.order, b""));
    let error = expect_error_saying(&mut old, "empty");
    assert_v1_shape(&error);
    assert_eq!(query_v1(&mut old), entries(&[("new", "unasked")]));
}

// ---------------------------------------------------------------------------------------
// Push, echo, time stamps
// ---------------------------------------------------------------------------------------

#[test]
fn v1_and_v2_clients_in_one_channel_each_see_what_their_version_promises() {
    let server = Server::start(&["--replay", "3"]);
    let mut alice = server.member_v2("alice", "@mix");
    // The replay (the channel is new: nothing), then the joiner's own `joined`.
    let alice_joined = expect_entry(&mut alice, "SERVER", "alice joined");
    let mut bob = server.member("bob", "@mix");
    let bob_joined = expect_entry(&mut alice, "SERVER", "bob joined");
    assert!(
        bob_joined.time() >= alice_joined.time(),
        "stamps go forward"
    );

    // Pushed: it arrives without a QUERY. A v1 client polls every 3 s; push is meant to take
    // milliseconds (the issue asks for 100 ms). 1 s is far below the polling interval and
    // leaves room for a loaded CI machine.
    let said = Instant::now();
    bob.say("hello from v1");
    let pdu = match alice.try_recv_within(Duration::from_secs(1)) {
        Ok(pdu) => pdu,
        Err(e) => panic!("the message was not pushed within 1 s of sending: {e:?}"),
    };
    assert!(said.elapsed() < Duration::from_secs(1));
    assert_eq!(alice.command_of(&pdu), Command::ReceiveMessage, "{pdu:?}");
    assert_eq!(entry(&pdu), ("bob".into(), "hello from v1".into()));
    assert_eq!(pdu.channel(), b"@mix");
    assert_eq!(pdu.as_bytes()[61], 0);
    assert_stamped(&pdu);
    assert!(pdu.time() >= bob_joined.time(), "stamps go forward");
    let hello_v1_time = pdu.time();

    // A v2 client's own message comes back (the echo), with its stamp.
    alice.say("hello from v2");
    let echo = expect_entry(&mut alice, "alice", "hello from v2");
    assert!(echo.time() >= hello_v1_time);

    // Everything was pushed: QUERY answers the up-to-date PDU alone.
    let (unpushed, _) = sync(&mut alice);
    assert!(unpushed.is_empty(), "pushed twice: {unpushed:?}");

    // The v1 client: the replay and everything since, but its own message; no stamps.
    assert_eq!(
        query_v1(&mut bob),
        entries(&[
            ("SERVER", "alice joined"),
            ("SERVER", "bob joined"),
            ("alice", "hello from v2"),
        ])
    );

    // A v2 joiner: the JOIN acknowledgement, the replay (the last 3 entries, each with the
    // time it was appended, not the time of the replay), then its own `joined`.
    let mut carol = server.member_v2("carol", "@mix");
    expect_entry(&mut carol, "SERVER", "bob joined");
    let replayed = expect_entry(&mut carol, "bob", "hello from v1");
    assert_eq!(replayed.time(), hello_v1_time, "a replay keeps the stamp");
    expect_entry(&mut carol, "alice", "hello from v2");
    expect_entry(&mut carol, "SERVER", "carol joined");
    expect_entry(&mut alice, "SERVER", "carol joined");
    assert_eq!(query_v1(&mut bob), entries(&[("SERVER", "carol joined")]));
}

#[test]
fn with_sync_always_an_entry_is_pushed_once_the_store_commits_it() {
    // Under `always`, pushes stop at what the store has committed; the commit, not another
    // client's request, must release them.
    let dir = TempDir::new("v2-always");
    let db = dir.db();
    let server = Server::start(&["--store", &db, "--sync", "always"]);
    let mut alice = server.member_v2("alice", "@durable");
    expect_entry(&mut alice, "SERVER", "alice joined");
    let mut bob = server.member("bob", "@durable");
    expect_entry(&mut alice, "SERVER", "bob joined");
    // Five round trips, each message sent once the previous one arrived. A push held until
    // the loop's next whole-second wake-up takes up to a second each (about 5 s for the
    // five); pushed on the commit, they take a few fsyncs.
    let start = Instant::now();
    for i in 0..5 {
        bob.say(&format!("kept {i}"));
        let pdu = alice.expect(Command::ReceiveMessage);
        assert_eq!(entry(&pdu), ("bob".into(), format!("kept {i}")), "{pdu:?}");
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "five committed messages took {:?} to be pushed",
        start.elapsed()
    );
}

#[test]
fn a_v2_query_answers_only_what_was_not_pushed_behind_a_backlog() {
    let server = Server::start(&[]);
    let mut dana = server.member_v2("dana", "@backlog");
    expect_entry(&mut dana, "SERVER", "dana joined");
    // 900 messages of 2000 bytes while dana reads nothing: far more than its socket and
    // the server's output bound hold, so pushing pauses with entries still owed.
    const N: usize = 900;
    let filler = fill_channel(&server, "@backlog", N);
    // The filler's PING was answered: all N are in the history. Now dana asks.
    dana.send(&Pdu::query(dana.order));
    let mut seen = Vec::new();
    loop {
        let pdu = dana.expect(Command::ReceiveMessage);
        if pdu.up_to_date() {
            break;
        }
        assert_stamped(&pdu);
        seen.push(entry(&pdu));
    }
    // Pushed and answered together: every entry exactly once, in order, all before the
    // up-to-date PDU (the answer covers what had not been pushed when QUERY was read).
    assert_eq!(seen.len(), N + 1, "entries before the up-to-date PDU");
    assert_eq!(seen[0], ("SERVER".to_string(), "filler joined".to_string()));
    for (i, (sender, text)) in seen[1..].iter().enumerate() {
        assert_eq!(sender, "filler");
        assert_eq!(&text[..5], format!("{i:05}"), "message {i} out of place");
    }
    dana.expect_silence(QUIET);
    drop(filler);
}

#[test]
fn a_v2_reader_that_fell_behind_resumes_with_a_skip_notice_that_accounts_for_every_entry() {
    let server = Server::start(&["--history", "100"]);
    let mut slow = server.member_v2("slow", "@slow");
    expect_entry(&mut slow, "SERVER", "slow joined");
    // 3000 messages of 2000 bytes (6.8 MB) while the reader reads nothing: more than the
    // socket buffers hold (at most 4 MiB of send buffer here, and a receive buffer that
    // grows only as it is read), with 100 entries retained: pushing pauses, and entries
    // owed to it are evicted meanwhile.
    const N: usize = 3000;
    let filler = fill_channel(&server, "@slow", N);
    let (pdus, _) = sync(&mut slow);
    let mut accounted = 0;
    let mut skips = 0;
    let mut next = 0; // the lowest message number still possible
    for pdu in &pdus {
        assert_eq!(slow.command_of(pdu), Command::ReceiveMessage, "{pdu:?}");
        assert_stamped(pdu);
        let (sender, text) = entry(pdu);
        if let Some(n) = text.strip_suffix(" messages were skipped") {
            assert_eq!(sender, "SERVER");
            let n: usize = n.parse().expect("a count");
            assert!(n > 0);
            accounted += n;
            next += n;
            skips += 1;
        } else if sender == "SERVER" {
            assert_eq!(text, "filler joined");
            accounted += 1;
            next += 1;
        } else {
            assert_eq!(sender, "filler");
            let number: usize = text[..5].parse().expect("a message number");
            // Entry n + 1 of the channel after `slow joined` is message n.
            assert_eq!(number + 1, next, "out of order or skipped silently");
            accounted += 1;
            next += 1;
        }
    }
    assert!(skips >= 1, "the reader never fell behind: no skip notice");
    assert_eq!(
        accounted,
        N + 1,
        "every entry is sent or counted as skipped"
    );
    drop(filler);
}

// ---------------------------------------------------------------------------------------
// LIST_CHANNELS and NAMES
// ---------------------------------------------------------------------------------------

#[test]
fn list_channels_streams_every_open_channel_in_byte_order_with_counts() {
    let server = Server::start(&[]);
    // Big-endian: every listing PDU comes in the client's byte order.
    let mut lister = server.client().big_endian();
    lister.handshake_v2("lister");
    assert_eq!(list(&mut lister), (vec![], 0), "no channel open");

    let mut a1 = server.member("a1", "@beta");
    let _a2 = server.member("a2", "@beta");
    a1.say("hi");
    a1.assert_alive();
    let _b1 = server.member("b1", "@alpha");
    let _g1 = server.member("g1", "@Gamma");
    let mut closed = server.member("gone", "@closed");
    closed.leave();
    // The channel closed with its last member; the LIST must not show it.
    let (listed, count) = list(&mut lister);
    // Ascending byte order ('G' < 'a'); members; retained entries (joined x2 and "hi").
    assert_eq!(
        listed,
        vec![
            ("@Gamma".to_string(), 1, 1),
            ("@alpha".to_string(), 1, 1),
            ("@beta".to_string(), 2, 3),
        ]
    );
    assert_eq!(count, 3);
}

#[test]
fn names_lists_operators_first_then_members_in_join_order_in_full_pdus() {
    let server = Server::start(&[]);
    let mut boss = server.member("boss", "@crowd");
    // 185 ten-byte names: more than one PDU holds (181 with their spaces and the NUL).
    let members: Vec<String> = (0..185).map(|i| format!("member{i:04}")).collect();
    let mut clients = Vec::new();
    for name in &members {
        clients.push(server.member(name, "@crowd"));
    }
    let mut last = server.member_v2("last", "@crowd");
    let replay = sync_entries(&mut last);
    assert_eq!(
        replay.last(),
        Some(&("SERVER".into(), "last joined".into()))
    );

    let mut expected: Vec<String> = members.clone();
    expected.push("last".into());
    let check = |pdus: &[(bool, Vec<String>)], count: u32| {
        assert_eq!(
            pdus[0],
            (true, vec!["boss".to_string()]),
            "the operator first"
        );
        let rest: Vec<String> = pdus[1..]
            .iter()
            .flat_map(|(op, list)| {
                assert!(!op, "only boss is an operator");
                list.clone()
            })
            .collect();
        assert_eq!(rest, expected, "members in join order");
        // Every PDU but the last of its kind is full: the next name would not fit.
        for pair in pdus[1..].windows(2) {
            let used = pair[0].1.iter().map(|n| n.len() + 1).sum::<usize>();
            let next = pair[1].1[0].len();
            assert!(used + next + 1 > 2000, "a PDU with room left: {used} bytes");
        }
        assert_eq!(count as usize, 1 + expected.len());
    };
    // From outside the channel, by name.
    let mut outsider = server.login_v2("outsider");
    let (pdus, count) = names(&mut outsider, "@crowd", "@crowd");
    assert_eq!(pdus.len(), 3, "{pdus:?}");
    check(&pdus, count);
    // From inside, with an empty channel field: one's own channel.
    let (pdus, count) = names(&mut last, "", "@crowd");
    check(&pdus, count);

    // No listing for a channel that is not open, or for "" outside a channel.
    outsider.send(&Pdu::names(outsider.order, b"@nowhere"));
    expect_error_saying(&mut outsider, "@nowhere");
    outsider.send(&Pdu::names(outsider.order, b""));
    expect_error_saying(&mut outsider, "not in a channel");
    outsider.assert_alive();
    boss.assert_alive();
}

// ---------------------------------------------------------------------------------------
// KICK, BAN, UNBAN, operators
// ---------------------------------------------------------------------------------------

#[test]
fn kick_and_ban_seen_from_the_target_the_operator_and_bystanders() {
    let server = Server::start(&[]);
    let mut op = server.member_v2("op", "@mod");
    let mut tv2 = server.member_v2("tv2", "@mod");
    let mut tv1 = server.member("tv1", "@mod");
    let mut by2 = server.member_v2("by2", "@mod");
    let mut by1 = server.member("by1", "@mod");
    for c in [&mut op, &mut tv2, &mut by2] {
        sync(c);
    }
    query_v1(&mut tv1);
    query_v1(&mut by1);

    // A member that is not an operator cannot kick.
    let refused = moderation(&by2, Command::Kick, "", "tv2", "");
    by2.send(&refused);
    expect_error_saying(&mut by2, "error: you are not an operator of @mod");

    // KICK of a v2 member.
    let kick = moderation(&op, Command::Kick, "@mod", "tv2", "spam");
    op.send(&kick);
    expect_ack_of(&mut op, &kick);
    expect_removed(&mut tv2, "@mod", "you were kicked from @mod by op: spam");
    let removal = ("SERVER", "tv2 was kicked by op: spam");
    assert_eq!(sync_entries(&mut op), entries(&[removal]));
    assert_eq!(sync_entries(&mut by2), entries(&[removal]));
    assert_eq!(query_v1(&mut by1), entries(&[("SERVER", "tv2 left")]));
    let (after, _) = sync(&mut tv2);
    assert!(
        after.is_empty(),
        "a kicked client is sent nothing more: {after:?}"
    );

    // BAN of a v1 member: the notice in v1's one form for an unasked notice, an error.
    let ban = moderation(&op, Command::Ban, "", "tv1", "flood");
    op.send(&ban);
    expect_ack_of(&mut op, &ban);
    let leave = tv1.expect(Command::LeaveChannel);
    assert_eq!(
        (leave.username(), leave.channel()),
        (&b"SERVER"[..], &b"@mod"[..])
    );
    assert_v1_shape(&leave);
    let notice = expect_error_saying(&mut tv1, "error: you were banned from @mod by op: flood");
    assert_v1_shape(&notice);
    tv1.channel.clear();
    let removal = ("SERVER", "tv1 was banned by op: flood");
    assert_eq!(sync_entries(&mut op), entries(&[removal]));
    assert_eq!(sync_entries(&mut by2), entries(&[removal]));
    assert_eq!(query_v1(&mut by1), entries(&[("SERVER", "tv1 left")]));

    // Banned: the JOIN is refused, and nothing changes.
    tv1.send(&join_pdu(tv1.order, b"tv1", b"@mod"));
    expect_error_saying(&mut tv1, "error: you are banned from @mod");
    assert!(sync_entries(&mut by2).is_empty());

    // The operator leaves: the earliest joiner left (by2) is operator now. A v1 reader is
    // not sent the v2 notice at all.
    op.leave();
    assert_eq!(
        sync_entries(&mut by2),
        entries(&[("SERVER", "op left"), ("SERVER", "by2 is now an operator")])
    );
    assert_eq!(query_v1(&mut by1), entries(&[("SERVER", "op left")]));
    // ... and can kick: the former operator is a plain member once it rejoins.
    op.join("@mod");
    assert_eq!(sync_entries(&mut by2), entries(&[("SERVER", "op joined")]));
    let kick = moderation(&by2, Command::Kick, "@mod", "by1", "");
    by2.send(&kick);
    expect_ack_of(&mut by2, &kick);
    let leave = by1.expect(Command::LeaveChannel);
    assert_eq!(leave.channel(), b"@mod");
    expect_error_saying(&mut by1, "error: you were kicked from @mod by by2");
    by1.channel.clear();
    let (rejoined, _) = sync(&mut op);
    assert_eq!(
        rejoined.last().map(entry),
        Some(("SERVER".into(), "by1 was kicked by by2".into()))
    );
    let refused = moderation(&op, Command::Kick, "@mod", "by2", "");
    op.send(&refused);
    expect_error_saying(&mut op, "error: you are not an operator of @mod");

    // The ban outlives the channel: everyone leaves, the channel closes, tv1 is still
    // banned.
    op.leave();
    assert_eq!(
        sync_entries(&mut by2),
        entries(&[("SERVER", "by1 was kicked by by2"), ("SERVER", "op left")])
    );
    by2.leave();
    tv1.send(&join_pdu(tv1.order, b"tv1", b"@mod"));
    expect_error_saying(&mut tv1, "error: you are banned from @mod");
    // The new creator is its operator and lifts the ban.
    let mut founder = server.member_v2("founder", "@mod");
    expect_entry(&mut founder, "SERVER", "founder joined");
    let unban = moderation(&founder, Command::Unban, "@mod", "tv1", "");
    founder.send(&unban);
    expect_ack_of(&mut founder, &unban);
    founder.send(&unban);
    expect_error_saying(&mut founder, "tv1 is not banned from @mod");
    tv1.join("@mod");
    expect_entry(&mut founder, "SERVER", "tv1 joined");
}

#[test]
fn an_operator_can_kick_itself_and_the_next_member_becomes_operator() {
    let server = Server::start(&[]);
    let mut op = server.member_v2("op", "@self");
    let mut heir = server.member_v2("heir", "@self");
    sync(&mut op);
    sync(&mut heir);
    let kick = moderation(&op, Command::Kick, "", "op", "bye");
    op.send(&kick);
    expect_ack_of(&mut op, &kick);
    expect_removed(&mut op, "@self", "you were kicked from @self by op: bye");
    assert_eq!(
        sync_entries(&mut heir),
        entries(&[
            ("SERVER", "op was kicked by op: bye"),
            ("SERVER", "heir is now an operator"),
        ])
    );
}

// ---------------------------------------------------------------------------------------
// Server operators
// ---------------------------------------------------------------------------------------

/// OPER with `password`; the acknowledgement must follow.
fn oper(c: &mut TestClient, password: &str) {
    c.send(&Pdu::oper(c.order, password.as_bytes()));
    let ack = c.expect(Command::Oper);
    assert_eq!(ack.username(), b"SERVER", "{ack:?}");
    assert!(ack.params().iter().all(|&b| b == 0), "{ack:?}");
}

/// OPER with a wrong `password`: the refusal comes, and not before a second has passed.
fn oper_refused(c: &mut TestClient, password: &str) {
    let asked = Instant::now();
    c.send(&Pdu::oper(c.order, password.as_bytes()));
    expect_error_saying(c, "error: not an operator password");
    // A lower bound is the contract's behaviour (failures are no faster to retry), not a
    // timing that a slow machine could break.
    assert!(
        asked.elapsed() >= Duration::from_secs(1),
        "refused after {:?}, before the one-second delay",
        asked.elapsed()
    );
}

#[test]
fn oper_accepts_the_password_and_refuses_others_after_a_second() {
    let file = OperFile::new("oper", "open sesame");
    let server = Server::start(&["--oper-password-file", file.path()]);
    let mut mallory = server.login_v2("mallory");
    oper_refused(&mut mallory, "open barley");
    oper_refused(&mut mallory, "open barley");
    mallory.assert_alive();
    let mut root = server.login_v2("root");
    oper(&mut root, "open sesame");

    // Without a configured password, OPER always fails, the same way.
    let plain = Server::start(&[]);
    let mut c = plain.login_v2("c");
    oper_refused(&mut c, "open sesame");
}

#[test]
fn a_server_operator_moderates_every_channel_and_a_channel_operator_cannot_touch_one() {
    let file = OperFile::new("powers", "hunter2");
    let server = Server::start(&["--oper-password-file", file.path()]);
    let mut carol = server.member_v2("carol", "@x");
    expect_entry(&mut carol, "SERVER", "carol joined");
    let mut root = server.login_v2("root");
    oper(&mut root, "hunter2");
    // Not a member of @x, not its operator: a server operator still kicks its operator.
    let kick = moderation(&root, Command::Kick, "@x", "carol", "");
    root.send(&kick);
    expect_ack_of(&mut root, &kick);
    expect_removed(&mut carol, "@x", "you were kicked from @x by root");

    // In dave's channel, dave (its operator) cannot kick or ban the server operator.
    let mut dave = server.member_v2("dave", "@y");
    expect_entry(&mut dave, "SERVER", "dave joined");
    root.join("@y");
    sync(&mut root);
    expect_entry(&mut dave, "SERVER", "root joined");
    for command in [Command::Kick, Command::Ban] {
        let refused = moderation(&dave, command, "", "root", "");
        dave.send(&refused);
        expect_error_saying(&mut dave, "root is a server operator");
    }
    assert!(sync_entries(&mut root).is_empty(), "root is still in @y");
    let (pdus, _) = names(&mut dave, "", "@y");
    assert_eq!(
        pdus,
        vec![
            (true, vec!["dave".to_string()]),
            (false, vec!["root".to_string()])
        ]
    );
}

#[test]
fn a_server_ban_closes_every_connection_of_the_address_and_refuses_new_ones() {
    let file = OperFile::new("serverban", "letmein");
    let server = Server::start(&["--oper-password-file", file.path()]);
    let local = |last: u8| IpAddr::from([127, 0, 0, last]);
    let mut root = server.client();
    root.handshake_v2("root");
    oper(&mut root, "letmein");
    let mut victim = TestClient::connect_tls_from(local(2), server.addr);
    victim.handshake_v2("victim");
    victim.join("@room");
    let mut second = TestClient::connect_tls_from(local(2), server.addr);
    second.handshake("second");
    let mut neighbour = TestClient::connect_tls_from(local(3), server.addr);
    neighbour.handshake_v2("neighbour");

    // Only a server operator may ban from the whole server.
    let ban = moderation(&neighbour, Command::Ban, "*", "victim", "");
    neighbour.send(&ban);
    expect_error_saying(&mut neighbour, "only a server operator");

    let ban = moderation(&root, Command::Ban, "*", "victim", "abuse");
    root.send(&ban);
    expect_ack_of(&mut root, &ban);
    // Every connection from 127.0.0.2 ends, whatever its name (the victim may still be sent
    // what was pushed to it before).
    loop {
        match victim.try_recv_within(ANSWER) {
            Ok(_) => continue,
            Err(RecvError::TimedOut { .. }) => panic!("the banned victim is still connected"),
            Err(_) => break,
        }
    }
    second.expect_closed();
    // A new one is closed right after accept, before any TLS.
    let mut again = TestClient::connect_tls_from(local(2), server.addr);
    assert!(
        again.try_finish_tls(ANSWER).is_err(),
        "a banned address completed a TLS handshake"
    );
    // Other addresses are not touched.
    neighbour.assert_alive();
    let mut newcomer = TestClient::connect_tls_from(local(3), server.addr);
    newcomer.handshake_v2("newcomer");

    // A ban of a name that is not connected: refused, nothing changes.
    let ban = moderation(&root, Command::Ban, "*", "victim", "");
    root.send(&ban);
    expect_error_saying(&mut root, "victim is not connected");

    // Lifted by address: 127.0.0.2 connects again.
    root.send(&Pdu::unban_address(root.order, b"127.0.0.2"));
    let ack = root.expect(Command::Unban);
    assert_eq!(ack.username(), b"SERVER");
    assert_eq!(ack.channel(), b"*");
    assert_eq!(ack.params_text(), b"127.0.0.2");
    root.send(&Pdu::unban_address(root.order, b"127.0.0.2"));
    expect_error_saying(&mut root, "127.0.0.2 is not banned");
    let mut back = TestClient::connect_tls_from(local(2), server.addr);
    back.handshake_v2("victim");

    let end = server.terminate(ANSWER);
    let line = end
        .stderr
        .lines()
        .rev()
        .find(|l| l.contains(" shut down: "))
        .unwrap_or_else(|| panic!("no final stats line: {}", end.stderr))
        .to_string();
    assert_eq!(stat_in(&line, "refused_banned"), Some(1), "{line}");
}

// ---------------------------------------------------------------------------------------
// The rate limit
// ---------------------------------------------------------------------------------------

/// `n` SEND_MESSAGEs `prefix0`, `prefix1`... written at once.
fn burst(c: &mut TestClient, prefix: &str, n: usize) {
    let mut bytes = Vec::new();
    for i in 0..n {
        bytes.extend_from_slice(
            Pdu::send_message(c.order, format!("{prefix}{i}").as_bytes()).as_bytes(),
        );
    }
    c.write(&bytes);
}

#[test]
fn the_rate_limit_refuses_past_the_burst_with_a_notice_for_v1_and_v2() {
    let server = Server::start(&["--rate-limit", "2", "--rate-burst", "3"]);
    let mut watcher = server.member_v2("watcher", "@rate");
    let mut old = server.member("old", "@rate");
    let mut new = server.member_v2("new", "@rate");
    sync(&mut watcher);
    sync(&mut new);

    burst(&mut old, "v1-", 4);
    let error = expect_error_saying(&mut old, "error: slow down, message not sent");
    assert_v1_shape(&error);
    old.assert_alive();
    assert_eq!(
        sync_entries(&mut new),
        entries(&[("old", "v1-0"), ("old", "v1-1"), ("old", "v1-2")])
    );

    burst(&mut new, "v2-", 4);
    // The echoes of the three that were sent and the refusal of the fourth, in any order.
    let mut echoes = Vec::new();
    let mut refusals = 0;
    for _ in 0..4 {
        let pdu = new.expect(Command::ReceiveMessage);
        if pdu
            .params_text()
            .starts_with(b"error: slow down, message not sent")
        {
            refusals += 1;
        } else {
            echoes.push(entry(&pdu));
        }
    }
    assert_eq!(refusals, 1);
    assert_eq!(
        echoes,
        entries(&[("new", "v2-0"), ("new", "v2-1"), ("new", "v2-2")])
    );
    assert!(sync_entries(&mut new).is_empty());

    assert_eq!(
        sync_entries(&mut watcher),
        entries(&[
            ("old", "v1-0"),
            ("old", "v1-1"),
            ("old", "v1-2"),
            ("new", "v2-0"),
            ("new", "v2-1"),
            ("new", "v2-2"),
        ])
    );
}

#[test]
fn rate_limit_0_never_refuses() {
    let server = Server::start(&["--rate-limit", "0"]);
    let mut watcher = server.member_v2("watcher", "@free");
    let mut old = server.member("old", "@free");
    sync(&mut watcher);
    burst(&mut old, "m", 100);
    // PONG comes right after the 100: no notice came before it.
    old.assert_alive();
    let got = sync_entries(&mut watcher);
    assert_eq!(got.len(), 100);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, (s, t))| s == "old" && *t == format!("m{i}")));
}

// ---------------------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------------------

#[test]
fn max_version_3_and_a_password_file_without_an_argon2id_hash_are_refused_at_start() {
    let within = Duration::from_secs(5);
    let line = refusal_within(&["--max-version", "3"], within);
    assert!(
        line.starts_with("kaichat-server: --max-version: "),
        "{line}"
    );
    let not_a_hash = OperFile::with_text("nohash", "hunter2\n");
    let line = refusal_within(&["--oper-password-file", not_a_hash.path()], within);
    assert!(
        line.starts_with("kaichat-server: --oper-password-file: ") && line.contains("argon2id"),
        "{line}"
    );
    // A PHC string of another algorithm is not an argon2id one either.
    let other = OperFile::with_text(
        "argon2i",
        "$argon2i$v=19$m=1024,t=1,p=1$BwcHBwcHBwcHBwcHBwcHBw$jsYzi2yDlMDQ8yVn5TLg2Q\n",
    );
    let line = refusal_within(&["--oper-password-file", other.path()], within);
    assert!(line.contains("argon2id"), "{line}");
}

/// An operator password on a version-1-only server can never be used: the server says so.
#[test]
fn an_operator_password_on_a_version_1_server_is_warned_about() {
    let file = OperFile::new("v1oper", "unused");
    let server = Server::start(&["--max-version", "1", "--oper-password-file", file.path()]);
    let end = server.terminate(ANSWER);
    assert!(
        end.stderr
            .contains("--oper-password-file has no use with --max-version 1"),
        "{}",
        end.stderr
    );
    let server = Server::start(&["--oper-password-file", file.path()]);
    let end = server.terminate(ANSWER);
    assert!(!end.stderr.contains("has no use"), "{}", end.stderr);
}
