use super::*;
use std::sync::OnceLock;
use std::time::Duration;

/// An instant `us` microseconds after a fixed base.
fn t(us: u64) -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now) + Duration::from_micros(us)
}

fn member(client: u32, channel: u32, joined_us: u64, received: u64) -> Member {
    Member {
        client,
        channel,
        joined: t(joined_us),
        finished: true,
        received_owed: received,
        skipped: 0,
    }
}

fn sent(channel: u32, sender: u32, sent_us: u64) -> Sent {
    Sent {
        channel,
        sender,
        sent: t(sent_us),
    }
}

#[test]
fn everyone_got_everything() {
    let msgs = [sent(0, 0, 100), sent(0, 1, 110), sent(1, 2, 120)];
    let members = [
        member(0, 0, 10, 1), // owed client 1's message
        member(1, 0, 10, 1), // owed client 0's
        member(2, 1, 10, 0), // alone in channel 1: owed nothing
    ];
    let loss = account(&msgs, &members);
    assert_eq!(loss.owed, 2);
    assert_eq!(loss.received, 2);
    assert_eq!(loss.lost, 0);
    assert_eq!(loss.surplus, 0);
    assert_eq!(loss.members, 3);
}

#[test]
fn messages_before_a_join_are_not_owed() {
    let msgs = [sent(0, 0, 100), sent(0, 0, 300)];
    // Client 1 joined at 200: owed only the second message.
    let loss = account(&msgs, &[member(0, 0, 10, 0), member(1, 0, 200, 1)]);
    assert_eq!(loss.owed, 1);
    assert_eq!(loss.lost, 0);
    // A join acknowledged at the very microsecond of the send is not "before".
    let loss = account(&msgs, &[member(0, 0, 10, 0), member(1, 0, 300, 0)]);
    assert_eq!(loss.owed, 0);
}

#[test]
fn a_missing_message_is_lost_unless_skipped() {
    let msgs = [sent(0, 0, 100), sent(0, 0, 200), sent(0, 0, 300)];
    let got_one = member(1, 0, 10, 1);
    let loss = account(&msgs, &[member(0, 0, 10, 0), got_one]);
    assert_eq!((loss.owed, loss.received, loss.lost), (3, 1, 2));
    let excused = Member {
        skipped: 2,
        ..got_one
    };
    let loss = account(&msgs, &[member(0, 0, 10, 0), excused]);
    assert_eq!((loss.lost, loss.skipped), (0, 2));
}

#[test]
fn skips_of_one_member_do_not_excuse_another() {
    let msgs = [sent(0, 0, 100)];
    let a = Member {
        skipped: 5,
        ..member(1, 0, 10, 1)
    };
    let b = member(2, 0, 10, 0);
    let loss = account(&msgs, &[member(0, 0, 1, 0), a, b]);
    assert_eq!(loss.lost, 1);
}

#[test]
fn members_that_did_not_finish_are_not_judged() {
    let msgs = [sent(0, 0, 100)];
    let gone = Member {
        finished: false,
        ..member(1, 0, 10, 0)
    };
    let loss = account(&msgs, &[member(0, 0, 10, 0), gone]);
    assert_eq!((loss.owed, loss.lost, loss.members), (0, 0, 1));
}

#[test]
fn duplicates_show_as_surplus() {
    let msgs = [sent(0, 0, 100)];
    let loss = account(&msgs, &[member(0, 0, 10, 0), member(1, 0, 10, 2)]);
    assert_eq!((loss.received, loss.surplus, loss.lost), (1, 1, 0));
}
