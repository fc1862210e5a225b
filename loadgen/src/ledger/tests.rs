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
        version: 1,
        echoes: 0,
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

fn v2(client: u32, channel: u32, joined_us: u64, received: u64, echoes: u64) -> Member {
    Member {
        version: 2,
        echoes,
        ..member(client, channel, joined_us, received)
    }
}

#[test]
fn a_v2_sender_is_owed_the_echo_of_each_of_its_messages() {
    let msgs = [sent(0, 0, 100), sent(0, 0, 200), sent(0, 1, 150)];
    // Client 0 (v2) sent two messages and read one echo; client 1 (v1) is owed no echo.
    let loss = account(&msgs, &[v2(0, 0, 10, 1, 1), member(1, 0, 10, 2)]);
    assert_eq!(loss.owed, 3);
    assert_eq!(loss.lost, 0);
    assert_eq!(loss.echoes_owed, 2);
    assert_eq!(loss.echoes_received, 1);
    assert_eq!(loss.echoes_lost, 1);
    assert_eq!(loss.echoes_surplus, 0);
    // Every echo in: nothing lost; one echo too many is surplus, not a receipt.
    let loss = account(&msgs, &[v2(0, 0, 10, 1, 3), member(1, 0, 10, 2)]);
    assert_eq!((loss.echoes_received, loss.echoes_lost), (2, 0));
    assert_eq!(loss.echoes_surplus, 1);
    // An unfinished member is not judged, echoes included.
    let gone = Member {
        finished: false,
        ..v2(0, 0, 10, 0, 0)
    };
    assert_eq!(account(&msgs, &[gone]).echoes_owed, 0);
}

#[test]
fn a_skip_notice_excuses_missing_messages_first_then_echoes() {
    let msgs = [
        sent(0, 0, 100),
        sent(0, 0, 200),
        sent(0, 1, 150),
        sent(0, 1, 250),
    ];
    // Client 0 is owed 2 messages and 2 echoes, read 1 and 0, and was told 2 entries were
    // skipped: one excuses the missing message, one a missing echo; one echo is lost.
    let mut m = v2(0, 0, 10, 1, 0);
    m.skipped = 2;
    let loss = account(&msgs, &[m]);
    assert_eq!(loss.lost, 0);
    assert_eq!(loss.echoes_lost, 1);
    // Enough skipped to cover everything.
    m.skipped = 3;
    let loss = account(&msgs, &[m]);
    assert_eq!((loss.lost, loss.echoes_lost), (0, 0));
    // A v1 member's skip notice excuses nothing it was not owed.
    let mut m1 = member(0, 0, 10, 1);
    m1.skipped = 5;
    let loss = account(&msgs, &[m1]);
    assert_eq!((loss.lost, loss.echoes_owed, loss.echoes_lost), (0, 0, 0));
}

#[test]
fn reading_a_message_judges_channel_order_echo_and_owing() {
    let v2 = Reader {
        client: 3,
        channel: 1,
        version: 2,
        joined: Some(t(100)),
    };
    let mut seen = Seen::default();
    // 2 channels of at most 3 members: channel 1 holds clients 1, 3 and 5.
    let read = |seen: &mut Seen, r: &Reader, sender, seq, sent_us| {
        seen.read(r, sender, seq, t(sent_us), 2, 3)
    };
    // Sent before the join: replayed, not owed.
    assert_eq!(
        read(&mut seen, &v2, 1, 0, 50),
        Read::Delivered { owed: false }
    );
    assert_eq!(
        read(&mut seen, &v2, 1, 1, 150),
        Read::Delivered { owed: true }
    );
    assert_eq!(
        read(&mut seen, &v2, 5, 7, 160),
        Read::Delivered { owed: true }
    );
    // The same again, or an older one from that sender: duplicate.
    assert_eq!(read(&mut seen, &v2, 1, 1, 150), Read::Duplicate);
    assert_eq!(read(&mut seen, &v2, 1, 0, 50), Read::Duplicate);
    assert_eq!(read(&mut seen, &v2, 5, 3, 160), Read::Duplicate);
    // A gap is not a duplicate (a skip notice or the ledger accounts for it).
    assert_eq!(
        read(&mut seen, &v2, 1, 5, 170),
        Read::Delivered { owed: true }
    );
    // Its own message: an echo, once.
    assert_eq!(read(&mut seen, &v2, 3, 0, 180), Read::Echo);
    assert_eq!(read(&mut seen, &v2, 3, 0, 180), Read::Duplicate);
    // Channel 0's clients, and a client number past the channel's size.
    assert_eq!(read(&mut seen, &v2, 2, 0, 180), Read::OtherChannel);
    assert_eq!(read(&mut seen, &v2, 7, 0, 180), Read::OtherChannel);
    // A version-1 client is never sent its own messages.
    let v1 = Reader { version: 1, ..v2 };
    let mut seen = Seen::default();
    assert_eq!(read(&mut seen, &v1, 3, 0, 180), Read::OwnToV1);
    // Not joined (no acknowledgement yet): nothing is owed.
    let early = Reader { joined: None, ..v2 };
    let mut seen = Seen::default();
    assert_eq!(
        read(&mut seen, &early, 1, 0, 180),
        Read::Delivered { owed: false }
    );
}
