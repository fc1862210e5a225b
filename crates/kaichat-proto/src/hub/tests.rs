//! Unit tests of the hub: names, channels, the bounded history and what a QUERY reads.

use std::net::IpAddr;

use super::*;
use crate::test_support::{channel, outbound, user};

/// Claims `name` (connection 0, no address) unless it is held already, then joins `name`
/// to channel `ch` at time 0 as a version-1 reader (no push).
fn join(hub: &mut Hub, ch: &ChannelName, name: &Username) -> (ChannelId, u64) {
    hub.claim_name(*name, 0, None);
    hub.join(ch, name, false, 0).unwrap()
}

/// Everything a QUERY made now would return to the version-1 reader `reader` (its own
/// messages left out), as text lines.
fn read_all(hub: &Hub, id: ChannelId, cursor: &mut u64, reader: &Username) -> Vec<String> {
    let end = hub.end_seq(id);
    let mut out = Vec::new();
    loop {
        match hub.next_entry(id, cursor, end, Some(reader)) {
            Next::Skipped(n) => out.push(format!("skipped {n}")),
            Next::Entry(e) => out.push(format!(
                "{}: {}",
                e.sender.map_or("SERVER".to_string(), |s| s.to_string()),
                String::from_utf8_lossy(&e.text)
            )),
            Next::Done => return out,
        }
    }
}

#[test]
fn names_are_unique_ignoring_case_and_freed() {
    let mut hub = Hub::new(10, 5);
    assert!(hub.claim_name(user("Amy"), 0, None));
    assert!(!hub.claim_name(user("aMY"), 0, None));
    assert_eq!(hub.users(), 1);
    hub.release_name(&user("AMY"));
    assert!(hub.claim_name(user("amy"), 0, None));
}

#[test]
fn joiner_sees_own_joined_notice_and_others_messages() {
    let mut hub = Hub::new(10, 5);
    let (amy, bob) = (user("amy"), user("bob"));
    let (id, mut amy_cursor) = join(&mut hub, &channel("@c"), &amy);
    hub.post(id, amy, b"hello", 0);
    let (id2, mut bob_cursor) = join(&mut hub, &channel("@c"), &bob);
    assert_eq!(id, id2);
    assert_eq!(
        read_all(&hub, id, &mut bob_cursor, &bob),
        ["SERVER: amy joined", "amy: hello", "SERVER: bob joined"]
    );
    // Own messages are left out; the read position moves past them.
    assert_eq!(
        read_all(&hub, id, &mut amy_cursor, &amy),
        ["SERVER: amy joined", "SERVER: bob joined"]
    );
    assert!(read_all(&hub, id, &mut amy_cursor, &amy).is_empty());
}

#[test]
fn own_messages_compared_ignoring_case() {
    let mut hub = Hub::new(10, 5);
    let (id, _) = join(&mut hub, &channel("@c"), &user("bob"));
    join(&mut hub, &channel("@c"), &user("Amy"));
    hub.post(id, user("Amy"), b"old", 0);
    hub.leave(id, &user("Amy"), 0);
    hub.release_name(&user("Amy"));
    let (_, mut cursor) = join(&mut hub, &channel("@c"), &user("amy"));
    assert_eq!(
        read_all(&hub, id, &mut cursor, &user("AMY")),
        [
            "SERVER: bob joined",
            "SERVER: Amy joined",
            "SERVER: Amy left",
            "SERVER: amy joined"
        ]
    );
}

#[test]
fn replay_shows_only_the_last_r_entries() {
    let mut hub = Hub::new(100, 2);
    let (id, _) = join(&mut hub, &channel("@c"), &user("amy"));
    for i in 0..5 {
        hub.post(id, user("amy"), format!("m{i}").as_bytes(), 0);
    }
    let (_, mut cursor) = join(&mut hub, &channel("@c"), &user("bob"));
    assert_eq!(
        read_all(&hub, id, &mut cursor, &user("bob")),
        ["amy: m3", "amy: m4", "SERVER: bob joined"]
    );
    let mut none = Hub::new(100, 0);
    let (id, mut cursor) = join(&mut none, &channel("@c"), &user("amy"));
    assert_eq!(
        read_all(&none, id, &mut cursor, &user("amy")),
        ["SERVER: amy joined"]
    );
}

#[test]
fn history_is_bounded_and_evictions_are_reported() {
    let mut hub = Hub::new(3, 0);
    let (id, mut amy_cursor) = join(&mut hub, &channel("@c"), &user("amy"));
    let (_, _) = join(&mut hub, &channel("@c"), &user("bob"));
    for i in 0..6 {
        hub.post(id, user("bob"), format!("m{i}").as_bytes(), 0);
    }
    // amy had read nothing: joined, joined, m0, m1, m2 were evicted (5 entries).
    assert_eq!(
        read_all(&hub, id, &mut amy_cursor, &user("amy")),
        ["skipped 5", "bob: m3", "bob: m4", "bob: m5"]
    );
}

#[test]
fn answer_ends_where_the_query_was_made() {
    let mut hub = Hub::new(10, 0);
    let (id, _) = join(&mut hub, &channel("@c"), &user("amy"));
    let (_, mut cursor) = join(&mut hub, &channel("@c"), &user("bob"));
    let end = hub.end_seq(id);
    hub.post(id, user("amy"), b"later", 0);
    assert!(matches!(
        hub.next_entry(id, &mut cursor, end, Some(&user("bob"))),
        Next::Entry(_)
    ));
    assert!(matches!(
        hub.next_entry(id, &mut cursor, end, Some(&user("bob"))),
        Next::Done
    ));
    assert_eq!(
        read_all(&hub, id, &mut cursor, &user("bob")),
        ["amy: later"]
    );
}

#[test]
fn eviction_in_the_middle_of_an_answer_is_reported_there() {
    let mut hub = Hub::new(2, 0);
    let (id, _) = join(&mut hub, &channel("@c"), &user("amy"));
    let (_, mut cursor) = join(&mut hub, &channel("@c"), &user("bob")); // bob joined
    hub.post(id, user("amy"), b"a", 0);
    let end = hub.end_seq(id);
    assert!(matches!(
        hub.next_entry(id, &mut cursor, end, Some(&user("bob"))),
        Next::Entry(_)
    ));
    // While bob's answer is in flight, two more messages evict "a".
    hub.post(id, user("amy"), b"b", 0);
    hub.post(id, user("amy"), b"c", 0);
    assert!(matches!(
        hub.next_entry(id, &mut cursor, end, Some(&user("bob"))),
        Next::Skipped(1)
    ));
    assert!(matches!(
        hub.next_entry(id, &mut cursor, end, Some(&user("bob"))),
        Next::Done
    ));
    assert_eq!(
        read_all(&hub, id, &mut cursor, &user("bob")),
        ["amy: b", "amy: c"]
    );
}

#[test]
fn channel_closes_with_its_last_member() {
    let mut hub = Hub::new(10, 10);
    let (amy, bob) = (user("amy"), user("bob"));
    let (id, _) = join(&mut hub, &channel("@c"), &amy);
    join(&mut hub, &channel("@c"), &bob);
    hub.post(id, amy, b"secret", 0);
    hub.leave(id, &amy, 0);
    assert_eq!(hub.channels(), 1);
    let mut cursor = 0;
    // amy, the operator, left: bob, the only member left, is the operator now.
    assert_eq!(
        read_all(&hub, id, &mut cursor, &bob)[3..],
        ["SERVER: amy left", "SERVER: bob is now an operator"]
    );
    hub.leave(id, &bob, 0);
    assert_eq!(hub.channels(), 0);
    // Created again, it starts empty.
    let (id, mut cursor) = join(&mut hub, &channel("@c"), &amy);
    assert_eq!(
        read_all(&hub, id, &mut cursor, &amy),
        ["SERVER: amy joined"]
    );
}

#[test]
fn a_joiner_is_not_told_of_entries_its_own_notice_evicted() {
    // History limit equal to replay: the `joined` notice pushes the oldest replayed
    // entry out, which the joiner never had to read.
    let mut hub = Hub::new(3, 3);
    let (id, _) = join(&mut hub, &channel("@c"), &user("amy"));
    hub.post(id, user("amy"), b"m1", 0);
    hub.post(id, user("amy"), b"m2", 0);
    let (_, mut cursor) = join(&mut hub, &channel("@c"), &user("bob"));
    assert_eq!(
        read_all(&hub, id, &mut cursor, &user("bob")),
        ["amy: m1", "amy: m2", "SERVER: bob joined"]
    );
}

#[test]
fn channel_names_are_case_sensitive() {
    let mut hub = Hub::new(10, 10);
    let (a, _) = join(&mut hub, &channel("@Rust"), &user("amy"));
    let (b, _) = join(&mut hub, &channel("@rust"), &user("bob"));
    assert_ne!(a, b);
    assert_eq!(hub.channel_name(a), Some(&channel("@Rust")));
}

#[test]
fn retained_counts_entries_up_to_each_bound_and_drops_a_closed_channel() {
    let mut hub = Hub::new(3, 0);
    assert_eq!(hub.retained(), 0);
    let (a, _) = join(&mut hub, &channel("@a"), &user("amy"));
    join(&mut hub, &channel("@b"), &user("bob"));
    assert_eq!(hub.retained(), 2, "a joined notice in each channel");
    for i in 0..5 {
        hub.post(a, user("amy"), format!("m{i}").as_bytes(), 0);
    }
    assert_eq!(hub.retained(), 3 + 1, "@a is at its bound of 3");
    hub.leave(a, &user("amy"), 0);
    assert_eq!(hub.retained(), 1, "@a closed with its last member");
}

// --- With a store -------------------------------------------------------------------------

fn texts(appended: &[Appended]) -> Vec<(u64, String)> {
    appended
        .iter()
        .map(|a| (a.seq, String::from_utf8_lossy(&a.entry.text).into_owned()))
        .collect()
}

#[test]
fn without_a_store_nothing_is_journaled_and_an_empty_channel_is_freed() {
    let mut hub = Hub::new(10, 5);
    let (id, _) = join(&mut hub, &channel("@a"), &user("amy"));
    hub.post(id, user("amy"), b"hi", 0);
    let mut appended = Vec::new();
    hub.take_appended(&mut appended);
    assert!(appended.is_empty());
    hub.leave(id, &user("amy"), 0);
    assert_eq!(hub.channels(), 0);
}

#[test]
fn with_a_store_every_entry_is_journaled_in_order_with_its_sequence_number() {
    let mut hub = Hub::with_store(10, 5, false);
    let (id, _) = join(&mut hub, &channel("@a"), &user("amy"));
    hub.post(id, user("amy"), b"hi", 0);
    let (id2, _) = join(&mut hub, &channel("@b"), &user("bob"));
    hub.leave(id2, &user("bob"), 0);
    let mut appended = Vec::new();
    hub.take_appended(&mut appended);
    assert_eq!(
        texts(&appended),
        [
            (0, "amy joined".to_string()),
            (1, "hi".to_string()),
            (0, "bob joined".to_string()),
            (1, "bob left".to_string())
        ]
    );
    assert_eq!(appended[1].entry.sender, Some(user("amy")));
    assert_eq!(appended[2].channel, channel("@b"));
    hub.take_appended(&mut appended);
    assert!(appended.is_empty(), "taken once");
}

#[test]
fn with_a_store_an_emptied_channel_keeps_its_history_for_the_next_joiner() {
    let mut hub = Hub::with_store(10, 5, false);
    let (id, _) = join(&mut hub, &channel("@a"), &user("amy"));
    hub.post(id, user("amy"), b"remember me", 0);
    hub.leave(id, &user("amy"), 0);
    assert_eq!(hub.channels(), 1);
    let (id, mut cursor) = join(&mut hub, &channel("@a"), &user("bob"));
    assert_eq!(
        read_all(&hub, id, &mut cursor, &user("bob")),
        [
            "SERVER: amy joined",
            "amy: remember me",
            "SERVER: amy left",
            "SERVER: bob joined"
        ]
    );
}

#[test]
fn a_restored_channel_replays_its_loaded_tail_and_numbers_on_from_it() {
    let mut hub = Hub::with_store(3, 10, false);
    let entries: Vec<Entry> = ["a", "b", "c", "d"]
        .iter()
        .map(|t| Entry {
            sender: Some(user("amy")),
            kind: Kind::Chat,
            time_ms: 0,
            text: t.as_bytes().into(),
        })
        .collect();
    hub.restore(channel("@a"), 40, entries);
    let (id, mut cursor) = join(&mut hub, &channel("@a"), &user("bob"));
    // The limit of 3 keeps b..d (seq 37..39); bob's notice evicts b.
    assert_eq!(
        read_all(&hub, id, &mut cursor, &user("bob")),
        ["amy: c", "amy: d", "SERVER: bob joined"]
    );
    let mut appended = Vec::new();
    hub.take_appended(&mut appended);
    assert_eq!(texts(&appended), [(40, "bob joined".to_string())]);
}

#[test]
fn under_always_an_answer_stops_at_the_durable_watermark() {
    let mut hub = Hub::with_store(10, 10, true);
    let (id, mut cursor) = join(&mut hub, &channel("@a"), &user("amy"));
    hub.post(id, user("bob"), b"one", 0);
    assert!(read_all(&hub, id, &mut cursor, &user("amy")).is_empty());
    hub.made_durable(&channel("@a"), 1);
    assert_eq!(
        read_all(&hub, id, &mut cursor, &user("amy")),
        ["SERVER: amy joined"]
    );
    hub.made_durable(&channel("@a"), 2);
    hub.made_durable(&channel("@a"), 1); // late, out-of-order confirmations never go back
    assert_eq!(read_all(&hub, id, &mut cursor, &user("amy")), ["bob: one"]);
}

// --- Version 2: operators, removals, bans, listings, pushes, time stamps -------------------

/// Claims `name` for connection `conn` from `peer` and joins `ch` at `now`; `push` for a
/// version-2 reader.
fn join_as(
    hub: &mut Hub,
    ch: &str,
    name: &str,
    conn: ConnRef,
    push: bool,
    now: u64,
) -> (ChannelId, u64) {
    assert!(hub.claim_name(user(name), conn, None));
    hub.join(&channel(ch), &user(name), push, now).unwrap()
}

/// Every entry a version-2 reader at `cursor` is sent now, as `kind text` lines.
fn read_kinds(hub: &Hub, id: ChannelId, cursor: &mut u64) -> Vec<String> {
    let end = hub.end_seq(id);
    let mut out = Vec::new();
    while let Next::Entry(e) = hub.next_entry(id, cursor, end, None) {
        out.push(format!("{:?} {}", e.kind, String::from_utf8_lossy(&e.text)));
    }
    out
}

fn operators(hub: &Hub, id: ChannelId) -> Vec<String> {
    hub.members_after(id, true, 0)
        .map(|(_, u)| u.to_string())
        .collect()
}

fn members(hub: &Hub, id: ChannelId) -> Vec<String> {
    hub.members_after(id, false, 0)
        .map(|(_, u)| u.to_string())
        .collect()
}

#[test]
fn the_opener_is_operator_and_the_earliest_joiner_inherits_with_a_notice() {
    let mut hub = Hub::new(100, 0);
    let (id, _) = join_as(&mut hub, "@c", "amy", 0, true, 0);
    let (_, mut cursor) = join_as(&mut hub, "@c", "bob", 1, true, 0);
    join_as(&mut hub, "@c", "carl", 2, true, 0);
    assert_eq!(operators(&hub, id), ["amy"]);
    assert_eq!(members(&hub, id), ["bob", "carl"]);
    // A member who is not the operator leaving hands nothing on.
    join_as(&mut hub, "@c", "dan", 3, false, 0);
    hub.leave(id, &user("dan"), 0);
    hub.leave(id, &user("amy"), 0);
    assert_eq!(operators(&hub, id), ["bob"]);
    assert_eq!(members(&hub, id), ["carl"]);
    assert_eq!(
        read_kinds(&hub, id, &mut cursor),
        [
            "Notice bob joined",
            "Notice carl joined",
            "Notice dan joined",
            "Notice dan left",
            "Notice amy left",
            "Operator bob is now an operator"
        ]
    );
    assert!(hub.is_operator(id, &user("BOB")));
    assert!(!hub.is_operator(id, &user("carl")));
}

#[test]
fn a_version_1_reader_is_sent_a_removal_as_left_and_no_operator_entry() {
    let entry = |kind, text: &str| Entry {
        sender: None,
        kind,
        time_ms: 0,
        text: text.as_bytes().into(),
    };
    let mut room = [0u8; V1_TEXT_ROOM];
    let removal = entry(Kind::Removal, "abcdefghij was kicked by amy: reasons");
    assert_eq!(removal.v1_text(&mut room), Some(&b"abcdefghij left"[..]));
    let operator = entry(Kind::Operator, "bob is now an operator");
    assert_eq!(operator.v1_text(&mut room), None);
    let left = entry(Kind::Notice, "bob left");
    assert_eq!(left.v1_text(&mut room), Some(&b"bob left"[..]));
}

#[test]
fn a_removal_appends_one_entry_and_tells_the_target_unless_it_removed_itself() {
    let mut hub = Hub::new(100, 0);
    let (id, _) = join_as(&mut hub, "@c", "amy", 0, true, 0);
    let (_, mut cursor) = join_as(&mut hub, "@c", "bob", 1, false, 0);
    join_as(&mut hub, "@c", "carl", 2, true, 0);
    assert!(hub.remove(id, &user("bob"), &user("amy"), b"spam", false, 0));
    assert!(hub.remove(id, &user("carl"), &user("amy"), b"", true, 0));
    assert!(!hub.is_member(id, &user("bob")));
    let mut events = Vec::new();
    hub.take_events(&mut events);
    assert_eq!(
        events,
        [
            Event::Removed {
                conn: 1,
                channel: id,
                name: channel("@c"),
                notice: b"you were kicked from @c by amy: spam"[..].into(),
            },
            Event::Removed {
                conn: 2,
                channel: id,
                name: channel("@c"),
                notice: b"you were banned from @c by amy"[..].into(),
            }
        ]
    );
    // Not a member (any more): nothing happens.
    assert!(!hub.remove(id, &user("bob"), &user("amy"), b"", false, 0));
    assert!(!hub.remove(id, &user("zed"), &user("amy"), b"", false, 0));
    // The operator removes itself: no event, its session acts on its own request.
    join_as(&mut hub, "@c", "dan", 3, true, 0);
    assert!(hub.remove(id, &user("amy"), &user("amy"), b"", false, 0));
    hub.take_events(&mut events);
    assert_eq!(events.len(), 2);
    assert_eq!(
        read_kinds(&hub, id, &mut cursor)[2..],
        [
            "Removal bob was kicked by amy: spam",
            "Removal carl was banned by amy",
            "Notice dan joined",
            "Removal amy was kicked by amy",
            "Operator dan is now an operator"
        ]
    );
}

#[test]
fn a_ban_list_refuses_joins_ignoring_case_and_outlives_its_channel() {
    let mut hub = Hub::new(100, 0);
    let (id, _) = join_as(&mut hub, "@c", "amy", 0, true, 0);
    assert_eq!(hub.ban(&channel("@c"), &user("Bob")), Ok(true));
    assert_eq!(
        hub.ban(&channel("@c"), &user("BOB")),
        Ok(false),
        "already on it"
    );
    hub.claim_name(user("bob"), 1, None);
    assert_eq!(
        hub.join(&channel("@c"), &user("bob"), true, 0),
        Err(JoinRefusal::Banned)
    );
    assert!(!hub.is_member(id, &user("bob")));
    // Channel names compare byte for byte: @C is another channel.
    assert!(hub.join(&channel("@C"), &user("bob"), true, 0).is_ok());
    hub.leave(id, &user("amy"), 0);
    assert_eq!(hub.open_channel(&channel("@c")), None);
    assert!(hub.is_banned(&channel("@c"), &user("bob")));
    assert!(hub.unban(&channel("@c"), &user("bob")));
    assert!(!hub.unban(&channel("@c"), &user("bob")), "once");
    assert!(!hub.is_banned(&channel("@c"), &user("bob")));
}

#[test]
fn a_ban_list_holds_at_most_max_bans_names() {
    let mut hub = Hub::new(100, 0);
    let c = channel("@c");
    for i in 0..MAX_BANS {
        assert_eq!(hub.ban(&c, &user(&format!("n{i}"))), Ok(true));
    }
    assert_eq!(hub.ban(&c, &user("zed")), Err(BanListFull));
    assert_eq!(hub.ban(&c, &user("n7")), Ok(false));
    // Another channel has its own list.
    assert_eq!(hub.ban(&channel("@d"), &user("zed")), Ok(true));
    hub.restore_bans(
        channel("@e"),
        (0..MAX_BANS + 5).map(|i| user(&format!("n{i}"))),
    );
    assert_eq!(hub.ban(&channel("@e"), &user("zed")), Err(BanListFull));
}

#[test]
fn a_server_ban_asks_for_the_address_to_close_and_lasts_until_lifted() {
    let mut hub = Hub::new(100, 0);
    let address = IpAddr::from([192, 0, 2, 7]);
    assert!(hub.claim_name(user("amy"), 0, Some(address)));
    assert_eq!(hub.address_of(&user("AMY")), Some(address));
    assert!(hub.ban_address(address));
    assert!(!hub.ban_address(address), "banned already");
    let mut events = Vec::new();
    hub.take_events(&mut events);
    assert_eq!(
        events,
        [Event::CloseAddress(address), Event::CloseAddress(address)]
    );
    assert!(hub.is_address_banned(&address));
    assert!(hub.unban_address(&address));
    assert!(!hub.unban_address(&address));
    assert!(!hub.is_address_banned(&address));
}

#[test]
fn server_operators_moderate_every_channel_until_they_disconnect() {
    let mut hub = Hub::new(100, 0);
    let (id, _) = join_as(&mut hub, "@c", "amy", 0, true, 0);
    hub.claim_name(user("root"), 1, None);
    assert!(!hub.is_operator(id, &user("root")));
    hub.make_server_operator(&user("root"));
    assert!(hub.is_server_operator(&user("ROOT")));
    assert!(hub.is_operator(id, &user("root")), "without being a member");
    // Listed as a member, not as an operator of the channel.
    hub.join(&channel("@c"), &user("root"), true, 0).unwrap();
    assert_eq!(operators(&hub, id), ["amy"]);
    hub.leave(id, &user("root"), 0);
    hub.release_name(&user("root"));
    hub.claim_name(user("root"), 2, None);
    assert!(!hub.is_server_operator(&user("root")));
}

#[test]
fn next_channel_steps_through_open_channels_in_ascending_byte_order() {
    let mut hub = Hub::new(100, 0);
    for (ch, name) in [
        ("@b", "u1"),
        ("@B", "u2"),
        ("@aa", "u3"),
        ("@a", "u4"),
        ("@aa", "u5"),
    ] {
        join_as(&mut hub, ch, name, 0, false, 0);
    }
    let mut listed = Vec::new();
    let mut after = None;
    while let Some(l) = hub.next_channel(after.as_ref()) {
        listed.push(format!("{} {} {}", l.name, l.members, l.retained));
        after = Some(l.name);
    }
    assert_eq!(listed, ["@B 1 1", "@a 1 1", "@aa 2 2", "@b 1 1"]);
    // A channel closed since the last step is not listed; one opened after it is.
    let b = hub.open_channel(&channel("@b")).unwrap();
    hub.leave(b, &user("u1"), 0);
    join_as(&mut hub, "@ab", "u6", 0, false, 0);
    let next = hub.next_channel(Some(&channel("@aa"))).map(|l| l.name);
    assert_eq!(next, Some(channel("@ab")));
    assert_eq!(hub.next_channel(Some(&channel("@ab"))), None);
}

#[test]
fn members_after_resumes_in_join_order() {
    let mut hub = Hub::new(100, 0);
    let (id, _) = join_as(&mut hub, "@c", "op", 0, false, 0);
    for name in ["m1", "m2", "m3"] {
        join_as(&mut hub, "@c", name, 0, false, 0);
    }
    let keys: Vec<(u64, String)> = hub
        .members_after(id, false, 0)
        .map(|(k, u)| (k, u.to_string()))
        .collect();
    assert_eq!(keys.len(), 3);
    let rest: Vec<String> = hub
        .members_after(id, false, keys[0].0)
        .map(|(_, u)| u.to_string())
        .collect();
    assert_eq!(rest, ["m2", "m3"]);
}

#[test]
fn only_push_readers_are_woken_by_an_append() {
    let mut hub = Hub::new(100, 0);
    let (id, _) = join_as(&mut hub, "@c", "amy", 7, false, 0);
    let mut woken = Vec::new();
    hub.take_woken(&mut woken);
    assert!(woken.is_empty(), "no push reader");
    join_as(&mut hub, "@c", "bob", 8, true, 0);
    join_as(&mut hub, "@d", "carl", 9, true, 0);
    hub.take_woken(&mut woken);
    woken.sort_unstable();
    assert_eq!(woken, [8, 9]);
    woken.clear();
    hub.post(id, user("amy"), b"hi", 0);
    hub.post(id, user("amy"), b"again", 0);
    hub.take_woken(&mut woken);
    assert_eq!(woken, [8], "once per channel until taken");
}

#[test]
fn entries_are_stamped_with_the_wall_clock_time_they_were_appended() {
    let mut hub = Hub::new(100, 0);
    hub.set_epoch(1_000_000);
    let (id, mut cursor) = join_as(&mut hub, "@c", "amy", 0, true, 250);
    hub.post(id, user("amy"), b"hi", 400);
    let end = hub.end_seq(id);
    let mut times = Vec::new();
    while let Next::Entry(e) = hub.next_entry(id, &mut cursor, end, None) {
        times.push(e.time_ms);
    }
    assert_eq!(times, [1_000_250, 1_000_400]);
    assert_eq!(hub.wall_ms(5), 1_000_005);
}

#[test]
fn a_version_2_reader_gets_its_own_messages() {
    let mut hub = Hub::new(100, 0);
    let (id, mut cursor) = join_as(&mut hub, "@c", "amy", 0, true, 0);
    hub.post(id, user("amy"), b"mine", 0);
    assert_eq!(
        read_kinds(&hub, id, &mut cursor),
        ["Notice amy joined", "Chat mine"]
    );
}

#[test]
fn with_a_store_ban_changes_are_journaled_in_order_and_only_real_changes() {
    let address = IpAddr::from([192, 0, 2, 7]);
    let mut hub = Hub::with_store(10, 5, false);
    hub.ban(&channel("@c"), &user("bob")).unwrap();
    hub.ban(&channel("@c"), &user("BOB")).unwrap(); // already on it: no change
    hub.unban(&channel("@c"), &user("bob"));
    hub.unban(&channel("@c"), &user("bob")); // not on it: no change
    hub.ban_address(address);
    hub.ban_address(address);
    hub.unban_address(&address);
    // Loaded from the store: not journaled back to it.
    hub.restore_bans(channel("@d"), [user("zed")]);
    hub.restore_server_bans([address]);
    let mut changes = Vec::new();
    hub.take_ban_changes(&mut changes);
    let on = |banned| BanChange::Channel {
        channel: channel("@c"),
        name: user("bob"),
        banned,
    };
    assert_eq!(
        changes,
        [
            on(true),
            on(false),
            BanChange::Address {
                address,
                banned: true
            },
            BanChange::Address {
                address,
                banned: false
            }
        ]
    );
    assert!(hub.is_banned(&channel("@d"), &user("ZED")));
    assert!(hub.is_address_banned(&address));
    changes.clear();
    hub.take_ban_changes(&mut changes);
    assert!(changes.is_empty(), "taken once");
    // Without a store nothing is journaled.
    let mut memory = Hub::new(10, 5);
    memory.ban(&channel("@c"), &user("bob")).unwrap();
    memory.take_ban_changes(&mut changes);
    assert!(changes.is_empty());
}

/// A removal names the target as it chose its name, whatever case the operator typed.
#[test]
fn a_removal_names_the_target_as_it_is_spelt() {
    let mut hub = Hub::new(10, 5);
    let (bob, carol) = (user("bob"), user("carol"));
    assert!(hub.claim_name(bob, 1, None));
    assert!(hub.claim_name(carol, 2, None));
    let (id, _) = hub.join(&channel("@c"), &bob, true, 0).unwrap();
    hub.join(&channel("@c"), &carol, true, 0).unwrap();
    assert!(hub.remove(id, &user("CAROL"), &bob, b"", false, 0));
    let mut events = Vec::new();
    hub.take_events(&mut events);
    let mut cursor = 0;
    let texts = read_all(&hub, id, &mut cursor, &user("nobody"));
    assert_eq!(texts.last().unwrap(), "SERVER: carol was kicked by bob");
}

/// A reason too long for the texts is cut before the character the limit falls in.
#[test]
fn a_long_reason_is_cut_on_a_character_boundary() {
    // 3-byte characters: the limit (1906) falls inside one, which must go whole.
    let reason = "€".repeat(666); // 1998 bytes
    let kept = fit_reason(reason.as_bytes());
    assert!(kept.len() <= MAX_REASON_KEPT);
    assert!(std::str::from_utf8(kept).is_ok(), "cut inside a character");
    assert_eq!(kept.len(), MAX_REASON_KEPT / 3 * 3);
    assert_ne!(
        MAX_REASON_KEPT % 3,
        0,
        "the limit must fall inside a character here"
    );
    let name = channel(&format!("@{}", "x".repeat(49)));
    let notice = Hub::removal_notice(&name, &user("abcdefghij"), reason.as_bytes(), true);
    assert!(notice.len() + b"error: ".len() <= crate::pdu::MAX_MESSAGE);
    assert!(std::str::from_utf8(&notice).is_ok());
}

/// Succession passes over version-1 members (they cannot moderate) while a version-2
/// member remains; with only version-1 members left, the earliest of them.
#[test]
fn succession_prefers_a_member_that_can_moderate() {
    let mut hub = Hub::new(20, 5);
    let (carol, old, alice) = (user("carol"), user("old"), user("alice"));
    for (i, name) in [carol, old, alice].iter().enumerate() {
        assert!(hub.claim_name(*name, i, None));
    }
    let (id, _) = hub.join(&channel("@mix"), &carol, true, 0).unwrap();
    hub.join(&channel("@mix"), &old, false, 0).unwrap();
    hub.join(&channel("@mix"), &alice, true, 0).unwrap();
    hub.leave(id, &carol, 0);
    assert!(hub.is_operator(id, &alice));
    assert!(!hub.is_operator(id, &old));
    hub.leave(id, &alice, 0);
    assert!(hub.is_operator(id, &old), "only version-1 members are left");
}

// --- Cluster mode: a replica of the network's state (v2 section 8) -------------------------

/// A network entry (time 0): a chat message from `sender`, or a notice of `kind`.
fn net_entry(sender: Option<&str>, kind: Kind, text: &str) -> Entry {
    Entry {
        sender: sender.map(user),
        kind,
        time_ms: 0,
        text: text.as_bytes().into(),
    }
}

/// Applies notices `first..=last` of channel `ch` (texts `n<seq>`).
fn apply_notices(hub: &mut Hub, ch: &str, first: u64, last: u64) {
    for seq in first..=last {
        let text = format!("n{seq}");
        hub.apply(
            &channel(ch),
            seq,
            net_entry(None, Kind::Notice, &text),
            None,
        );
    }
}

/// Everything a version-2 reader at `cursor` is sent now: entries as their text, skip
/// notices as `skipped N`.
fn read_replica(hub: &Hub, id: ChannelId, cursor: &mut u64) -> Vec<String> {
    let end = hub.end_seq(id);
    let mut out = Vec::new();
    loop {
        match hub.next_entry(id, cursor, end, None) {
            Next::Skipped(n) => out.push(format!("skipped {n}")),
            Next::Entry(e) => out.push(String::from_utf8_lossy(&e.text).into_owned()),
            Next::Done => return out,
        }
    }
}

fn deserted(hub: &mut Hub) -> Vec<String> {
    let mut names = Vec::new();
    hub.take_deserted(&mut names);
    names.iter().map(|n| n.to_string()).collect()
}

/// A clustered hub with `name` connected as `conn` and a local member of `ch`, whose
/// `joined` entry the network numbered `seq`.
fn local_member(hub: &mut Hub, ch: &str, name: &str, conn: ConnRef, seq: u64) -> (ChannelId, u64) {
    if !hub.is_connected(&user(name)) {
        assert!(hub.claim_name(user(name), conn, None));
    }
    hub.join_local(&channel(ch), &user(name), true, seq)
}

#[test]
fn only_a_clustered_hub_is_a_replica_and_journals() {
    let mut hub = Hub::new(10, 5);
    assert!(!hub.is_clustered());
    let (id, _) = join_as(&mut hub, "@c", "amy", 0, true, 0);
    hub.post(id, user("amy"), b"hi", 0);
    hub.make_server_operator(&user("amy"));
    hub.leave(id, &user("amy"), 0);
    hub.release_name(&user("amy"));
    assert!(outbound(&mut hub).is_empty());
    assert!(deserted(&mut hub).is_empty());
    assert!(Hub::clustered(10, 5).is_clustered());
}

#[test]
fn a_post_is_journaled_and_reaches_the_ring_and_its_readers_only_through_apply() {
    let mut hub = Hub::clustered(100, 10);
    let (id, mut cursor) = local_member(&mut hub, "@c", "amy", 7, 1);
    apply_notices(&mut hub, "@c", 1, 1);
    assert_eq!(read_replica(&hub, id, &mut cursor), ["n1"]);
    hub.take_woken(&mut Vec::new());
    hub.post(id, user("amy"), b"hello", 0);
    assert_eq!(
        outbound(&mut hub),
        [Outbound::Post {
            conn: 7,
            user: user("amy"),
            channel: channel("@c"),
            text: b"hello"[..].into(),
        }]
    );
    assert_eq!(hub.end_seq(id), 2, "nothing appended locally");
    assert_eq!(hub.messages(), 0, "counted when the network applied it");
    let mut woken = Vec::new();
    hub.take_woken(&mut woken);
    assert!(woken.is_empty());
    hub.apply(
        &channel("@c"),
        2,
        net_entry(Some("amy"), Kind::Chat, "hello"),
        None,
    );
    // A chat entry from someone connected elsewhere is not this node's to count.
    hub.apply(
        &channel("@c"),
        3,
        net_entry(Some("zed"), Kind::Chat, "yo"),
        None,
    );
    hub.take_woken(&mut woken);
    assert_eq!(woken, [7]);
    assert_eq!(read_replica(&hub, id, &mut cursor), ["hello", "yo"]);
    assert_eq!(hub.messages(), 1);
}

#[test]
fn apply_ignores_what_it_has_and_restarts_the_ring_after_a_gap() {
    let mut hub = Hub::clustered(100, 10);
    assert_eq!(hub.replica_end(&channel("@c")), None);
    let id = hub.replica(&channel("@c"));
    assert_eq!(hub.replica(&channel("@c")), id, "one replica per channel");
    assert_eq!(hub.replica_end(&channel("@c")), Some(0));
    apply_notices(&mut hub, "@c", 1, 3);
    assert_eq!(hub.replica_end(&channel("@c")), Some(4));
    // A duplicate changes nothing.
    hub.apply(
        &channel("@c"),
        2,
        net_entry(None, Kind::Notice, "again"),
        None,
    );
    let mut from_one = 1;
    assert_eq!(read_replica(&hub, id, &mut from_one), ["n1", "n2", "n3"]);
    // Entries 4 and 5 never came: the ring restarts at 6.
    let mut behind = 2;
    apply_notices(&mut hub, "@c", 6, 6);
    assert_eq!(hub.replica_end(&channel("@c")), Some(7));
    assert_eq!(read_replica(&hub, id, &mut behind), ["skipped 4", "n6"]);
    // A reader that had read everything misses 4 and 5 all the same.
    assert_eq!(read_replica(&hub, id, &mut from_one), ["skipped 2", "n6"]);
    // Entries of a channel without a replica are dropped.
    hub.apply(&channel("@d"), 1, net_entry(None, Kind::Notice, "x"), None);
    assert_eq!(hub.replica_end(&channel("@d")), None);
}

#[test]
fn join_local_moves_the_membership_without_journal_and_replays_up_to_the_joined_entry() {
    let mut hub = Hub::clustered(5, 3);
    let (old, _) = local_member(&mut hub, "@a", "amy", 1, 1);
    hub.replica(&channel("@c"));
    apply_notices(&mut hub, "@c", 1, 9);
    let (id, mut cursor) = local_member(&mut hub, "@c", "amy", 1, 9);
    assert!(!hub.is_member(old, &user("amy")));
    assert!(hub.is_member(id, &user("amy")));
    assert!(outbound(&mut hub).is_empty(), "the network did the JOIN");
    assert_eq!(
        hub.end_seq(id),
        10,
        "the joined entry comes from the network"
    );
    assert_eq!(read_replica(&hub, id, &mut cursor), ["n7", "n8", "n9"]);
    // Never before the ring's first entry (5 kept: 5 to 9)...
    let mut hub2 = Hub::clustered(5, 100);
    hub2.replica(&channel("@c"));
    apply_notices(&mut hub2, "@c", 1, 9);
    assert_eq!(local_member(&mut hub2, "@c", "bob", 2, 9).1, 5);
    // ...nor before the network's first entry.
    let mut hub3 = Hub::clustered(5, 100);
    assert_eq!(local_member(&mut hub3, "@c", "bob", 2, 1).1, 1);
}

#[test]
fn a_removal_takes_the_local_member_out_and_tells_it_unless_it_removed_itself() {
    let mut hub = Hub::clustered(100, 0);
    let (id, _) = local_member(&mut hub, "@c", "amy", 1, 1);
    local_member(&mut hub, "@c", "bob", 2, 2);
    let removal = |target: &str, by: &str, reason: &str, banned: bool| Removal {
        target: user(target),
        by: user(by),
        reason: reason.as_bytes().into(),
        banned,
    };
    let entry = net_entry(None, Kind::Removal, "bob was kicked by amy: spam");
    hub.apply(
        &channel("@c"),
        1,
        entry,
        Some(removal("BOB", "amy", "spam", false)),
    );
    assert!(!hub.is_member(id, &user("bob")));
    let mut events = Vec::new();
    hub.take_events(&mut events);
    assert_eq!(
        events,
        [Event::Removed {
            conn: 2,
            channel: id,
            name: channel("@c"),
            notice: b"you were kicked from @c by amy: spam"[..].into(),
        }]
    );
    // A target that is not a local member (elsewhere in the network): only the entry.
    let entry = net_entry(None, Kind::Removal, "zed was banned by amy");
    hub.apply(
        &channel("@c"),
        2,
        entry,
        Some(removal("zed", "amy", "", true)),
    );
    events.clear();
    hub.take_events(&mut events);
    assert!(events.is_empty(), "{events:?}");
    // A duplicate removal is not applied twice (bob is a member again meanwhile).
    local_member(&mut hub, "@c", "bob", 2, 3);
    let entry = net_entry(None, Kind::Removal, "bob was kicked by amy: spam");
    hub.apply(
        &channel("@c"),
        1,
        entry,
        Some(removal("bob", "amy", "spam", false)),
    );
    assert!(hub.is_member(id, &user("bob")));
    // Self-removal: out, but no event.
    let entry = net_entry(None, Kind::Removal, "amy was kicked by amy");
    hub.apply(
        &channel("@c"),
        3,
        entry,
        Some(removal("amy", "amy", "", false)),
    );
    assert!(!hub.is_member(id, &user("amy")));
    hub.take_events(&mut events);
    assert!(events.is_empty(), "{events:?}");
    assert!(outbound(&mut hub).is_empty(), "the network decided it");
    assert_eq!(hub.end_seq(id), 4);
}

#[test]
fn leave_journals_and_a_channel_is_deserted_when_its_last_local_member_goes() {
    let mut hub = Hub::clustered(100, 0);
    let (c, _) = local_member(&mut hub, "@c", "amy", 1, 1);
    local_member(&mut hub, "@c", "bob", 2, 2);
    local_member(&mut hub, "@d", "carl", 3, 1);
    apply_notices(&mut hub, "@c", 1, 2);
    hub.leave(c, &user("amy"), 0);
    assert_eq!(
        outbound(&mut hub),
        [Outbound::Leave {
            user: user("amy"),
            channel: channel("@c"),
        }]
    );
    assert!(!hub.is_member(c, &user("amy")));
    assert_eq!(hub.end_seq(c), 3, "the network writes the notice");
    assert!(deserted(&mut hub).is_empty(), "bob is still here");
    // Leaving twice journals nothing.
    hub.leave(c, &user("amy"), 0);
    assert!(outbound(&mut hub).is_empty());
    // bob moves to @d: @c has no local member left.
    local_member(&mut hub, "@d", "bob", 2, 2);
    assert_eq!(deserted(&mut hub), ["@c"]);
    assert!(deserted(&mut hub).is_empty(), "named once");
    // Deserted and joined again before the caller looked: not deserted.
    let d = hub.replica(&channel("@d"));
    hub.leave(d, &user("carl"), 0);
    hub.leave(d, &user("bob"), 0);
    local_member(&mut hub, "@d", "bob", 2, 5);
    assert!(deserted(&mut hub).is_empty());
    // A replica is freed on request only, and only without local members.
    assert_eq!(hub.replica_end(&channel("@c")), Some(3));
    hub.drop_replica(&channel("@c"));
    hub.drop_replica(&channel("@d"));
    assert_eq!(hub.replica_end(&channel("@c")), None);
    assert!(hub.replica_end(&channel("@d")).is_some());
    assert_eq!(hub.channels(), 1);
}

#[test]
fn release_and_oper_are_journaled_in_order() {
    let mut hub = Hub::clustered(100, 0);
    let (id, _) = local_member(&mut hub, "@c", "Amy", 1, 1);
    hub.make_server_operator(&user("amy"));
    hub.make_server_operator(&user("amy"));
    assert!(hub.is_server_operator(&user("amy")));
    hub.leave(id, &user("amy"), 0);
    hub.release_name(&user("amy"));
    hub.release_name(&user("amy"));
    assert_eq!(
        outbound(&mut hub),
        [
            Outbound::Oper { user: user("amy") },
            Outbound::Leave {
                user: user("amy"),
                channel: channel("@c"),
            },
            Outbound::Release { user: user("Amy") },
        ]
    );
    assert!(!hub.is_connected(&user("AMY")));
}
