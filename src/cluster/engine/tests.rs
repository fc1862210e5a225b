//! The engine against scripted Redis replies: no Redis here (tests/server_cluster.rs has
//! the real one). Commands are read back from the output buffer with the same codec.

use proptest::prelude::*;
use redis_protocol::resp3::decode::complete::decode;

use super::*;
use crate::cluster::resp::blob;

const LEASE: u64 = 9000;

fn config() -> ClusterConfig {
    ClusterConfig {
        node_id: "n1".into(),
        instance: "run1".into(),
        lease_ms: LEASE,
        history: 4,
        username: None,
        password: None,
        db: 0,
        reply_timeout_ms: 5000,
    }
}

fn user(name: &str) -> Username {
    Username::new(name.as_bytes()).unwrap()
}

/// A CLIENT_INFO's claim of `name` from an unknown address.
fn claim(name: &str) -> Request {
    Request::Claim {
        user: user(name),
        peer: None,
    }
}

/// A message `hi` to `@rust` from `name` on connection `conn`.
fn post(conn: ConnRef, name: &str) -> Outbound {
    Outbound::Post {
        conn,
        user: user(name),
        channel: channel("@rust"),
        text: b"hi".to_vec().into(),
    }
}

fn channel(name: &str) -> ChannelName {
    ChannelName::new(name.as_bytes()).unwrap()
}

/// The commands written since the last call, each as its arguments (lossy text).
fn sent(cluster: &mut Cluster) -> Vec<Vec<String>> {
    let out = std::mem::take(cluster.output());
    let mut at = 0;
    let mut commands = Vec::new();
    while at < out.len() {
        let (frame, used) = decode(&out[at..]).unwrap().unwrap();
        at += used;
        let args = resp::items(&frame)
            .unwrap()
            .iter()
            .map(|a| String::from_utf8_lossy(resp::bytes(a).unwrap()).into_owned())
            .collect();
        commands.push(args);
    }
    commands
}

/// The script an EVALSHA command runs.
fn script_of(cluster: &Cluster, args: &[String]) -> Option<Script> {
    if args.first().map(String::as_str) != Some("EVALSHA") {
        return None;
    }
    Script::ALL
        .into_iter()
        .find(|s| cluster.scripts.digest(*s) == args[1])
}

fn ok() -> OwnedFrame {
    OwnedFrame::SimpleString {
        data: b"OK".to_vec(),
        attributes: None,
    }
}

fn int(n: i64) -> OwnedFrame {
    OwnedFrame::Number {
        data: n,
        attributes: None,
    }
}

fn array(data: Vec<OwnedFrame>) -> OwnedFrame {
    OwnedFrame::Array {
        data,
        attributes: None,
    }
}

fn push(data: Vec<OwnedFrame>) -> OwnedFrame {
    OwnedFrame::Push {
        data,
        attributes: None,
    }
}

fn entry_payload(seq: u64, text: &str) -> Vec<u8> {
    format!("{seq} 0 1000 3 0 0 0 0\nbob{text}").into_bytes()
}

/// A live message of channel `@rust` numbered `seq`.
fn live(seq: u64, text: &str) -> OwnedFrame {
    let mut message = format!("{seq}-0 ").into_bytes();
    message.extend(entry_payload(seq, text));
    push(vec![
        blob(b"message"),
        blob(b"kc:{@rust}:live"),
        blob(&message),
    ])
}

/// A stream element `[id, ['e', payload]]`.
fn stream_entry(seq: u64, text: &str) -> OwnedFrame {
    array(vec![
        blob(format!("{seq}-0").as_bytes()),
        array(vec![blob(b"e"), blob(&entry_payload(seq, text))]),
    ])
}

/// Answers every command in flight that expects only an acknowledgement.
fn answer_handshake(cluster: &mut Cluster, hub: &mut Hub) {
    while matches!(
        cluster.sent.front(),
        Some((Expect::Handshake | Expect::Ignore(_), _))
    ) {
        cluster.on_frame(ok(), 0, hub);
    }
}

/// An engine connected at time 0, its set-up answered.
fn connected(hub: &mut Hub) -> Cluster {
    let mut cluster = Cluster::new(config());
    cluster.connected(0);
    answer_handshake(&mut cluster, hub);
    // The renewal: the lease was there, no name lost.
    cluster.on_frame(array(vec![int(1), array(vec![])]), 0, hub);
    cluster.on_frame(array(vec![]), 0, hub); // SMEMBERS kc:server-bans
    answer_handshake(&mut cluster, hub); // resync
    assert!(cluster.sent.is_empty(), "{:?}", cluster.sent);
    sent(&mut cluster);
    cluster
}

fn verdicts(cluster: &mut Cluster) -> Vec<(ConnRef, Verdict)> {
    let mut v = Vec::new();
    cluster.take_verdicts(&mut v);
    v
}

fn hub() -> Hub {
    Hub::clustered(4, 2)
}

/// A JOIN of `alice` (connection 1) to `@rust`, answered: the replica is loaded with
/// entries 1..=3 and the joined entry is number 3.
fn joined(cluster: &mut Cluster, hub: &mut Hub) {
    let join = Request::Join {
        user: user("alice"),
        channel: channel("@rust"),
        from: None,
        push: true,
    };
    cluster.request(1, join, 0, hub);
    sent(cluster);
    let entries = vec![
        stream_entry(3, "c"),
        stream_entry(2, "b"),
        stream_entry(1, "a"),
    ];
    cluster.on_frame(array(vec![int(3), array(entries)]), 0, hub);
    cluster.on_frame(array(vec![blob(b"joined"), int(3)]), 0, hub);
    assert_eq!(verdicts(cluster), vec![(1, Verdict::Joined { seq: 3 })]);
    assert!(hub.claim_name(user("alice"), 1, None));
    hub.join_local(&channel("@rust"), &user("alice"), true, 3);
}

#[test]
fn connecting_says_hello_loads_the_scripts_renews_the_lease_and_subscribes() {
    let mut hub = hub();
    let mut cluster = Cluster::new(ClusterConfig {
        password: Some("secret".into()),
        db: 2,
        ..config()
    });
    cluster.connected(0);
    let commands = sent(&mut cluster);
    assert_eq!(
        commands[0],
        [
            "HELLO",
            "3",
            "AUTH",
            "default",
            "secret",
            "SETNAME",
            "kaichat:n1"
        ]
    );
    assert_eq!(commands[1], ["SELECT", "2"]);
    let loads = commands
        .iter()
        .filter(|c| c[..2] == ["SCRIPT", "LOAD"])
        .count();
    assert_eq!(loads, Script::ALL.len());
    let renew = commands
        .iter()
        .position(|c| script_of(&cluster, c) == Some(Script::Renew))
        .unwrap();
    let subscribe = commands.iter().position(|c| c[0] == "SUBSCRIBE").unwrap();
    assert!(
        renew < subscribe,
        "the lease is renewed before anything else"
    );
    assert_eq!(commands[subscribe], ["SUBSCRIBE", "kc:control"]);
    // Requests wait for the lease: until the renewal says it is this run's, none is sent.
    assert!(!cluster.is_up());
    assert!(!commands
        .iter()
        .any(|c| script_of(&cluster, c) == Some(Script::Resync)));
    answer_handshake(&mut cluster, &mut hub);
    // A HELLO answered is not yet a working set-up (SELECT or the lease may still fail).
    assert!(!cluster.take_confirmed());
    cluster.on_frame(array(vec![int(0), array(vec![])]), 0, &mut hub);
    assert!(cluster.is_up());
    assert!(cluster.take_confirmed(), "the whole set-up worked");
    let commands = sent(&mut cluster);
    assert_eq!(script_of(&cluster, &commands[0]), Some(Script::Resync));
}

#[test]
fn a_refused_handshake_breaks_the_connection() {
    let mut hub = hub();
    let mut cluster = Cluster::new(config());
    cluster.connected(0);
    let refusal = OwnedFrame::SimpleError {
        data: "WRONGPASS invalid username-password pair".into(),
        attributes: None,
    };
    cluster.on_frame(refusal, 0, &mut hub);
    let broken = cluster.take_broken().unwrap();
    assert!(broken.contains("WRONGPASS"), "{broken}");
}

#[test]
fn a_claim_is_a_set_nx_with_the_lease_and_its_reply_is_the_verdict() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    let peer = Some("10.1.2.3".parse().unwrap());
    cluster.request(
        7,
        Request::Claim {
            user: user("Alice"),
            peer,
        },
        0,
        &mut hub,
    );
    assert_eq!(
        sent(&mut cluster),
        [["SET", "kc:name:alice", "n1 10.1.2.3", "NX", "PX", "9000"]]
    );
    cluster.on_frame(ok(), 0, &mut hub);
    assert_eq!(verdicts(&mut cluster), [(7, Verdict::Claimed)]);

    // Another server has it: SET NX answers null.
    cluster.request(
        8,
        Request::Claim {
            user: user("bob"),
            peer,
        },
        0,
        &mut hub,
    );
    cluster.on_frame(OwnedFrame::Null, 0, &mut hub);
    assert_eq!(verdicts(&mut cluster), [(8, Verdict::Taken)]);
}

#[test]
fn a_name_won_for_a_closed_connection_is_given_back() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    cluster.request(7, claim("alice"), 0, &mut hub);
    sent(&mut cluster);
    cluster.cancel(7);
    cluster.on_frame(ok(), 0, &mut hub);
    assert!(verdicts(&mut cluster).is_empty());
    let commands = sent(&mut cluster);
    assert_eq!(script_of(&cluster, &commands[0]), Some(Script::Release));
    assert_eq!(commands[0][4..], ["alice", "n1 -", "n1"]);
}

#[test]
fn while_redis_is_down_requests_are_refused_and_messages_given_back_at_once() {
    let mut hub = hub();
    let mut cluster = Cluster::new(config());
    // Past the start-up's settling time, and never connected.
    cluster.request(3, Request::List, SETTLE_MS, &mut hub);
    assert_eq!(verdicts(&mut cluster), [(3, Verdict::Unavailable)]);
    cluster.outbound(post(4, "bob"), 0);
    let mut failed = Vec::new();
    cluster.take_failed_posts(&mut failed);
    assert_eq!(failed, [(4, user("bob"))]);
    assert!(cluster.output().is_empty());
}

#[test]
fn losing_redis_answers_everything_in_flight() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    cluster.request(3, Request::List, 0, &mut hub);
    cluster.outbound(post(4, "bob"), 0);
    cluster.request(
        5,
        Request::Names {
            channel: channel("@rust"),
        },
        0,
        &mut hub,
    );
    cluster.disconnected();
    assert_eq!(
        verdicts(&mut cluster),
        [(3, Verdict::Unavailable), (5, Verdict::Unavailable)]
    );
    let mut failed = Vec::new();
    cluster.take_failed_posts(&mut failed);
    assert_eq!(failed, [(4, user("bob"))]);
    assert!(!cluster.is_up());
}

#[test]
fn a_join_subscribes_and_loads_the_channel_before_the_join_runs() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    let join = Request::Join {
        user: user("alice"),
        channel: channel("@rust"),
        from: Some(channel("@old")),
        push: true,
    };
    cluster.request(1, join, 0, &mut hub);
    let commands = sent(&mut cluster);
    assert_eq!(commands[0], ["SUBSCRIBE", "kc:{@rust}:live"]);
    assert_eq!(script_of(&cluster, &commands[1]), Some(Script::Load));
    assert_eq!(commands[1][3..], ["4", "@rust", "0"]);
    assert_eq!(script_of(&cluster, &commands[2]), Some(Script::Join));
    assert_eq!(commands[2][3..], ["4", "n1", "alice", "@rust", "@old", "1"]);
}

#[test]
fn a_loaded_replica_applies_live_entries_in_order_and_passes_over_repeats() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    joined(&mut cluster, &mut hub);
    let id = hub.open_channel(&channel("@rust")).unwrap();
    assert_eq!(hub.end_seq(id), 4);
    cluster.on_frame(live(3, "c again"), 0, &mut hub); // already applied
    cluster.on_frame(live(4, "d"), 0, &mut hub);
    assert_eq!(hub.end_seq(id), 5);
    assert!(sent(&mut cluster).is_empty(), "no catch-up without a gap");
    let mut woken = Vec::new();
    hub.take_woken(&mut woken);
    assert!(woken.contains(&1), "the push reader is woken");
}

#[test]
fn a_gap_is_caught_up_with_xrange_from_the_last_id_applied() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    joined(&mut cluster, &mut hub);
    let id = hub.open_channel(&channel("@rust")).unwrap();
    cluster.on_frame(live(6, "f"), 0, &mut hub); // 4 and 5 were missed
    assert_eq!(
        sent(&mut cluster),
        [["XRANGE", "kc:{@rust}:log", "(3-0", "+", "COUNT", "4"]]
    );
    // Live entries wait for the catch-up, which holds them.
    cluster.on_frame(live(7, "g"), 0, &mut hub);
    assert_eq!(hub.end_seq(id), 4);
    let range = vec![
        stream_entry(4, "d"),
        stream_entry(5, "e"),
        stream_entry(6, "f"),
        stream_entry(7, "g"),
    ];
    cluster.on_frame(array(range), 0, &mut hub);
    assert_eq!(hub.end_seq(id), 8);
    // A full batch: there may be more.
    let commands = sent(&mut cluster);
    assert_eq!(
        commands,
        [["XRANGE", "kc:{@rust}:log", "(7-0", "+", "COUNT", "4"]]
    );
    cluster.on_frame(array(vec![stream_entry(8, "h")]), 0, &mut hub);
    assert_eq!(hub.end_seq(id), 9);
    cluster.on_frame(live(9, "i"), 0, &mut hub);
    assert_eq!(hub.end_seq(id), 10, "live again after the catch-up");
}

#[test]
fn after_a_reconnect_each_replica_reloads_from_where_it_was() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    joined(&mut cluster, &mut hub);
    cluster.disconnected();
    cluster.connected(10);
    let mut commands = sent(&mut cluster);
    answer_handshake(&mut cluster, &mut hub);
    cluster.on_frame(array(vec![int(1), array(vec![])]), 10, &mut hub); // renew
    commands.extend(sent(&mut cluster));
    let subscribe = commands.iter().find(|c| c[0] == "SUBSCRIBE").unwrap();
    assert_eq!(subscribe[1..], ["kc:control", "kc:{@rust}:live"]);
    let load = commands
        .iter()
        .find(|c| script_of(&cluster, c) == Some(Script::Load))
        .unwrap();
    assert_eq!(
        load[3..],
        ["4", "@rust", "4"],
        "the counter is raised to 4 at least"
    );
    let resync = commands
        .iter()
        .find(|c| script_of(&cluster, c) == Some(Script::Resync))
        .unwrap();
    assert_eq!(resync[3..], ["4", "n1", "alice", "@rust", "1"]);
}

#[test]
fn entries_lost_with_redis_reach_readers_as_skipped() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    joined(&mut cluster, &mut hub);
    let id = hub.open_channel(&channel("@rust")).unwrap();
    cluster.disconnected();
    cluster.connected(10);
    answer_handshake(&mut cluster, &mut hub);
    cluster.on_frame(array(vec![int(1), array(vec![])]), 10, &mut hub); // renew
    cluster.on_frame(array(vec![]), 10, &mut hub); // server bans
                                                   // The load: Redis restarted empty and the counter was raised to 3; then others wrote 4..=6
                                                   // and only 6 is still there.
    cluster.on_frame(
        array(vec![int(6), array(vec![stream_entry(6, "f")])]),
        10,
        &mut hub,
    );
    assert_eq!(hub.end_seq(id), 7);
    let mut cursor = 4;
    match hub.next_entry(id, &mut cursor, 7, None) {
        kaichat_proto::hub::Next::Skipped(n) => assert_eq!(n, 2),
        _ => panic!("entries 4 and 5 are gone: a skip"),
    }
}

#[test]
fn renewal_runs_every_third_of_the_lease_with_every_name_held() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    cluster.request(1, claim("alice"), 0, &mut hub);
    cluster.on_frame(ok(), 0, &mut hub);
    sent(&mut cluster);
    assert!(cluster.next_deadline().unwrap() <= LEASE / 3);
    cluster.tick(LEASE / 3 - 1);
    assert!(sent(&mut cluster).is_empty());
    cluster.tick(LEASE / 3);
    let commands = sent(&mut cluster);
    assert_eq!(script_of(&cluster, &commands[0]), Some(Script::Renew));
    assert_eq!(
        commands[0][3..],
        ["4", "n1", "9000", "run1", "alice", "n1 -"]
    );
}

#[test]
fn a_name_lost_to_another_server_closes_its_client_and_a_lapsed_lease_resyncs() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    joined(&mut cluster, &mut hub);
    cluster.request(1, claim("alice"), 0, &mut hub);
    cluster.on_frame(ok(), 0, &mut hub);
    cluster.tick(LEASE / 3);
    sent(&mut cluster);
    cluster.on_frame(
        array(vec![int(0), array(vec![blob(b"alice")])]),
        0,
        &mut hub,
    );
    let mut lost = Vec::new();
    cluster.take_lost_names(&mut lost);
    assert_eq!(lost, [user("alice")]);
    let commands = sent(&mut cluster);
    assert_eq!(script_of(&cluster, &commands[0]), Some(Script::Resync));
}

#[test]
fn reaping_dead_nodes_runs_every_half_lease() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    cluster.tick(LEASE / 2);
    let commands = sent(&mut cluster);
    let reap = commands
        .iter()
        .find(|c| script_of(&cluster, c) == Some(Script::Reap))
        .unwrap();
    assert_eq!(reap[3..], ["4", "n1"]);
}

#[test]
fn a_stalled_reply_breaks_the_connection() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    cluster.request(3, Request::List, 100, &mut hub);
    cluster.tick(5100);
    assert!(cluster.take_broken().is_none());
    cluster.tick(5101);
    assert!(cluster.take_broken().unwrap().contains("5000 ms"));
}

#[test]
fn listings_and_moderation_replies_become_verdicts() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    cluster.request(
        1,
        Request::Names {
            channel: channel("@rust"),
        },
        0,
        &mut hub,
    );
    let names = vec![blob(b"-p"), blob(b"bob"), blob(b"op"), blob(b"Carol")];
    cluster.on_frame(array(names), 0, &mut hub);
    cluster.request(
        1,
        Request::Names {
            channel: channel("@none"),
        },
        0,
        &mut hub,
    );
    cluster.on_frame(array(vec![]), 0, &mut hub);
    cluster.request(1, Request::List, 0, &mut hub);
    cluster.on_frame(array(vec![blob(b"@rust"), int(2), int(4)]), 0, &mut hub);
    let kick = Request::Moderate {
        user: user("carol"),
        command: Moderation::Kick,
        channel: channel("@rust"),
        target: user("dave"),
        reason: Box::new([]),
        server_operator: false,
    };
    cluster.request(1, kick, 0, &mut hub);
    cluster.on_frame(array(vec![blob(b"not-member")]), 0, &mut hub);
    let snapshot = NamesSnapshot {
        operators: vec![user("Carol")],
        others: vec![user("bob")],
    };
    assert_eq!(
        verdicts(&mut cluster),
        [
            (1, Verdict::Names(Box::new(snapshot))),
            (1, Verdict::NotOpen),
            (
                1,
                Verdict::Channels(vec![Listed {
                    name: channel("@rust"),
                    members: 2,
                    retained: 4
                }])
            ),
            (1, Verdict::NotMember),
        ]
    );
}

#[test]
fn a_server_ban_pushed_by_redis_closes_the_address_here() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    let ban = push(vec![
        blob(b"message"),
        blob(b"kc:control"),
        blob(b"ban 10.0.0.9"),
    ]);
    cluster.on_frame(ban, 0, &mut hub);
    let address: IpAddr = "10.0.0.9".parse().unwrap();
    assert!(hub.is_address_banned(&address));
    let mut events = Vec::new();
    hub.take_events(&mut events);
    assert_eq!(events, [kaichat_proto::hub::Event::CloseAddress(address)]);
    let unban = push(vec![
        blob(b"message"),
        blob(b"kc:control"),
        blob(b"unban 10.0.0.9"),
    ]);
    cluster.on_frame(unban, 0, &mut hub);
    assert!(!hub.is_address_banned(&address));
}

#[test]
fn garbage_from_redis_is_not_a_panic() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    joined(&mut cluster, &mut hub);
    for message in [&b"no-space"[..], b"1-0 junk", b"1-0 99 0 1 0 0 0 0 0\n"] {
        let frame = push(vec![
            blob(b"message"),
            blob(b"kc:{@rust}:live"),
            blob(message),
        ]);
        cluster.on_frame(frame, 0, &mut hub);
    }
    cluster.on_frame(push(vec![blob(b"message")]), 0, &mut hub);
    cluster.on_frame(ok(), 0, &mut hub); // a reply nothing waits for
    let id = hub.open_channel(&channel("@rust")).unwrap();
    assert_eq!(hub.end_seq(id), 4);
}

#[test]
fn a_deserted_replica_goes_only_after_the_replies_owed_then() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    joined(&mut cluster, &mut hub);
    // A request in flight when the last local member leaves: its verdict may still be
    // the session's way out of the channel (a self-kick), so the replica stays for it.
    cluster.request(1, Request::List, 0, &mut hub);
    sent(&mut cluster);
    hub.leave(
        hub.open_channel(&channel("@rust")).unwrap(),
        &user("alice"),
        0,
    );
    let mut deserted = Vec::new();
    hub.take_deserted(&mut deserted);
    assert_eq!(deserted, [channel("@rust")]);
    cluster.deserted(channel("@rust"));
    cluster.sweep(&mut hub);
    assert!(
        hub.replica_end(&channel("@rust")).is_some(),
        "kept while a reply is owed"
    );
    cluster.on_frame(array(vec![]), 0, &mut hub);
    cluster.sweep(&mut hub);
    assert_eq!(hub.replica_end(&channel("@rust")), None);
    let commands = sent(&mut cluster);
    assert!(commands.contains(&vec![
        "UNSUBSCRIBE".to_string(),
        "kc:{@rust}:live".to_string()
    ]));
}

#[test]
fn a_replica_joined_again_before_the_sweep_stays() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    joined(&mut cluster, &mut hub);
    let id = hub.open_channel(&channel("@rust")).unwrap();
    hub.leave(id, &user("alice"), 0);
    cluster.deserted(channel("@rust"));
    hub.join_local(&channel("@rust"), &user("alice"), true, 5);
    cluster.sweep(&mut hub);
    assert!(hub.replica_end(&channel("@rust")).is_some());
    assert!(!sent(&mut cluster).iter().any(|c| c[0] == "UNSUBSCRIBE"));
}

/// A frame Redis could send, or garbage of the same shapes: replies of every kind and
/// live messages for the replica's channel with arbitrary numbering and payloads.
fn any_frame() -> impl Strategy<Value = OwnedFrame> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..40);
    let seq = 0u64..12;
    prop_oneof![
        Just(ok()),
        Just(OwnedFrame::Null),
        any::<i64>().prop_map(int),
        bytes.clone().prop_map(|b| blob(&b)),
        (seq.clone(), "[a-z ]{0,8}").prop_map(|(n, text)| live(n, &text)),
        (seq.clone(), bytes.clone()).prop_map(|(n, b)| {
            let mut message = format!("{n}-0 ").into_bytes();
            message.extend(b);
            push(vec![
                blob(b"message"),
                blob(b"kc:{@rust}:live"),
                blob(&message),
            ])
        }),
        proptest::collection::vec(seq, 0..5)
            .prop_map(|seqs| { array(seqs.into_iter().map(|n| stream_entry(n, "x")).collect()) }),
        (any::<i64>(), bytes).prop_map(|(n, b)| array(vec![int(n), array(vec![blob(&b)])])),
        Just(OwnedFrame::SimpleError {
            data: "ERR".into(),
            attributes: None
        }),
    ]
}

proptest! {
    /// Whatever Redis answers, in whatever order, the engine neither panics nor applies
    /// an entry twice or out of order: the replica's ring only moves forward.
    #[test]
    fn no_frame_sequence_breaks_the_engine(frames in proptest::collection::vec(any_frame(), 0..60)) {
        let mut hub = hub();
        let mut cluster = connected(&mut hub);
        joined(&mut cluster, &mut hub);
        cluster.request(2, Request::List, 0, &mut hub);
        cluster.request(3, claim("bob"), 0, &mut hub);
        let id = hub.open_channel(&channel("@rust")).unwrap();
        let mut end = hub.end_seq(id);
        for (at, frame) in frames.into_iter().enumerate() {
            cluster.on_frame(frame, at as u64, &mut hub);
            cluster.tick(at as u64);
            let now_end = hub.end_seq(id);
            prop_assert!(now_end >= end, "the ring went back from {end} to {now_end}");
            end = now_end;
            sent(&mut cluster);
        }
        cluster.disconnected();
        cluster.connected(100);
        sent(&mut cluster);
    }
}

#[test]
fn a_node_id_another_run_holds_refuses_requests_then_is_fatal() {
    let mut hub = hub();
    let mut cluster = Cluster::new(config());
    cluster.connected(0);
    answer_handshake(&mut cluster, &mut hub);
    let taken = || array(vec![blob(b"taken"), int(4000)]);
    cluster.on_frame(taken(), 0, &mut hub);
    cluster.on_frame(array(vec![]), 0, &mut hub); // SMEMBERS kc:server-bans
    assert!(!cluster.is_up());
    cluster.request(1, claim("alice"), 0, &mut hub);
    assert_eq!(verdicts(&mut cluster), [(1, Verdict::Unavailable)]);
    sent(&mut cluster);
    // Renewals go on: the other run may be a dead one whose lease is about to lapse.
    let renew_at = |cluster: &mut Cluster, hub: &mut Hub, now: u64| {
        cluster.tick(now);
        for command in sent(cluster) {
            let renew = script_of(cluster, &command) == Some(Script::Renew);
            cluster.on_frame(if renew { taken() } else { ok() }, now, hub);
        }
    };
    renew_at(&mut cluster, &mut hub, 2 * LEASE);
    assert_eq!(
        cluster.take_fatal(),
        None,
        "two leases are allowed to lapse"
    );
    renew_at(&mut cluster, &mut hub, 2 * LEASE + LEASE / 3);
    let fatal = cluster.take_fatal().unwrap();
    assert!(fatal.contains("--node-id n1"), "{fatal}");
}

#[test]
fn a_lapsed_lease_of_a_previous_run_is_taken_over() {
    let mut hub = hub();
    let mut cluster = Cluster::new(config());
    cluster.connected(0);
    answer_handshake(&mut cluster, &mut hub);
    cluster.on_frame(array(vec![blob(b"taken"), int(900)]), 0, &mut hub);
    cluster.on_frame(array(vec![]), 0, &mut hub); // SMEMBERS kc:server-bans
    cluster.tick(LEASE / 3);
    sent(&mut cluster);
    cluster.on_frame(array(vec![int(0), array(vec![])]), LEASE / 3, &mut hub);
    assert!(cluster.is_up());
    assert_eq!(cluster.take_fatal(), None);
}

#[test]
fn after_a_refused_set_up_the_first_reason_is_kept_and_later_frames_ignored() {
    let mut hub = hub();
    let mut cluster = Cluster::new(config());
    cluster.connected(0);
    let error = |text: &str| OwnedFrame::SimpleError {
        data: text.into(),
        attributes: None,
    };
    cluster.on_frame(
        error("WRONGPASS invalid username-password pair"),
        0,
        &mut hub,
    );
    cluster.on_frame(error("NOAUTH Authentication required."), 0, &mut hub);
    cluster.on_frame(ok(), 0, &mut hub);
    assert!(!cluster.take_confirmed());
    let broken = cluster.take_broken().unwrap();
    assert!(broken.contains("WRONGPASS"), "{broken}");
}

fn posted(cluster: &mut Cluster) -> Vec<(ConnRef, Username)> {
    let mut v = Vec::new();
    cluster.take_posted(&mut v);
    v
}

fn failed(cluster: &mut Cluster) -> Vec<(ConnRef, Username)> {
    let mut v = Vec::new();
    cluster.take_failed_posts(&mut v);
    v
}

#[test]
fn a_message_is_reported_posted_once_stored_and_applied_here() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    joined(&mut cluster, &mut hub);
    cluster.outbound(post(1, "alice"), 0);
    sent(&mut cluster);
    // Stored as entry 4, whose live message has not come yet: the sender waits.
    cluster.on_frame(array(vec![blob(b"ok"), int(4)]), 0, &mut hub);
    assert!(posted(&mut cluster).is_empty());
    cluster.on_frame(live(4, "hi"), 0, &mut hub);
    assert_eq!(posted(&mut cluster), [(1, user("alice"))]);
    // The other order: applied first, then the reply.
    cluster.outbound(post(1, "alice"), 0);
    cluster.on_frame(live(5, "hi"), 0, &mut hub);
    cluster.on_frame(array(vec![blob(b"ok"), int(5)]), 0, &mut hub);
    assert_eq!(posted(&mut cluster), [(1, user("alice"))]);
}

#[test]
fn a_message_the_network_no_longer_takes_from_its_sender_is_given_back() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    joined(&mut cluster, &mut hub);
    cluster.outbound(post(1, "alice"), 0);
    // The network had taken this node's members for gone (it was cut off).
    cluster.on_frame(array(vec![blob(b"not-member")]), 0, &mut hub);
    assert_eq!(failed(&mut cluster), [(1, user("alice"))]);
    assert!(posted(&mut cluster).is_empty());
}

#[test]
fn a_stored_message_still_unapplied_when_redis_goes_is_reported_posted() {
    let mut hub = hub();
    let mut cluster = connected(&mut hub);
    joined(&mut cluster, &mut hub);
    cluster.outbound(post(1, "alice"), 0);
    cluster.on_frame(array(vec![blob(b"ok"), int(4)]), 0, &mut hub);
    cluster.disconnected();
    // Stored: it comes with the reload; the sender is not told it failed.
    assert_eq!(posted(&mut cluster), [(1, user("alice"))]);
    assert!(failed(&mut cluster).is_empty());
}

#[test]
fn a_request_made_while_the_connection_is_set_up_waits_for_it() {
    let mut hub = hub();
    let mut cluster = Cluster::new(config());
    // At start-up, before Redis is even reached: the request waits, not refused.
    cluster.request(3, claim("amy"), 10, &mut hub);
    assert!(verdicts(&mut cluster).is_empty());
    cluster.connected(20);
    answer_handshake(&mut cluster, &mut hub);
    cluster.request(4, claim("bob"), 30, &mut hub);
    assert!(verdicts(&mut cluster).is_empty());
    sent(&mut cluster);
    // The lease is this run's: both claims go out, in order.
    cluster.on_frame(array(vec![int(0), array(vec![])]), 40, &mut hub);
    let claims: Vec<Vec<String>> = sent(&mut cluster)
        .into_iter()
        .filter(|c| c[0] == "SET")
        .collect();
    assert_eq!(claims[0][1], "kc:name:amy");
    assert_eq!(claims[1][1], "kc:name:bob");
}

#[test]
fn a_request_still_waiting_when_the_settling_time_ends_is_refused() {
    let mut hub = hub();
    let mut cluster = Cluster::new(config());
    cluster.request(3, claim("amy"), 10, &mut hub);
    assert_eq!(cluster.next_deadline(), Some(SETTLE_MS));
    cluster.tick(SETTLE_MS - 1);
    assert!(verdicts(&mut cluster).is_empty());
    cluster.tick(SETTLE_MS);
    assert_eq!(verdicts(&mut cluster), [(3, Verdict::Unavailable)]);
}

#[test]
fn server_bans_read_after_a_reconnect_become_the_hubs_without_closing_twice() {
    let mut hub = hub();
    let kept: IpAddr = "10.0.0.1".parse().unwrap();
    let lifted: IpAddr = "10.0.0.2".parse().unwrap();
    let new: IpAddr = "10.0.0.3".parse().unwrap();
    hub.ban_address(kept);
    hub.ban_address(lifted);
    hub.take_events(&mut Vec::new());
    let mut cluster = Cluster::new(config());
    cluster.connected(0);
    answer_handshake(&mut cluster, &mut hub);
    cluster.on_frame(array(vec![int(0), array(vec![])]), 0, &mut hub); // renew
    let bans = array(vec![blob(b"10.0.0.1"), blob(b"10.0.0.3")]);
    cluster.on_frame(bans, 0, &mut hub); // SMEMBERS kc:server-bans
    let mut now_banned: Vec<IpAddr> = hub.server_bans().collect();
    now_banned.sort();
    assert_eq!(now_banned, [kept, new]);
    let mut events = Vec::new();
    hub.take_events(&mut events);
    assert_eq!(events, [kaichat_proto::hub::Event::CloseAddress(new)]);
}
