//! Several `kaichat-server` nodes forming one network through a real `redis-server`
//! (issue 13; `shared/spec/kaichat-v2.md` section 8: every rule of v1 and v2 holds across
//! the nodes), driven by real clients over real TLS: names are unique network-wide in any
//! letter case, a channel's entries reach every node in one order, LIST and NAMES agree
//! everywhere, KICK and BAN reach a target on another node, a killed node's names come
//! free within the lease and its members leave once, and a Redis that stops and comes back
//! loses nothing silently and shows nothing twice.
//!
//! Each test starts its own redis-server (`common::redis`, a free port, no persistence)
//! and its own nodes with a 1-second lease (`--lease-ms 1000`), so the failover waits stay
//! short. A missing redis-server fails the test with a message; it is never skipped.

mod common;

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::*;

/// The nodes' name and node lease (`--lease-ms`).
const LEASE: Duration = Duration::from_millis(1000);

/// A network: its redis-server and its nodes (`n0`, `n1`, ...). Fields drop in order: the
/// nodes go before Redis.
struct Network {
    nodes: Vec<Option<Server>>,
    redis: RedisServer,
}

impl Network {
    /// Redis, then `n` nodes on it.
    fn start(n: usize) -> Network {
        let redis = RedisServer::start();
        let url = redis.url();
        let lease = LEASE.as_millis().to_string();
        let nodes = (0..n)
            .map(|k| {
                let id = format!("n{k}");
                Some(Server::start(&[
                    "--redis",
                    &url,
                    "--node-id",
                    &id,
                    "--lease-ms",
                    &lease,
                ]))
            })
            .collect();
        Network { nodes, redis }
    }

    /// Node `k`, which must be running.
    fn node(&self, k: usize) -> &Server {
        self.nodes[k].as_ref().expect("a running node")
    }

    /// Kills node `k` with SIGKILL (no goodbye to Redis or to its clients).
    fn kill(&mut self, k: usize) {
        let node = self.nodes[k].take().expect("a running node");
        let end = node.signal_and_wait(libc::SIGKILL, ANSWER);
        assert!(end.status.is_some(), "node n{k} did not die of SIGKILL");
    }
}

/// Calls `attempt` every 50 ms until it gives a value, for at most `within`; panics naming
/// `what` when it never does.
fn eventually<T>(what: &str, within: Duration, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// A connection to `node` that has agreed on `version` and may now send CLIENT_INFO.
fn ready(node: &Server, version: u16) -> TestClient {
    let mut c = node.client();
    c.ping_version();
    c.send(&Pdu::client_version(c.order, version));
    c
}

/// The answer to a CLIENT_INFO for `name` already sent: `Ok` for the acknowledgement (the
/// client is then `name`), `Err` with the text of an error notice (the set-up goes on).
fn claim_answer(c: &mut TestClient, name: &str) -> Result<(), String> {
    let pdu = c.recv();
    if c.command_of(&pdu) == Command::ClientInfo {
        assert_eq!(pdu.username(), b"SERVER", "{pdu:?}");
        assert_eq!(pdu.client_info_name(), name.as_bytes(), "{pdu:?}");
        c.name = name.as_bytes().to_vec();
        return Ok(());
    }
    assert_error_notice(c.command_of(&pdu), &pdu);
    Err(String::from_utf8_lossy(pdu.params_text()).into_owned())
}

/// CLIENT_INFO for `name` on a [`ready`] connection, and its answer.
fn try_claim(c: &mut TestClient, name: &str) -> Result<(), String> {
    c.send(&Pdu::client_info(c.order, name.as_bytes()));
    claim_answer(c, name)
}

/// The notice for a network that cannot be reached (`kaichat_proto::network::UNAVAILABLE`).
const UNAVAILABLE: &str = "error: network unavailable, try again";

/// An entry as a version-2 member is pushed it: sender, text, time stamp (ms).
type Stamped = (String, String, u64);

/// Reads what is pushed to version-2 member `c` until every entry of `want` (sender,
/// text) has arrived; returns every entry read, in order. Each PDU must be an entry of
/// `c`'s channel (flag 0), stamped.
fn pushed_until(c: &mut TestClient, want: &[(&str, &str)]) -> Vec<Stamped> {
    pushed_until_in(c, &[], want)
}

/// [`pushed_until`] for a member that has read `log` already: waits only for the entries
/// of `want` not in it.
fn pushed_until_in(c: &mut TestClient, log: &[Stamped], want: &[(&str, &str)]) -> Vec<Stamped> {
    let mut missing: BTreeSet<(String, String)> = want
        .iter()
        .filter(|(sender, text)| !log.iter().any(|(s, t, _)| s == sender && t == text))
        .map(|(s, t)| (s.to_string(), t.to_string()))
        .collect();
    let mut out = Vec::new();
    while !missing.is_empty() {
        let pdu = c.recv();
        assert_eq!(
            c.command_of(&pdu),
            Command::ReceiveMessage,
            "{}: expected entries {missing:?}, got {pdu:?}",
            String::from_utf8_lossy(&c.name)
        );
        assert_eq!(pdu.as_bytes()[61], 0, "an entry has flag 0: {pdu:?}");
        assert_eq!(pdu.channel(), &c.channel[..], "entry channel: {pdu:?}");
        assert_stamped(&pdu);
        let (sender, text) = entry(&pdu);
        missing.remove(&(sender.clone(), text.clone()));
        out.push((sender, text, pdu.time()));
    }
    out
}

/// QUERYs version-1 member `c` (every 50 ms, for at most [`ANSWER`]) until every entry of
/// `want` has arrived; returns every entry the answers carried, in order.
fn polled_until(c: &mut TestClient, want: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut missing: BTreeSet<(String, String)> = want
        .iter()
        .map(|(s, t)| (s.to_string(), t.to_string()))
        .collect();
    if missing.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let who = String::from_utf8_lossy(&c.name).into_owned();
    eventually(&format!("{who} polls {missing:?}"), ANSWER, || {
        for e in query_v1(c) {
            missing.remove(&e);
            out.push(e);
        }
        missing.is_empty().then_some(())
    });
    out
}

/// The (sender, text) of stamped entries.
fn unstamped(entries: &[Stamped]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|(s, t, _)| (s.clone(), t.clone()))
        .collect()
}

/// The entries of `entries` that `senders` wrote (chat, not notices).
fn chat_of<E: Clone>(entries: &[E], sender: impl Fn(&E) -> &str, senders: &[&str]) -> Vec<E> {
    entries
        .iter()
        .filter(|e| senders.contains(&sender(e)))
        .cloned()
        .collect()
}

/// Asserts that no entry appears twice in `entries`.
fn assert_once<E: Ord + std::fmt::Debug>(who: &str, entries: &[E]) {
    let mut seen = BTreeSet::new();
    for e in entries {
        assert!(seen.insert(e), "{who} was shown {e:?} twice: {entries:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

#[test]
fn a_name_held_on_one_node_is_refused_on_every_node_in_any_letter_case() {
    let net = Network::start(3);
    let mut alice = net.node(0).login_v2("Alice");
    // Refused by the network (n1, n2) and by the node that holds it (n0); each time the
    // set-up goes on, and another name is taken on the same connection.
    for (k, name) in [(1, "alice"), (2, "ALICE"), (0, "aLiCe")] {
        let mut c = ready(net.node(k), 2);
        let refused = try_claim(&mut c, name).expect_err("a held name");
        assert_eq!(
            refused,
            format!(
                "error: username '{name}' is taken: a connected client has it (names are \
                 compared ignoring case)"
            ),
            "n{k}"
        );
        try_claim(&mut c, &format!("other{k}")).expect("a free name");
        c.assert_alive();
    }
    alice.assert_alive();

    // Alice leaves: the release reaches the network after her connection ends, so her
    // name comes free on another node within a bounded wait (not a lease: it is released).
    alice.quit();
    alice.expect_clean_close();
    let mut again = ready(net.node(2), 2);
    eventually("Alice's name free on n2 after she quit", ANSWER, || {
        try_claim(&mut again, "ALICE").ok()
    });
    // Held again, now from n2: refused on n0 and n1.
    for k in [0, 1] {
        let mut c = ready(net.node(k), 1);
        let refused = try_claim(&mut c, "alice").expect_err("held on n2");
        assert!(refused.contains("is taken"), "n{k}: {refused}");
    }
    again.assert_alive();
}

#[test]
fn two_clients_claiming_one_name_on_two_nodes_at_once_get_it_once() {
    let net = Network::start(2);
    for round in 0..10 {
        let (lower, upper) = (format!("race{round}"), format!("RACE{round}"));
        let mut a = ready(net.node(0), 2);
        let mut b = ready(net.node(1), 1);
        // Both claims are written before either answer is read.
        a.send(&Pdu::client_info(a.order, lower.as_bytes()));
        b.send(&Pdu::client_info(b.order, upper.as_bytes()));
        let (ra, rb) = (claim_answer(&mut a, &lower), claim_answer(&mut b, &upper));
        assert!(
            ra.is_ok() != rb.is_ok(),
            "round {round}: exactly one claim must win: n0 {ra:?}, n1 {rb:?}"
        );
        let refused = ra.err().or(rb.err()).expect("one refusal");
        assert!(refused.contains("is taken"), "round {round}: {refused}");
    }
}

// ---------------------------------------------------------------------------------------
// One channel, one order
// ---------------------------------------------------------------------------------------

#[test]
fn messages_posted_on_every_node_reach_every_member_in_one_order() {
    let net = Network::start(3);
    // A version-2 and a version-1 member on each node, joined in this order.
    let mut a0 = net.node(0).member_v2("a0", "@order");
    let mut p0 = net.node(0).member("p0", "@order");
    let mut b1 = net.node(1).member_v2("b1", "@order");
    let mut p1 = net.node(1).member("p1", "@order");
    let mut c2 = net.node(2).member_v2("c2", "@order");
    let mut p2 = net.node(2).member("p2", "@order");
    let last_join = [("SERVER", "p2 joined")];
    for c in [&mut a0, &mut b1, &mut c2] {
        pushed_until(c, &last_join);
    }
    for c in [&mut p0, &mut p1, &mut p2] {
        polled_until(c, &last_join);
    }

    // Three senders on three nodes, interleaved as fast as the sockets take it (10 each,
    // within the default burst of 20).
    fn texts(who: &str) -> Vec<String> {
        (0..10).map(|i| format!("{who}-{i}")).collect()
    }
    for i in 0..10 {
        for c in [&mut a0, &mut b1, &mut c2] {
            c.say(&format!("{}-{i}", String::from_utf8_lossy(&c.name)));
        }
    }
    let senders = ["a0", "b1", "c2"];
    let all: Vec<(String, String)> = senders
        .iter()
        .flat_map(|s| texts(s).into_iter().map(move |t| (s.to_string(), t)))
        .collect();
    let want: Vec<(&str, &str)> = all.iter().map(|(s, t)| (s.as_str(), t.as_str())).collect();

    // Version 2: every member is pushed all 30 (its own as the echo), with the same stamp
    // on every node.
    let mut pushed = Vec::new();
    for c in [&mut a0, &mut b1, &mut c2] {
        let got = pushed_until(c, &want);
        let name = String::from_utf8_lossy(&c.name).into_owned();
        let chat = chat_of(&got, |e| e.0.as_str(), &senders);
        assert_once(&name, &chat);
        assert_eq!(chat.len(), 30, "{name}: {chat:?}");
        for pair in chat.windows(2) {
            assert!(
                pair[0].2 <= pair[1].2,
                "{name}: stamps go forward: {chat:?}"
            );
        }
        pushed.push((name, chat));
    }
    let (reference_name, reference) = &pushed[0];
    for (name, chat) in &pushed[1..] {
        assert_eq!(
            chat, reference,
            "{name} must see the entries, with their stamps, as {reference_name} on n0 does"
        );
    }
    // Each sender's messages in the order it sent them.
    let order = unstamped(reference);
    for s in senders {
        let mine: Vec<String> = chat_of(&order, |e| e.0.as_str(), &[s])
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(mine, texts(s), "{s}'s messages in order");
    }
    // Version 1 (none of them sent anything): the same order in QUERY answers, on every
    // node.
    for c in [&mut p0, &mut p1, &mut p2] {
        let got = polled_until(c, &want);
        let name = String::from_utf8_lossy(&c.name).into_owned();
        let chat = chat_of(&got, |e| e.0.as_str(), &senders);
        assert_once(&name, &chat);
        assert_eq!(chat, order, "{name} must see the order a0 sees on n0");
    }
}

// ---------------------------------------------------------------------------------------
// LIST_CHANNELS and NAMES
// ---------------------------------------------------------------------------------------

/// NAMES of `channel` as (operators, others), the end's count checked against them.
fn names_of(c: &mut TestClient, channel: &str) -> (Vec<String>, Vec<String>) {
    let (pdus, count) = names(c, channel, channel);
    let (mut ops, mut others) = (Vec::new(), Vec::new());
    for (operators, list) in pdus {
        if operators {
            ops.extend(list);
        } else {
            others.extend(list);
        }
    }
    assert_eq!(count as usize, ops.len() + others.len(), "NAMES count");
    (ops, others)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn list_and_names_agree_on_every_node() {
    let net = Network::start(3);
    let mut listers: Vec<TestClient> = (0..3)
        .map(|k| net.node(k).login_v2(&format!("lister{k}")))
        .collect();
    for l in &mut listers {
        assert_eq!(list(l), (vec![], 0), "no channel open yet");
    }
    // @alpha: its operator on n0, then members on n1, n2 and n0 again.
    let mut op = net.node(0).member_v2("op", "@alpha");
    let mut m1 = net.node(1).member("m1", "@alpha");
    let mut m2 = net.node(2).member("m2", "@alpha");
    let _m3 = net.node(0).member("m3", "@alpha");
    pushed_until(&mut op, &[("SERVER", "m3 joined")]);
    // @beta: two members on n1 and n2, and a message (in the history once b1 reads it
    // back).
    let mut b1 = net.node(1).member_v2("b1", "@beta");
    let mut b2 = net.node(2).member("b2", "@beta");
    pushed_until(&mut b1, &[("SERVER", "b2 joined")]);
    b1.say("hi");
    pushed_until(&mut b1, &[("b1", "hi")]);

    // Members, and retained entries (the joins, and "hi").
    let expected = (
        vec![("@alpha".to_string(), 4, 4), ("@beta".to_string(), 2, 3)],
        2,
    );
    let alpha = (strings(&["op"]), strings(&["m1", "m2", "m3"]));
    for (k, l) in listers.iter_mut().enumerate() {
        assert_eq!(list(l), expected, "LIST on n{k}");
        assert_eq!(names_of(l, "@alpha"), alpha, "NAMES @alpha on n{k}");
    }

    // m2 (n2) leaves, then the operator (n0): the earliest joiner left, m1 on n1, is the
    // operator now, on every node. A LEAVE is acknowledged by the member's own node before
    // the network has it: the first node is polled until it agrees (bounded), the others
    // must then agree at once.
    m2.leave();
    pushed_until(&mut op, &[("SERVER", "m2 left")]);
    op.leave();
    let after = (strings(&["m1"]), strings(&["m3"]));
    eventually("NAMES on n0 after two leaves", ANSWER, || {
        (names_of(&mut listers[0], "@alpha") == after).then_some(())
    });
    for (k, l) in listers.iter_mut().enumerate() {
        assert_eq!(names_of(l, "@alpha"), after, "NAMES @alpha on n{k}");
    }
    assert!(polled_until(&mut m1, &[("SERVER", "op left")])
        .contains(&("SERVER".into(), "m2 left".into())));

    // @beta closes with its last member: gone from LIST everywhere, and NAMES says so.
    b1.leave();
    b2.leave();
    eventually("LIST on n2 after @beta closed", ANSWER, || {
        (list(&mut listers[2]).1 == 1).then_some(())
    });
    for (k, l) in listers.iter_mut().enumerate() {
        assert_eq!(
            list(l),
            (vec![("@alpha".to_string(), 2, 7)], 1),
            "LIST on n{k}: @alpha keeps its joins, op left, m2 left and the operator notice"
        );
        l.send(&Pdu::names(l.order, b"@beta"));
        expect_error_saying(l, "error: @beta is not open: it has no members");
    }
}

// ---------------------------------------------------------------------------------------
// KICK, BAN, UNBAN across nodes
// ---------------------------------------------------------------------------------------

/// The next two PDUs are the acknowledgement of `request` and the pushed entry (sender,
/// text) it caused, in either order: the entry comes back from the network on its own
/// path.
fn expect_ack_and_entry(c: &mut TestClient, request: &Pdu, sender: &str, text: &str) {
    let first = c.recv();
    let (ack, pushed) = if c.command_of(&first) == Command::ReceiveMessage {
        (c.recv(), first)
    } else {
        let pushed = c.recv();
        (first, pushed)
    };
    assert_eq!(ack.command_bytes(), request.command_bytes(), "ack: {ack:?}");
    assert_eq!(ack.username(), b"SERVER", "ack: {ack:?}");
    assert_eq!(
        ack.prefix()[10..],
        request.prefix()[10..],
        "ack prefix: {ack:?}"
    );
    assert_eq!(ack.params(), request.params(), "ack params: {ack:?}");
    assert_eq!(c.command_of(&pushed), Command::ReceiveMessage, "{pushed:?}");
    assert_eq!(entry(&pushed), (sender.to_string(), text.to_string()));
    assert_stamped(&pushed);
}

#[test]
fn kick_and_ban_reach_targets_and_bystanders_on_other_nodes() {
    let net = Network::start(3);
    let mut op = net.node(0).member_v2("op", "@mod");
    let mut tv2 = net.node(1).member_v2("tv2", "@mod");
    let mut tv1 = net.node(2).member("tv1", "@mod");
    let mut by2 = net.node(2).member_v2("by2", "@mod");
    let mut by1 = net.node(1).member("by1", "@mod");
    let last_join = [("SERVER", "by1 joined")];
    for c in [&mut op, &mut tv2, &mut by2] {
        pushed_until(c, &last_join);
    }
    for c in [&mut tv1, &mut by1] {
        polled_until(c, &last_join);
    }

    // A member on n2 is no operator of a channel opened on n0.
    let refused = moderation(&by2, Command::Kick, "", "tv2", "");
    by2.send(&refused);
    expect_error_saying(&mut by2, "error: you are not an operator of @mod");
    let absent = moderation(&op, Command::Kick, "@mod", "nobody", "");
    op.send(&absent);
    expect_error_saying(&mut op, "error: nobody is not in @mod");

    // KICK of a version-2 member on n1, from n0.
    let kick = moderation(&op, Command::Kick, "@mod", "tv2", "spam");
    op.send(&kick);
    expect_ack_and_entry(&mut op, &kick, "SERVER", "tv2 was kicked by op: spam");
    expect_removed(&mut tv2, "@mod", "you were kicked from @mod by op: spam");
    expect_entry(&mut by2, "SERVER", "tv2 was kicked by op: spam");
    let seen = polled_until(&mut by1, &[("SERVER", "tv2 left")]);
    assert_eq!(seen, entries(&[("SERVER", "tv2 left")]), "by1 (v1, n1)");
    let (after, _) = sync(&mut tv2);
    assert!(
        after.is_empty(),
        "a kicked client is sent nothing more: {after:?}"
    );

    // BAN of a version-1 member on n2, from n0 (empty channel field: op's own channel).
    let ban = moderation(&op, Command::Ban, "", "tv1", "flood");
    op.send(&ban);
    expect_ack_and_entry(&mut op, &ban, "SERVER", "tv1 was banned by op: flood");
    let leave = tv1.expect(Command::LeaveChannel);
    assert_eq!(
        (leave.username(), leave.channel()),
        (&b"SERVER"[..], &b"@mod"[..])
    );
    expect_error_saying(&mut tv1, "error: you were banned from @mod by op: flood");
    tv1.channel.clear();
    expect_entry(&mut by2, "SERVER", "tv1 was banned by op: flood");
    let seen = polled_until(&mut by1, &[("SERVER", "tv1 left")]);
    assert_eq!(seen, entries(&[("SERVER", "tv1 left")]), "by1 (v1, n1)");

    // Banned on every node, in any letter case: on n2 (its node), then as TV1 on n0 and
    // tv1 on n1 (each once the name is free again).
    tv1.send(&join_pdu(tv1.order, b"tv1", b"@mod"));
    expect_error_saying(&mut tv1, "error: you are banned from @mod");
    tv1.quit();
    tv1.expect_clean_close();
    for (k, name) in [(0, "TV1"), (1, "tv1")] {
        let mut c = ready(net.node(k), 1);
        eventually(&format!("{name} free for n{k}"), ANSWER, || {
            try_claim(&mut c, name).ok()
        });
        c.send(&join_pdu(c.order, name.as_bytes(), b"@mod"));
        expect_error_saying(&mut c, "error: you are banned from @mod");
        c.quit();
        c.expect_clean_close();
    }
    // The kicked member is not banned: it joins again, from its node.
    tv2.join("@mod");
    pushed_until(&mut tv2, &[("SERVER", "tv2 joined")]);
    expect_entry(&mut op, "SERVER", "tv2 joined");

    // UNBAN from n0 lets tv1 in on n1.
    let unban = moderation(&op, Command::Unban, "@mod", "tv1", "");
    op.send(&unban);
    expect_ack_of(&mut op, &unban);
    op.send(&unban);
    expect_error_saying(&mut op, "error: tv1 is not banned from @mod");
    let mut back = ready(net.node(1), 1);
    eventually("tv1 free for n1", ANSWER, || {
        try_claim(&mut back, "tv1").ok()
    });
    back.join("@mod");
    expect_entry(&mut op, "SERVER", "tv1 joined");
    expect_entry(&mut by2, "SERVER", "tv2 joined");
    expect_entry(&mut by2, "SERVER", "tv1 joined");
}

// ---------------------------------------------------------------------------------------
// A node that dies
// ---------------------------------------------------------------------------------------

#[test]
fn a_killed_node_frees_its_names_within_the_lease_and_its_members_leave_once() {
    let mut net = Network::start(3);
    let mut s0 = net.node(0).member_v2("s0", "@fail");
    let mut s1 = net.node(1).member_v2("s1", "@fail");
    let mut p1 = net.node(1).member("p1", "@fail");
    let mut k1 = net.node(2).member_v2("k1", "@fail");
    let _k2 = net.node(2).member("k2", "@fail");
    let last_join = [("SERVER", "k2 joined")];
    for c in [&mut s0, &mut s1, &mut k1] {
        pushed_until(c, &last_join);
    }
    polled_until(&mut p1, &last_join);
    let mut claim_k1 = ready(net.node(0), 2);
    let mut claim_k2 = ready(net.node(1), 1);

    let killed = Instant::now();
    net.kill(2);
    // Within the lease (plus the time to notice, on a loaded machine).
    let within = LEASE * 5;
    eventually("k1's name free on n0 after n2's SIGKILL", within, || {
        try_claim(&mut claim_k1, "k1").ok()
    });
    let freed = killed.elapsed();
    eprintln!(
        "failover: k1's name taken again on n0 {} ms after n2's SIGKILL (lease {} ms)",
        freed.as_millis(),
        LEASE.as_millis()
    );
    eventually("k2's name free on n1", within, || {
        try_claim(&mut claim_k2, "K2").ok()
    });

    // Each survivor is told `k1 left` and `k2 left` (written once, by one node) ...
    let gone = [("SERVER", "k1 left"), ("SERVER", "k2 left")];
    let mut seen0 = unstamped(&pushed_until(&mut s0, &gone));
    let mut seen1 = unstamped(&pushed_until(&mut s1, &gone));
    let mut seen_p = polled_until(&mut p1, &gone);
    // ... and never again: two leases later (every node had its chance to reap), the
    // survivors chat on, and what came in between holds no second notice.
    thread::sleep(LEASE * 2);
    s0.say("still here");
    s1.say("me too");
    let chat = [("s0", "still here"), ("s1", "me too")];
    seen0.extend(unstamped(&pushed_until(&mut s0, &chat)));
    seen1.extend(unstamped(&pushed_until(&mut s1, &chat)));
    seen_p.extend(polled_until(&mut p1, &chat));
    for (who, seen) in [("s0", &seen0), ("s1", &seen1), ("p1", &seen_p)] {
        for notice in ["k1 left", "k2 left"] {
            let n = seen
                .iter()
                .filter(|(s, t)| s == "SERVER" && t == notice)
                .count();
            assert_eq!(n, 1, "{who} must see {notice:?} exactly once: {seen:?}");
        }
        assert_once(who, seen);
    }
    // The dead node's members are gone from the channel on every surviving node.
    for k in [0, 1] {
        let mut lister = net.node(k).login_v2(&format!("lister{k}"));
        assert_eq!(
            names_of(&mut lister, "@fail"),
            (strings(&["s0"]), strings(&["s1", "p1"])),
            "NAMES @fail on n{k}"
        );
    }
    claim_k1.assert_alive();
    claim_k2.assert_alive();
}

// ---------------------------------------------------------------------------------------
// Redis stops and comes back
// ---------------------------------------------------------------------------------------

/// Posts `<prefix>-<n>` from version-2 member `c` until one is taken (its echo comes back)
/// rather than refused with [`UNAVAILABLE`], for at most 20 s (the nodes reconnect with a
/// backoff of up to 5 s). Records every entry read meanwhile; returns the text taken.
fn post_until_taken(c: &mut TestClient, prefix: &str, log: &mut Vec<Stamped>) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "{prefix}: the network never took a post back"
        );
        let text = format!("{prefix}-{n}");
        n += 1;
        c.say(&text);
        loop {
            let pdu = match c.try_recv_within(ANSWER) {
                Ok(pdu) => pdu,
                Err(e) => panic!("{text}: neither refused nor echoed: {e:?}"),
            };
            assert_eq!(c.command_of(&pdu), Command::ReceiveMessage, "{pdu:?}");
            let (sender, said) = entry(&pdu);
            if sender == "SERVER" && said == UNAVAILABLE {
                break; // refused: not in the history, try again
            }
            assert_stamped(&pdu);
            log.push((sender.clone(), said.clone(), pdu.time()));
            if sender.as_bytes() == &c.name[..] && said == text {
                return text;
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_redis_restart_mid_chat_shows_nothing_twice_and_loses_nothing_silently() {
    let mut net = Network::start(2);
    let mut a = net.node(0).member_v2("a", "@talk");
    let mut b = net.node(1).member_v2("b", "@talk");
    let mut p = net.node(1).member("p", "@talk");
    let (mut log_a, mut log_b, mut log_p) = (Vec::new(), Vec::new(), Vec::new());
    let last_join = [("SERVER", "p joined")];
    log_a.extend(pushed_until(&mut a, &last_join));
    log_b.extend(pushed_until(&mut b, &last_join));
    log_p.extend(polled_until(&mut p, &last_join));
    a.say("m1");
    b.say("m2");
    let before = [("a", "m1"), ("b", "m2")];
    log_a.extend(pushed_until(&mut a, &before));
    log_b.extend(pushed_until(&mut b, &before));
    log_p.extend(polled_until(&mut p, &before));
    let mut newbie = ready(net.node(0), 2);

    net.redis.stop();
    // Sessions stay; what needs the network is refused with a notice, never left hanging:
    // a set-up (which goes on), a post, a JOIN (the member stays where it was).
    assert_eq!(
        try_claim(&mut newbie, "newbie"),
        Err(UNAVAILABLE.to_string())
    );
    a.say("while down");
    expect_error_saying(&mut a, UNAVAILABLE);
    p.send(&join_pdu(p.order, b"p", b"@elsewhere"));
    expect_error_saying(&mut p, UNAVAILABLE);
    a.assert_alive();
    b.assert_alive();
    p.assert_alive();

    // Redis comes back, empty (no persistence). Each node takes posts again once it has
    // reconnected.
    net.redis.restart();
    let taken_a = post_until_taken(&mut a, "back-a", &mut log_a);
    let taken_b = post_until_taken(&mut b, "back-b", &mut log_b);
    a.say("after-a");
    b.say("after-b");
    let after = [
        ("a", taken_a.as_str()),
        ("b", taken_b.as_str()),
        ("a", "after-a"),
        ("b", "after-b"),
    ];
    // A member may have read some of these already, while it was posting.
    let more = pushed_until_in(&mut a, &log_a, &after);
    log_a.extend(more);
    let more = pushed_until_in(&mut b, &log_b, &after);
    log_b.extend(more);
    log_p.extend(polled_until(&mut p, &after));
    // p is still in @talk, and polls it.
    assert_eq!(p.channel, b"@talk");

    // Set-ups work again; names are still unique network-wide (a holds "a").
    try_claim(&mut newbie, "newbie").expect("the network is back");
    let mut thief = ready(net.node(1), 2);
    let refused = try_claim(&mut thief, "A").expect_err("a's name is still held");
    assert!(refused.contains("is taken"), "{refused}");

    // Every reader: nothing twice, no refused post ever, and every taken post present
    // unless a skip notice says entries were skipped.
    let taken: Vec<(String, String)> = [("a", "m1"), ("b", "m2")]
        .iter()
        .chain(after.iter())
        .map(|(s, t)| (s.to_string(), t.to_string()))
        .collect();
    // Version 2: an entry (sender, text, stamp) is never pushed twice. Notices are
    // entries like any other; a second `a joined` with its own stamp is a new entry (what
    // the network wrote when the nodes came back to an empty Redis), not a repeat.
    assert_once("a", &log_a);
    assert_once("b", &log_b);
    let (log_a, log_b) = (unstamped(&log_a), unstamped(&log_b));
    for (who, log) in [("a", &log_a), ("b", &log_b), ("p", &log_p)] {
        // No chat message twice, whatever its stamp (version 1 has none).
        let chat: Vec<_> = log.iter().filter(|(s, _)| s != "SERVER").collect();
        assert_once(who, &chat);
        for e @ (sender, text) in log.iter() {
            let refused = text == "while down" || (text.starts_with("back-") && !taken.contains(e));
            assert!(
                !refused,
                "{who} was shown a post the network refused: {sender}: {text}: {log:?}"
            );
        }
        let missing: Vec<_> = taken.iter().filter(|e| !log.contains(e)).collect();
        let skipped = log
            .iter()
            .any(|(s, t)| s == "SERVER" && t.ends_with(" messages were skipped"));
        assert!(
            missing.is_empty() || skipped,
            "{who} lost {missing:?} without a skip notice: {log:?}"
        );
    }
    a.assert_alive();
    b.assert_alive();
}

// ---------------------------------------------------------------------------------------
// scripts/cluster.sh
// ---------------------------------------------------------------------------------------

/// A loopback port nothing listens on, with the next `n - 1` ports free too.
fn free_ports(n: u16) -> u16 {
    eventually("consecutive free ports", ANSWER, || {
        let first = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
        let base = first.local_addr().ok()?.port();
        let rest: Option<Vec<_>> = (1..n)
            .map(|k| std::net::TcpListener::bind(("127.0.0.1", base.checked_add(k)?)).ok())
            .collect();
        rest.map(|_| base)
    })
}

#[test]
fn cluster_sh_starts_a_network_to_chat_on_and_stops_all_of_it() {
    let dir = std::env::temp_dir().join(format!("kaichat-cluster-sh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let state = dir.join("state");
    let base = free_ports(2);
    let redis_port = free_ports(1);
    let bin_dir = server_bin()
        .parent()
        .expect("the binaries' directory")
        .to_path_buf();
    let script = std::process::Command::new(manifest().join("scripts/cluster.sh"))
        // --for: a bound, in case the test fails before its SIGTERM.
        .args(["--for", "60", "2", "--lease-ms", "1000"])
        .env("BIN_DIR", &bin_dir)
        .env("BASE_PORT", base.to_string())
        .env("REDIS_PORT", redis_port.to_string())
        .env("STATE_FILE", &state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run scripts/cluster.sh");
    let text = eventually("cluster.sh's state file", Duration::from_secs(30), || {
        std::fs::read_to_string(&state).ok()
    });
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} in {text}"))
            .to_string()
    };
    assert_eq!(value("nodes"), "2");
    assert_eq!(
        value("redis_url"),
        format!("redis://127.0.0.1:{redis_port}/0")
    );
    // Two nodes of one network: a name held on one is taken on the other, and a message
    // crosses.
    let addr = |k: usize| -> std::net::SocketAddr {
        value(&format!("node{k}_addr")).parse().expect("an address")
    };
    assert_eq!(addr(1).port(), base + 1);
    let mut alice = TestClient::connect_tls(addr(0));
    alice.handshake_v2("alice");
    alice.join("@try");
    let mut bob = TestClient::connect_tls(addr(1));
    bob.ping_version();
    bob.send(&Pdu::client_version(bob.order, 2));
    assert!(try_claim(&mut bob, "ALICE")
        .expect_err("taken")
        .contains("is taken"));
    try_claim(&mut bob, "bob").expect("a free name");
    bob.join("@try");
    pushed_until(&mut alice, &[("SERVER", "bob joined")]);
    bob.say("across");
    pushed_until(&mut alice, &[("bob", "across")]);

    // SIGTERM (as Ctrl-C) stops everything: the nodes close their clients, and nothing is
    // left listening.
    // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
    unsafe {
        libc::kill(script.id() as i32, libc::SIGTERM);
    }
    let out = script.wait_with_output().expect("cluster.sh ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cluster.sh: {}: {stderr}", out.status);
    assert!(
        stderr.contains(&format!("--server 127.0.0.1:{base} --user")),
        "cluster.sh prints how to connect: {stderr}"
    );
    // alice's node closes her connection; what it pushed before (bob's node stopped
    // first, so `bob left` may come) is read on the way.
    loop {
        match alice.try_recv_within(ANSWER) {
            Ok(_) => continue,
            Err(RecvError::TimedOut { .. }) => panic!("alice's connection did not close"),
            Err(_) => break,
        }
    }
    for port in [base, base + 1, redis_port] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still listens after cluster.sh ended"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// A node cut off, a node id given twice
// ---------------------------------------------------------------------------------------

/// Stops (SIGSTOP) or resumes (SIGCONT) node `k`'s process: a node cut off from the
/// network, as by a partition, that comes back.
fn pause(net: &Network, k: usize, on: bool) {
    let signal = if on { libc::SIGSTOP } else { libc::SIGCONT };
    // SAFETY: kill(2) on the pid of our own child, which has not been reaped.
    unsafe {
        libc::kill(net.node(k).pid(), signal);
    }
}

#[test]
fn a_node_back_from_a_partition_leaves_the_new_owner_of_a_name_alone() {
    let net = Network::start(2);
    let mut x = net.node(0).member_v2("x", "@part");
    let mut old = net.node(1).member_v2("carol", "@part");
    pushed_until(&mut x, &[("SERVER", "carol joined")]);
    pushed_until(&mut old, &[("SERVER", "carol joined")]);

    // n1 is cut off for longer than its lease: the network takes carol for gone ...
    pause(&net, 1, true);
    pushed_until(&mut x, &[("SERVER", "carol left")]);
    // ... and another client takes the name through n0, in another letter case.
    let mut new = eventually("CAROL's name on n0", LEASE * 5, || {
        let mut c = ready(net.node(0), 2);
        try_claim(&mut c, "CAROL").ok().map(|()| c)
    });
    new.join("@part");
    pushed_until(&mut x, &[("SERVER", "CAROL joined")]);

    // n1 comes back: it closes its own carol, with a notice saying why, and touches
    // neither CAROL's name nor her membership.
    pause(&net, 1, false);
    let text = loop {
        let pdu = old.recv();
        if pdu.params_text().starts_with(b"error: ") {
            break String::from_utf8_lossy(pdu.params_text()).into_owned();
        }
    };
    assert!(text.contains("another client's now"), "{text}");
    old.expect_closed();
    let mut seen = Vec::new();
    for n in 0..3 {
        new.say(&format!("still in {n}"));
        seen.extend(pushed_until_in(
            &mut x,
            &seen,
            &[("CAROL", &format!("still in {n}"))],
        ));
        thread::sleep(LEASE / 2);
    }
    assert!(
        !seen
            .iter()
            .any(|(s, t, _)| s == "SERVER" && t.contains("CAROL left")),
        "x was told CAROL left: {seen:?}"
    );
    let mut lister = net.node(0).login_v2("lister");
    assert_eq!(
        names_of(&mut lister, "@part"),
        (strings(&["x"]), strings(&["CAROL"])),
        "NAMES @part on n0"
    );
}

#[test]
fn a_second_server_with_a_node_id_in_use_stops_and_disturbs_nobody() {
    let net = Network::start(1);
    let mut y = net.node(0).member_v2("y", "@dup");
    pushed_until(&mut y, &[("SERVER", "y joined")]);
    let lease = LEASE.as_millis().to_string();
    let url = net.redis.url();
    let twin = Server::start(&["--redis", &url, "--node-id", "n0", "--lease-ms", &lease]);
    // The twin refuses requests while the lease is the other run's ...
    let mut c = ready(&twin, 2);
    assert_eq!(try_claim(&mut c, "z"), Err(UNAVAILABLE.to_string()));
    // ... and stops once it has waited two leases for it to lapse.
    let end = twin.signal_and_wait(0, LEASE * 10);
    assert!(
        end.status.is_some_and(|s| !s.success()),
        "the twin must exit with an error: {:?}\n{}",
        end.status,
        end.stderr
    );
    assert!(
        end.stderr
            .contains("another server is running with --node-id n0"),
        "{}",
        end.stderr
    );
    // y was never taken out of its channel, and still chats.
    y.say("still here");
    let seen = pushed_until(&mut y, &[("y", "still here")]);
    assert!(
        !seen.iter().any(|(s, t, _)| s == "SERVER" && t == "y left"),
        "{seen:?}"
    );
}

#[test]
fn a_message_the_network_no_longer_takes_from_its_sender_is_refused_not_lost() {
    let net = Network::start(2);
    let mut x = net.node(0).member_v2("x", "@cut");
    let mut y = net.node(1).member_v2("y", "@cut");
    pushed_until(&mut x, &[("SERVER", "y joined")]);
    pushed_until(&mut y, &[("SERVER", "y joined")]);
    // The network no longer has x in the channel, and n0 has not heard yet: what a node
    // cut off for longer than its lease finds when it comes back, or a KICK racing the
    // message. (Done in Redis directly, so that the race is certain.)
    for args in [
        ["HDEL", "kc:{@cut}:member", "x"],
        ["ZREM", "kc:{@cut}:order", "x"],
    ] {
        assert_eq!(net.redis.command(&args).as_deref(), Some(":1"), "{args:?}");
    }
    x.say("not taken");
    let pdu = x.recv();
    assert_eq!(entry(&pdu).1, UNAVAILABLE, "{pdu:?}");
    x.assert_alive();
    // Nothing reached the channel.
    y.say("y here");
    let seen = pushed_until(&mut y, &[("y", "y here")]);
    assert!(!seen.iter().any(|(_, t, _)| t == "not taken"), "{seen:?}");
}
