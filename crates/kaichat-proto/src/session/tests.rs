//! Unit tests of the server's session state machine: every transition and every error
//! notice of version 1 (contract sections 4 to 7; `docs/PROTOCOL.md` part 1), one test per
//! rule of version 2 (negotiation, push, echo, time stamps, listings, operators,
//! moderation, OPER, the rate limit; `docs/PROTOCOL.md` part 2), then a property test that
//! feeds random PDUs to version-1 and version-2 sessions in every phase sharing one hub.
//!
//! The tests speak bytes: they check the PDUs a session writes field by field, as a client
//! reading the wire would, not through the builders that wrote them.

use std::collections::HashSet;
use std::net::IpAddr;

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::hub::{Event, Kind};
use crate::names::ChannelName;
use crate::network::Outbound;
use crate::pdu::{
    CHANNEL, OPERATORS, PARAMS_LEN, PDU_LEN, PREFIX_LEN, SEPARATOR, SERVER_NAME, TIME, UP_TO_DATE,
};
use crate::test_support::{channel as cname, outbound, user as uname};

const LE: ByteOrder = ByteOrder::Little;
const BE: ByteOrder = ByteOrder::Big;
const ORDERS: [ByteOrder; 2] = [LE, BE];
/// A budget no answer of these tests reaches: the whole answer in one call.
const WHOLE: usize = usize::MAX;
/// Offset of params in the PDU.
const PARAMS_AT: usize = PREFIX_LEN + 4;

const ALL_COMMANDS: [Command; 9] = [
    Command::Quit,
    Command::VersionNegotiation,
    Command::ClientInfo,
    Command::JoinChannel,
    Command::SendMessage,
    Command::ReceiveMessage,
    Command::LeaveChannel,
    Command::PingPong,
    Command::Query,
];

// --- Helpers -------------------------------------------------------------------------

impl Session {
    /// The channel membership of an established session (tests look inside).
    fn membership(&self) -> Option<&Membership> {
        self.established()?.member.as_ref()
    }

    /// Whether a QUERY answer or a listing is in flight (not an OPER wait).
    fn in_answer(&self) -> bool {
        self.established().is_some_and(|e| e.answer.is_some())
    }
}

fn other(order: ByteOrder) -> ByteOrder {
    match order {
        LE => BE,
        BE => LE,
    }
}

/// A PDU whose command field holds `raw` as is, everything else zero.
fn raw_command(raw: [u8; 4]) -> Pdu {
    let mut pdu = Pdu::ping(LE);
    pdu.bytes_mut()[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&raw);
    pdu
}

/// Command fields that name no command in either order.
const UNKNOWN_RAW: [[u8; 4]; 6] = [
    [9, 0, 0, 0],
    [0, 0, 0, 9],
    [1, 0, 0, 1],
    [0, 1, 0, 0],
    [0, 0, 7, 0],
    [0xff; 4],
];

/// Writes any bytes (at most 50), valid as a channel name or not, into the channel field.
fn put_channel(pdu: &mut Pdu, channel: &[u8]) {
    let bytes = pdu.bytes_mut();
    bytes[SEPARATOR] = b' ';
    bytes[CHANNEL.start..CHANNEL.start + channel.len()].copy_from_slice(channel);
}

/// JOIN_CHANNEL with any bytes in the channel field: `Pdu::join` takes only checked names.
fn join(order: ByteOrder, name: &[u8], channel: &[u8]) -> Pdu {
    let mut pdu = Pdu::new(Command::JoinChannel, order);
    pdu.set_username(name);
    put_channel(&mut pdu, channel);
    pdu
}

/// RECEIVE_MESSAGE (flag 0) with any bytes in the channel field, as a client may forge it.
fn receive(order: ByteOrder, sender: &[u8], channel: &[u8], text: &[u8]) -> Pdu {
    let mut pdu = Pdu::new(Command::ReceiveMessage, order);
    pdu.set_username(sender).set_params_text(text);
    put_channel(&mut pdu, channel);
    pdu
}

/// A valid client PDU for `command` (with plausible fields), in `order`.
fn client_pdu(command: Command, order: ByteOrder) -> Pdu {
    match command {
        Command::VersionNegotiation => Pdu::client_version(order, 1),
        Command::ClientInfo => Pdu::client_info(order, b"zed"),
        Command::JoinChannel => join(order, b"zed", b"@x"),
        Command::SendMessage => Pdu::send_message(order, b"hello"),
        Command::ReceiveMessage => receive(order, b"zed", b"@x", b"hi"),
        other => Pdu::new(other, order),
    }
}

/// Feeds one PDU at `now`; returns the step and what the session wrote.
fn feed(s: &mut Session, hub: &mut Hub, pdu: &Pdu, now: u64) -> (Step, Vec<Pdu>) {
    let mut out = Vec::new();
    let step = s.on_pdu(pdu, now, hub, &mut out);
    (step, out)
}

/// The command of a PDU the server wrote, read in the order it must be in.
fn command_of(pdu: &Pdu, order: ByteOrder) -> Command {
    match pdu.decode_command(Some(order)) {
        Decoded::Known { command, .. } => command,
        Decoded::Unknown(raw) => panic!("server wrote {raw:?}, not a command in {order:?}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks that `pdu` is exactly one error notice (contract section 6) in `order`, and
/// returns its text.
fn error_text(out: &[Pdu], order: ByteOrder) -> String {
    assert_eq!(out.len(), 1, "expected one error notice, got {out:?}");
    let pdu = &out[0];
    assert_eq!(command_of(pdu, order), Command::ReceiveMessage);
    assert_eq!(pdu.username(), SERVER_NAME);
    assert_eq!(pdu.as_bytes()[SEPARATOR], b' ');
    assert_eq!(pdu.as_bytes()[UP_TO_DATE], 0, "a notice carries flag 0");
    let message = text(pdu.params_text());
    assert!(message.starts_with("error: "), "{message:?}");
    message
}

/// Checks one RECEIVE_MESSAGE of a QUERY answer byte by byte and renders it as
/// `sender channel: text`, or `up-to-date channel` for the final PDU.
fn render(pdu: &Pdu, order: ByteOrder) -> String {
    assert_eq!(command_of(pdu, order), Command::ReceiveMessage);
    let bytes = pdu.as_bytes();
    assert_eq!(bytes[SEPARATOR], b' ', "prefix[10] is a space");
    assert!(
        bytes[UP_TO_DATE + 1..PREFIX_LEN].iter().all(|&b| b == 0),
        "prefix[62..256] are zero"
    );
    // Senders zero everything after a field's first NUL.
    for field in [&bytes[0..10], &bytes[11..61], &bytes[PARAMS_AT..]] {
        let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        assert!(field[len..].iter().all(|&b| b == 0), "{pdu:?}");
    }
    match bytes[UP_TO_DATE] {
        0 => format!(
            "{} {}: {}",
            text(pdu.username()),
            text(pdu.channel()),
            text(pdu.params_text())
        ),
        1 => {
            assert_eq!(pdu.username(), SERVER_NAME);
            assert!(
                pdu.params().iter().all(|&b| b == 0),
                "up-to-date: params zero"
            );
            format!("up-to-date {}", text(pdu.channel()))
        }
        flag => panic!("flag {flag}"),
    }
}

fn render_all(out: &[Pdu], order: ByteOrder) -> Vec<String> {
    out.iter().map(|pdu| render(pdu, order)).collect()
}

/// The address connection `conn` comes from: connections 0 and 2 share one.
fn peer(conn: ConnRef) -> IpAddr {
    IpAddr::from([10, 0, 0, (conn % 2) as u8])
}

/// A session of connection `conn` (from [`peer`]) taken through PING and a
/// VERSION_NEGOTIATION that selects `version`, at `now`, in `order`.
fn negotiated(hub: &mut Hub, order: ByteOrder, version: u16, conn: ConnRef, now: u64) -> Session {
    let mut s = Session::accepted(now, conn, Some(peer(conn)));
    let (_, out) = feed(&mut s, hub, &Pdu::ping(order), now);
    assert_eq!(out.len(), 2);
    let (step, out) = feed(&mut s, hub, &Pdu::client_version(order, version), now);
    assert_eq!((step, out.len()), (Step::Continue, 0));
    assert_eq!(s.phase(), Phase::AwaitClientInfo);
    s
}

/// A version-1 session taken through PING and VERSION_NEGOTIATION at `now`, in `order`.
fn awaiting_client_info(hub: &mut Hub, order: ByteOrder, now: u64) -> Session {
    negotiated(hub, order, 1, 0, now)
}

/// A session of connection `conn` that selected `version`, established as `name`.
fn established(
    hub: &mut Hub,
    order: ByteOrder,
    version: u16,
    conn: ConnRef,
    name: &[u8],
) -> Session {
    let mut s = negotiated(hub, order, version, conn, 0);
    let (step, out) = feed(&mut s, hub, &Pdu::client_info(order, name), 0);
    assert_eq!(step, Step::Continue);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(command_of(&out[0], order), Command::ClientInfo);
    assert_eq!(s.phase(), Phase::Connected);
    assert_eq!(s.version(), Some(version));
    s
}

/// An established version-1 session named `name`.
fn connected(hub: &mut Hub, order: ByteOrder, name: &[u8]) -> Session {
    established(hub, order, 1, 0, name)
}

/// An established session named `name`, member of `channel`.
fn member(hub: &mut Hub, order: ByteOrder, name: &[u8], channel: &[u8]) -> Session {
    let mut s = connected(hub, order, name);
    let (_, out) = feed(&mut s, hub, &join(order, name, channel), 0);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(command_of(&out[0], order), Command::JoinChannel);
    assert_eq!(s.phase(), Phase::InChannel);
    s
}

/// QUERY, with the whole answer pulled at once.
fn query(s: &mut Session, hub: &mut Hub) -> Vec<Pdu> {
    let order = s.order();
    let (step, mut out) = feed(s, hub, &Pdu::query(order), 0);
    assert_eq!(step, Step::Continue);
    assert!(s.continue_output(hub, 0, WHOLE, &mut out));
    assert!(!s.answering());
    out
}

/// QUERY, rendered.
fn query_lines(s: &mut Session, hub: &mut Hub) -> Vec<String> {
    let order = s.order();
    render_all(&query(s, hub), order)
}

fn say(s: &mut Session, hub: &mut Hub, message: &[u8]) {
    let order = s.order();
    let (step, out) = feed(s, hub, &Pdu::send_message(order, message), 0);
    assert_eq!((step, out.len()), (Step::Continue, 0), "{out:?}");
}

/// Everything a PDU may change, but the idle clock.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    phase: Phase,
    order: ByteOrder,
    order_fixed: bool,
    phase_started: u64,
    user: Option<Vec<u8>>,
    channel: Option<(ChannelId, u64)>,
    cursor: u64,
    answer: Option<String>,
    hub: (usize, usize, u64),
}

fn snapshot(s: &Session, hub: &Hub) -> Snapshot {
    Snapshot {
        phase: s.phase(),
        order: s.order,
        order_fixed: s.order_fixed,
        // The set-up phase's start; once established the clock is the idle clock.
        phase_started: if s.user().is_some() { 0 } else { s.clock_from },
        user: s.user().map(|u| u.as_bytes().to_vec()),
        channel: s.membership().map(|m| (m.channel, hub.end_seq(m.channel))),
        cursor: s.membership().map_or(0, |m| m.cursor),
        answer: s.established().map(|e| format!("{:?}", e.answer)),
        hub: (hub.users(), hub.channels(), hub.messages()),
    }
}
/// The command field of `command` in `order`.
fn code(command: Command, order: ByteOrder) -> [u8; 4] {
    match order {
        LE => command.code().to_le_bytes(),
        BE => command.code().to_be_bytes(),
    }
}

/// The exact bytes of a PDU with `command`, prefix starting with `prefix`, and params
/// starting with `params`, everything else zero.
fn exact(command: Command, order: ByteOrder, prefix: &[u8], params: &[u8]) -> [u8; PDU_LEN] {
    let mut bytes = [0u8; PDU_LEN];
    bytes[..prefix.len()].copy_from_slice(prefix);
    bytes[PREFIX_LEN..PARAMS_AT].copy_from_slice(&code(command, order));
    bytes[PARAMS_AT..PARAMS_AT + params.len()].copy_from_slice(params);
    bytes
}

/// The prefix of an acknowledgement: username field `SERVER`, a space, the channel.
fn ack_prefix(channel: &[u8]) -> Vec<u8> {
    [&b"SERVER\0\0\0\0 "[..], channel].concat()
}

/// A PDU with `command` whose prefix and params start with the given raw bytes.
fn raw(command: Command, order: ByteOrder, prefix: &[u8], params: &[u8]) -> Pdu {
    Pdu::from_bytes(exact(command, order, prefix, params))
}

const PHASES: [Phase; 5] = [
    Phase::AwaitPing,
    Phase::AwaitVersion,
    Phase::AwaitClientInfo,
    Phase::Connected,
    Phase::InChannel,
];

/// A version-1 session in `phase`; established ones are named `amy` and channel members
/// are in `@c`.
fn at_phase(hub: &mut Hub, order: ByteOrder, phase: Phase) -> Session {
    at_phase_as(hub, order, phase, 1, 0, b"amy")
}

/// A session of connection `conn` in `phase`, selecting `version` and named `name` once
/// established; channel members are in `@c`.
fn at_phase_as(
    hub: &mut Hub,
    order: ByteOrder,
    phase: Phase,
    version: u16,
    conn: ConnRef,
    name: &[u8],
) -> Session {
    match phase {
        Phase::AwaitPing => Session::accepted(0, conn, Some(peer(conn))),
        Phase::AwaitVersion => {
            let mut s = Session::accepted(0, conn, Some(peer(conn)));
            feed(&mut s, hub, &Pdu::ping(order), 0);
            s
        }
        Phase::AwaitClientInfo => negotiated(hub, order, version, conn, 0),
        Phase::Connected => established(hub, order, version, conn, name),
        Phase::InChannel => {
            let mut s = established(hub, order, version, conn, name);
            let (_, out) = feed(&mut s, hub, &join(order, name, b"@c"), 0);
            assert_eq!(command_of(&out[0], order), Command::JoinChannel);
            s
        }
    }
}

fn set_up(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::AwaitPing | Phase::AwaitVersion | Phase::AwaitClientInfo
    )
}

// Version 2 (`docs/PROTOCOL.md` part 2).

/// The wall-clock time (ms since the Unix epoch) at the tests' clock zero: entries and
/// notices made at `now` are stamped `EPOCH + now`.
const EPOCH: u64 = 1_764_547_200_000;

/// A hub whose channels keep `history` entries and replay `replay`, stamping from `EPOCH`.
fn v2_hub(history: usize, replay: usize) -> Hub {
    let mut hub = Hub::new(history, replay);
    hub.set_epoch(EPOCH);
    hub
}

/// A hub that offers `max_version` and otherwise has the default rules.
fn hub_offering(max_version: u16) -> Hub {
    let mut hub = v2_hub(10, 5);
    hub.set_rules(Rules {
        max_version,
        ..Rules::default()
    });
    hub
}

/// Everything the session has to send at `now` (the answer in flight, a removal's notices,
/// pushes), pulled in one go.
fn pull(s: &mut Session, hub: &Hub, now: u64) -> Vec<Pdu> {
    let mut out = Vec::new();
    assert!(s.continue_output(hub, now, WHOLE, &mut out));
    assert!(!s.has_output(hub), "done, yet output is left");
    out
}

/// A version-2 session of connection `conn`, little-endian, member of `channel` as `name`,
/// with what the JOIN pushed (the replay and its own `joined`) already pulled.
fn v2_member(hub: &mut Hub, conn: ConnRef, name: &[u8], channel: &[u8]) -> Session {
    let mut s = established(hub, LE, 2, conn, name);
    let (_, out) = feed(&mut s, hub, &join(LE, name, channel), 0);
    assert_eq!(command_of(&out[0], LE), Command::JoinChannel);
    pull(&mut s, hub, 0);
    s
}

/// A version-1 session of connection `conn`, little-endian, member of `channel` as `name`,
/// that has read everything (one QUERY).
fn v1_member(hub: &mut Hub, conn: ConnRef, name: &[u8], channel: &[u8]) -> Session {
    let mut s = established(hub, LE, 1, conn, name);
    let (_, out) = feed(&mut s, hub, &join(LE, name, channel), 0);
    assert_eq!(command_of(&out[0], LE), Command::JoinChannel);
    query(&mut s, hub);
    s
}

/// What a little-endian client reads in `out`, one line per PDU: RECEIVE_MESSAGE as
/// [`render`] writes it (checked the same way, but for the time stamp of prefix[62..70]),
/// anything else as its name and channel field.
fn lines(out: &[Pdu]) -> Vec<String> {
    out.iter()
        .map(|pdu| match command_of(pdu, LE) {
            Command::ReceiveMessage => {
                let mut unstamped = pdu.clone();
                unstamped.bytes_mut()[TIME].fill(0);
                render(&unstamped, LE)
            }
            command => format!("{} {}", command.name(), text(pdu.channel())),
        })
        .collect()
}

/// The time stamp of each PDU, relative to `EPOCH` (None for a zero stamp).
fn stamps(out: &[Pdu]) -> Vec<Option<u64>> {
    out.iter()
        .map(|pdu| (pdu.time() != 0).then(|| pdu.time() - EPOCH))
        .collect()
}

/// Carries out the hub's events as the reactor does, where `sessions[conn]` is connection
/// `conn`; returns the addresses whose connections must close.
fn carry_out(hub: &mut Hub, sessions: &mut [&mut Session]) -> Vec<IpAddr> {
    let mut events = Vec::new();
    hub.take_events(&mut events);
    let mut close = Vec::new();
    for event in events {
        match event {
            Event::Removed {
                conn,
                channel,
                name,
                notice,
            } => sessions[conn].removed(channel, name, notice),
            Event::CloseAddress(address) => close.push(address),
        }
    }
    close
}

/// The connections the hub woke for pushes since the last call, sorted, once each.
fn woken(hub: &mut Hub) -> Vec<ConnRef> {
    let mut conns = Vec::new();
    hub.take_woken(&mut conns);
    conns.sort_unstable();
    conns.dedup();
    conns
}

fn moderation(command: Command, channel: &[u8], target: &[u8], reason: &[u8]) -> Pdu {
    Pdu::moderation(command, LE, channel, target, reason)
}

/// Feeds a PDU that must be refused: exactly one error notice, returned; nothing changes
/// in the session or the hub, and no other connection is affected.
fn refused(s: &mut Session, hub: &mut Hub, pdu: &Pdu) -> String {
    let before = snapshot(s, hub);
    let retained = hub.retained();
    let text = notice_for(s, hub, pdu);
    assert_eq!(snapshot(s, hub), before, "{text}");
    assert_eq!(hub.retained(), retained, "{text}");
    let mut events = Vec::new();
    hub.take_events(&mut events);
    assert!(events.is_empty(), "{text}: {events:?}");
    text
}

// --- Set-up (contract section 4) -------------------------------------------------------

#[test]
fn ping_gets_pong_then_server_version_in_the_pings_order() {
    for order in ORDERS {
        let mut hub = Hub::new(10, 5);
        let mut s = Session::new(0);
        assert_eq!(s.phase(), Phase::AwaitPing);
        let (step, out) = feed(&mut s, &mut hub, &Pdu::ping(order), 0);
        assert_eq!(step, Step::Continue);
        assert_eq!(out.len(), 2, "{out:?}");
        // PONG: command 7, everything else zero.
        assert_eq!(
            out[0].as_bytes(),
            &exact(Command::PingPong, order, b"", b"")
        );
        // The server's VERSION_NEGOTIATION: prefix SERVER, params[0..2] = 2, big-endian.
        assert_eq!(
            out[1].as_bytes(),
            &exact(Command::VersionNegotiation, order, b"SERVER", &[0, 2])
        );
        assert_eq!(s.phase(), Phase::AwaitVersion);
        assert_eq!(s.order(), order);
    }
    // The same bytes as the contract writes them.
    let mut hub = Hub::new(10, 5);
    let (_, out) = feed(&mut Session::new(0), &mut hub, &Pdu::ping(BE), 0);
    assert_eq!(out[0].command_bytes(), [0, 0, 0, 7]);
    assert_eq!(out[1].command_bytes(), [0, 0, 0, 1]);
}

/// Every PDU a client could send but `expected` and QUIT, in both orders, and command
/// fields that name no command.
fn unexpected(expected: Command) -> Vec<Pdu> {
    let mut pdus: Vec<Pdu> = ALL_COMMANDS
        .into_iter()
        .filter(|&c| c != expected && c != Command::Quit)
        .flat_map(|c| ORDERS.map(|order| client_pdu(c, order)))
        .collect();
    pdus.extend(UNKNOWN_RAW.map(raw_command));
    pdus
}

/// Feeds PDUs that must be ignored: no output, no change, and the phase's deadline kept.
fn all_ignored(s: &mut Session, hub: &mut Hub, pdus: &[Pdu], now: u64) {
    let deadline = s.deadline(&Deadlines::default());
    for pdu in pdus {
        let before = snapshot(s, hub);
        let (step, out) = feed(s, hub, pdu, now);
        assert_eq!(step, Step::Continue, "{pdu:?}");
        assert!(out.is_empty(), "{pdu:?} was answered with {out:?}");
        assert_eq!(snapshot(s, hub), before, "{pdu:?}");
        assert_eq!(s.deadline(&Deadlines::default()), deadline);
    }
}

#[test]
fn each_set_up_phase_ignores_pdus_other_than_the_expected_one() {
    for order in ORDERS {
        let mut hub = Hub::new(10, 5);
        let mut s = Session::new(100);
        all_ignored(&mut s, &mut hub, &unexpected(Command::PingPong), 110);
        assert_eq!(s.phase(), Phase::AwaitPing);

        feed(&mut s, &mut hub, &Pdu::ping(order), 120);
        all_ignored(
            &mut s,
            &mut hub,
            &unexpected(Command::VersionNegotiation),
            130,
        );
        assert_eq!(s.phase(), Phase::AwaitVersion);

        feed(&mut s, &mut hub, &Pdu::client_version(order, 1), 140);
        let mut pdus = unexpected(Command::ClientInfo);
        // The order is fixed now: CLIENT_INFO in the other order is no CLIENT_INFO.
        pdus.push(Pdu::client_info(other(order), b"amy"));
        all_ignored(&mut s, &mut hub, &pdus, 150);
        assert_eq!(s.phase(), Phase::AwaitClientInfo);
        assert_eq!((hub.users(), hub.channels()), (0, 0));

        let (_, out) = feed(&mut s, &mut hub, &Pdu::client_info(order, b"amy"), 160);
        assert_eq!(command_of(&out[0], order), Command::ClientInfo);
        assert_eq!(s.phase(), Phase::Connected);
    }
}

#[test]
fn quit_closes_in_every_phase() {
    for order in ORDERS {
        for phase in PHASES {
            let mut hub = Hub::new(10, 5);
            let mut s = at_phase(&mut hub, order, phase);
            let mut quit = raw(Command::Quit, order, b"junk", b"more junk");
            assert_eq!(quit.command_bytes(), [0; 4]);
            let (step, out) = feed(&mut s, &mut hub, &quit, 5);
            assert_eq!(step, Step::Close(Ending::Quit), "{phase:?}");
            assert!(out.is_empty(), "{phase:?}: {out:?}");
            s.close(&mut hub, 0);
            assert_eq!((hub.users(), hub.channels()), (0, 0), "{phase:?}");
            // A clean QUIT as well.
            quit = Pdu::quit(order);
            let mut s = at_phase(&mut hub, order, phase);
            assert_eq!(
                feed(&mut s, &mut hub, &quit, 5).0,
                Step::Close(Ending::Quit)
            );
        }
    }
}

#[test]
fn an_unsupported_version_gets_an_error_notice_then_close() {
    for order in ORDERS {
        for ping_order in [order, other(order)] {
            // The reference implementation wrote a 4-byte native integer: 1 little-endian
            // is 0x0100 read as the contract's big-endian u16.
            let native_one = raw(Command::VersionNegotiation, order, b"", &1u32.to_le_bytes());
            let mut pdus: Vec<Pdu> = [0u16, 3, 0x0100, u16::MAX]
                .map(|v| Pdu::client_version(order, v))
                .into();
            pdus.push(native_one);
            for pdu in pdus {
                let mut hub = Hub::new(10, 5);
                let mut s = Session::new(0);
                feed(&mut s, &mut hub, &Pdu::ping(ping_order), 0);
                let (step, out) = feed(&mut s, &mut hub, &pdu, 0);
                assert_eq!(
                    step,
                    Step::Close(Ending::VersionRejected),
                    "version {}",
                    pdu.version()
                );
                // The notice is in the order the client's VERSION_NEGOTIATION fixed.
                error_text(&out, order);
                assert_eq!(hub.users(), 0);
            }
        }
    }
}

#[test]
fn version_one_moves_on_to_client_info_silently() {
    for order in ORDERS {
        let mut hub = Hub::new(10, 5);
        let mut s = Session::new(0);
        feed(&mut s, &mut hub, &Pdu::ping(order), 0);
        // Bytes after params[0..2] are not part of the version.
        let pdu = raw(Command::VersionNegotiation, order, b"", &[0, 1, 0xff, 0xff]);
        let (step, out) = feed(&mut s, &mut hub, &pdu, 0);
        assert_eq!((step, out.len()), (Step::Continue, 0), "{out:?}");
        assert_eq!(s.phase(), Phase::AwaitClientInfo);
        assert_eq!(s.order(), order);
    }
}

#[test]
fn a_big_endian_client_is_answered_in_big_endian_throughout() {
    let mut hub = Hub::new(10, 5);
    let mut s = Session::new(0);
    let (_, out) = feed(&mut s, &mut hub, &raw_command([0, 0, 0, 7]), 0);
    assert_eq!(out[0].command_bytes(), [0, 0, 0, 7]);
    assert_eq!(out[1].command_bytes(), [0, 0, 0, 1]);
    let (_, out) = feed(&mut s, &mut hub, &Pdu::client_version(BE, 1), 0);
    assert!(out.is_empty());
    let (_, out) = feed(&mut s, &mut hub, &Pdu::client_info(BE, b"amy"), 0);
    assert_eq!(out[0].command_bytes(), [0, 0, 0, 2]);
    let (_, out) = feed(&mut s, &mut hub, &join(BE, b"amy", b"@c"), 0);
    assert_eq!(out[0].command_bytes(), [0, 0, 0, 3]);
    let answer = query(&mut s, &mut hub);
    assert!(answer.iter().all(|p| p.command_bytes() == [0, 0, 0, 5]));
    assert_eq!(
        render_all(&answer, BE),
        ["SERVER @c: amy joined", "up-to-date @c"]
    );
    let (_, out) = feed(&mut s, &mut hub, &Pdu::ping(BE), 0);
    assert_eq!(out[0].command_bytes(), [0, 0, 0, 7]);

    // The little-endian form of any command is now an unknown command.
    for command in ALL_COMMANDS.into_iter().skip(1) {
        let pdu = client_pdu(command, LE);
        let before = snapshot(&s, &hub);
        let (step, out) = feed(&mut s, &mut hub, &pdu, 0);
        assert_eq!(step, Step::Continue);
        error_text(&out, BE);
        assert_eq!(out[0].command_bytes(), [0, 0, 0, 5]);
        assert_eq!(snapshot(&s, &hub), before, "{command:?}");
    }

    let (_, out) = feed(&mut s, &mut hub, &Pdu::leave(BE), 0);
    assert_eq!(out[0].command_bytes(), [0, 0, 0, 6]);
    assert_eq!(s.phase(), Phase::Connected);
}

#[test]
fn the_clients_version_negotiation_fixes_the_order_not_its_ping() {
    for order in ORDERS {
        let mut hub = Hub::new(10, 5);
        let mut s = Session::new(0);
        let (_, out) = feed(&mut s, &mut hub, &Pdu::ping(other(order)), 0);
        assert_eq!(command_of(&out[0], other(order)), Command::PingPong);
        assert_eq!(
            command_of(&out[1], other(order)),
            Command::VersionNegotiation
        );
        let (_, out) = feed(&mut s, &mut hub, &Pdu::client_version(order, 1), 0);
        assert!(out.is_empty());
        assert_eq!(s.order(), order);

        // Still in set-up: the PING's order is now an unknown command, ignored.
        all_ignored(
            &mut s,
            &mut hub,
            &[Pdu::client_info(other(order), b"amy")],
            0,
        );
        let (_, out) = feed(&mut s, &mut hub, &Pdu::client_info(order, b"amy"), 0);
        assert_eq!(command_of(&out[0], order), Command::ClientInfo);

        // Established: the other order is an unknown command, answered with an error.
        let before = snapshot(&s, &hub);
        let (_, out) = feed(&mut s, &mut hub, &Pdu::ping(other(order)), 0);
        error_text(&out, order);
        assert_eq!(snapshot(&s, &hub), before);
        let (_, out) = feed(&mut s, &mut hub, &Pdu::ping(order), 0);
        assert_eq!(out, [Pdu::ping(order)]);
    }
}

#[test]
fn command_of_reads_either_order_until_the_version_fixes_one() {
    for order in ORDERS {
        let mut hub = Hub::new(10, 5);
        let mut s = Session::new(0);
        assert_eq!(
            s.command_of(&Pdu::ping(other(order))),
            Some(Command::PingPong)
        );
        assert_eq!(s.command_of(&raw_command([15, 0, 0, 0])), None);
        feed(&mut s, &mut hub, &Pdu::ping(order), 0);
        feed(&mut s, &mut hub, &Pdu::client_version(order, 1), 0);
        // Fixed: what the session would call an unknown command is counted as one.
        assert_eq!(s.command_of(&Pdu::query(order)), Some(Command::Query));
        assert_eq!(s.command_of(&Pdu::query(other(order))), None);
        assert_eq!(s.command_of(&Pdu::quit(other(order))), Some(Command::Quit));
    }
}

// --- CLIENT_INFO (contract section 4, step 4) -------------------------------------------

#[test]
fn an_accepted_name_is_acknowledged_with_server_and_the_name() {
    for order in ORDERS {
        let mut hub = Hub::new(10, 5);
        let mut s = awaiting_client_info(&mut hub, order, 0);
        let (step, out) = feed(&mut s, &mut hub, &Pdu::client_info(order, b"Amy"), 0);
        assert_eq!(step, Step::Continue);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].as_bytes(),
            &exact(Command::ClientInfo, order, b"SERVER", b"Amy")
        );
        assert_eq!(s.phase(), Phase::Connected);
        assert_eq!(s.user().map(Username::as_bytes), Some(&b"Amy"[..]));
        assert_eq!(hub.users(), 1);
    }
}

#[test]
fn ten_byte_names_and_the_hostname_form_are_accepted() {
    let cases: [(&[u8], &[u8]); 6] = [
        (b"abcdefghij", b"abcdefghij"),
        (b"abcdefghij host.example", b"abcdefghij"),
        (b"amy\0\0\0\0\0\0\0 host", b"amy"),
        (b"amy\0garbage!", b"amy"),
        (b"!~{}", b"!~{}"),
        (b"SERVERS", b"SERVERS"),
    ];
    for order in ORDERS {
        for (params, name) in cases {
            let mut hub = Hub::new(10, 5);
            let mut s = awaiting_client_info(&mut hub, order, 0);
            let (_, out) = feed(
                &mut s,
                &mut hub,
                &raw(Command::ClientInfo, order, b"", params),
                0,
            );
            assert_eq!(out.len(), 1, "{}: {out:?}", text(params));
            assert_eq!(
                out[0].as_bytes(),
                &exact(Command::ClientInfo, order, b"SERVER", name),
                "{}",
                text(params)
            );
            assert_eq!(s.user().map(Username::as_bytes), Some(name));
        }
    }
}

#[test]
fn invalid_names_get_an_error_notice_and_the_session_keeps_waiting() {
    let refused: [&[u8]; 14] = [
        b"",
        b"\0amy",
        b"abcdefghijk",
        b"abcdefghij\x01",
        b"abcdefghij\xff host",
        b"a b",
        b" amy",
        b"tab\there",
        b"amy\x7f",
        b"caf\xc3\xa9",
        b"\x01",
        b"SERVER",
        b"server",
        b"SeRvEr",
    ];
    for order in ORDERS {
        let mut hub = Hub::new(10, 5);
        let mut s = awaiting_client_info(&mut hub, order, 0);
        for params in refused {
            let before = snapshot(&s, &hub);
            let (step, out) = feed(
                &mut s,
                &mut hub,
                &raw(Command::ClientInfo, order, b"", params),
                5,
            );
            assert_eq!(step, Step::Continue, "{}", text(params));
            let message = error_text(&out, order);
            assert!(message.len() > "error: ".len());
            assert_eq!(snapshot(&s, &hub), before, "{}", text(params));
        }
        // A retry with a valid name is accepted.
        let (_, out) = feed(&mut s, &mut hub, &Pdu::client_info(order, b"amy"), 6);
        assert_eq!(command_of(&out[0], order), Command::ClientInfo);
        assert_eq!(s.phase(), Phase::Connected);
        assert_eq!(hub.users(), 1);
    }
}

#[test]
fn a_connected_name_is_taken_ignoring_case_until_its_owner_leaves() {
    let mut hub = Hub::new(10, 5);
    let mut amy = connected(&mut hub, LE, b"Amy");
    let mut other = awaiting_client_info(&mut hub, BE, 0);
    for name in [&b"Amy"[..], b"amy", b"AMY"] {
        let (step, out) = feed(&mut other, &mut hub, &Pdu::client_info(BE, name), 0);
        assert_eq!(step, Step::Continue);
        error_text(&out, BE);
        assert_eq!(other.phase(), Phase::AwaitClientInfo);
        assert_eq!(hub.users(), 1);
    }
    // Retrying with another name works.
    let (_, out) = feed(&mut other, &mut hub, &Pdu::client_info(BE, b"bob"), 0);
    assert_eq!(command_of(&out[0], BE), Command::ClientInfo);
    assert_eq!(hub.users(), 2);
    // Once amy's connection is gone, her name is free in any case.
    amy.close(&mut hub, 0);
    assert_eq!(hub.users(), 1);
    connected(&mut hub, LE, b"aMY");
    assert_eq!(hub.users(), 2);
}

// --- JOIN_CHANNEL -----------------------------------------------------------------------

#[test]
fn join_is_acknowledged_with_server_and_the_channel() {
    for order in ORDERS {
        let mut hub = Hub::new(10, 5);
        let mut s = connected(&mut hub, order, b"amy");
        let (step, out) = feed(&mut s, &mut hub, &join(order, b"amy", b"@rust"), 0);
        assert_eq!(step, Step::Continue);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].as_bytes(),
            &exact(Command::JoinChannel, order, &ack_prefix(b"@rust"), b"")
        );
        assert_eq!(s.phase(), Phase::InChannel);
        assert_eq!(hub.channels(), 1);
        // The joiner sees its own joined notice.
        assert_eq!(
            query_lines(&mut s, &mut hub),
            ["SERVER @rust: amy joined", "up-to-date @rust"]
        );
    }
}

#[test]
fn channel_names_of_two_to_fifty_bytes_are_accepted() {
    let fifty = [&b"@"[..], &[b'x'; 49]].concat();
    // A 50-byte name followed by a NUL at prefix[61], with garbage after it.
    let mut fifty_then_nul = join(LE, b"amy", &fifty);
    fifty_then_nul.bytes_mut()[62..70].copy_from_slice(b"garbage!");
    // A short name with garbage after its first NUL.
    let mut garbage = join(LE, b"amy", b"@rust");
    garbage.bytes_mut()[17..21].copy_from_slice(b"junk");
    let cases: [(Pdu, &[u8]); 5] = [
        (join(LE, b"amy", b"@r"), b"@r"),
        (join(LE, b"amy", b"@!~#"), b"@!~#"),
        (join(LE, b"amy", &fifty), &fifty),
        (fifty_then_nul, &fifty),
        (garbage, b"@rust"),
    ];
    for (pdu, name) in cases {
        let mut hub = Hub::new(10, 5);
        let mut s = connected(&mut hub, LE, b"amy");
        let (_, out) = feed(&mut s, &mut hub, &pdu, 0);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].as_bytes(),
            &exact(Command::JoinChannel, LE, &ack_prefix(name), b"")
        );
        let channel = hub.channel_name(s.membership().unwrap().channel);
        assert_eq!(channel.map(ChannelName::as_bytes), Some(name));
    }
}

/// JOINs whose channel name the contract rejects.
fn invalid_joins(order: ByteOrder) -> Vec<Pdu> {
    let mut fifty_one = join(order, b"amy", &[&b"@"[..], &[b'x'; 49]].concat());
    fifty_one.bytes_mut()[61] = b'x';
    let mut names: Vec<Pdu> = [
        &b"rust"[..],
        b"@",
        b"",
        b"@a b",
        b"@a\tb",
        b"@a\x7f",
        b"@caf\xc3\xa9",
        b"#rust",
    ]
    .into_iter()
    .map(|name| join(order, b"amy", name))
    .collect();
    names.push(fifty_one);
    names
}

#[test]
fn invalid_channel_names_get_an_error_notice_and_change_nothing() {
    for order in ORDERS {
        let mut hub = Hub::new(10, 5);
        let mut bob = member(&mut hub, LE, b"bob", b"@c");
        let mut amy = connected(&mut hub, order, b"amy");
        for pdu in invalid_joins(order) {
            let before = snapshot(&amy, &hub);
            let (step, out) = feed(&mut amy, &mut hub, &pdu, 0);
            assert_eq!(step, Step::Continue);
            error_text(&out, order);
            assert_eq!(snapshot(&amy, &hub), before, "{pdu:?}");
        }
        assert_eq!(hub.channels(), 1);

        // In a channel, an invalid JOIN does not leave it.
        feed(&mut amy, &mut hub, &join(order, b"amy", b"@c"), 0);
        query(&mut amy, &mut hub);
        query(&mut bob, &mut hub);
        for pdu in invalid_joins(order) {
            let before = snapshot(&amy, &hub);
            let (_, out) = feed(&mut amy, &mut hub, &pdu, 0);
            error_text(&out, order);
            assert_eq!(snapshot(&amy, &hub), before, "{pdu:?}");
        }
        assert_eq!(query_lines(&mut bob, &mut hub), ["up-to-date @c"]);
        assert_eq!(query_lines(&mut amy, &mut hub), ["up-to-date @c"]);
    }
}

#[test]
fn joining_the_current_channel_again_is_acknowledged_and_changes_nothing() {
    let mut hub = Hub::new(10, 5);
    let mut bob = member(&mut hub, LE, b"bob", b"@c");
    let mut amy = member(&mut hub, BE, b"amy", b"@c");
    query(&mut bob, &mut hub);
    query(&mut amy, &mut hub);
    let before = snapshot(&amy, &hub);
    let (_, out) = feed(&mut amy, &mut hub, &join(BE, b"amy", b"@c"), 0);
    assert_eq!(
        out.iter().map(|p| p.as_bytes()).collect::<Vec<_>>(),
        [&exact(Command::JoinChannel, BE, &ack_prefix(b"@c"), b"")]
    );
    assert_eq!(snapshot(&amy, &hub), before);
    // No second `joined`, no `left`.
    assert_eq!(query_lines(&mut bob, &mut hub), ["up-to-date @c"]);
    assert_eq!(query_lines(&mut amy, &mut hub), ["up-to-date @c"]);
}

#[test]
fn joining_another_channel_leaves_the_current_one_first() {
    let mut hub = Hub::new(10, 5);
    let mut bob = member(&mut hub, LE, b"bob", b"@old");
    let mut amy = member(&mut hub, LE, b"amy", b"@old");
    query(&mut bob, &mut hub);
    query(&mut amy, &mut hub);

    let (step, out) = feed(&mut amy, &mut hub, &join(LE, b"amy", b"@new"), 0);
    assert_eq!(step, Step::Continue);
    // Only the JOIN is acknowledged, not the implicit leave.
    assert_eq!(
        out.iter().map(|p| p.as_bytes()).collect::<Vec<_>>(),
        [&exact(Command::JoinChannel, LE, &ack_prefix(b"@new"), b"")]
    );
    assert_eq!(amy.phase(), Phase::InChannel);
    assert_eq!(hub.channels(), 2);
    assert_eq!(
        query_lines(&mut bob, &mut hub),
        ["SERVER @old: amy left", "up-to-date @old"]
    );
    assert_eq!(
        query_lines(&mut amy, &mut hub),
        ["SERVER @new: amy joined", "up-to-date @new"]
    );
    // Names compare byte for byte: @NEW is another channel, and @new, which amy had to
    // herself, closes when she moves on.
    let (_, out) = feed(&mut amy, &mut hub, &join(LE, b"amy", b"@NEW"), 0);
    assert_eq!(out.len(), 1);
    assert_eq!(hub.channels(), 2);
    assert_eq!(
        query_lines(&mut amy, &mut hub),
        ["SERVER @NEW: amy joined", "up-to-date @NEW"]
    );
}

// --- LEAVE_CHANNEL ----------------------------------------------------------------------

#[test]
fn leave_is_acknowledged_with_the_channel_left() {
    for order in ORDERS {
        let mut hub = Hub::new(10, 5);
        let mut bob = member(&mut hub, LE, b"bob", b"@c");
        let mut amy = member(&mut hub, order, b"amy", b"@c");
        query(&mut bob, &mut hub);
        query(&mut amy, &mut hub);

        let (step, out) = feed(&mut amy, &mut hub, &Pdu::leave(order), 0);
        assert_eq!(step, Step::Continue);
        assert_eq!(
            out.iter().map(|p| p.as_bytes()).collect::<Vec<_>>(),
            [&exact(
                Command::LeaveChannel,
                order,
                &ack_prefix(b"@c"),
                b""
            )]
        );
        assert_eq!(amy.phase(), Phase::Connected);
        assert_eq!(hub.channels(), 1);
        assert_eq!(
            query_lines(&mut bob, &mut hub),
            ["SERVER @c: amy left", "up-to-date @c"]
        );
        assert_eq!(query_lines(&mut amy, &mut hub), ["up-to-date "]);

        // Not in a channel: an error, nothing changes.
        let before = snapshot(&amy, &hub);
        let (step, out) = feed(&mut amy, &mut hub, &Pdu::leave(order), 0);
        assert_eq!(step, Step::Continue);
        error_text(&out, order);
        assert_eq!(snapshot(&amy, &hub), before);

        // The last member leaving closes the channel (the ack still names it); created
        // again, it starts empty.
        let (_, out) = feed(&mut bob, &mut hub, &Pdu::leave(LE), 0);
        assert_eq!(out[0].channel(), b"@c");
        assert_eq!(hub.channels(), 0);
        feed(&mut amy, &mut hub, &join(order, b"amy", b"@c"), 0);
        assert_eq!(
            query_lines(&mut amy, &mut hub),
            ["SERVER @c: amy joined", "up-to-date @c"]
        );
    }
}

// --- SEND_MESSAGE -----------------------------------------------------------------------

#[test]
fn send_outside_a_channel_or_empty_is_an_error() {
    for order in ORDERS {
        let mut hub = Hub::new(10, 5);
        let mut amy = connected(&mut hub, order, b"amy");
        let before = snapshot(&amy, &hub);
        let (step, out) = feed(&mut amy, &mut hub, &Pdu::send_message(order, b"hi"), 0);
        assert_eq!(step, Step::Continue);
        error_text(&out, order);
        assert_eq!(snapshot(&amy, &hub), before);

        feed(&mut amy, &mut hub, &join(order, b"amy", b"@c"), 0);
        query(&mut amy, &mut hub);
        for pdu in [
            Pdu::send_message(order, b""),
            raw(Command::SendMessage, order, b"", b"\0text after the NUL"),
        ] {
            let before = snapshot(&amy, &hub);
            let (_, out) = feed(&mut amy, &mut hub, &pdu, 0);
            error_text(&out, order);
            assert_eq!(snapshot(&amy, &hub), before);
        }
        assert_eq!(hub.messages(), 0);
        say(&mut amy, &mut hub, b"hi");
        assert_eq!(hub.messages(), 1);
    }
}

#[test]
fn any_message_of_1_to_2000_bytes_arrives_as_sent() {
    let mut hub = Hub::new(10, 5);
    let mut bob = member(&mut hub, BE, b"bob", b"@c");
    let mut amy = member(&mut hub, LE, b"amy", b"@c");
    query(&mut bob, &mut hub);
    let long: Vec<u8> = (0..PARAMS_LEN).map(|i| b'a' + (i % 26) as u8).collect();
    say(&mut amy, &mut hub, &long);
    say(&mut amy, &mut hub, b"\xff\x80 not UTF-8");
    say(&mut amy, &mut hub, b"x");
    let out = query(&mut bob, &mut hub);
    assert_eq!(out.len(), 4);
    // A 2000-byte message has no room for the NUL and fills params.
    assert_eq!(out[0].params(), &long[..]);
    assert_eq!(out[0].username(), b"amy");
    assert_eq!(out[1].params_text(), b"\xff\x80 not UTF-8");
    assert_eq!(render_all(&out[2..], BE), ["amy @c: x", "up-to-date @c"]);
}

// --- QUERY ------------------------------------------------------------------------------

#[test]
fn query_outside_a_channel_is_only_the_up_to_date_pdu() {
    for order in ORDERS {
        let mut hub = Hub::new(10, 5);
        let mut s = connected(&mut hub, order, b"amy");
        let (step, out) = feed(&mut s, &mut hub, &Pdu::query(order), 0);
        assert_eq!(step, Step::Continue);
        assert!(!s.answering());
        assert_eq!(out.len(), 1);
        assert_eq!(render(&out[0], order), "up-to-date ");
        assert_eq!(out[0].as_bytes()[UP_TO_DATE], 1);
        assert!(out[0].as_bytes()[11..UP_TO_DATE].iter().all(|&b| b == 0));
        // Nothing more to pull.
        let mut more: Vec<Pdu> = Vec::new();
        assert!(s.continue_output(&hub, 0, WHOLE, &mut more));
        assert!(more.is_empty());
    }
}

#[test]
fn a_joiners_first_query_replays_the_last_r_entries() {
    for order in ORDERS {
        let mut hub = Hub::new(100, 3);
        let mut amy = member(&mut hub, LE, b"amy", b"@c");
        for i in 0..5 {
            say(&mut amy, &mut hub, format!("m{i}").as_bytes());
        }
        let mut bob = member(&mut hub, order, b"bob", b"@c");
        let (_, mut out) = feed(&mut bob, &mut hub, &Pdu::query(order), 0);
        assert!(out.is_empty(), "on_pdu only starts the answer");
        assert!(bob.answering());
        assert!(bob.continue_output(&hub, 0, WHOLE, &mut out));
        assert_eq!(
            render_all(&out, order),
            [
                "amy @c: m2",
                "amy @c: m3",
                "amy @c: m4",
                "SERVER @c: bob joined",
                "up-to-date @c"
            ]
        );
        // The flag sits at prefix[61]: 0 on messages, 1 on the final PDU only.
        let flags: Vec<u8> = out.iter().map(|p| p.as_bytes()[61]).collect();
        assert_eq!(flags, [0, 0, 0, 0, 1]);
        // The read position moved past everything sent; later entries come oldest first.
        assert_eq!(query_lines(&mut bob, &mut hub), ["up-to-date @c"]);
        say(&mut amy, &mut hub, b"n1");
        say(&mut amy, &mut hub, b"n2");
        assert_eq!(
            query_lines(&mut bob, &mut hub),
            ["amy @c: n1", "amy @c: n2", "up-to-date @c"]
        );
    }
}

#[test]
fn own_messages_are_left_out_even_after_reconnecting() {
    let mut hub = Hub::new(100, 20);
    let mut amy = member(&mut hub, LE, b"amy", b"@c");
    let mut bob = member(&mut hub, LE, b"bob", b"@c");
    say(&mut amy, &mut hub, b"from amy");
    say(&mut bob, &mut hub, b"from bob");
    assert_eq!(
        query_lines(&mut amy, &mut hub),
        [
            "SERVER @c: amy joined",
            "SERVER @c: bob joined",
            "bob @c: from bob",
            "up-to-date @c"
        ]
    );
    assert_eq!(
        query_lines(&mut bob, &mut hub),
        [
            "SERVER @c: amy joined",
            "SERVER @c: bob joined",
            "amy @c: from amy",
            "up-to-date @c"
        ]
    );
    // Under the same name in another case, amy is not shown what she wrote before.
    amy.close(&mut hub, 0);
    let mut again = member(&mut hub, LE, b"AMY", b"@c");
    assert_eq!(
        query_lines(&mut again, &mut hub),
        [
            "SERVER @c: amy joined",
            "SERVER @c: bob joined",
            "bob @c: from bob",
            "SERVER @c: amy left",
            "SERVER @c: AMY joined",
            "up-to-date @c"
        ]
    );
}

#[test]
fn evicted_unread_entries_are_announced_first_with_their_count() {
    let mut hub = Hub::new(3, 20);
    let mut amy = member(&mut hub, LE, b"amy", b"@c");
    let mut bob = member(&mut hub, LE, b"bob", b"@c");
    query(&mut amy, &mut hub);
    for i in 0..5 {
        say(&mut bob, &mut hub, format!("m{i}").as_bytes());
    }
    assert_eq!(
        query_lines(&mut amy, &mut hub),
        [
            "SERVER @c: 2 messages were skipped",
            "bob @c: m2",
            "bob @c: m3",
            "bob @c: m4",
            "up-to-date @c"
        ]
    );
    // The notice belongs to that answer; it is no history entry.
    assert_eq!(query_lines(&mut amy, &mut hub), ["up-to-date @c"]);
    // The count includes the reader's own messages: bob never read the two `joined`
    // notices, m0 and m1.
    assert_eq!(
        query_lines(&mut bob, &mut hub),
        ["SERVER @c: 4 messages were skipped", "up-to-date @c"]
    );
}

/// amy and bob in `@c`; bob has posted `n` messages that amy has not read.
fn backlog(n: usize) -> (Hub, Session, Session) {
    let mut hub = Hub::new(1000, 0);
    // bob posts them at once: no rate limit here (v2 section 6 has its own tests).
    hub.set_rules(Rules {
        rate_limit: 0,
        ..Rules::default()
    });
    let mut amy = member(&mut hub, LE, b"amy", b"@c");
    let mut bob = member(&mut hub, LE, b"bob", b"@c");
    query(&mut amy, &mut hub);
    for i in 0..n {
        say(&mut bob, &mut hub, format!("message {i}").as_bytes());
    }
    (hub, amy, bob)
}

#[test]
fn an_answer_streamed_in_small_budgets_equals_the_whole_answer() {
    let (mut hub, mut amy, _) = backlog(40);
    let whole = query(&mut amy, &mut hub);
    assert_eq!(whole.len(), 41);
    for budget in [1, 2, 3, 7, 40, 41, 1000] {
        let (mut hub, mut amy, _) = backlog(40);
        let (_, mut out) = feed(&mut amy, &mut hub, &Pdu::query(LE), 0);
        assert!(out.is_empty());
        // A zero budget sends nothing and keeps the answer in flight.
        assert!(!amy.continue_output(&hub, 0, 0, &mut out));
        assert!(out.is_empty() && amy.answering());
        let mut calls = 0;
        loop {
            let before = out.len();
            let done = amy.continue_output(&hub, 0, budget, &mut out);
            calls += 1;
            assert!(out.len() - before <= budget);
            if done {
                break;
            }
            assert_eq!(
                out.len() - before,
                budget,
                "a cut answer uses its whole budget"
            );
            // Not done: the answer goes on, or its last PDU just used the last of the
            // budget (the session does not look ahead; the next call says done).
            assert!(amy.answering() || out.len() == whole.len());
            assert!(calls <= 41, "budget {budget}: the answer does not end");
        }
        assert!(!amy.answering());
        assert_eq!(out, whole, "budget {budget}");
        // Done means done: pulling again sends nothing.
        let mut more: Vec<Pdu> = Vec::new();
        assert!(amy.continue_output(&hub, 0, budget, &mut more));
        assert!(more.is_empty());
    }
}

#[test]
fn entries_added_during_a_streamed_answer_come_in_the_next_one() {
    let (mut hub, mut amy, mut bob) = backlog(3);
    let (_, mut out) = feed(&mut amy, &mut hub, &Pdu::query(LE), 0);
    assert!(!amy.continue_output(&hub, 0, 2, &mut out));
    say(&mut bob, &mut hub, b"late");
    let _carl = member(&mut hub, BE, b"carl", b"@c");
    while !amy.continue_output(&hub, 0, 2, &mut out) {}
    assert_eq!(
        render_all(&out, LE),
        [
            "bob @c: message 0",
            "bob @c: message 1",
            "bob @c: message 2",
            "up-to-date @c"
        ]
    );
    assert_eq!(
        query_lines(&mut amy, &mut hub),
        ["bob @c: late", "SERVER @c: carl joined", "up-to-date @c"]
    );
}

/// The contract describes the skip notice as the first PDU of an answer; it says nothing
/// of entries evicted while an answer is being streamed. Whatever the notice's place, no
/// entry may vanish unannounced and the answer must still end with one up-to-date PDU.
#[test]
fn entries_evicted_during_a_streamed_answer_are_counted_not_lost() {
    let mut hub = Hub::new(5, 0);
    let mut amy = member(&mut hub, LE, b"amy", b"@c");
    let mut bob = member(&mut hub, LE, b"bob", b"@c");
    query(&mut amy, &mut hub);
    for i in 0..5 {
        say(&mut bob, &mut hub, format!("m{i}").as_bytes());
    }
    let (_, mut out) = feed(&mut amy, &mut hub, &Pdu::query(LE), 0);
    assert!(!amy.continue_output(&hub, 0, 2, &mut out));
    for i in 0..3 {
        say(&mut bob, &mut hub, format!("p{i}").as_bytes());
    }
    let mut calls = 0;
    while !amy.continue_output(&hub, 0, 2, &mut out) {
        calls += 1;
        assert!(calls < 10, "the answer does not end");
    }
    let lines = render_all(&out, LE);
    assert_eq!(lines.last().map(String::as_str), Some("up-to-date @c"));
    let mut delivered = Vec::new();
    let mut skipped = 0;
    for line in &lines[..lines.len() - 1] {
        let count = line
            .strip_prefix("SERVER @c: ")
            .and_then(|t| t.strip_suffix(" messages were skipped"));
        match count {
            Some(n) => skipped += n.parse::<usize>().unwrap(),
            None => delivered.push(line.clone()),
        }
    }
    assert_eq!(delivered.len() + skipped, 5, "{lines:?}");
    let all: Vec<String> = (0..5).map(|i| format!("bob @c: m{i}")).collect();
    let in_order: Vec<&String> = all.iter().filter(|l| delivered.contains(l)).collect();
    assert_eq!(in_order, delivered.iter().collect::<Vec<_>>());
    assert_eq!(
        query_lines(&mut amy, &mut hub),
        ["bob @c: p0", "bob @c: p1", "bob @c: p2", "up-to-date @c"]
    );
}

// --- What an established client may not do (contract sections 5 and 6) ---------------

#[test]
fn the_username_in_a_clients_prefix_is_not_trusted() {
    let mut hub = Hub::new(10, 0);
    let mut bob = member(&mut hub, LE, b"bob", b"@c");
    query(&mut bob, &mut hub);
    let mut amy = connected(&mut hub, LE, b"amy");
    let (_, out) = feed(&mut amy, &mut hub, &join(LE, b"SERVER", b"@c"), 0);
    assert_eq!(command_of(&out[0], LE), Command::JoinChannel);
    for spoof in [&b"bob"[..], b"SERVER", b"carl"] {
        let mut pdu = Pdu::send_message(LE, format!("as {}", text(spoof)).as_bytes());
        pdu.set_username(spoof);
        put_channel(&mut pdu, b"@elsewhere");
        let (_, out) = feed(&mut amy, &mut hub, &pdu, 0);
        assert!(out.is_empty(), "{out:?}");
    }
    assert_eq!(hub.channels(), 1);
    assert_eq!(
        query_lines(&mut bob, &mut hub),
        [
            "SERVER @c: amy joined",
            "amy @c: as bob",
            "amy @c: as SERVER",
            "amy @c: as carl",
            "up-to-date @c"
        ]
    );
    // They are amy's own messages, so amy does not get them back.
    assert_eq!(
        query_lines(&mut amy, &mut hub),
        ["SERVER @c: amy joined", "up-to-date @c"]
    );
}

#[test]
fn server_only_repeated_and_unknown_commands_get_an_error_notice() {
    for order in ORDERS {
        for phase in [Phase::Connected, Phase::InChannel] {
            let mut hub = Hub::new(10, 5);
            let mut s = at_phase(&mut hub, order, phase);
            if phase == Phase::InChannel {
                query(&mut s, &mut hub);
            }
            let mut pdus = vec![
                receive(order, b"amy", b"@c", b"hi"),
                Pdu::up_to_date_marker(order, Some(&ChannelName::new(b"@c").unwrap())),
                Pdu::client_version(order, 1),
                Pdu::client_version(order, 2),
                Pdu::server_version(order, 1),
                Pdu::client_info(order, b"other"),
                Pdu::client_info(order, b"amy"),
            ];
            pdus.extend(UNKNOWN_RAW.map(raw_command));
            pdus.extend(
                ALL_COMMANDS
                    .into_iter()
                    .skip(1)
                    .map(|c| client_pdu(c, other(order))),
            );
            for pdu in pdus {
                let before = snapshot(&s, &hub);
                let (step, out) = feed(&mut s, &mut hub, &pdu, 0);
                assert_eq!(step, Step::Continue, "{pdu:?}");
                error_text(&out, order);
                assert_eq!(snapshot(&s, &hub), before, "{pdu:?}");
            }
            // CLIENT_INFO did not rename the connection.
            assert_eq!(s.user().map(Username::as_bytes), Some(&b"amy"[..]));
            assert!(hub.claim_name(Username::new(b"other").unwrap(), 0, None));
            if phase == Phase::InChannel {
                assert_eq!(query_lines(&mut s, &mut hub), ["up-to-date @c"]);
            }
        }
    }
}

#[test]
fn ping_when_established_gets_pong() {
    for order in ORDERS {
        for phase in [Phase::Connected, Phase::InChannel] {
            let mut hub = Hub::new(10, 5);
            let mut s = at_phase(&mut hub, order, phase);
            let before = snapshot(&s, &hub);
            let (step, out) = feed(&mut s, &mut hub, &Pdu::ping(order), 0);
            assert_eq!(step, Step::Continue);
            assert_eq!(
                out.iter().map(|p| p.as_bytes()).collect::<Vec<_>>(),
                [&exact(Command::PingPong, order, b"", b"")]
            );
            assert_eq!(snapshot(&s, &hub), before);
        }
    }
}

// --- The texts of the error notices (contract section 6; docs/PROTOCOL.md section 7) ------

/// The rules as every name error states them.
const USERNAME_RULE: &str = "1 to 10 printable ASCII characters, no spaces";
const CHANNEL_RULE: &str = "2 to 50 printable ASCII characters, no spaces, starting with @";

/// The one error notice a PDU gets, in `order`.
fn notice_for(s: &mut Session, hub: &mut Hub, pdu: &Pdu) -> String {
    let order = s.order();
    let (step, out) = feed(s, hub, pdu, 0);
    assert_eq!(step, Step::Continue, "{pdu:?}");
    let text = error_text(&out, order);
    assert!(text.len() <= PARAMS_LEN, "{text}");
    text
}

#[test]
fn an_unsupported_version_is_named_with_the_one_spoken() {
    for (version, sent) in [
        (0, Pdu::client_version(LE, 0)),
        (3, Pdu::client_version(LE, 3)),
        // A 4-byte native 1, as the reference implementation wrote it.
        (
            256,
            raw(Command::VersionNegotiation, LE, b"", &1u32.to_le_bytes()),
        ),
    ] {
        let mut hub = Hub::new(10, 5);
        let mut s = Session::new(0);
        feed(&mut s, &mut hub, &Pdu::ping(LE), 0);
        let (step, out) = feed(&mut s, &mut hub, &sent, 0);
        assert_eq!(step, Step::Close(Ending::VersionRejected));
        assert_eq!(
            error_text(&out, LE),
            format!(
                "error: unsupported protocol version {version}: this server speaks versions 1 \
                 to 2, a big-endian u16 in params[0..2]"
            )
        );
    }
}

#[test]
fn a_refused_username_is_named_with_what_is_wrong_and_the_rule() {
    let mut too_long = Pdu::client_info(LE, b"abcdefghij");
    too_long.bytes_mut()[PARAMS_AT + 10] = b'k';
    let cases: [(Pdu, String); 7] = [
        (
            Pdu::client_info(LE, b""),
            format!("error: username is empty: {USERNAME_RULE}"),
        ),
        (
            Pdu::client_info(LE, b"a b"),
            format!("error: username 'a b' contains a space: {USERNAME_RULE}"),
        ),
        (
            Pdu::client_info(LE, b"tab\there"),
            format!(
                "error: username 'tab\\there' contains byte 0x09, which is not printable \
                 ASCII: {USERNAME_RULE}"
            ),
        ),
        (
            Pdu::client_info(LE, b"caf\xc3\xa9"),
            format!(
                "error: username 'caf\\xc3\\xa9' contains byte 0xc3, which is not printable \
                 ASCII: {USERNAME_RULE}"
            ),
        ),
        (
            too_long,
            format!("error: username starting 'abcdefghij' is too long: {USERNAME_RULE}"),
        ),
        (
            Pdu::client_info(LE, b"SeRvEr"),
            "error: username 'SeRvEr' is reserved: SERVER, in any letter case, is the \
             server's name"
                .to_string(),
        ),
        (
            Pdu::client_info(LE, b"AMY"),
            "error: username 'AMY' is taken: a connected client has it (names are compared \
             ignoring case)"
                .to_string(),
        ),
    ];
    let mut hub = Hub::new(10, 5);
    connected(&mut hub, BE, b"amy");
    let mut s = awaiting_client_info(&mut hub, LE, 0);
    for (pdu, expected) in cases {
        assert_eq!(notice_for(&mut s, &mut hub, &pdu), expected);
    }
}

#[test]
fn a_refused_channel_name_is_named_with_what_is_wrong_and_the_rule() {
    let fifty = [&b"@"[..], &[b'x'; 49]].concat();
    let mut too_long = join(LE, b"amy", &fifty);
    too_long.bytes_mut()[CHANNEL.end] = b'x';
    let cases: [(Pdu, String); 6] = [
        (
            join(LE, b"amy", b"@"),
            format!("error: channel name '@' is too short: {CHANNEL_RULE}"),
        ),
        (
            join(LE, b"amy", b""),
            format!("error: channel name is empty: {CHANNEL_RULE}"),
        ),
        (
            join(LE, b"amy", b"rust"),
            format!("error: channel name 'rust' does not start with @: {CHANNEL_RULE}"),
        ),
        (
            join(LE, b"amy", b"@a b"),
            format!("error: channel name '@a b' contains a space: {CHANNEL_RULE}"),
        ),
        (
            join(LE, b"amy", b"@\x7f"),
            format!(
                "error: channel name '@\\x7f' contains byte 0x7f, which is not printable \
                 ASCII: {CHANNEL_RULE}"
            ),
        ),
        (
            too_long,
            format!(
                "error: channel name starting '{}' is too long: {CHANNEL_RULE}",
                text(&fifty)
            ),
        ),
    ];
    let mut hub = Hub::new(10, 5);
    let mut s = connected(&mut hub, LE, b"amy");
    for (pdu, expected) in cases {
        assert_eq!(notice_for(&mut s, &mut hub, &pdu), expected);
    }
}

#[test]
fn refused_requests_of_an_established_client_say_why() {
    let mut hub = Hub::new(10, 5);
    let mut s = connected(&mut hub, LE, b"amy");
    let cases: [(Pdu, &str); 9] = [
        (Pdu::leave(LE), "error: cannot leave: not in a channel"),
        (
            Pdu::send_message(LE, b"hi"),
            "error: message not sent: not in a channel, join one first",
        ),
        (
            receive(LE, b"amy", b"@c", b"hi"),
            "error: RECEIVE_MESSAGE (5) is sent by the server only",
        ),
        (
            Pdu::client_version(LE, 1),
            "error: VERSION_NEGOTIATION (1) is only accepted during set-up, and this \
             connection is already established",
        ),
        (
            Pdu::client_info(LE, b"bob"),
            "error: CLIENT_INFO (2) is only accepted during set-up, and this connection is \
             already established as 'amy'",
        ),
        (
            raw_command([9, 0, 0, 0]),
            "error: unknown command code 9 (command field 09 00 00 00, read little-endian, \
             the byte order this connection fixed): the codes of version 1 are 0 to 8",
        ),
        (
            raw_command([0, 0, 0, 8]),
            "error: unknown command code 134217728 (command field 00 00 00 08, read \
             little-endian, the byte order this connection fixed): the codes of version 1 are 0 to 8",
        ),
        (
            raw_command([0xff; 4]),
            "error: unknown command code 4294967295 (command field ff ff ff ff, read \
             little-endian, the byte order this connection fixed): the codes of version 1 are 0 to 8",
        ),
        (
            Pdu::join(LE, b"amy", &ChannelName::new(b"@c").unwrap()),
            "", // joined: the empty message below is refused in the channel
        ),
    ];
    for (pdu, expected) in cases {
        if expected.is_empty() {
            feed(&mut s, &mut hub, &pdu, 0);
            continue;
        }
        assert_eq!(notice_for(&mut s, &mut hub, &pdu), expected);
    }
    for empty in [
        Pdu::send_message(LE, b""),
        raw(Command::SendMessage, LE, b"", b"\0text after the NUL"),
    ] {
        assert_eq!(
            notice_for(&mut s, &mut hub, &empty),
            "error: message not sent: it is empty (a message is 1 to 2000 bytes before the \
             first NUL)"
        );
    }
    // A big-endian connection's unknown codes are read big-endian.
    let mut be = connected(&mut hub, BE, b"bob");
    assert_eq!(
        notice_for(&mut be, &mut hub, &raw_command([8, 0, 0, 0])),
        "error: unknown command code 134217728 (command field 08 00 00 00, read big-endian, \
         the byte order this connection fixed): the codes of version 1 are 0 to 8"
    );
}

// --- close() ------------------------------------------------------------------------------

#[test]
fn close_frees_the_name_and_leaves_the_channel() {
    let mut hub = Hub::new(10, 5);
    let mut bob = member(&mut hub, LE, b"bob", b"@c");
    let mut amy = member(&mut hub, LE, b"amy", b"@c");
    query(&mut bob, &mut hub);
    amy.close(&mut hub, 0);
    assert_eq!((hub.users(), hub.channels()), (1, 1));
    assert_eq!(
        query_lines(&mut bob, &mut hub),
        ["SERVER @c: amy left", "up-to-date @c"]
    );
    connected(&mut hub, BE, b"AMY");
    // The last member closing closes the channel.
    bob.close(&mut hub, 0);
    assert_eq!((hub.users(), hub.channels()), (1, 0));
    let mut carl = member(&mut hub, LE, b"carl", b"@c");
    assert_eq!(
        query_lines(&mut carl, &mut hub),
        ["SERVER @c: carl joined", "up-to-date @c"]
    );
}

#[test]
fn close_before_a_name_is_accepted_releases_nothing() {
    for phase in [
        Phase::AwaitPing,
        Phase::AwaitVersion,
        Phase::AwaitClientInfo,
    ] {
        let mut hub = Hub::new(10, 5);
        let _owner = member(&mut hub, LE, b"amy", b"@c");
        let mut s = at_phase(&mut hub, LE, phase);
        if phase == Phase::AwaitClientInfo {
            // Refused: the name stays with its owner.
            let (_, out) = feed(&mut s, &mut hub, &Pdu::client_info(LE, b"AMY"), 0);
            error_text(&out, LE);
        }
        s.close(&mut hub, 0);
        assert_eq!((hub.users(), hub.channels()), (1, 1), "{phase:?}");
        let mut late = awaiting_client_info(&mut hub, LE, 0);
        let (_, out) = feed(&mut late, &mut hub, &Pdu::client_info(LE, b"amy"), 0);
        error_text(&out, LE);
    }
}

#[test]
fn close_during_an_answer_drops_it() {
    let (mut hub, mut amy, _bob) = backlog(5);
    let (_, mut out) = feed(&mut amy, &mut hub, &Pdu::query(LE), 0);
    assert!(!amy.continue_output(&hub, 0, 1, &mut out));
    amy.close(&mut hub, 0);
    assert!(!amy.answering());
    let mut more: Vec<Pdu> = Vec::new();
    assert!(amy.continue_output(&hub, 0, WHOLE, &mut more));
    assert!(more.is_empty());
    assert_eq!((hub.users(), hub.channels()), (1, 1));
}

// --- Deadlines (contract section 7) -------------------------------------------------------

/// When a deadline of `seconds` that started at `start` (both in ms) has passed: one
/// millisecond after its full length, since times are whole milliseconds rounded down.
fn passed_at(start: u64, seconds: u64) -> Option<u64> {
    Some(start + seconds * 1000 + 1)
}

#[test]
fn each_set_up_phase_runs_its_own_deadline() {
    let d = Deadlines::default();
    assert_eq!(
        d,
        Deadlines {
            handshake: 30,
            idle: 120
        }
    );
    let mut hub = Hub::new(10, 5);
    let mut s = Session::new(1_000_000);
    // Accept → PING, TLS handshake included.
    assert_eq!(s.deadline(&d), passed_at(1_000_000, 30));
    all_ignored(&mut s, &mut hub, &[Pdu::query(LE)], 1_010_000);
    feed(&mut s, &mut hub, &Pdu::ping(LE), 1_020_000);
    // PONG sent → the client's VERSION_NEGOTIATION.
    assert_eq!(s.deadline(&d), passed_at(1_020_000, 30));
    all_ignored(&mut s, &mut hub, &[Pdu::ping(LE)], 1_040_000);
    feed(&mut s, &mut hub, &Pdu::client_version(LE, 1), 1_045_000);
    // VERSION_NEGOTIATION → an accepted CLIENT_INFO, not restarted by a rejected name.
    assert_eq!(s.deadline(&d), passed_at(1_045_000, 30));
    all_ignored(&mut s, &mut hub, &[Pdu::query(LE)], 1_050_000);
    let (_, out) = feed(
        &mut s,
        &mut hub,
        &Pdu::client_info(LE, b"SERVER"),
        1_060_000,
    );
    error_text(&out, LE);
    assert_eq!(s.deadline(&d), passed_at(1_045_000, 30));
    feed(&mut s, &mut hub, &Pdu::client_info(LE, b"amy"), 1_070_000);
    // Established: idle from the last PDU, here the accepted CLIENT_INFO.
    assert_eq!(s.deadline(&d), passed_at(1_070_000, 120));
}

#[test]
fn the_idle_deadline_runs_from_the_last_pdu_received() {
    let d = Deadlines::default();
    let mut hub = Hub::new(10, 5);
    let mut s = connected(&mut hub, LE, b"amy");
    assert_eq!(s.deadline(&d), passed_at(0, 120));
    feed(&mut s, &mut hub, &Pdu::ping(LE), 50_000);
    assert_eq!(s.deadline(&d), passed_at(50_000, 120));
    // A PDU answered with an error was received all the same.
    feed(&mut s, &mut hub, &raw_command([9, 0, 0, 0]), 60_000);
    assert_eq!(s.deadline(&d), passed_at(60_000, 120));
    feed(&mut s, &mut hub, &join(LE, b"amy", b"@c"), 70_000);
    assert_eq!(s.deadline(&d), passed_at(70_000, 120));
    let (_, mut out) = feed(&mut s, &mut hub, &Pdu::query(LE), 80_000);
    assert_eq!(s.deadline(&d), passed_at(80_000, 120));
    // Sending an answer is not receiving a PDU.
    s.continue_output(&hub, 0, WHOLE, &mut out);
    assert_eq!(s.deadline(&d), passed_at(80_000, 120));
}

/// Issue 7.1: a deadline started 999 ms into a second once counted from the start of that
/// second, so it fired up to a second early. Times here are milliseconds.
#[test]
fn a_deadline_never_passes_before_its_whole_length() {
    let d = Deadlines {
        handshake: 1,
        idle: 1,
    };
    let passed = |s: &Session, now: u64| s.deadline(&d).is_some_and(|at| at <= now);
    let mut hub = Hub::new(10, 5);

    // Accepted at 0.999 s, PING 0.6 s later: still inside the 1-second handshake deadline.
    let mut s = Session::new(999);
    assert!(!passed(&s, 1599));
    assert!(!passed(&s, 1999), "a 1 s deadline passed after 1000 ms");
    assert!(passed(&s, 2000));
    feed(&mut s, &mut hub, &Pdu::ping(LE), 1599);
    assert!(!passed(&s, 2599));

    // Established at 2.999 s, then a PING every 400 ms: the idle deadline never passes.
    feed(&mut s, &mut hub, &Pdu::client_version(LE, 1), 2000);
    feed(&mut s, &mut hub, &Pdu::client_info(LE, b"amy"), 2999);
    assert_eq!(s.phase(), Phase::Connected);
    let mut last = 2999;
    for now in (3399..6000).step_by(400) {
        assert!(
            !passed(&s, now),
            "idle deadline passed at {now} ms, last PDU {last} ms"
        );
        feed(&mut s, &mut hub, &Pdu::ping(LE), now);
        last = now;
    }
    // Silent after the last PDU: passed only when more than a second has gone by.
    assert!(!passed(&s, last + 999));
    assert!(!passed(&s, last + 1000));
    assert!(passed(&s, last + 1001));
}

#[test]
fn a_huge_deadline_does_not_overflow() {
    let d = Deadlines {
        handshake: u64::MAX,
        idle: u64::MAX,
    };
    let s = Session::new(u64::MAX - 5);
    assert_eq!(s.deadline(&d), Some(u64::MAX));
}

#[test]
fn a_deadline_of_zero_is_off() {
    let off = Deadlines {
        handshake: 0,
        idle: 0,
    };
    let handshake_only = Deadlines {
        handshake: 30,
        idle: 0,
    };
    let idle_only = Deadlines {
        handshake: 0,
        idle: 120,
    };
    for phase in PHASES {
        let mut hub = Hub::new(10, 5);
        let s = at_phase(&mut hub, LE, phase);
        assert_eq!(s.deadline(&off), None, "{phase:?}");
        if set_up(phase) {
            assert_eq!(s.deadline(&handshake_only), passed_at(0, 30), "{phase:?}");
            assert_eq!(s.deadline(&idle_only), None, "{phase:?}");
        } else {
            assert_eq!(s.deadline(&handshake_only), None, "{phase:?}");
            assert_eq!(s.deadline(&idle_only), passed_at(0, 120), "{phase:?}");
        }
    }
}

// --- Version 2: negotiation (v2 section 1) ---------------------------------------------------

#[test]
fn the_server_offers_version_2_and_a_client_may_select_1_or_2() {
    for order in ORDERS {
        for version in [1, 2] {
            let mut hub = Hub::new(10, 5);
            let mut s = Session::new(0);
            let (_, out) = feed(&mut s, &mut hub, &Pdu::ping(order), 0);
            assert_eq!(
                out[1].as_bytes(),
                &exact(Command::VersionNegotiation, order, b"SERVER", &[0, 2])
            );
            let (step, out) = feed(&mut s, &mut hub, &Pdu::client_version(order, version), 0);
            assert_eq!((step, out.len()), (Step::Continue, 0));
            feed(&mut s, &mut hub, &Pdu::client_info(order, b"amy"), 0);
            assert_eq!(s.version(), Some(version));
        }
    }
}

#[test]
fn a_version_1_only_server_offers_1_and_refuses_2() {
    let mut hub = hub_offering(1);
    let mut s = Session::new(0);
    let (_, out) = feed(&mut s, &mut hub, &Pdu::ping(LE), 0);
    assert_eq!(
        out[1].as_bytes(),
        &exact(Command::VersionNegotiation, LE, b"SERVER", &[0, 1])
    );
    let (step, out) = feed(&mut s, &mut hub, &Pdu::client_version(LE, 2), 0);
    assert_eq!(step, Step::Close(Ending::VersionRejected));
    assert_eq!(
        error_text(&out, LE),
        "error: unsupported protocol version 2: this server speaks version 1, a big-endian \
         u16 in params[0..2]"
    );
    assert_eq!(hub.users(), 0);
}

/// The v2 PDUs of codes 9 to 14, as a client would send them.
fn v2_requests(order: ByteOrder) -> [Pdu; 6] {
    [
        Pdu::list_channels(order),
        Pdu::names(order, b"@c"),
        Pdu::moderation(Command::Kick, order, b"@c", b"bob", b""),
        Pdu::moderation(Command::Ban, order, b"@c", b"bob", b""),
        Pdu::moderation(Command::Unban, order, b"@c", b"bob", b""),
        Pdu::oper(order, b"secret"),
    ]
}

#[test]
fn codes_9_to_14_are_unknown_commands_on_a_version_1_connection() {
    for max_version in [1, 2] {
        for order in ORDERS {
            let mut hub = hub_offering(max_version);
            hub.set_rules(Rules {
                oper: true,
                ..*hub.rules()
            });
            let _bob = member(&mut hub, order, b"bob", b"@c");
            let mut amy = member(&mut hub, order, b"amy", b"@c");
            query(&mut amy, &mut hub);
            for (code, pdu) in (9..).zip(v2_requests(order)) {
                let read = match order {
                    LE => format!("{code:02x} 00 00 00, read little-endian"),
                    BE => format!("00 00 00 {code:02x}, read big-endian"),
                };
                assert_eq!(
                    refused(&mut amy, &mut hub, &pdu),
                    format!(
                        "error: unknown command code {code} (command field {read}, the byte \
                         order this connection fixed): the codes of version 1 are 0 to 8"
                    )
                );
                assert!(!amy.answering(), "{code}");
            }
            assert_eq!(query_lines(&mut amy, &mut hub), ["up-to-date @c"]);
        }
    }
}

#[test]
fn code_15_is_unknown_on_a_version_2_connection() {
    let mut hub = v2_hub(10, 5);
    let mut amy = established(&mut hub, LE, 2, 0, b"amy");
    assert_eq!(
        refused(&mut amy, &mut hub, &raw_command([15, 0, 0, 0])),
        "error: unknown command code 15 (command field 0f 00 00 00, read little-endian, the \
         byte order this connection fixed): the codes of version 2 are 0 to 14"
    );
}

#[test]
fn codes_9_to_14_are_ignored_before_a_connection_is_established() {
    for order in ORDERS {
        let mut hub = Hub::new(10, 5);
        let pdus = v2_requests(order);
        let mut s = Session::new(0);
        all_ignored(&mut s, &mut hub, &pdus, 0);
        feed(&mut s, &mut hub, &Pdu::ping(order), 0);
        all_ignored(&mut s, &mut hub, &pdus, 0);
        feed(&mut s, &mut hub, &Pdu::client_version(order, 2), 0);
        all_ignored(&mut s, &mut hub, &pdus, 0);
        assert_eq!(s.phase(), Phase::AwaitClientInfo);
    }
}

// --- Version 2: push delivery, echo and time stamps (v2 sections 2 and 2a) -------------------

#[test]
fn a_v2_joiner_is_pushed_the_replay_then_its_joined_notice_then_live_entries() {
    let mut hub = v2_hub(100, 3);
    hub.set_rules(Rules {
        rate_limit: 0,
        ..Rules::default()
    });
    let mut bob = v1_member(&mut hub, 1, b"bob", b"@c");
    for i in 0..5 {
        say(&mut bob, &mut hub, format!("m{i}").as_bytes());
    }
    let mut amy = established(&mut hub, LE, 2, 0, b"amy");
    woken(&mut hub);
    // The JOIN is acknowledged at once; the pushes follow as the socket drains.
    let (_, out) = feed(&mut amy, &mut hub, &join(LE, b"amy", b"@c"), 0);
    assert_eq!(lines(&out), ["JOIN_CHANNEL @c"]);
    assert!(amy.has_output(&hub));
    assert_eq!(woken(&mut hub), [0], "amy's own notice wakes amy");
    assert_eq!(
        lines(&pull(&mut amy, &hub, 0)),
        [
            "bob @c: m2",
            "bob @c: m3",
            "bob @c: m4",
            "SERVER @c: amy joined"
        ]
    );
    // Live: each new entry wakes the v2 readers, and is pushed once.
    say(&mut bob, &mut hub, b"live");
    assert_eq!(woken(&mut hub), [0]);
    assert_eq!(lines(&pull(&mut amy, &hub, 0)), ["bob @c: live"]);
    assert!(pull(&mut amy, &hub, 0).is_empty());
}

#[test]
fn a_push_moves_the_read_position_and_a_query_answers_only_what_was_not_pushed() {
    let mut hub = v2_hub(100, 0);
    let mut bob = v1_member(&mut hub, 1, b"bob", b"@c");
    let mut amy = v2_member(&mut hub, 0, b"amy", b"@c");
    say(&mut bob, &mut hub, b"pushed");
    assert_eq!(lines(&pull(&mut amy, &hub, 0)), ["bob @c: pushed"]);
    // Everything was pushed: the QUERY answer is only the up-to-date PDU.
    let (_, out) = feed(&mut amy, &mut hub, &Pdu::query(LE), 0);
    assert!(out.is_empty());
    assert_eq!(lines(&pull(&mut amy, &hub, 0)), ["up-to-date @c"]);
    // Not pushed yet (the socket did not drain): the QUERY answer carries it, then the
    // up-to-date PDU, and there is nothing left to push after it: QUERY is a sync point.
    say(&mut bob, &mut hub, b"unpushed");
    feed(&mut amy, &mut hub, &Pdu::query(LE), 0);
    assert_eq!(
        lines(&pull(&mut amy, &hub, 0)),
        ["bob @c: unpushed", "up-to-date @c"]
    );
    assert!(!amy.has_output(&hub));
}

#[test]
fn a_v2_client_gets_its_own_messages_back_and_a_v1_client_does_not() {
    let mut hub = v2_hub(100, 10);
    let mut bob = v1_member(&mut hub, 1, b"bob", b"@c");
    let mut amy = v2_member(&mut hub, 0, b"amy", b"@c");
    query(&mut bob, &mut hub);
    say(&mut amy, &mut hub, b"from amy");
    say(&mut bob, &mut hub, b"from bob");
    assert_eq!(
        lines(&pull(&mut amy, &hub, 0)),
        ["amy @c: from amy", "bob @c: from bob"]
    );
    assert_eq!(
        query_lines(&mut bob, &mut hub),
        ["amy @c: from amy", "up-to-date @c"]
    );
    // In a QUERY answer and in the replay, too.
    say(&mut amy, &mut hub, b"again");
    feed(&mut amy, &mut hub, &Pdu::query(LE), 0);
    assert_eq!(
        lines(&pull(&mut amy, &hub, 0)),
        ["amy @c: again", "up-to-date @c"]
    );
    let mut carl = established(&mut hub, LE, 2, 2, b"carl");
    feed(&mut carl, &mut hub, &join(LE, b"carl", b"@c"), 0);
    let replay = lines(&pull(&mut carl, &hub, 0));
    assert!(
        replay.contains(&"amy @c: from amy".to_string()),
        "{replay:?}"
    );
}

#[test]
fn version_1_members_are_never_woken_or_pushed_to() {
    let mut hub = v2_hub(100, 10);
    let mut bob = v1_member(&mut hub, 1, b"bob", b"@c");
    let mut carl = v1_member(&mut hub, 2, b"carl", b"@c");
    woken(&mut hub);
    say(&mut carl, &mut hub, b"hello");
    assert!(
        woken(&mut hub).is_empty(),
        "a channel of v1 readers wakes no one"
    );
    assert!(!bob.has_output(&hub));
    assert!(pull(&mut bob, &hub, 0).is_empty());
    let _amy = v2_member(&mut hub, 0, b"amy", b"@c");
    say(&mut carl, &mut hub, b"again");
    assert_eq!(woken(&mut hub), [0]);
    assert!(pull(&mut bob, &hub, 0).is_empty());
    assert_eq!(
        query_lines(&mut bob, &mut hub),
        [
            "SERVER @c: carl joined",
            "carl @c: hello",
            "SERVER @c: amy joined",
            "carl @c: again",
            "up-to-date @c"
        ]
    );
}

#[test]
fn v2_entries_carry_the_time_they_were_appended() {
    let mut hub = v2_hub(100, 10);
    let mut bob = established(&mut hub, LE, 2, 1, b"bob");
    feed(&mut bob, &mut hub, &join(LE, b"bob", b"@c"), 1_000);
    feed(&mut bob, &mut hub, &Pdu::send_message(LE, b"early"), 2_000);
    let mut amy = established(&mut hub, LE, 2, 0, b"amy");
    feed(&mut amy, &mut hub, &join(LE, b"amy", b"@c"), 3_000);
    feed(&mut bob, &mut hub, &Pdu::send_message(LE, b"late"), 4_000);
    // Pulled later: the replay and the live entry keep the time they were appended.
    let out = pull(&mut amy, &hub, 9_000);
    assert_eq!(
        lines(&out),
        [
            "SERVER @c: bob joined",
            "bob @c: early",
            "SERVER @c: amy joined",
            "bob @c: late"
        ]
    );
    assert_eq!(
        stamps(&out),
        [Some(1_000), Some(2_000), Some(3_000), Some(4_000)]
    );
    // u64 big-endian at prefix[62..70].
    assert_eq!(&out[3].as_bytes()[62..70], &(EPOCH + 4_000).to_be_bytes());
    // A QUERY answer's entries too; its up-to-date PDU carries the time it was made.
    feed(
        &mut bob,
        &mut hub,
        &Pdu::send_message(LE, b"queried"),
        10_000,
    );
    feed(&mut amy, &mut hub, &Pdu::query(LE), 11_000);
    let out = pull(&mut amy, &hub, 12_000);
    assert_eq!(lines(&out), ["bob @c: queried", "up-to-date @c"]);
    assert_eq!(stamps(&out), [Some(10_000), Some(12_000)]);
}

#[test]
fn v2_notices_made_for_one_client_carry_the_time_they_were_made() {
    let mut hub = v2_hub(100, 10);
    let mut amy = established(&mut hub, LE, 2, 0, b"amy");
    // An error notice.
    let (_, out) = feed(&mut amy, &mut hub, &Pdu::leave(LE), 5_000);
    error_text(&out, LE);
    assert_eq!(stamps(&out), [Some(5_000)]);
    // The up-to-date PDU outside a channel.
    let (_, out) = feed(&mut amy, &mut hub, &Pdu::query(LE), 6_000);
    assert_eq!(lines(&out), ["up-to-date "]);
    assert_eq!(stamps(&out), [Some(6_000)]);
}

#[test]
fn version_1_pdus_carry_no_time_stamp() {
    let mut hub = v2_hub(100, 10);
    let mut bob = v2_member(&mut hub, 1, b"bob", b"@c");
    let mut amy = established(&mut hub, LE, 1, 0, b"amy");
    feed(&mut amy, &mut hub, &join(LE, b"amy", b"@c"), 3_000);
    feed(&mut bob, &mut hub, &Pdu::send_message(LE, b"hi"), 4_000);
    let (_, mut out) = feed(&mut amy, &mut hub, &Pdu::leave(LE), 5_000);
    feed(&mut amy, &mut hub, &join(LE, b"amy", b"@c"), 6_000);
    feed(&mut amy, &mut hub, &Pdu::query(LE), 7_000);
    out.extend(pull(&mut amy, &hub, 8_000));
    let (_, error) = feed(&mut amy, &mut hub, &Pdu::send_message(LE, b""), 9_000);
    out.extend(error);
    assert!(out.len() >= 5, "{out:?}");
    for pdu in &out {
        assert!(
            pdu.as_bytes()[TIME.start..PREFIX_LEN]
                .iter()
                .all(|&b| b == 0),
            "{pdu:?}"
        );
    }
}

/// bob (v1, connection 1) and amy (v2, connection 0) in `@c` of a hub keeping `history`
/// entries; amy has been pushed everything so far.
fn pushing(history: usize) -> (Hub, Session, Session) {
    let mut hub = v2_hub(history, 0);
    hub.set_rules(Rules {
        rate_limit: 0,
        ..Rules::default()
    });
    let bob = v1_member(&mut hub, 1, b"bob", b"@c");
    let amy = v2_member(&mut hub, 0, b"amy", b"@c");
    (hub, amy, bob)
}

#[test]
fn pushes_pause_under_the_output_bound_and_resume_where_they_stopped() {
    let (mut hub, mut amy, mut bob) = pushing(100);
    for i in 0..10 {
        say(&mut bob, &mut hub, format!("m{i}").as_bytes());
    }
    // The reactor's bound lets 3 PDUs out at a time; more is appended while it waits.
    let mut out = Vec::new();
    assert!(!amy.continue_output(&hub, 0, 3, &mut out));
    assert_eq!(out.len(), 3);
    assert!(amy.has_output(&hub));
    // A zero budget sends nothing and loses nothing.
    assert!(!amy.continue_output(&hub, 0, 0, &mut out));
    assert_eq!(out.len(), 3);
    for i in 10..12 {
        say(&mut bob, &mut hub, format!("m{i}").as_bytes());
    }
    let mut calls = 0;
    while !amy.continue_output(&hub, 0, 3, &mut out) {
        calls += 1;
        assert!(calls < 10, "the pushes never end");
    }
    let expected: Vec<String> = (0..12).map(|i| format!("bob @c: m{i}")).collect();
    assert_eq!(lines(&out), expected);
}

#[test]
fn pushing_resumes_with_the_skip_notice_when_unsent_entries_were_evicted() {
    let (mut hub, mut amy, mut bob) = pushing(4);
    for i in 0..3 {
        say(&mut bob, &mut hub, format!("m{i}").as_bytes());
    }
    let mut out = Vec::new();
    assert!(!amy.continue_output(&hub, 0, 1, &mut out));
    assert_eq!(lines(&out), ["bob @c: m0"]);
    // Paused: m1 and m2 were not sent; six more evict them and m3, m4.
    for i in 3..9 {
        say(&mut bob, &mut hub, format!("m{i}").as_bytes());
    }
    let out = pull(&mut amy, &hub, 7_000);
    assert_eq!(
        lines(&out),
        [
            "SERVER @c: 4 messages were skipped",
            "bob @c: m5",
            "bob @c: m6",
            "bob @c: m7",
            "bob @c: m8"
        ]
    );
    // The skip notice is made at the time it is sent.
    assert_eq!(stamps(&out[..1]), [Some(7_000)]);
}

#[test]
fn a_push_is_never_inserted_inside_a_query_answer() {
    let (mut hub, mut amy, mut bob) = pushing(100);
    for i in 0..4 {
        say(&mut bob, &mut hub, format!("m{i}").as_bytes());
    }
    feed(&mut amy, &mut hub, &Pdu::query(LE), 0);
    let mut out = Vec::new();
    assert!(!amy.continue_output(&hub, 0, 2, &mut out));
    // Appended while the answer streams: after the up-to-date PDU, as pushes.
    say(&mut bob, &mut hub, b"late");
    while !amy.continue_output(&hub, 0, 2, &mut out) {}
    assert_eq!(
        lines(&out),
        [
            "bob @c: m0",
            "bob @c: m1",
            "bob @c: m2",
            "bob @c: m3",
            "up-to-date @c",
            "bob @c: late"
        ]
    );
}

// --- Version 2: listings (v2 section 3) ------------------------------------------------------

/// Checks a whole LIST_CHANNELS or NAMES listing byte by byte (every PDU from `SERVER` with
/// the request's command, flag 0 but on the one end PDU, the last) and renders it: LIST
/// lines as `@name members retained`, NAMES lines as `operators: names` or
/// `members: names`, the end as `end <channel> <count>`.
fn listing(out: &[Pdu], command: Command) -> Vec<String> {
    let flags: Vec<u8> = out.iter().map(|p| p.as_bytes()[UP_TO_DATE]).collect();
    assert_eq!(flags.last(), Some(&1), "{out:?}");
    assert!(flags[..flags.len() - 1].iter().all(|&f| f == 0), "{out:?}");
    out.iter()
        .map(|pdu| {
            assert_eq!(command_of(pdu, LE), command);
            let bytes = pdu.as_bytes();
            assert_eq!(pdu.username(), SERVER_NAME);
            assert_eq!(bytes[SEPARATOR], b' ');
            let stamp_free = if command == Command::Names { 63 } else { 62 };
            assert!(
                bytes[stamp_free..PREFIX_LEN].iter().all(|&b| b == 0),
                "{pdu:?}"
            );
            let channel = text(pdu.channel());
            if pdu.up_to_date() {
                assert!(bytes[PARAMS_AT + 4..].iter().all(|&b| b == 0), "{pdu:?}");
                assert_eq!(bytes[62], 0);
                return format!("end {channel} {}", pdu.param_u32(0));
            }
            match command {
                Command::ListChannels => {
                    assert!(bytes[PARAMS_AT + 8..].iter().all(|&b| b == 0), "{pdu:?}");
                    format!("{channel} {} {}", pdu.param_u32(0), pdu.param_u32(4))
                }
                _ => {
                    let names = pdu.params_text();
                    let rest = &pdu.params()[names.len()..];
                    assert!(rest.iter().all(|&b| b == 0), "NUL-terminated, zero after");
                    assert_eq!(channel, "@c");
                    let role = match bytes[OPERATORS] {
                        1 => "operators",
                        0 => "members",
                        flag => panic!("operators flag {flag}"),
                    };
                    format!("{role}: {}", text(names))
                }
            }
        })
        .collect()
}

#[test]
fn list_channels_names_each_open_channel_in_ascending_byte_order_then_the_count() {
    let mut hub = v2_hub(100, 0);
    let _bob = v1_member(&mut hub, 1, b"bob", b"@b");
    let _carl = v1_member(&mut hub, 2, b"carl", b"@B");
    let _dan = v1_member(&mut hub, 3, b"dan", b"@aa");
    let _eve = v1_member(&mut hub, 4, b"eve", b"@aa");
    let mut gone = v1_member(&mut hub, 5, b"gone", b"@closed");
    feed(&mut gone, &mut hub, &Pdu::leave(LE), 0);
    let mut amy = v2_member(&mut hub, 0, b"amy", b"@a");
    say(&mut amy, &mut hub, b"x");
    let (_, out) = feed(&mut amy, &mut hub, &Pdu::list_channels(LE), 0);
    assert!(
        out.is_empty() && amy.answering(),
        "produced as the socket drains"
    );
    let out = pull(&mut amy, &hub, 0);
    // The push of amy's message waits until the listing has ended.
    assert_eq!(lines(&out[5..]), ["amy @a: x"]);
    assert_eq!(
        listing(&out[..5], Command::ListChannels),
        ["@B 1 1", "@a 1 2", "@aa 2 2", "@b 1 1", "end  4"]
    );
    // Streamed a PDU at a time, it is the same listing.
    feed(&mut amy, &mut hub, &Pdu::list_channels(LE), 0);
    let mut streamed: Vec<Pdu> = Vec::new();
    while !amy.continue_output(&hub, 0, 1, &mut streamed) {}
    assert_eq!(streamed, out[..5]);
}

#[test]
fn list_channels_with_no_channel_open_is_the_end_pdu_alone() {
    let mut hub = v2_hub(100, 0);
    let mut amy = established(&mut hub, LE, 2, 0, b"amy");
    feed(&mut amy, &mut hub, &Pdu::list_channels(LE), 0);
    let out = pull(&mut amy, &hub, 0);
    assert_eq!(listing(&out, Command::ListChannels), ["end  0"]);
}

#[test]
fn names_lists_the_operator_first_then_members_in_join_order() {
    let mut hub = v2_hub(100, 0);
    let mut amy = v2_member(&mut hub, 0, b"amy", b"@c");
    let _dan = v1_member(&mut hub, 1, b"dan", b"@c");
    let _bob = v1_member(&mut hub, 2, b"bob", b"@c");
    let _carl = v2_member(&mut hub, 3, b"carl", b"@c");
    let mut eve = established(&mut hub, LE, 2, 4, b"eve");
    // Of the own channel (empty channel field)...
    let (_, out) = feed(&mut amy, &mut hub, &Pdu::names(LE, b""), 0);
    assert!(out.is_empty());
    let out = pull(&mut amy, &hub, 0);
    let expected = ["operators: amy", "members: dan bob carl", "end @c 4"];
    assert_eq!(listing(&out[..3], Command::Names), expected);
    // ...or of a named one, by a client that is not in it.
    feed(&mut eve, &mut hub, &Pdu::names(LE, b"@c"), 0);
    assert_eq!(listing(&pull(&mut eve, &hub, 0), Command::Names), expected);
    // amy leaves: carl, the earliest joiner that speaks v2, is the operator.
    feed(&mut amy, &mut hub, &Pdu::leave(LE), 0);
    feed(&mut eve, &mut hub, &Pdu::names(LE, b"@c"), 0);
    assert_eq!(
        listing(&pull(&mut eve, &hub, 0), Command::Names),
        ["operators: carl", "members: dan bob", "end @c 3"]
    );
}

#[test]
fn names_sends_as_many_whole_names_as_fit_in_2000_bytes_with_the_nul() {
    let mut hub = v2_hub(1, 0);
    let names: Vec<String> = (0..300).map(|i| format!("member{i:04}")).collect();
    let mut op = v2_member(&mut hub, 0, names[0].as_bytes(), b"@c");
    let members: Vec<Session> = (1..300)
        .map(|i| v1_member(&mut hub, i, names[i].as_bytes(), b"@c"))
        .collect();
    assert_eq!(members.len(), 299);
    pull(&mut op, &hub, 0);
    feed(&mut op, &mut hub, &Pdu::names(LE, b""), 0);
    let out = pull(&mut op, &hub, 0);
    let rendered = listing(&out, Command::Names);
    assert_eq!(
        rendered.first().map(String::as_str),
        Some("operators: member0000")
    );
    assert_eq!(rendered.last().map(String::as_str), Some("end @c 300"));
    let chunks = &out[1..out.len() - 1];
    assert!(chunks.len() >= 2, "299 names of 10 bytes need two PDUs");
    let mut listed = Vec::new();
    for (i, pdu) in chunks.iter().enumerate() {
        assert!(!pdu.lists_operators());
        let chunk = pdu.params_text();
        assert!(chunk.len() < PARAMS_LEN, "room for the NUL");
        if i + 1 < chunks.len() {
            // As many as fit: the next name (and its space) would not have.
            assert!(
                chunk.len() + 1 + 10 + 1 > PARAMS_LEN,
                "{} bytes",
                chunk.len()
            );
        }
        listed.extend(chunk.split(|&b| b == b' ').map(text));
    }
    assert_eq!(listed, names[1..]);
}

#[test]
fn names_of_a_channel_that_is_not_open_is_an_error_and_no_listing() {
    let mut hub = v2_hub(100, 0);
    let mut amy = established(&mut hub, LE, 2, 0, b"amy");
    let mut bob = v1_member(&mut hub, 1, b"bob", b"@c");
    let cases: [(Pdu, String); 3] = [
        (
            Pdu::names(LE, b""),
            "error: no channel given and not in a channel".into(),
        ),
        (
            Pdu::names(LE, b"@nope"),
            "error: @nope is not open: it has no members".into(),
        ),
        (
            Pdu::names(LE, b"nope"),
            format!("error: channel name 'nope' does not start with @: {CHANNEL_RULE}"),
        ),
    ];
    for (pdu, expected) in cases {
        assert_eq!(refused(&mut amy, &mut hub, &pdu), expected);
        assert!(!amy.answering());
    }
    // Closed with its last member.
    feed(&mut bob, &mut hub, &Pdu::leave(LE), 0);
    assert_eq!(
        refused(&mut amy, &mut hub, &Pdu::names(LE, b"@c")),
        "error: @c is not open: it has no members"
    );
}

// --- Version 2: operators (v2 section 4) -----------------------------------------------------

#[test]
fn the_earliest_v2_joiner_inherits_operator_and_only_v2_readers_are_told() {
    let mut hub = v2_hub(100, 0);
    let mut amy = v2_member(&mut hub, 0, b"amy", b"@c");
    let mut bob = v1_member(&mut hub, 1, b"bob", b"@c");
    let mut carl = v2_member(&mut hub, 2, b"carl", b"@c");
    let mut dan = v1_member(&mut hub, 3, b"dan", b"@c");
    pull(&mut amy, &hub, 0);
    query(&mut bob, &mut hub);
    pull(&mut carl, &hub, 0);
    let id = carl.membership().map(|m| m.channel).unwrap();
    let is_op = |hub: &Hub, name: &[u8]| hub.is_operator(id, &Username::new(name).unwrap());
    assert!(is_op(&hub, b"amy"));
    assert!(!is_op(&hub, b"bob"));
    // The operator leaves: carl inherits, the earliest joiner that can moderate (bob, a
    // v1 client, joined earlier but has no KICK or BAN).
    feed(&mut amy, &mut hub, &Pdu::leave(LE), 0);
    assert!(is_op(&hub, b"carl"));
    assert!(!is_op(&hub, b"bob"));
    assert_eq!(
        lines(&pull(&mut carl, &hub, 0)),
        ["SERVER @c: amy left", "SERVER @c: carl is now an operator"]
    );
    // v1 readers are not sent the operator notice.
    assert_eq!(
        query_lines(&mut dan, &mut hub),
        ["SERVER @c: amy left", "up-to-date @c"]
    );
    // A member who is not the operator leaving hands nothing on.
    feed(&mut dan, &mut hub, &Pdu::leave(LE), 0);
    assert_eq!(lines(&pull(&mut carl, &hub, 0)), ["SERVER @c: dan left"]);
    // The v2 operator disconnects: only bob, a v1 client, is left; he is the operator.
    carl.close(&mut hub, 0);
    assert!(is_op(&hub, b"bob"));
    assert_eq!(
        query_lines(&mut bob, &mut hub),
        [
            "SERVER @c: amy left",
            "SERVER @c: dan left",
            "SERVER @c: carl left",
            "up-to-date @c"
        ]
    );
}

#[test]
fn an_operator_notice_counts_in_a_v1_readers_skip_notice() {
    let mut hub = v2_hub(3, 0);
    hub.set_rules(Rules {
        rate_limit: 0,
        ..Rules::default()
    });
    let mut amy = v2_member(&mut hub, 0, b"amy", b"@c");
    let mut bob = v1_member(&mut hub, 1, b"bob", b"@c");
    let mut carl = v1_member(&mut hub, 2, b"carl", b"@c");
    feed(&mut amy, &mut hub, &Pdu::leave(LE), 0);
    // `amy left` and `bob is now an operator` are evicted before carl reads them.
    for i in 0..3 {
        say(&mut bob, &mut hub, format!("m{i}").as_bytes());
    }
    assert_eq!(
        query_lines(&mut carl, &mut hub),
        [
            "SERVER @c: 2 messages were skipped",
            "bob @c: m0",
            "bob @c: m1",
            "bob @c: m2",
            "up-to-date @c"
        ]
    );
}

#[test]
fn a_refused_oper_is_answered_only_after_a_second_and_is_not_read_meanwhile() {
    let mut hub = v2_hub(100, 0);
    hub.set_rules(Rules {
        oper: true,
        ..Rules::default()
    });
    let mut amy = established(&mut hub, LE, 2, 0, b"amy");
    for _ in 0..2 {
        // Repeated failures are not faster.
        let (_, out) = feed(&mut amy, &mut hub, &Pdu::oper(LE, b"wrong"), 10_000);
        assert!(out.is_empty());
        assert!(amy.answering(), "no PDU is read while OPER is pending");
        assert_eq!(amy.take_oper_request().as_deref(), Some(&b"wrong"[..]));
        assert_eq!(amy.take_oper_request(), None, "taken once");
        let mut out = Vec::new();
        amy.oper_checked(false, 10_300, &mut hub, &mut out);
        assert!(out.is_empty());
        assert_eq!(amy.wake_at(), Some(11_000));
        amy.wake(10_999, &hub, &mut out);
        assert!(out.is_empty() && amy.answering());
        amy.wake(11_000, &hub, &mut out);
        assert_eq!(error_text(&out, LE), "error: not an operator password");
        assert_eq!(stamps(&out), [Some(11_000)]);
        assert!(!amy.answering() && amy.wake_at().is_none());
        assert!(!hub.is_server_operator(&Username::new(b"amy").unwrap()));
    }
    // A verification slower than a second is refused as soon as it ends.
    feed(&mut amy, &mut hub, &Pdu::oper(LE, b"slow"), 20_000);
    amy.take_oper_request();
    amy.oper_checked(false, 25_000, &mut hub, &mut Vec::<Pdu>::new());
    assert_eq!(amy.wake_at(), Some(25_000));
}

#[test]
fn oper_without_a_configured_password_or_with_an_empty_one_is_refused_after_a_second() {
    for (oper, password) in [(false, &b"secret"[..]), (true, b"")] {
        let mut hub = v2_hub(100, 0);
        hub.set_rules(Rules {
            oper,
            ..Rules::default()
        });
        let mut amy = established(&mut hub, LE, 2, 0, b"amy");
        let (_, out) = feed(&mut amy, &mut hub, &Pdu::oper(LE, password), 4_000);
        assert!(out.is_empty());
        assert_eq!(amy.take_oper_request(), None, "nothing to verify");
        assert_eq!(amy.wake_at(), Some(5_000));
        let mut out = Vec::new();
        amy.wake(5_000, &hub, &mut out);
        assert_eq!(error_text(&out, LE), "error: not an operator password");
    }
}

/// Takes `s` through an accepted OPER at `now`.
fn make_oper(s: &mut Session, hub: &mut Hub, now: u64) {
    let (_, out) = feed(s, hub, &Pdu::oper(LE, b"secret"), now);
    assert!(out.is_empty());
    assert_eq!(s.take_oper_request().as_deref(), Some(&b"secret"[..]));
    let mut out = Vec::new();
    s.oper_checked(true, now + 200, hub, &mut out);
    assert_eq!(
        out.iter().map(Pdu::as_bytes).collect::<Vec<_>>(),
        [&exact(Command::Oper, LE, b"SERVER", b"")]
    );
    assert!(!s.answering() && s.wake_at().is_none());
    assert!(hub.is_server_operator(s.user().unwrap()));
}

#[test]
fn an_accepted_oper_is_acknowledged_and_moderates_every_channel() {
    let mut hub = v2_hub(100, 0);
    hub.set_rules(Rules {
        oper: true,
        ..Rules::default()
    });
    let mut amy = established(&mut hub, LE, 2, 0, b"amy");
    let mut eve = v2_member(&mut hub, 1, b"eve", b"@d");
    let mut fay = v2_member(&mut hub, 2, b"fay", b"@d");
    make_oper(&mut amy, &mut hub, 1_000);
    // Not a member of @d, and yet allowed.
    let (_, out) = feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Kick, b"@d", b"fay", b""),
        0,
    );
    assert_eq!(lines(&out), ["KICK @d"]);
    carry_out(&mut hub, &mut [&mut amy, &mut eve, &mut fay]);
    assert_eq!(fay.phase(), Phase::Connected);
    // A channel operator cannot kick or ban a server operator.
    feed(&mut amy, &mut hub, &join(LE, b"amy", b"@d"), 0);
    for command in [Command::Kick, Command::Ban] {
        assert_eq!(
            refused(&mut eve, &mut hub, &moderation(command, b"", b"amy", b"")),
            "error: amy is a server operator: a channel operator cannot kick or ban one"
        );
    }
    // Powers end with the connection.
    amy.close(&mut hub, 0);
    let amy = established(&mut hub, LE, 2, 0, b"amy");
    assert!(!hub.is_server_operator(amy.user().unwrap()));
}

// --- Version 2: moderation (v2 section 5) ----------------------------------------------------

/// `@c` opened by amy (v2, connection 0, its operator), then joined by bob (v2, 1), carl
/// (v2, 2) and dan (v1, 3); everyone has read everything. Server operators may be made
/// (`oper` rule on).
fn moderated() -> (Hub, [Session; 4]) {
    let mut hub = v2_hub(100, 0);
    hub.set_rules(Rules {
        oper: true,
        ..Rules::default()
    });
    let mut amy = v2_member(&mut hub, 0, b"amy", b"@c");
    let mut bob = v2_member(&mut hub, 1, b"bob", b"@c");
    let mut carl = v2_member(&mut hub, 2, b"carl", b"@c");
    let dan = v1_member(&mut hub, 3, b"dan", b"@c");
    pull(&mut amy, &hub, 0);
    pull(&mut bob, &hub, 0);
    pull(&mut carl, &hub, 0);
    (hub, [amy, bob, carl, dan])
}

#[test]
fn a_kick_is_acknowledged_with_the_request_back_from_server() {
    let (mut hub, [mut amy, ..]) = moderated();
    let mut kick = moderation(Command::Kick, b"@c", b"bob", b"spam");
    // Whatever the client wrote as its name and after the fields is not echoed.
    kick.set_username(b"amy");
    kick.bytes_mut()[200] = b'?';
    kick.bytes_mut()[PARAMS_AT + 100] = b'?';
    let (_, out) = feed(&mut amy, &mut hub, &kick, 0);
    let params = [&b"bob"[..], &[0; 7], b" spam"].concat();
    assert_eq!(
        out.iter().map(Pdu::as_bytes).collect::<Vec<_>>(),
        [&exact(Command::Kick, LE, &ack_prefix(b"@c"), &params)]
    );
}

#[test]
fn a_kicked_v2_member_is_sent_leave_channel_then_the_notice() {
    let (mut hub, [mut amy, mut bob, mut carl, mut dan]) = moderated();
    // Usernames compare ignoring case.
    let (_, out) = feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Kick, b"", b"BOB", b"spam"),
        5_000,
    );
    // The request back: its channel field was empty (the sender's own channel).
    assert_eq!(lines(&out), ["KICK "]);
    let close = carry_out(&mut hub, &mut [&mut amy, &mut bob, &mut carl, &mut dan]);
    assert!(close.is_empty());
    // Out of the channel at once; told as soon as its socket drains.
    assert_eq!(bob.phase(), Phase::Connected);
    let out = pull(&mut bob, &hub, 6_000);
    assert_eq!(
        out[0].as_bytes(),
        &exact(Command::LeaveChannel, LE, &ack_prefix(b"@c"), b"")
    );
    assert_eq!(
        lines(&out[1..]),
        ["SERVER @c: you were kicked from @c by amy: spam"]
    );
    assert_eq!(stamps(&out[1..]), [Some(6_000)]);
    // bob is no longer in @c: no push of its own removal, no more messages.
    say(&mut carl, &mut hub, b"after");
    assert!(pull(&mut bob, &hub, 0).is_empty());
    let id = carl.membership().map(|m| m.channel).unwrap();
    assert!(!hub.is_member(id, &Username::new(b"bob").unwrap()));
}

#[test]
fn a_kicked_v1_member_is_sent_leave_channel_then_an_error_notice() {
    let (mut hub, [mut amy, mut bob, mut carl, mut dan]) = moderated();
    feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Kick, b"@c", b"dan", b"rude"),
        0,
    );
    carry_out(&mut hub, &mut [&mut amy, &mut bob, &mut carl, &mut dan]);
    assert_eq!(dan.phase(), Phase::Connected);
    let out = pull(&mut dan, &hub, 0);
    assert_eq!(
        lines(&out),
        [
            "LEAVE_CHANNEL @c",
            "SERVER @c: error: you were kicked from @c by amy: rude"
        ]
    );
    error_text(&out[1..], LE);
}

#[test]
fn bystanders_see_a_kick_as_their_version_defines_it() {
    let (mut hub, [mut amy, mut bob, mut carl, mut dan]) = moderated();
    feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Kick, b"@c", b"bob", b"spam"),
        7_000,
    );
    carry_out(&mut hub, &mut [&mut amy, &mut bob, &mut carl, &mut dan]);
    assert_eq!(
        lines(&pull(&mut carl, &hub, 0)),
        ["SERVER @c: bob was kicked by amy: spam"]
    );
    feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Kick, b"@c", b"carl", b""),
        8_000,
    );
    carry_out(&mut hub, &mut [&mut amy, &mut bob, &mut carl, &mut dan]);
    // The operator (v2) is pushed the removal entries, with their time.
    let out = pull(&mut amy, &hub, 9_000);
    assert_eq!(
        lines(&out),
        [
            "SERVER @c: bob was kicked by amy: spam",
            "SERVER @c: carl was kicked by amy"
        ]
    );
    assert_eq!(stamps(&out), [Some(7_000), Some(8_000)]);
    assert_eq!(
        lines(&pull(&mut carl, &hub, 0)),
        [
            "LEAVE_CHANNEL @c",
            "SERVER @c: you were kicked from @c by amy"
        ]
    );
    // A v1 reader is sent the v1 notice.
    assert_eq!(
        query_lines(&mut dan, &mut hub),
        [
            "SERVER @c: bob left",
            "SERVER @c: carl left",
            "up-to-date @c"
        ]
    );
}

#[test]
fn an_operator_can_kick_itself_and_the_earliest_joiner_inherits() {
    let (mut hub, [mut amy, mut bob, mut carl, mut dan]) = moderated();
    let (_, out) = feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Kick, b"", b"amy", b""),
        0,
    );
    assert_eq!(lines(&out), ["KICK "]);
    assert!(carry_out(&mut hub, &mut [&mut amy, &mut bob, &mut carl, &mut dan]).is_empty());
    assert_eq!(amy.phase(), Phase::Connected);
    assert_eq!(
        lines(&pull(&mut amy, &hub, 0)),
        [
            "LEAVE_CHANNEL @c",
            "SERVER @c: you were kicked from @c by amy"
        ]
    );
    assert_eq!(
        lines(&pull(&mut carl, &hub, 0)),
        [
            "SERVER @c: amy was kicked by amy",
            "SERVER @c: bob is now an operator"
        ]
    );
}

#[test]
fn a_removal_waits_until_the_listing_in_flight_has_ended() {
    let (mut hub, [mut amy, mut bob, mut carl, mut dan]) = moderated();
    feed(&mut bob, &mut hub, &Pdu::names(LE, b""), 0);
    let mut out = Vec::new();
    assert!(!bob.continue_output(&hub, 0, 1, &mut out));
    feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Kick, b"", b"bob", b""),
        0,
    );
    carry_out(&mut hub, &mut [&mut amy, &mut bob, &mut carl, &mut dan]);
    out.extend(pull(&mut bob, &hub, 0));
    assert_eq!(
        lines(&out),
        [
            "NAMES @c",
            "NAMES @c",
            "NAMES @c",
            "LEAVE_CHANNEL @c",
            "SERVER @c: you were kicked from @c by amy"
        ]
    );
    assert!(out[2].up_to_date(), "the listing ended before the removal");
}

#[test]
fn a_removal_is_sent_one_pdu_per_unit_of_budget() {
    let (mut hub, [mut amy, mut bob, mut carl, mut dan]) = moderated();
    feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Kick, b"", b"bob", b""),
        0,
    );
    carry_out(&mut hub, &mut [&mut amy, &mut bob, &mut carl, &mut dan]);
    let mut out = Vec::new();
    assert!(!bob.continue_output(&hub, 0, 1, &mut out));
    assert_eq!(lines(&out), ["LEAVE_CHANNEL @c"]);
    assert!(bob.has_output(&hub));
    assert!(!bob.continue_output(&hub, 0, 1, &mut out));
    assert_eq!(out.len(), 2);
    assert!(bob.continue_output(&hub, 0, 1, &mut out));
    assert_eq!(
        lines(&out),
        [
            "LEAVE_CHANNEL @c",
            "SERVER @c: you were kicked from @c by amy"
        ]
    );
}

#[test]
fn a_ban_removes_the_member_and_refuses_its_joins_in_any_letter_case() {
    let (mut hub, [mut amy, mut bob, mut carl, mut dan]) = moderated();
    let (_, out) = feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Ban, b"@c", b"bob", b"flood"),
        0,
    );
    assert_eq!(lines(&out), ["BAN @c"]);
    carry_out(&mut hub, &mut [&mut amy, &mut bob, &mut carl, &mut dan]);
    assert_eq!(
        lines(&pull(&mut bob, &hub, 0)),
        [
            "LEAVE_CHANNEL @c",
            "SERVER @c: you were banned from @c by amy: flood"
        ]
    );
    assert_eq!(
        lines(&pull(&mut carl, &hub, 0)),
        ["SERVER @c: bob was banned by amy: flood"]
    );
    assert_eq!(
        query_lines(&mut dan, &mut hub),
        ["SERVER @c: bob left", "up-to-date @c"]
    );
    assert_eq!(
        refused(&mut bob, &mut hub, &join(LE, b"bob", b"@c")),
        "error: you are banned from @c"
    );
    assert_eq!(bob.phase(), Phase::Connected);
    // Under another letter case, after reconnecting: banned all the same.
    bob.close(&mut hub, 0);
    let mut again = established(&mut hub, LE, 1, 1, b"BOB");
    assert_eq!(
        refused(&mut again, &mut hub, &join(LE, b"BOB", b"@c")),
        "error: you are banned from @c"
    );
    // A banned member of another channel stays there when refused.
    feed(&mut again, &mut hub, &join(LE, b"BOB", b"@other"), 0);
    assert_eq!(
        refused(&mut again, &mut hub, &join(LE, b"BOB", b"@c")),
        "error: you are banned from @c"
    );
    assert_eq!(again.phase(), Phase::InChannel);
}

#[test]
fn a_ban_of_someone_not_in_the_channel_is_listed_and_banning_twice_changes_nothing() {
    let (mut hub, [mut amy, ..]) = moderated();
    for _ in 0..2 {
        let retained = hub.retained();
        let (_, out) = feed(
            &mut amy,
            &mut hub,
            &moderation(Command::Ban, b"@c", b"zed", b""),
            0,
        );
        assert_eq!(lines(&out), ["BAN @c"]);
        assert_eq!(hub.retained(), retained, "no removal entry");
    }
    let mut zed = established(&mut hub, LE, 2, 4, b"zed");
    assert_eq!(
        refused(&mut zed, &mut hub, &join(LE, b"zed", b"@c")),
        "error: you are banned from @c"
    );
}

#[test]
fn a_ban_list_outlives_its_channel() {
    let (mut hub, [mut amy, mut bob, mut carl, mut dan]) = moderated();
    feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Ban, b"", b"zed", b""),
        0,
    );
    for s in [&mut amy, &mut bob, &mut carl, &mut dan] {
        s.close(&mut hub, 0);
    }
    assert_eq!(hub.channels(), 0, "closed with its last member");
    let mut zed = established(&mut hub, LE, 2, 4, b"zed");
    assert_eq!(
        refused(&mut zed, &mut hub, &join(LE, b"zed", b"@c")),
        "error: you are banned from @c"
    );
}

#[test]
fn unban_lifts_a_ban_once() {
    let (mut hub, [mut amy, mut bob, mut carl, mut dan]) = moderated();
    feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Ban, b"", b"bob", b""),
        0,
    );
    carry_out(&mut hub, &mut [&mut amy, &mut bob, &mut carl, &mut dan]);
    let (_, out) = feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Unban, b"@c", b"BOB", b""),
        0,
    );
    assert_eq!(lines(&out), ["UNBAN @c"]);
    let (_, out) = feed(&mut bob, &mut hub, &join(LE, b"bob", b"@c"), 0);
    assert_eq!(lines(&out), ["JOIN_CHANNEL @c"]);
    assert_eq!(
        refused(
            &mut amy,
            &mut hub,
            &moderation(Command::Unban, b"", b"bob", b"")
        ),
        "error: bob is not banned from @c"
    );
}

#[test]
fn a_ban_list_holds_at_most_1000_names() {
    let (mut hub, [mut amy, ..]) = moderated();
    let channel = ChannelName::new(b"@c").unwrap();
    for i in 0..MAX_BANS {
        let name = Username::new(format!("n{i:04}").as_bytes()).unwrap();
        assert_eq!(hub.ban(&channel, &name), Ok(true));
    }
    assert_eq!(
        refused(
            &mut amy,
            &mut hub,
            &moderation(Command::Ban, b"", b"zed", b"")
        ),
        "error: ban list of @c is full: at most 1000 names"
    );
    // One already on it is acknowledged; one taken off makes room.
    let (_, out) = feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Ban, b"", b"n0001", b""),
        0,
    );
    assert_eq!(lines(&out), ["BAN "]);
    feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Unban, b"", b"n0001", b""),
        0,
    );
    let (_, out) = feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Ban, b"", b"zed", b""),
        0,
    );
    assert_eq!(lines(&out), ["BAN "]);
}

#[test]
fn a_server_ban_closes_every_connection_of_the_address_and_unban_lifts_it() {
    let (mut hub, [mut amy, mut bob, mut carl, mut dan]) = moderated();
    make_oper(&mut amy, &mut hub, 0);
    let (_, out) = feed(
        &mut amy,
        &mut hub,
        &moderation(Command::Ban, b"*", b"BOB", b""),
        0,
    );
    assert_eq!(lines(&out), ["BAN *"]);
    let close = carry_out(&mut hub, &mut [&mut amy, &mut bob, &mut carl, &mut dan]);
    // bob's address, which dan shares: the reactor closes both.
    let address = IpAddr::from([10, 0, 0, 1]);
    assert_eq!(close, [address]);
    assert_eq!((bob.peer(), dan.peer()), (Some(address), Some(address)));
    assert!(hub.is_address_banned(&address));
    let (_, out) = feed(&mut amy, &mut hub, &Pdu::unban_address(LE, b"10.0.0.1"), 0);
    assert_eq!(lines(&out), ["UNBAN *"]);
    assert!(!hub.is_address_banned(&address));
}

#[test]
fn each_refused_moderation_says_why_and_changes_nothing() {
    let (mut hub, [amy, bob, _carl, _dan]) = moderated();
    let eve = established(&mut hub, LE, 2, 4, b"eve");
    let fay = v2_member(&mut hub, 5, b"fay", b"@d");
    // amy operates @c; bob is a member of it; eve is in no channel; fay operates @d.
    let mut sessions = [amy, bob, eve, fay];
    let [amy, bob, eve, fay] = [0, 1, 2, 3];
    let (kick, ban, unban) = (Command::Kick, Command::Ban, Command::Unban);
    let not_op = "error: you are not an operator of @c";
    let only_server = "error: only a server operator can ban from the whole server (*)";
    let cases: [(usize, Pdu, String); 13] = [
        (bob, moderation(kick, b"", b"carl", b""), not_op.into()),
        (bob, moderation(ban, b"@c", b"carl", b""), not_op.into()),
        (bob, moderation(unban, b"@c", b"carl", b""), not_op.into()),
        (eve, moderation(kick, b"@c", b"carl", b""), not_op.into()),
        (
            amy,
            moderation(kick, b"@d", b"fay", b""),
            "error: you are not an operator of @d".into(),
        ),
        (
            amy,
            moderation(kick, b"@gone", b"fay", b""),
            "error: you are not an operator of @gone".into(),
        ),
        (
            amy,
            moderation(kick, b"", b"fay", b""),
            "error: fay is not in @c".into(),
        ),
        (
            amy,
            moderation(kick, b"", b"a b", b""),
            format!("error: no such user: username 'a b' contains a space: {USERNAME_RULE}"),
        ),
        (
            amy,
            moderation(kick, b"", b"", b""),
            format!("error: no such user: username is empty: {USERNAME_RULE}"),
        ),
        (
            amy,
            moderation(kick, b"#c", b"bob", b""),
            format!("error: channel name '#c' does not start with @: {CHANNEL_RULE}"),
        ),
        (
            eve,
            moderation(kick, b"", b"bob", b""),
            "error: no channel given and not in a channel".into(),
        ),
        (amy, moderation(ban, b"*", b"bob", b""), only_server.into()),
        (amy, Pdu::unban_address(LE, b"10.0.0.1"), only_server.into()),
    ];
    for (who, pdu, expected) in cases {
        assert_eq!(refused(&mut sessions[who], &mut hub, &pdu), expected);
    }
    // What only a server operator can get wrong.
    make_oper(&mut sessions[fay], &mut hub, 0);
    let cases: [(Pdu, &str); 4] = [
        (
            moderation(kick, b"*", b"bob", b""),
            "error: KICK needs a channel: * is only for BAN and UNBAN",
        ),
        (
            moderation(ban, b"*", b"zed", b""),
            "error: zed is not connected: a server ban takes the address of a connected user",
        ),
        (
            Pdu::unban_address(LE, b"nope"),
            "error: 'nope' is not an IP address (UNBAN * takes the address as text)",
        ),
        (
            Pdu::unban_address(LE, b"10.0.0.9"),
            "error: 10.0.0.9 is not banned",
        ),
    ];
    for (pdu, expected) in cases {
        assert_eq!(refused(&mut sessions[fay], &mut hub, &pdu), expected);
    }
}

// --- Cluster mode: requests to the network and its verdicts (v2 section 8) ----------------

const UNAVAILABLE_TEXT: &str = "error: network unavailable, try again";

fn cluster_hub(history: usize, replay: usize) -> Hub {
    let mut hub = Hub::clustered(history, replay);
    hub.set_epoch(EPOCH);
    hub.set_rules(Rules {
        oper: true,
        ..Rules::default()
    });
    hub
}

/// The network's verdict, given at `now`: what the session wrote.
fn verdict(s: &mut Session, hub: &mut Hub, verdict: Verdict, now: u64) -> Vec<Pdu> {
    let mut out = Vec::new();
    s.network_verdict(verdict, now, hub, &mut out);
    out
}

/// Feeds `pdu`, which must make a request and nothing else: the session reads nothing
/// more until the verdict. Returns the request (taken once).
fn asks(s: &mut Session, hub: &mut Hub, pdu: &Pdu) -> Request {
    let (step, out) = feed(s, hub, pdu, 0);
    assert_eq!((step, out.len()), (Step::Continue, 0), "{out:?}");
    assert!(s.answering(), "no PDU is read while the network decides");
    let request = s.take_network_request().expect("a request");
    assert_eq!(s.take_network_request(), None, "taken once");
    assert!(s.answering(), "still waiting for the verdict");
    request
}

/// A v2 session of connection `conn` whose CLIENT_INFO the network accepted.
fn cluster_established(hub: &mut Hub, conn: ConnRef, name: &str) -> Session {
    let mut s = negotiated(hub, LE, 2, conn, 0);
    let request = asks(&mut s, hub, &Pdu::client_info(LE, name.as_bytes()));
    assert_eq!(
        request,
        Request::Claim {
            user: uname(name),
            peer: Some(peer(conn)),
        }
    );
    let out = verdict(&mut s, hub, Verdict::Claimed, 0);
    assert_eq!(lines(&out), ["CLIENT_INFO "]);
    assert_eq!(s.phase(), Phase::Connected);
    s
}

/// The network's entry `seq` of `ch`, applied as the engine does.
fn net(hub: &mut Hub, ch: &str, seq: u64, sender: Option<&str>, text: &str) {
    let kind = if sender.is_some() {
        Kind::Chat
    } else {
        Kind::Notice
    };
    let entry = Entry {
        sender: sender.map(uname),
        kind,
        time_ms: EPOCH + seq,
        text: text.as_bytes().into(),
    };
    hub.apply(&cname(ch), seq, entry, None);
}

/// `s` joins `ch`, whose `joined` entry the network numbers `seq` (and which is applied).
fn cluster_join(s: &mut Session, hub: &mut Hub, ch: &str, seq: u64) {
    let user = *s.user().unwrap();
    let request = asks(s, hub, &join(LE, b"", ch.as_bytes()));
    let Request::Join { channel, .. } = request else {
        panic!("{request:?}");
    };
    assert_eq!(channel, cname(ch));
    let out = verdict(s, hub, Verdict::Joined { seq }, 0);
    assert_eq!(lines(&out), [format!("JOIN_CHANNEL {ch}")]);
    net(hub, ch, seq, None, &format!("{user} joined"));
}

#[test]
fn a_cluster_claim_waits_for_the_network_and_its_verdict() {
    let mut hub = cluster_hub(100, 0);
    let mut s = negotiated(&mut hub, LE, 2, 0, 1_000);
    // Taken somewhere in the network: today's text, set-up goes on.
    asks(&mut s, &mut hub, &Pdu::client_info(LE, b"amy"));
    assert_eq!(hub.users(), 0, "not held here while the network decides");
    let out = verdict(&mut s, &mut hub, Verdict::Taken, 2_000);
    assert_eq!(
        error_text(&out, LE),
        "error: username 'amy' is taken: a connected client has it (names are compared \
         ignoring case)"
    );
    assert_eq!(out[0].time(), 0, "set-up notices carry no stamp");
    assert!(!s.answering());
    assert_eq!(s.phase(), Phase::AwaitClientInfo);
    // Unreachable: the notice, set-up goes on.
    asks(&mut s, &mut hub, &Pdu::client_info(LE, b"amy"));
    let out = verdict(&mut s, &mut hub, Verdict::Unavailable, 3_000);
    assert_eq!(error_text(&out, LE), UNAVAILABLE_TEXT);
    assert_eq!(s.phase(), Phase::AwaitClientInfo);
    // The set-up deadline kept running from the phase's start, pending claims or not.
    asks(&mut s, &mut hub, &Pdu::client_info(LE, b"amy"));
    assert_eq!(s.deadline(&Deadlines::default()), Some(31_001));
    let out = verdict(&mut s, &mut hub, Verdict::Claimed, 4_000);
    assert_eq!(lines(&out), ["CLIENT_INFO "]);
    assert_eq!(s.user(), Some(&uname("amy")));
    assert!(hub.is_connected(&uname("AMY")));
    // Held here: taken at once, without asking.
    let mut other = negotiated(&mut hub, LE, 2, 1, 0);
    let (_, out) = feed(&mut other, &mut hub, &Pdu::client_info(LE, b"AMY"), 0);
    assert!(error_text(&out, LE).starts_with("error: username 'AMY' is taken"));
    assert!(other.take_network_request().is_none() && !other.answering());
    // A verdict without a request in progress changes nothing.
    assert!(verdict(&mut other, &mut hub, Verdict::Claimed, 0).is_empty());
    assert_eq!(other.phase(), Phase::AwaitClientInfo);
}

#[test]
fn a_cluster_join_replays_up_to_the_joined_entry_and_pushes_come_only_through_apply() {
    let mut hub = cluster_hub(100, 2);
    let mut amy = cluster_established(&mut hub, 0, "amy");
    // The engine made the replica and caught up with the channel's tail.
    hub.replica(&cname("@c"));
    for seq in 1..=4 {
        net(&mut hub, "@c", seq, None, &format!("n{seq}"));
    }
    let request = asks(&mut amy, &mut hub, &join(LE, b"amy", b"@c"));
    assert_eq!(
        request,
        Request::Join {
            user: uname("amy"),
            channel: cname("@c"),
            from: None,
            push: true,
        }
    );
    assert_eq!(
        amy.phase(),
        Phase::Connected,
        "not a member until the verdict"
    );
    let out = verdict(&mut amy, &mut hub, Verdict::Joined { seq: 5 }, 0);
    assert_eq!(lines(&out), ["JOIN_CHANNEL @c"]);
    assert!(!amy.answering());
    assert!(outbound(&mut hub).is_empty(), "the network did the JOIN");
    // The replay (2 entries back from the joined one); the joined entry is the network's.
    assert_eq!(lines(&pull(&mut amy, &hub, 0)), ["SERVER @c: n4"]);
    net(&mut hub, "@c", 5, None, "amy joined");
    assert_eq!(woken(&mut hub), [0]);
    assert_eq!(lines(&pull(&mut amy, &hub, 0)), ["SERVER @c: amy joined"]);
    // A message is journaled; its echo comes with the network's entry.
    say(&mut amy, &mut hub, b"hi");
    assert_eq!(
        outbound(&mut hub),
        [Outbound::Post {
            conn: 0,
            user: uname("amy"),
            channel: cname("@c"),
            text: b"hi"[..].into(),
        }]
    );
    assert!(pull(&mut amy, &hub, 0).is_empty());
    net(&mut hub, "@c", 6, Some("amy"), "hi");
    assert_eq!(lines(&pull(&mut amy, &hub, 0)), ["amy @c: hi"]);
    assert_eq!(hub.messages(), 1);
}

#[test]
fn a_refused_or_unreachable_cluster_join_leaves_the_client_where_it_was() {
    let mut hub = cluster_hub(100, 0);
    let mut amy = cluster_established(&mut hub, 0, "amy");
    cluster_join(&mut amy, &mut hub, "@a", 1);
    pull(&mut amy, &hub, 0);
    let request = asks(&mut amy, &mut hub, &join(LE, b"amy", b"@b"));
    let Request::Join { from, .. } = request else {
        panic!("{request:?}");
    };
    assert_eq!(
        from,
        Some(cname("@a")),
        "the network leaves the old channel"
    );
    let out = verdict(&mut amy, &mut hub, Verdict::Banned, 7_000);
    assert_eq!(error_text(&out, LE), "error: you are banned from @b");
    assert_eq!(text(out[0].channel()), "@a");
    assert_eq!(stamps(&out), [Some(7_000)]);
    asks(&mut amy, &mut hub, &join(LE, b"amy", b"@b"));
    let out = verdict(&mut amy, &mut hub, Verdict::Unavailable, 8_000);
    assert_eq!(error_text(&out, LE), UNAVAILABLE_TEXT);
    assert_eq!(text(out[0].channel()), "@a");
    assert_eq!(stamps(&out), [Some(8_000)]);
    // Still in @a, still pushed its entries.
    assert_eq!(amy.phase(), Phase::InChannel);
    assert_eq!(hub.replica_end(&cname("@b")), None);
    net(&mut hub, "@a", 2, Some("bob"), "still here");
    assert_eq!(lines(&pull(&mut amy, &hub, 0)), ["bob @a: still here"]);
    // Joining the current channel again needs no network.
    let (_, out) = feed(&mut amy, &mut hub, &join(LE, b"amy", b"@a"), 0);
    assert_eq!(lines(&out), ["JOIN_CHANNEL @a"]);
    assert!(!amy.answering());
}

#[test]
fn a_cluster_join_elsewhere_deserts_the_old_replica_and_leave_is_journaled() {
    let mut hub = cluster_hub(100, 0);
    let mut amy = cluster_established(&mut hub, 0, "amy");
    cluster_join(&mut amy, &mut hub, "@a", 1);
    cluster_join(&mut amy, &mut hub, "@b", 1);
    let mut deserted = Vec::new();
    hub.take_deserted(&mut deserted);
    assert_eq!(deserted, [cname("@a")]);
    assert!(outbound(&mut hub).is_empty());
    let (_, out) = feed(&mut amy, &mut hub, &Pdu::leave(LE), 0);
    assert_eq!(lines(&out), ["LEAVE_CHANNEL @b"]);
    assert_eq!(
        outbound(&mut hub),
        [Outbound::Leave {
            user: uname("amy"),
            channel: cname("@b"),
        }]
    );
    deserted.clear();
    hub.take_deserted(&mut deserted);
    assert_eq!(deserted, [cname("@b")]);
}

#[test]
fn close_in_cluster_mode_journals_leave_then_release() {
    let mut hub = cluster_hub(100, 0);
    let mut amy = cluster_established(&mut hub, 0, "amy");
    cluster_join(&mut amy, &mut hub, "@c", 1);
    amy.close(&mut hub, 0);
    assert_eq!(
        outbound(&mut hub),
        [
            Outbound::Leave {
                user: uname("amy"),
                channel: cname("@c"),
            },
            Outbound::Release { user: uname("amy") },
        ]
    );
    assert_eq!(hub.users(), 0);
    // Closed with a request in progress: a late verdict finds nothing to complete.
    let mut bob = cluster_established(&mut hub, 1, "bob");
    asks(&mut bob, &mut hub, &join(LE, b"bob", b"@d"));
    bob.close(&mut hub, 0);
    assert!(verdict(&mut bob, &mut hub, Verdict::Joined { seq: 1 }, 0).is_empty());
    assert_eq!(hub.replica_end(&cname("@d")), None);
    // So does a claim's: the name is not held here.
    let mut carl = negotiated(&mut hub, LE, 2, 2, 0);
    asks(&mut carl, &mut hub, &Pdu::client_info(LE, b"carl"));
    carl.close(&mut hub, 0);
    assert!(verdict(&mut carl, &mut hub, Verdict::Claimed, 0).is_empty());
    assert!(!hub.is_connected(&uname("carl")));
}

#[test]
fn a_post_the_network_could_not_take_is_an_error_notice_never_inside_an_answer() {
    let mut hub = cluster_hub(100, 10);
    let mut amy = cluster_established(&mut hub, 0, "amy");
    cluster_join(&mut amy, &mut hub, "@c", 1);
    pull(&mut amy, &hub, 0);
    let mut out = Vec::new();
    amy.post_failed(3_000, &hub, &mut out);
    assert_eq!(error_text(&out, LE), UNAVAILABLE_TEXT);
    assert_eq!(text(out[0].channel()), "@c");
    assert_eq!(stamps(&out), [Some(3_000)]);
    // During a QUERY answer it waits for the answer's end.
    net(&mut hub, "@c", 2, Some("bob"), "x");
    let (_, out) = feed(&mut amy, &mut hub, &Pdu::query(LE), 0);
    assert!(out.is_empty() && amy.in_answer());
    let mut out: Vec<Pdu> = Vec::new();
    amy.post_failed(4_000, &hub, &mut out);
    amy.post_failed(4_000, &hub, &mut out);
    assert!(out.is_empty());
    let out = pull(&mut amy, &hub, 5_000);
    assert_eq!(
        lines(&out),
        [
            "bob @c: x",
            "up-to-date @c",
            &format!("SERVER @c: {UNAVAILABLE_TEXT}"),
            &format!("SERVER @c: {UNAVAILABLE_TEXT}"),
        ]
    );
}

/// amy (connection 0) and bob (1), v2 members of `@c` on this node, amy made its operator
/// by the network; everything read.
fn cluster_pair() -> (Hub, Session, Session) {
    let mut hub = cluster_hub(100, 0);
    let mut amy = cluster_established(&mut hub, 0, "amy");
    let mut bob = cluster_established(&mut hub, 1, "bob");
    cluster_join(&mut amy, &mut hub, "@c", 1);
    cluster_join(&mut bob, &mut hub, "@c", 2);
    pull(&mut amy, &hub, 0);
    pull(&mut bob, &hub, 0);
    (hub, amy, bob)
}

fn removal_entry(hub: &mut Hub, seq: u64, target: &str, by: &str, reason: &str, banned: bool) {
    let verb = if banned { "banned" } else { "kicked" };
    let entry = Entry {
        sender: None,
        kind: Kind::Removal,
        time_ms: EPOCH,
        text: format!("{target} was {verb} by {by}").into_bytes().into(),
    };
    let removal = crate::network::Removal {
        target: uname(target),
        by: uname(by),
        reason: reason.as_bytes().into(),
        banned,
    };
    hub.apply(&cname("@c"), seq, entry, Some(removal));
}

#[test]
fn a_removal_the_network_applies_to_a_local_member_is_sent_leave_channel_then_the_notice() {
    let (mut hub, mut amy, mut bob) = cluster_pair();
    // Kicked by an operator connected elsewhere.
    removal_entry(&mut hub, 3, "bob", "zed", "spam", false);
    carry_out(&mut hub, &mut [&mut amy, &mut bob]);
    assert_eq!(bob.phase(), Phase::Connected);
    let out = pull(&mut bob, &hub, 6_000);
    assert_eq!(
        lines(&out),
        [
            "LEAVE_CHANNEL @c",
            "SERVER @c: you were kicked from @c by zed: spam"
        ]
    );
    assert_eq!(
        lines(&pull(&mut amy, &hub, 0)),
        ["SERVER @c: bob was kicked by zed"]
    );
    assert!(outbound(&mut hub).is_empty(), "the network wrote it");
    let mut deserted = Vec::new();
    hub.take_deserted(&mut deserted);
    assert!(deserted.is_empty(), "amy is still here");
}

#[test]
fn a_cluster_kick_of_oneself_is_acknowledged_then_left_whichever_comes_first() {
    for entry_first in [true, false] {
        let (mut hub, mut amy, mut bob) = cluster_pair();
        let kick = moderation(Command::Kick, b"", b"AMY", b"bye");
        let request = asks(&mut amy, &mut hub, &kick);
        assert_eq!(
            request,
            Request::Moderate {
                user: uname("amy"),
                command: Moderation::Kick,
                channel: cname("@c"),
                target: uname("amy"),
                reason: b"bye"[..].into(),
                server_operator: false,
            }
        );
        if entry_first {
            removal_entry(&mut hub, 3, "amy", "amy", "bye", false);
        }
        let mut out = verdict(&mut amy, &mut hub, Verdict::Done, 0);
        if !entry_first {
            removal_entry(&mut hub, 3, "amy", "amy", "bye", false);
        }
        assert!(carry_out(&mut hub, &mut [&mut amy, &mut bob]).is_empty());
        out.extend(pull(&mut amy, &hub, 0));
        assert_eq!(
            lines(&out),
            [
                "KICK ",
                "LEAVE_CHANNEL @c",
                "SERVER @c: you were kicked from @c by amy: bye"
            ],
            "entry first: {entry_first}"
        );
        assert_eq!(amy.phase(), Phase::Connected);
        assert!(!amy.answering());
    }
    // A ban of oneself from another channel leaves one's own channel alone.
    let (mut hub, _amy, mut bob) = cluster_pair();
    asks(
        &mut bob,
        &mut hub,
        &moderation(Command::Ban, b"@d", b"bob", b""),
    );
    let out = verdict(&mut bob, &mut hub, Verdict::Done, 0);
    assert_eq!(lines(&out), ["BAN @d"]);
    assert!(pull(&mut bob, &hub, 0).is_empty());
    assert_eq!(bob.phase(), Phase::InChannel);
}

#[test]
fn cluster_moderation_verdicts_are_answered_with_todays_texts() {
    let (mut hub, mut amy, _bob) = cluster_pair();
    let (kick, ban, unban) = (Command::Kick, Command::Ban, Command::Unban);
    let cases: [(Command, Verdict, String); 7] = [
        (
            kick,
            Verdict::NotOperator,
            "error: you are not an operator of @c".into(),
        ),
        (
            ban,
            Verdict::TargetIsServerOperator,
            "error: carl is a server operator: a channel operator cannot kick or ban one".into(),
        ),
        (kick, Verdict::NotMember, "error: carl is not in @c".into()),
        (
            ban,
            Verdict::BanListFull,
            format!("error: ban list of @c is full: at most {MAX_BANS} names"),
        ),
        (
            unban,
            Verdict::NotBanned,
            "error: carl is not banned from @c".into(),
        ),
        (kick, Verdict::Unavailable, UNAVAILABLE_TEXT.into()),
        // A verdict that answers another request: nothing changed, as if unreachable.
        (kick, Verdict::Claimed, UNAVAILABLE_TEXT.into()),
    ];
    for (command, given, expected) in cases {
        let request = asks(&mut amy, &mut hub, &moderation(command, b"", b"carl", b""));
        let Request::Moderate {
            channel, target, ..
        } = request
        else {
            panic!("{request:?}");
        };
        assert_eq!((channel, target), (cname("@c"), uname("carl")));
        let out = verdict(&mut amy, &mut hub, given, 9_000);
        assert_eq!(error_text(&out, LE), expected);
        assert_eq!(text(out[0].channel()), "@c");
        assert_eq!(stamps(&out), [Some(9_000)]);
        assert_eq!(amy.phase(), Phase::InChannel);
    }
    // Done: the request back from SERVER; a ban of someone else removes no one here.
    let request = asks(&mut amy, &mut hub, &moderation(ban, b"@c", b"carl", b"r"));
    let Request::Moderate { command, .. } = request else {
        panic!("{request:?}");
    };
    assert_eq!(command, Moderation::Ban);
    let out = verdict(&mut amy, &mut hub, Verdict::Done, 0);
    let params = [&b"carl"[..], &[0; 6], b" r"].concat();
    assert_eq!(
        out.iter().map(Pdu::as_bytes).collect::<Vec<_>>(),
        [&exact(Command::Ban, LE, &ack_prefix(b"@c"), &params)]
    );
    assert_eq!(amy.phase(), Phase::InChannel);
    // Checks that need no shared state are made here, without asking.
    assert_eq!(
        refused(&mut amy, &mut hub, &moderation(kick, b"", b"a b", b"")),
        format!("error: no such user: username 'a b' contains a space: {USERNAME_RULE}")
    );
    assert_eq!(
        refused(&mut amy, &mut hub, &moderation(ban, b"*", b"bob", b"")),
        "error: only a server operator can ban from the whole server (*)"
    );
    assert!(amy.take_network_request().is_none());
}

#[test]
fn cluster_server_bans_ask_the_network() {
    let (mut hub, mut amy, _bob) = cluster_pair();
    make_oper(&mut amy, &mut hub, 0);
    assert_eq!(outbound(&mut hub), [Outbound::Oper { user: uname("amy") }]);
    // A server operator's KICK says so.
    let request = asks(
        &mut amy,
        &mut hub,
        &moderation(Command::Kick, b"", b"bob", b""),
    );
    assert!(matches!(
        request,
        Request::Moderate {
            server_operator: true,
            ..
        }
    ));
    verdict(&mut amy, &mut hub, Verdict::Done, 0);
    // BAN *: of someone connected elsewhere perhaps.
    let ban = moderation(Command::Ban, b"*", b"zed", b"");
    assert_eq!(
        asks(&mut amy, &mut hub, &ban),
        Request::ServerBan {
            target: uname("zed")
        }
    );
    let out = verdict(&mut amy, &mut hub, Verdict::NotConnected, 0);
    assert_eq!(
        error_text(&out, LE),
        "error: zed is not connected: a server ban takes the address of a connected user"
    );
    asks(&mut amy, &mut hub, &ban);
    let out = verdict(&mut amy, &mut hub, Verdict::Done, 0);
    assert_eq!(lines(&out), ["BAN *"]);
    let mut events = Vec::new();
    hub.take_events(&mut events);
    assert!(
        events.is_empty(),
        "the network's ban comes back through the engine"
    );
    // UNBAN *.
    let unban = Pdu::unban_address(LE, b"10.0.0.9");
    let address: IpAddr = "10.0.0.9".parse().unwrap();
    assert_eq!(
        asks(&mut amy, &mut hub, &unban),
        Request::ServerUnban { address }
    );
    let out = verdict(&mut amy, &mut hub, Verdict::NotBanned, 0);
    assert_eq!(error_text(&out, LE), "error: 10.0.0.9 is not banned");
    asks(&mut amy, &mut hub, &unban);
    let out = verdict(&mut amy, &mut hub, Verdict::Done, 0);
    assert_eq!(
        out.iter().map(Pdu::as_bytes).collect::<Vec<_>>(),
        [&exact(Command::Unban, LE, &ack_prefix(b"*"), b"10.0.0.9")]
    );
    // Not an address, or an invalid name: today's texts at once.
    assert_eq!(
        refused(&mut amy, &mut hub, &Pdu::unban_address(LE, b"nope")),
        "error: 'nope' is not an IP address (UNBAN * takes the address as text)"
    );
    assert_eq!(
        refused(
            &mut amy,
            &mut hub,
            &moderation(Command::Ban, b"*", b"a b", b"")
        ),
        "error: a b is not connected: a server ban takes the address of a connected user"
    );
}

#[test]
fn cluster_names_and_list_stream_the_networks_snapshot_like_todays_listings() {
    let (mut hub, mut amy, _bob) = cluster_pair();
    let names: Vec<String> = (0..300).map(|i| format!("member{i:04}")).collect();
    let snapshot = NamesSnapshot {
        operators: vec![uname(&names[0])],
        others: names[1..].iter().map(|n| uname(n)).collect(),
    };
    assert_eq!(
        asks(&mut amy, &mut hub, &Pdu::names(LE, b"")),
        Request::Names {
            channel: cname("@c")
        }
    );
    let out = verdict(
        &mut amy,
        &mut hub,
        Verdict::Names(Box::new(snapshot.clone())),
        0,
    );
    assert!(
        out.is_empty() && amy.answering(),
        "produced as the socket drains"
    );
    let out = pull(&mut amy, &hub, 0);
    let rendered = listing(&out, Command::Names);
    assert_eq!(rendered[0], "operators: member0000");
    assert_eq!(rendered.last().map(String::as_str), Some("end @c 300"));
    let chunks = &out[1..out.len() - 1];
    assert!(chunks.len() >= 2, "299 names of 10 bytes need two PDUs");
    let mut listed = Vec::new();
    for (i, pdu) in chunks.iter().enumerate() {
        let chunk = pdu.params_text();
        if i + 1 < chunks.len() {
            assert!(chunk.len() + 1 + 10 + 1 > PARAMS_LEN, "as many as fit");
        }
        listed.extend(chunk.split(|&b| b == b' ').map(text));
    }
    assert_eq!(listed, names[1..]);
    // Streamed a PDU at a time, it is the same listing.
    asks(&mut amy, &mut hub, &Pdu::names(LE, b"@c"));
    verdict(&mut amy, &mut hub, Verdict::Names(Box::new(snapshot)), 0);
    let mut streamed: Vec<Pdu> = Vec::new();
    while !amy.continue_output(&hub, 0, 1, &mut streamed) {}
    assert_eq!(streamed, out);
    // No operator (all members on version 1, say): the end PDU follows the others.
    asks(&mut amy, &mut hub, &Pdu::names(LE, b""));
    let few = NamesSnapshot {
        operators: vec![],
        others: vec![uname("dan"), uname("bob")],
    };
    verdict(&mut amy, &mut hub, Verdict::Names(Box::new(few)), 0);
    assert_eq!(
        listing(&pull(&mut amy, &hub, 0), Command::Names),
        ["members: dan bob", "end @c 2"]
    );
    // Not open anywhere, or unreachable.
    for (given, expected) in [
        (
            Verdict::NotOpen,
            "error: @nope is not open: it has no members",
        ),
        (Verdict::Unavailable, UNAVAILABLE_TEXT),
    ] {
        asks(&mut amy, &mut hub, &Pdu::names(LE, b"@nope"));
        let out = verdict(&mut amy, &mut hub, given, 0);
        assert_eq!(error_text(&out, LE), expected);
        assert!(!amy.answering());
    }
    // LIST_CHANNELS.
    assert_eq!(
        asks(&mut amy, &mut hub, &Pdu::list_channels(LE)),
        Request::List
    );
    let channels = vec![
        Listed {
            name: cname("@B"),
            members: 3,
            retained: 7,
        },
        Listed {
            name: cname("@a"),
            members: 1,
            retained: 2,
        },
    ];
    verdict(&mut amy, &mut hub, Verdict::Channels(channels.clone()), 0);
    let out = pull(&mut amy, &hub, 0);
    assert_eq!(
        listing(&out, Command::ListChannels),
        ["@B 3 7", "@a 1 2", "end  2"]
    );
    asks(&mut amy, &mut hub, &Pdu::list_channels(LE));
    verdict(&mut amy, &mut hub, Verdict::Channels(channels), 0);
    let mut streamed: Vec<Pdu> = Vec::new();
    while !amy.continue_output(&hub, 0, 1, &mut streamed) {}
    assert_eq!(streamed, out);
    asks(&mut amy, &mut hub, &Pdu::list_channels(LE));
    verdict(&mut amy, &mut hub, Verdict::Channels(vec![]), 0);
    assert_eq!(
        listing(&pull(&mut amy, &hub, 0), Command::ListChannels),
        ["end  0"]
    );
}

#[test]
fn nothing_is_read_while_a_cluster_request_waits_but_pushes_still_go_out() {
    let (mut hub, mut amy, _bob) = cluster_pair();
    let requests = [
        join(LE, b"amy", b"@d"),
        Pdu::names(LE, b""),
        Pdu::list_channels(LE),
        moderation(Command::Kick, b"", b"bob", b""),
    ];
    for pdu in requests {
        asks(&mut amy, &mut hub, &pdu);
        // Entries the network applies meanwhile are pushed.
        let seq = hub.replica_end(&cname("@c")).unwrap();
        net(&mut hub, "@c", seq, Some("bob"), "meanwhile");
        assert_eq!(lines(&pull(&mut amy, &hub, 0)), ["bob @c: meanwhile"]);
        assert!(amy.answering());
        verdict(&mut amy, &mut hub, Verdict::Unavailable, 0);
        assert!(!amy.answering());
    }
}

// --- Rate limit (v2 section 6) ---------------------------------------------------------------

const SLOW_DOWN: &str =
    "error: slow down, message not sent: at most 10 messages a second, 20 at once";

/// A member of `@c` of the given version, under the default rules (10 a second, 20 at once).
fn sender(hub: &mut Hub, version: u16) -> Session {
    let mut s = established(hub, LE, version, 0, b"amy");
    feed(&mut s, hub, &join(LE, b"amy", b"@c"), 0);
    s
}

/// Sends `n` messages at `now`, each of which must be accepted.
fn send_accepted(s: &mut Session, hub: &mut Hub, n: usize, now: u64) {
    for i in 0..n {
        let (_, out) = feed(s, hub, &Pdu::send_message(LE, b"m"), now);
        assert!(out.is_empty(), "message {i} at {now} ms: {out:?}");
    }
}

#[test]
fn the_rate_limit_allows_a_burst_then_refuses_until_it_refills_in_both_versions() {
    for version in [1, 2] {
        let mut hub = v2_hub(1000, 0);
        let mut amy = sender(&mut hub, version);
        send_accepted(&mut amy, &mut hub, 20, 1_000);
        let pdu = Pdu::send_message(LE, b"one too many");
        let (_, out) = feed(&mut amy, &mut hub, &pdu, 1_000);
        assert_eq!(error_text(&out, LE), SLOW_DOWN);
        assert_eq!(hub.messages(), 20, "dropped, and said so");
        // One message every 100 ms refills.
        let (_, out) = feed(&mut amy, &mut hub, &pdu, 1_099);
        assert_eq!(error_text(&out, LE), SLOW_DOWN);
        send_accepted(&mut amy, &mut hub, 1, 1_100);
        let (_, out) = feed(&mut amy, &mut hub, &pdu, 1_100);
        assert_eq!(error_text(&out, LE), SLOW_DOWN);
        // Idle for two seconds: the whole burst again, and no more.
        send_accepted(&mut amy, &mut hub, 20, 3_100);
        let (_, out) = feed(&mut amy, &mut hub, &pdu, 3_100);
        assert_eq!(error_text(&out, LE), SLOW_DOWN);
        assert_eq!(hub.messages(), 41);
    }
}

#[test]
fn a_rate_limit_of_zero_is_off() {
    let mut hub = v2_hub(10, 0);
    hub.set_rules(Rules {
        rate_limit: 0,
        ..Rules::default()
    });
    let mut amy = sender(&mut hub, 1);
    send_accepted(&mut amy, &mut hub, 1000, 0);
    assert_eq!(hub.messages(), 1000);
}

#[test]
fn the_slow_down_notice_names_the_configured_limit() {
    let mut hub = v2_hub(10, 0);
    hub.set_rules(Rules {
        rate_limit: 5,
        rate_burst: 3,
        ..Rules::default()
    });
    let mut amy = sender(&mut hub, 2);
    send_accepted(&mut amy, &mut hub, 3, 0);
    assert_eq!(
        refused(&mut amy, &mut hub, &Pdu::send_message(LE, b"m")),
        "error: slow down, message not sent: at most 5 messages a second, 3 at once"
    );
    send_accepted(&mut amy, &mut hub, 1, 200);
}

// --- Robustness -----------------------------------------------------------------------------

/// The session documents that no PDU may be handed to it while an answer is in flight, and
/// the reactor keeps that rule; this checks what happens when a caller does not.
#[test]
fn a_join_during_an_answer_does_not_break_the_answer() {
    let mut hub = Hub::new(3, 0);
    let mut carl = member(&mut hub, LE, b"carl", b"@b");
    for i in 0..10 {
        say(&mut carl, &mut hub, format!("c{i}").as_bytes());
    }
    let mut amy = member(&mut hub, LE, b"amy", b"@a");
    let (_, mut out) = feed(&mut amy, &mut hub, &Pdu::query(LE), 0);
    assert!(amy.answering());
    let (_, ack) = feed(&mut amy, &mut hub, &join(LE, b"amy", b"@b"), 0);
    assert_eq!(ack.len(), 1);
    for i in 0..5 {
        say(&mut carl, &mut hub, format!("d{i}").as_bytes());
    }
    // The answer in flight still ends, with exactly one up-to-date PDU, its last...
    let mut calls = 0;
    while !amy.continue_output(&hub, 0, 10, &mut out) {
        calls += 1;
        assert!(calls < 100, "the answer never ends");
    }
    assert!(!amy.answering());
    assert_eq!(out.iter().filter(|p| p.up_to_date()).count(), 1, "{out:?}");
    assert!(out.last().is_some_and(Pdu::up_to_date));
    // ...and the next QUERY answers in the new channel's numbering, ending properly.
    let (_, answer) = feed(&mut amy, &mut hub, &Pdu::query(LE), 0);
    assert!(answer.is_empty());
    let mut answer = Vec::new();
    let mut calls = 0;
    while !amy.continue_output(&hub, 0, 10, &mut answer) {
        calls += 1;
        assert!(calls < 100, "the answer never ends");
    }
    assert!(answer.last().is_some_and(Pdu::up_to_date));
    assert_eq!(answer.last().map(Pdu::channel), Some(&b"@b"[..]));
}

const SESSIONS: usize = 3;
const NAMES: [&[u8]; 8] = [
    b"amy",
    b"AMY",
    b"bob",
    b"carl",
    b"SERVER",
    b"",
    b"abcdefghij",
    b"a b",
];
const CHANNELS: [&[u8]; 8] = [b"@a", b"@b", b"@A", b"a", b"@", b"@a b", b"", &[b'@'; 50]];

fn order_strategy() -> impl Strategy<Value = ByteOrder> {
    prop_oneof![Just(LE), Just(BE)]
}

/// The OPER password the property test's hub accepts.
const OPER_PASSWORD: &[u8] = b"secret";

/// PDUs a client would send, with names and channels from small pools so that sessions
/// collide on names and meet in channels; the v2 commands too (unknown to v1 sessions).
fn structured_pdu() -> impl Strategy<Value = Pdu> {
    (
        order_strategy(),
        0..24usize,
        0..NAMES.len(),
        0..CHANNELS.len(),
        0u16..3,
        vec(any::<u8>(), 0..8),
    )
        .prop_map(|(order, kind, name, channel, version, message)| {
            let (name, channel) = (NAMES[name], CHANNELS[channel]);
            let moderation = |command| Pdu::moderation(command, order, channel, name, &message);
            match kind {
                0 => Pdu::ping(order),
                1 => Pdu::client_version(order, version),
                2 | 3 => Pdu::client_info(order, name),
                4 | 5 => join(order, name, channel),
                6 | 7 => Pdu::send_message(order, &message),
                8..=10 => Pdu::query(order),
                11 => Pdu::leave(order),
                12 => receive(order, name, channel, &message),
                13 => Pdu::server_version(order, version),
                14 => Pdu::client_info_ack(order, name),
                15 => Pdu::list_channels(order),
                16 => Pdu::names(order, channel),
                17 => moderation(Command::Kick),
                18 => moderation(Command::Ban),
                19 => moderation(Command::Unban),
                20 => Pdu::moderation(Command::Ban, order, b"*", name, b""),
                21 => Pdu::unban_address(order, peer(version.into()).to_string().as_bytes()),
                22 => Pdu::oper(order, [OPER_PASSWORD, b"nope"][usize::from(version % 2)]),
                _ => Pdu::quit(order),
            }
        })
}

fn command_field() -> impl Strategy<Value = [u8; 4]> {
    prop_oneof![
        (0u32..16).prop_map(u32::to_le_bytes),
        (0u32..16).prop_map(u32::to_be_bytes),
        any::<[u8; 4]>(),
    ]
}

/// Random bytes around a random or plausible command field.
fn random_pdu() -> impl Strategy<Value = Pdu> {
    (
        command_field(),
        vec(any::<u8>(), 0..=PREFIX_LEN),
        prop_oneof![
            vec(any::<u8>(), 0..64),
            vec(1u8..=255, PARAMS_LEN..=PARAMS_LEN)
        ],
    )
        .prop_map(|(command, prefix, params)| {
            let mut bytes = [0u8; PDU_LEN];
            bytes[..prefix.len()].copy_from_slice(&prefix);
            bytes[PREFIX_LEN..PARAMS_AT].copy_from_slice(&command);
            bytes[PARAMS_AT..PARAMS_AT + params.len()].copy_from_slice(&params);
            Pdu::from_bytes(bytes)
        })
}

/// A plausible PDU with a few bytes changed: names one byte too long, junk after a NUL,
/// a command field in neither order.
fn mutated_pdu() -> impl Strategy<Value = Pdu> {
    (structured_pdu(), vec((0..PDU_LEN, any::<u8>()), 1..4)).prop_map(|(mut pdu, changes)| {
        for (at, byte) in changes {
            pdu.bytes_mut()[at] = byte;
        }
        pdu
    })
}

fn pdu_strategy() -> impl Strategy<Value = Pdu> {
    prop_oneof![
        6 => structured_pdu(),
        2 => mutated_pdu(),
        2 => random_pdu(),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    /// A PDU from client `.0`.
    Pdu(usize, Box<Pdu>),
    /// Client `.0`'s socket drained: pull up to `.1` PDUs of its answer.
    Pull(usize, usize),
    /// Client `.0`'s connection closed (TCP close, TLS error, deadline), and a new one
    /// took its place.
    Close(usize),
    /// Time passes (milliseconds).
    Tick(u64),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..SESSIONS, pdu_strategy()).prop_map(|(who, pdu)| Op::Pdu(who, Box::new(pdu))),
        3 => (0..SESSIONS, 0usize..4).prop_map(|(who, budget)| Op::Pull(who, budget)),
        1 => (0..SESSIONS).prop_map(Op::Close),
        1 => (0u64..200_000).prop_map(Op::Tick),
    ]
}

/// Checks what a session of `version` wrote by `now`: a server PDU in the client's order,
/// well formed, time-stamped on version 2 only.
fn check_server_pdu(
    pdu: &Pdu,
    order: ByteOrder,
    version: Option<u16>,
    now: u64,
) -> Result<(), TestCaseError> {
    let command = match pdu.decode_command(Some(order)) {
        Decoded::Known { command, .. } => command,
        Decoded::Unknown(raw) => return Err(TestCaseError::fail(format!("wrote {raw:?}"))),
    };
    prop_assert!(
        !matches!(
            command,
            Command::Quit | Command::SendMessage | Command::Query
        ),
        "the server sent {:?}",
        command
    );
    prop_assert!(command.since_version() <= version.unwrap_or(1));
    let bytes = pdu.as_bytes();
    // v2: prefix[62..70] is the time stamp of a RECEIVE_MESSAGE, prefix[62] the operators
    // flag of NAMES; nothing else past the flag. v1: nothing at all.
    let free = if version == Some(2) {
        TIME.end
    } else {
        TIME.start
    };
    prop_assert!(bytes[free..PREFIX_LEN].iter().all(|&b| b == 0), "{:?}", pdu);
    if command == Command::ReceiveMessage {
        prop_assert!(pdu.time() <= now);
    }
    if command == Command::Names {
        prop_assert!(bytes[OPERATORS] <= 1);
    }
    if command == Command::ReceiveMessage {
        prop_assert!(bytes[UP_TO_DATE] <= 1);
        let sender = pdu.username();
        prop_assert!(sender == SERVER_NAME || Username::new(sender).is_ok());
        if !pdu.channel().is_empty() {
            prop_assert_eq!(bytes[SEPARATOR], b' ');
            prop_assert!(ChannelName::new(pdu.channel()).is_ok());
        }
    } else if command != Command::PingPong {
        prop_assert_eq!(pdu.username(), SERVER_NAME);
    }
    Ok(())
}

/// Sessions sharing a hub, driven as the reactor drives them: session `i` is connection
/// `i`, hub events are carried out after every PDU, and OPER is checked at once.
struct Harness {
    hub: Hub,
    sessions: Vec<Session>,
    /// The part of each session's QUERY answer or listing pulled so far.
    answers: Vec<Option<Vec<Pdu>>>,
    now: u64,
}

impl Harness {
    fn check_sent(&self, who: usize, out: &[Pdu]) -> Result<(), TestCaseError> {
        let s = &self.sessions[who];
        for sent in out {
            check_server_pdu(sent, s.order(), s.version(), self.now)?;
        }
        Ok(())
    }

    fn pdu(&mut self, who: usize, pdu: &Pdu) -> Result<(), TestCaseError> {
        // The reactor reads no PDU from a client while its answer is in flight or its
        // OPER is pending.
        self.drain(who)?;
        let mut out = Vec::new();
        let step = self.sessions[who].on_pdu(pdu, self.now, &mut self.hub, &mut out);
        self.check_sent(who, &out)?;
        let session = &mut self.sessions[who];
        if session.in_answer() {
            prop_assert!(out.is_empty());
            self.answers[who] = Some(Vec::new());
        }
        if let Some(password) = session.take_oper_request() {
            let accepted = &password[..] == OPER_PASSWORD;
            session.oper_checked(accepted, self.now, &mut self.hub, &mut out);
            self.check_sent(who, &out)?;
        }
        if matches!(step, Step::Close(_)) {
            self.close(who);
        }
        self.carry_out_events();
        Ok(())
    }

    /// What the hub asks of other connections: removals and server bans.
    fn carry_out_events(&mut self) {
        let mut events = Vec::new();
        self.hub.take_events(&mut events);
        for event in events {
            match event {
                Event::Removed {
                    conn,
                    channel,
                    name,
                    notice,
                } => self.sessions[conn].removed(channel, name, notice),
                Event::CloseAddress(address) => {
                    for who in 0..SESSIONS {
                        if self.sessions[who].peer() == Some(address) {
                            self.close(who);
                        }
                    }
                }
            }
        }
    }

    fn pull(&mut self, who: usize, budget: usize) -> Result<(), TestCaseError> {
        let mut out = Vec::new();
        let done = self.sessions[who].continue_output(&self.hub, self.now, budget, &mut out);
        prop_assert!(out.len() <= budget);
        self.check_sent(who, &out)?;
        let mut rest = &out[..];
        if let Some(answer) = &mut self.answers[who] {
            // The answer runs up to its one end PDU (flag 1); pushes may follow it.
            match rest.iter().position(|p| p.as_bytes()[UP_TO_DATE] == 1) {
                Some(end) => {
                    answer.extend_from_slice(&rest[..=end]);
                    rest = &rest[end + 1..];
                    self.answers[who] = None;
                }
                None => {
                    answer.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        // Outside an answer: pushes, or a removal's LEAVE_CHANNEL and notice; none ends
        // an answer, and a v1 session is sent no push.
        let v1 = self.sessions[who].version() == Some(1);
        for pdu in rest {
            let command = command_of(pdu, self.sessions[who].order());
            prop_assert!(matches!(
                command,
                Command::ReceiveMessage | Command::LeaveChannel
            ));
            prop_assert_eq!(pdu.as_bytes()[UP_TO_DATE], 0);
            if v1 && command == Command::ReceiveMessage {
                prop_assert_eq!(pdu.username(), SERVER_NAME);
            }
        }
        prop_assert!(!done || self.answers[who].is_none(), "done mid-answer");
        Ok(())
    }

    /// Everything that must happen before the next PDU is read: the answer in flight is
    /// sent, a delayed OPER refusal is due (time moves on to it).
    fn drain(&mut self, who: usize) -> Result<(), TestCaseError> {
        let mut pulls = 0;
        while self.answers[who].is_some() || self.sessions[who].answering() {
            if let Some(at) = self.sessions[who].wake_at() {
                self.now = self.now.max(at);
                let mut out = Vec::new();
                self.sessions[who].wake(self.now, &self.hub, &mut out);
                self.check_sent(who, &out)?;
                prop_assert!(out.len() == 1);
            }
            self.pull(who, 3)?;
            pulls += 1;
            prop_assert!(pulls < 10_000, "the answer does not end");
        }
        Ok(())
    }

    fn close(&mut self, who: usize) {
        self.sessions[who].close(&mut self.hub, self.now);
        self.sessions[who] = Session::accepted(self.now, who, Some(peer(who)));
        self.answers[who] = None;
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        let names: Vec<Username> = self
            .sessions
            .iter()
            .filter_map(|s| s.user().copied())
            .collect();
        prop_assert!(self.hub.users() <= self.sessions.len());
        prop_assert_eq!(self.hub.users(), names.len());
        let distinct: HashSet<Username> = names.iter().copied().collect();
        prop_assert_eq!(distinct.len(), names.len(), "a name is held twice");
        let channels: HashSet<ChannelId> = self
            .sessions
            .iter()
            .filter_map(|s| s.membership().map(|m| m.channel))
            .collect();
        prop_assert_eq!(self.hub.channels(), channels.len());
        for (s, answer) in self.sessions.iter().zip(&self.answers) {
            prop_assert_eq!(s.user().is_some(), !set_up(s.phase()));
            prop_assert_eq!(s.membership().is_some(), s.phase() == Phase::InChannel);
            prop_assert_eq!(s.in_answer(), answer.is_some());
            if let Some(m) = s.membership() {
                prop_assert!(self.hub.channel_name(m.channel).is_some());
                prop_assert!(m.cursor <= self.hub.end_seq(m.channel));
                // A channel has an operator while it is open (v2 section 4).
                prop_assert!(self.hub.members_after(m.channel, true, 0).next().is_some());
            }
            s.deadline(&Deadlines::default());
        }
        // Only version-2 members are woken for pushes.
        let mut woken = Vec::new();
        self.hub.take_woken(&mut woken);
        for conn in woken {
            let s = &self.sessions[conn];
            prop_assert_eq!(s.version(), Some(2));
            prop_assert_eq!(s.phase(), Phase::InChannel);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random PDUs, well formed or not, in either order, fed to version-1 and version-2
    /// sessions that start in random phases: nothing panics, answers and listings end,
    /// and the hub holds exactly what the sessions hold.
    #[test]
    fn random_pdus_never_panic_and_keep_the_hub_consistent(
        history in 1usize..6,
        replay in 0usize..6,
        starts in vec((order_strategy(), 0..PHASES.len(), 1u16..=2), SESSIONS),
        ops in vec(op_strategy(), 1..120),
    ) {
        let mut hub = Hub::new(history, replay);
        hub.set_rules(Rules {
            oper: true,
            ..Rules::default()
        });
        let sessions = starts
            .iter()
            .zip([&b"amy"[..], b"bob", b"carl"])
            .enumerate()
            .map(|(conn, (&(order, phase, version), name))| {
                at_phase_as(&mut hub, order, PHASES[phase], version, conn, name)
            })
            .collect();
        let mut harness = Harness {
            hub,
            sessions,
            answers: vec![None; SESSIONS],
            now: 0,
        };
        harness.check()?;
        for op in &ops {
            match op {
                Op::Pdu(who, pdu) => harness.pdu(*who, pdu)?,
                Op::Pull(who, budget) => harness.pull(*who, *budget)?,
                Op::Close(who) => harness.close(*who),
                Op::Tick(ms) => harness.now += ms,
            }
            harness.check()?;
        }
        for who in 0..SESSIONS {
            harness.drain(who)?;
            harness.close(who);
        }
        harness.check()?;
        prop_assert_eq!((harness.hub.users(), harness.hub.channels()), (0, 0));
    }
}

#[test]
fn after_a_message_no_pdu_is_read_until_the_network_stored_it_or_gave_it_back() {
    let mut hub = cluster_hub(100, 10);
    let mut amy = cluster_established(&mut hub, 0, "amy");
    cluster_join(&mut amy, &mut hub, "@c", 1);
    pull(&mut amy, &hub, 0);
    feed(&mut amy, &mut hub, &Pdu::send_message(LE, b"one"), 0);
    // The QUERY that follows (a sync point) is not read before the message is stored
    // and applied here, so its answer holds the message, as on one server.
    assert!(amy.answering());
    net(&mut hub, "@c", 2, Some("amy"), "one");
    amy.posted();
    assert!(!amy.answering());
    // Given back instead: an error notice, and reading goes on.
    feed(&mut amy, &mut hub, &Pdu::send_message(LE, b"two"), 0);
    assert!(amy.answering());
    let mut out = Vec::new();
    amy.post_failed(1_000, &hub, &mut out);
    assert_eq!(error_text(&out, LE), UNAVAILABLE_TEXT);
    assert!(!amy.answering());
}
