//! Version-2 steps and checks shared by the integration tests (`server_v2.rs`,
//! `server_cluster.rs`): time stamps, the QUERY sync point, v1 QUERY answers of the v1
//! shape, error notices, the acknowledgement of a moderation, a removal as its target
//! sees it, and the LIST_CHANNELS and NAMES listings, each PDU's shape checked
//! (`shared/spec/kaichat-v2.md`).

use std::time::{SystemTime, UNIX_EPOCH};

use super::*;

/// Wall-clock ms since the Unix epoch, as the server stamps entries (v2 section 2a).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// A v2 time stamp is plausible: within a minute of now (the server and the test share the
/// machine's clock), and the rest of the prefix after it is zero.
pub fn assert_stamped(pdu: &Pdu) {
    let (time, now) = (pdu.time(), now_ms());
    assert!(
        time.abs_diff(now) < 60_000,
        "time stamp {time} is not within a minute of now ({now}): {pdu:?}"
    );
    assert!(
        pdu.prefix()[70..].iter().all(|&b| b == 0),
        "prefix[70..256] must be zero: {pdu:?}"
    );
}

/// A v1 connection sees no time stamp, nothing past the flag: prefix[62..256] zero.
pub fn assert_v1_shape(pdu: &Pdu) {
    assert!(
        pdu.prefix()[62..].iter().all(|&b| b == 0),
        "a v1 client must see prefix[62..256] zero: {pdu:?}"
    );
}

/// The next PDU is a RECEIVE_MESSAGE carrying an entry (flag 0) of `channel`, stamped;
/// returns it.
pub fn expect_entry(c: &mut TestClient, sender: &str, text: &str) -> Pdu {
    let pdu = c.expect(Command::ReceiveMessage);
    assert_eq!(
        entry(&pdu),
        (sender.to_string(), text.to_string()),
        "{}: unexpected entry {pdu:?}",
        String::from_utf8_lossy(&c.name)
    );
    assert_eq!(pdu.as_bytes()[61], 0, "an entry has flag 0: {pdu:?}");
    assert_eq!(pdu.channel(), &c.channel[..], "entry channel: {pdu:?}");
    assert_stamped(&pdu);
    pdu
}

/// A v2 client's sync point (v2 section 2): sends QUERY and returns every PDU that arrives
/// before the up-to-date PDU (pushes and the answer alike), and the up-to-date PDU, checked
/// (SERVER, flag 1, the client's channel, params zero, stamped).
pub fn sync(c: &mut TestClient) -> (Vec<Pdu>, Pdu) {
    c.send(&Pdu::query(c.order));
    let mut before = Vec::new();
    loop {
        let pdu = c.recv();
        if c.command_of(&pdu) == Command::ReceiveMessage && pdu.up_to_date() {
            assert_eq!(pdu.username(), b"SERVER", "up-to-date sender: {pdu:?}");
            assert_eq!(pdu.channel(), &c.channel[..], "up-to-date channel: {pdu:?}");
            assert!(pdu.params().iter().all(|&b| b == 0), "up-to-date params");
            assert_stamped(&pdu);
            return (before, pdu);
        }
        assert!(before.len() < 100_000, "endless answer");
        before.push(pdu);
    }
}

/// [`sync`], as the (sender, text) of the entries before the up-to-date PDU, each checked
/// to be a stamped RECEIVE_MESSAGE of the client's channel.
pub fn sync_entries(c: &mut TestClient) -> Vec<(String, String)> {
    let (before, _) = sync(c);
    before
        .iter()
        .map(|pdu| {
            assert_eq!(c.command_of(pdu), Command::ReceiveMessage, "{pdu:?}");
            assert_eq!(pdu.as_bytes()[61], 0, "{pdu:?}");
            assert_eq!(pdu.channel(), &c.channel[..], "{pdu:?}");
            assert_stamped(pdu);
            entry(pdu)
        })
        .collect()
}

/// A v1 QUERY, every PDU of the answer checked for the v1 shape.
pub fn query_v1(c: &mut TestClient) -> Vec<(String, String)> {
    c.send(&Pdu::query(c.order));
    let mut out = Vec::new();
    loop {
        let pdu = c.expect(Command::ReceiveMessage);
        assert_v1_shape(&pdu);
        if pdu.up_to_date() {
            assert_eq!(pdu.channel(), &c.channel[..], "{pdu:?}");
            return out;
        }
        out.push(entry(&pdu));
    }
}

/// The next PDU is an error notice containing `words`.
pub fn expect_error_saying(c: &mut TestClient, words: &str) -> Pdu {
    let pdu = c.recv();
    assert_error_notice(c.command_of(&pdu), &pdu);
    let text = String::from_utf8_lossy(pdu.params_text()).into_owned();
    assert!(
        text.contains(words),
        "{}: expected an error notice saying {words:?}, got {text:?}",
        String::from_utf8_lossy(&c.name)
    );
    pdu
}

/// The next PDU is the acknowledgement of `request` (KICK, BAN, UNBAN): the request back
/// from SERVER, same prefix (but the username field) and params (v2 section 5).
pub fn expect_ack_of(c: &mut TestClient, request: &Pdu) {
    let ack = c.recv();
    assert_eq!(ack.command_bytes(), request.command_bytes(), "ack: {ack:?}");
    assert_eq!(ack.username(), b"SERVER", "ack sender: {ack:?}");
    assert_eq!(
        ack.prefix()[10..],
        request.prefix()[10..],
        "ack prefix: {ack:?}"
    );
    assert_eq!(ack.params(), request.params(), "ack params: {ack:?}");
}

/// The next PDUs tell `c` it was removed from `channel`: LEAVE_CHANNEL from SERVER naming
/// the channel, then the notice `text` (an error notice on v1, v2 section 5).
pub fn expect_removed(c: &mut TestClient, channel: &str, text: &str) {
    let leave = c.expect(Command::LeaveChannel);
    assert_eq!(leave.username(), b"SERVER", "{leave:?}");
    assert_eq!(leave.channel(), channel.as_bytes(), "{leave:?}");
    let notice = c.expect(Command::ReceiveMessage);
    assert_eq!(notice.username(), b"SERVER", "{notice:?}");
    assert_eq!(notice.as_bytes()[61], 0, "{notice:?}");
    assert_eq!(notice.channel(), channel.as_bytes(), "{notice:?}");
    assert_eq!(
        String::from_utf8_lossy(notice.params_text()),
        text,
        "{notice:?}"
    );
    c.channel.clear();
}

pub fn moderation(c: &TestClient, command: Command, channel: &str, target: &str, why: &str) -> Pdu {
    Pdu::moderation(
        command,
        c.order,
        channel.as_bytes(),
        target.as_bytes(),
        why.as_bytes(),
    )
}

/// One LIST_CHANNELS listing: (name, members, retained) per channel and the end's count,
/// each PDU's shape checked.
pub fn list(c: &mut TestClient) -> (Vec<(String, u32, u32)>, u32) {
    c.send(&Pdu::list_channels(c.order));
    let mut listed = Vec::new();
    loop {
        let pdu = c.expect(Command::ListChannels);
        assert_eq!(pdu.username(), b"SERVER", "{pdu:?}");
        assert_eq!(pdu.as_bytes()[10], b' ', "{pdu:?}");
        if pdu.up_to_date() {
            assert_eq!(pdu.channel(), b"", "the end PDU has no channel: {pdu:?}");
            return (listed, pdu.param_u32(0));
        }
        assert_eq!(pdu.as_bytes()[61], 0, "{pdu:?}");
        listed.push((
            String::from_utf8_lossy(pdu.channel()).into_owned(),
            pdu.param_u32(0),
            pdu.param_u32(4),
        ));
    }
}

/// One NAMES listing of `channel` (`asked` is what the request names; empty: one's own):
/// the PDUs' (operators flag, names), and the end's count. Checks that each PDU holds as
/// many whole names as fit.
pub fn names(c: &mut TestClient, asked: &str, channel: &str) -> (Vec<(bool, Vec<String>)>, u32) {
    c.send(&Pdu::names(c.order, asked.as_bytes()));
    let mut pdus = Vec::new();
    loop {
        let pdu = c.expect(Command::Names);
        assert_eq!(pdu.username(), b"SERVER", "{pdu:?}");
        assert_eq!(pdu.as_bytes()[10], b' ', "{pdu:?}");
        assert_eq!(pdu.channel(), channel.as_bytes(), "{pdu:?}");
        if pdu.up_to_date() {
            return (pdus, pdu.param_u32(0));
        }
        assert_eq!(pdu.as_bytes()[61], 0, "{pdu:?}");
        let text = pdu.params_text();
        assert!(
            pdu.params()[text.len()..].iter().all(|&b| b == 0),
            "names are NUL-terminated and NUL-padded: {pdu:?}"
        );
        let list: Vec<String> = String::from_utf8_lossy(text)
            .split(' ')
            .map(str::to_string)
            .collect();
        assert!(list.iter().all(|n| !n.is_empty()), "single spaces: {pdu:?}");
        pdus.push((pdu.lists_operators(), list));
    }
}
