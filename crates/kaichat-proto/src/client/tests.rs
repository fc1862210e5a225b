//! Unit tests of the client state machine: every transition, every refusal, and what a
//! misbehaving server can send.

use super::*;
use crate::pdu::PDU_LEN;

const S: Duration = Duration::from_secs(1);

fn name(n: &str) -> Username {
    Username::new(n.as_bytes()).unwrap()
}

fn ch(n: &str) -> ChannelName {
    ChannelName::new(n.as_bytes()).unwrap()
}

/// What the tests read of a client beyond its API.
impl Client {
    /// The name offered or accepted.
    fn username(&self) -> Option<&Username> {
        self.name.as_ref()
    }

    /// JOIN_CHANNEL requests not yet acknowledged or refused.
    fn joins_in_flight(&self) -> u16 {
        self.owed.joins()
    }

    /// LEAVE_CHANNEL requests not yet acknowledged or refused.
    fn leaves_in_flight(&self) -> u16 {
        u16::from(self.owed.len) - self.owed.joins()
    }

    /// Whether the server owes nothing (no QUERY, PING, JOIN or LEAVE answer pending).
    fn is_settled(&self) -> bool {
        !self.owed.timed() && self.owed.len == 0
    }
}

fn settings(order: ByteOrder) -> Settings {
    Settings {
        order,
        ..Settings::default()
    }
}

/// A client that sent PING, with the PDUs it sent.
fn started(order: ByteOrder, t0: Instant) -> (Client, Vec<Pdu>) {
    let mut client = Client::new(settings(order));
    let mut out: Vec<Pdu> = Vec::new();
    client.start(t0, &mut out);
    (client, out)
}

fn command_of(pdu: &Pdu, order: ByteOrder) -> Command {
    match pdu.decode_command(Some(order)) {
        Decoded::Known { command, .. } => command,
        Decoded::Unknown(raw) => panic!("client sent unknown command {raw:?}"),
    }
}

fn commands(out: &[Pdu], order: ByteOrder) -> Vec<Command> {
    out.iter().map(|p| command_of(p, order)).collect()
}

/// An established client named `amy`, with its outbox cleared.
fn established(order: ByteOrder, t0: Instant) -> Client {
    let (mut client, mut out) = started(order, t0);
    client.offer_name(name("amy"), t0, &mut out).unwrap();
    client.handle(&Pdu::ping(order), t0, &mut out).unwrap();
    client
        .handle(&Pdu::server_version(order, 1), t0, &mut out)
        .unwrap();
    let ack = Pdu::client_info_ack(order, b"amy");
    let ev = client.handle(&ack, t0, &mut out).unwrap();
    assert_eq!(ev, Some(Event::Established { username: b"amy" }));
    client
}

/// An established client in `@c`, its first automatic QUERY not yet sent.
fn in_channel(order: ByteOrder, t0: Instant) -> Client {
    let mut client = established(order, t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.join(&ch("@c"), t0, &mut out).unwrap();
    let ack = Pdu::channel_ack(Command::JoinChannel, order, &ch("@c"));
    assert_eq!(
        client.handle(&ack, t0, &mut out).unwrap(),
        Some(Event::Joined { channel: ch("@c") })
    );
    client
}

fn unexpected(ev: Result<Option<Event<'_>>, ClientError>) -> Unexpected {
    match ev {
        Ok(Some(Event::Unexpected(u))) => u,
        other => panic!("expected Unexpected, got {other:?}"),
    }
}

// --- Set-up. ---

#[test]
fn setup_in_both_byte_orders() {
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let t0 = Instant::now();
        let (mut client, mut out) = started(order, t0);
        assert_eq!(client.phase(), Phase::AwaitPong);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0], Pdu::ping(order), "PING is all zero but the command");
        let code = match order {
            ByteOrder::Little => [7, 0, 0, 0],
            ByteOrder::Big => [0, 0, 0, 7],
        };
        assert_eq!(out[0].command_bytes(), code);

        client.offer_name(name("amy"), t0, &mut out).unwrap();
        assert_eq!(out.len(), 1, "the name waits for the version");
        assert_eq!(
            client.handle(&Pdu::ping(order), t0, &mut out),
            Ok(Some(Event::Pong))
        );
        assert_eq!(client.phase(), Phase::AwaitServerVersion);
        assert_eq!(
            client.handle(&Pdu::server_version(order, 1), t0, &mut out),
            Ok(Some(Event::VersionAgreed { version: 1 }))
        );
        assert_eq!(client.phase(), Phase::AwaitNameAck);
        assert_eq!(
            commands(&out, order),
            [
                Command::PingPong,
                Command::VersionNegotiation,
                Command::ClientInfo
            ]
        );
        assert_eq!(out[1], Pdu::client_version(order, 1));
        assert_eq!(&out[1].params()[..2], &[0, 1], "version is u16 big-endian");
        assert_eq!(out[1].username(), b"", "our VERSION prefix is empty");
        assert_eq!(out[2], Pdu::client_info(order, b"amy"));

        let ack = Pdu::client_info_ack(order, b"amy");
        assert_eq!(
            client.handle(&ack, t0, &mut out),
            Ok(Some(Event::Established { username: b"amy" }))
        );
        assert!(client.is_established());
        assert_eq!(client.username().map(|n| n.as_bytes()), Some(&b"amy"[..]));
        assert_eq!(client.next_wakeup(), Some(t0 + 30 * S), "keep-alive only");
    }
}

#[test]
fn start_twice_sends_one_ping() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Little, t0);
    client.start(t0, &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn version_is_min_of_server_and_ours() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Little, t0);
    client
        .handle(&Pdu::ping(ByteOrder::Little), t0, &mut out)
        .unwrap();
    let v = Pdu::server_version(ByteOrder::Little, 7);
    let ev = client.handle(&v, t0, &mut out);
    assert_eq!(ev, Ok(Some(Event::VersionAgreed { version: 2 })));
    assert_eq!(out[1].version(), 2);
    assert_eq!(client.version(), 2);
    assert!(client.is_pushed());
    // A v1 server gets version 1.
    let (mut client, mut out) = started(ByteOrder::Little, t0);
    client
        .handle(&Pdu::ping(ByteOrder::Little), t0, &mut out)
        .unwrap();
    let v = Pdu::server_version(ByteOrder::Little, 1);
    let ev = client.handle(&v, t0, &mut out);
    assert_eq!(ev, Ok(Some(Event::VersionAgreed { version: 1 })));
    assert_eq!(out[1].version(), 1);
    assert!(!client.is_pushed());
    // A client set to version 1 selects 1 from a v2 server; 0 counts as 1.
    for max_version in [1, 0] {
        let mut client = Client::new(Settings {
            max_version,
            ..Settings::default()
        });
        let mut out: Vec<Pdu> = Vec::new();
        client.start(t0, &mut out);
        client
            .handle(&Pdu::ping(ByteOrder::Little), t0, &mut out)
            .unwrap();
        let v = Pdu::server_version(ByteOrder::Little, 2);
        let ev = client.handle(&v, t0, &mut out);
        assert_eq!(ev, Ok(Some(Event::VersionAgreed { version: 1 })));
        assert_eq!(out[1].version(), 1);
    }
}

#[test]
fn server_version_zero_is_fatal() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Little, t0);
    client
        .handle(&Pdu::ping(ByteOrder::Little), t0, &mut out)
        .unwrap();
    let v = Pdu::server_version(ByteOrder::Little, 0);
    let ev = client.handle(&v, t0, &mut out);
    assert_eq!(ev, Err(ClientError::NoCommonVersion { server_highest: 0 }));
    assert_eq!(client.phase(), Phase::Closed);
    assert_eq!(
        commands(&out, ByteOrder::Little).last(),
        Some(&Command::Quit)
    );
    assert_eq!(client.next_wakeup(), None);
}

#[test]
fn server_version_must_come_from_server() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Little, t0);
    client
        .handle(&Pdu::ping(ByteOrder::Little), t0, &mut out)
        .unwrap();
    let forged = Pdu::client_version(ByteOrder::Little, 1);
    assert_eq!(
        unexpected(client.handle(&forged, t0, &mut out)),
        Unexpected::NotFromServer(Command::VersionNegotiation)
    );
    assert_eq!(client.phase(), Phase::AwaitServerVersion);
}

#[test]
fn version_before_pong_is_ignored() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Little, t0);
    let v = Pdu::server_version(ByteOrder::Little, 1);
    assert_eq!(
        unexpected(client.handle(&v, t0, &mut out)),
        Unexpected::Unsolicited(Command::VersionNegotiation)
    );
    assert_eq!(client.phase(), Phase::AwaitPong);
    assert_eq!(out.len(), 1);
}

#[test]
fn name_offered_after_version() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Little, t0);
    client
        .handle(&Pdu::ping(ByteOrder::Little), t0, &mut out)
        .unwrap();
    client
        .handle(&Pdu::server_version(ByteOrder::Little, 1), t0, &mut out)
        .unwrap();
    assert_eq!(client.phase(), Phase::AwaitName);
    assert_eq!(out.len(), 2);
    client.offer_name(name("bob"), t0 + S, &mut out).unwrap();
    assert_eq!(client.phase(), Phase::AwaitNameAck);
    assert_eq!(out[2], Pdu::client_info(ByteOrder::Little, b"bob"));
}

#[test]
fn rejected_name_then_another_on_the_same_connection() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Big, t0);
    client.offer_name(name("amy"), t0, &mut out).unwrap();
    client
        .handle(&Pdu::ping(ByteOrder::Big), t0, &mut out)
        .unwrap();
    client
        .handle(&Pdu::server_version(ByteOrder::Big, 1), t0, &mut out)
        .unwrap();
    let refusal = Pdu::notice(ByteOrder::Big, None, b"error: name amy is taken");
    assert_eq!(
        client.handle(&refusal, t0 + S, &mut out),
        Ok(Some(Event::NameRejected {
            reason: b"name amy is taken"
        }))
    );
    assert_eq!(client.phase(), Phase::AwaitName);
    // The deadline still runs from our VERSION_NEGOTIATION.
    assert_eq!(client.next_wakeup(), Some(t0 + 30 * S));
    client
        .offer_name(name("amy2"), t0 + 2 * S, &mut out)
        .unwrap();
    assert_eq!(out.last(), Some(&Pdu::client_info(ByteOrder::Big, b"amy2")));
    assert_eq!(client.next_wakeup(), Some(t0 + 30 * S), "not restarted");
    // An ack for the old name is not ours.
    let stale = Pdu::client_info_ack(ByteOrder::Big, b"amy");
    assert_eq!(
        unexpected(client.handle(&stale, t0, &mut out)),
        Unexpected::Unsolicited(Command::ClientInfo)
    );
    // Names compare ignoring case.
    let ack = Pdu::client_info_ack(ByteOrder::Big, b"AMY2");
    assert_eq!(
        client.handle(&ack, t0 + 3 * S, &mut out),
        Ok(Some(Event::Established { username: b"AMY2" }))
    );
}

#[test]
fn non_error_notice_during_setup_is_a_notice() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Little, t0);
    let n = Pdu::notice(ByteOrder::Little, None, b"welcome");
    assert_eq!(
        client.handle(&n, t0, &mut out),
        Ok(Some(Event::Notice {
            channel: b"",
            text: b"welcome",
            is_error: false,
            time: 0
        }))
    );
    assert_eq!(client.phase(), Phase::AwaitPong);
}

#[test]
fn client_info_ack_must_come_from_server() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Little, t0);
    client.offer_name(name("amy"), t0, &mut out).unwrap();
    client
        .handle(&Pdu::ping(ByteOrder::Little), t0, &mut out)
        .unwrap();
    client
        .handle(&Pdu::server_version(ByteOrder::Little, 1), t0, &mut out)
        .unwrap();
    let forged = Pdu::client_info(ByteOrder::Little, b"amy");
    assert_eq!(
        unexpected(client.handle(&forged, t0, &mut out)),
        Unexpected::NotFromServer(Command::ClientInfo)
    );
    assert_eq!(client.phase(), Phase::AwaitNameAck);
}

#[test]
fn offer_name_refused_while_waiting_or_established() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Little, t0);
    client.offer_name(name("amy"), t0, &mut out).unwrap();
    client.offer_name(name("amy3"), t0, &mut out).unwrap(); // replaces, not sent yet
    client
        .handle(&Pdu::ping(ByteOrder::Little), t0, &mut out)
        .unwrap();
    client
        .handle(&Pdu::server_version(ByteOrder::Little, 1), t0, &mut out)
        .unwrap();
    assert_eq!(out[2].client_info_name(), b"amy3");
    assert_eq!(
        client.offer_name(name("x"), t0, &mut out),
        Err(ClientError::WrongPhase(Phase::AwaitNameAck))
    );
    let est = established(ByteOrder::Little, t0);
    let mut est = est;
    assert_eq!(
        est.offer_name(name("x"), t0, &mut out),
        Err(ClientError::WrongPhase(Phase::Established))
    );
}

#[test]
fn requests_before_established_are_refused() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Little, t0);
    let wrong = Err(ClientError::WrongPhase(Phase::AwaitPong));
    assert_eq!(client.join(&ch("@c"), t0, &mut out), wrong);
    assert_eq!(client.leave(t0, &mut out), wrong);
    assert_eq!(client.send_message(b"hi", t0, &mut out), wrong);
    assert_eq!(client.query(t0, &mut out), wrong);
    assert_eq!(client.ping(t0, &mut out), wrong);
    assert_eq!(out.len(), 1);
}

#[test]
fn idle_client_ignores_everything() {
    let t0 = Instant::now();
    let mut client = Client::new(Settings::default());
    let mut out: Vec<Pdu> = Vec::new();
    assert_eq!(
        client.handle(&Pdu::ping(ByteOrder::Little), t0, &mut out),
        Ok(None)
    );
    assert_eq!(client.poll(t0 + 100 * S, &mut out), Ok(()));
    assert_eq!(client.next_wakeup(), None);
    assert!(out.is_empty());
}

// --- Set-up deadlines. ---

#[test]
fn pong_deadline() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Little, t0);
    assert_eq!(client.next_wakeup(), Some(t0 + 30 * S));
    assert_eq!(client.poll(t0 + 29 * S, &mut out), Ok(()));
    assert_eq!(
        client.poll(t0 + 30 * S, &mut out),
        Err(ClientError::Timeout(Waiting::Pong))
    );
    assert_eq!(client.phase(), Phase::Closed);
    assert_eq!(out.len(), 1, "nothing sent on a deadline");
}

#[test]
fn server_version_deadline_runs_from_pong() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Little, t0);
    client
        .handle(&Pdu::ping(ByteOrder::Little), t0 + 10 * S, &mut out)
        .unwrap();
    assert_eq!(client.next_wakeup(), Some(t0 + 40 * S));
    assert_eq!(client.poll(t0 + 39 * S, &mut out), Ok(()));
    assert_eq!(
        client.poll(t0 + 40 * S, &mut out),
        Err(ClientError::Timeout(Waiting::ServerVersion))
    );
}

#[test]
fn name_deadline_runs_from_our_version() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Little, t0);
    client
        .handle(&Pdu::ping(ByteOrder::Little), t0, &mut out)
        .unwrap();
    client
        .handle(&Pdu::server_version(ByteOrder::Little, 1), t0 + S, &mut out)
        .unwrap();
    assert_eq!(client.next_wakeup(), Some(t0 + 31 * S));
    client
        .offer_name(name("amy"), t0 + 20 * S, &mut out)
        .unwrap();
    assert_eq!(client.next_wakeup(), Some(t0 + 31 * S));
    assert_eq!(
        client.poll(t0 + 31 * S, &mut out),
        Err(ClientError::Timeout(Waiting::NameAccepted))
    );
}

#[test]
fn configurable_and_zero_setup_deadline() {
    let t0 = Instant::now();
    let mut client = Client::new(Settings {
        setup_timeout: Duration::from_millis(500),
        ..Settings::default()
    });
    let mut out: Vec<Pdu> = Vec::new();
    client.start(t0, &mut out);
    assert_eq!(client.next_wakeup(), Some(t0 + Duration::from_millis(500)));

    let mut off = Client::new(Settings {
        setup_timeout: Duration::ZERO,
        ..Settings::default()
    });
    off.start(t0, &mut out);
    assert_eq!(off.next_wakeup(), None);
    assert_eq!(off.poll(t0 + 1000 * S, &mut out), Ok(()));
    assert_eq!(off.phase(), Phase::AwaitPong);
}

// --- Channels. ---

#[test]
fn join_sends_username_and_channel() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Big, t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.join(&ch("@rust"), t0, &mut out).unwrap();
    assert_eq!(out, [Pdu::join(ByteOrder::Big, b"amy", &ch("@rust"))]);
    assert_eq!(client.joins_in_flight(), 1);
    assert_eq!(client.channel(), None, "only the ack changes the channel");
    let ack = Pdu::channel_ack(Command::JoinChannel, ByteOrder::Big, &ch("@rust"));
    assert_eq!(
        client.handle(&ack, t0, &mut out),
        Ok(Some(Event::Joined {
            channel: ch("@rust")
        }))
    );
    assert_eq!(client.channel(), Some(&ch("@rust")));
    assert!(client.is_settled());
}

#[test]
fn channel_acks_without_a_valid_channel_are_ignored() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.join(&ch("@c"), t0, &mut out).unwrap();
    for command in [Command::JoinChannel, Command::LeaveChannel] {
        let ack = Pdu::channel_ack(command, ByteOrder::Little, &ch("@c"));
        let mut no_at = ack.clone();
        no_at.bytes_mut()[11] = b'#';
        let mut empty = ack.clone();
        empty.bytes_mut()[11..13].fill(0);
        let mut too_long = Pdu::channel_ack(command, ByteOrder::Little, &ch(&"@".repeat(50)));
        too_long.bytes_mut()[61] = b'x';
        for bad in [no_at, empty, too_long] {
            assert_eq!(
                unexpected(client.handle(&bad, t0, &mut out)),
                Unexpected::InvalidChannel(command)
            );
        }
        assert_eq!(
            client.joins_in_flight(),
            1,
            "still waiting for the JOIN's answer"
        );
        assert_eq!(client.channel(), None);
    }
}

#[test]
fn join_another_channel_switches() {
    let t0 = Instant::now();
    let mut client = in_channel(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.join(&ch("@d"), t0, &mut out).unwrap();
    assert_eq!(client.channel(), Some(&ch("@c")));
    let ack = Pdu::channel_ack(Command::JoinChannel, ByteOrder::Little, &ch("@d"));
    client.handle(&ack, t0, &mut out).unwrap();
    assert_eq!(client.channel(), Some(&ch("@d")));
}

#[test]
fn forged_channel_acks_are_ignored() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.join(&ch("@c"), t0, &mut out).unwrap();
    let forged = Pdu::join(ByteOrder::Little, b"eve", &ch("@c"));
    assert_eq!(
        unexpected(client.handle(&forged, t0, &mut out)),
        Unexpected::NotFromServer(Command::JoinChannel)
    );
    assert_eq!(client.channel(), None);
    assert_eq!(client.joins_in_flight(), 1);
    let join_ack = Pdu::channel_ack(Command::JoinChannel, ByteOrder::Little, &ch("@c"));
    client.handle(&join_ack, t0, &mut out).unwrap();
    client.leave(t0, &mut out).unwrap();
    let mut forged_leave = forged.clone();
    forged_leave.bytes_mut()[256..260].copy_from_slice(&[6, 0, 0, 0]);
    assert_eq!(
        unexpected(client.handle(&forged_leave, t0, &mut out)),
        Unexpected::NotFromServer(Command::LeaveChannel)
    );
    assert_eq!(client.channel(), Some(&ch("@c")));
    assert_eq!(client.leaves_in_flight(), 1);
}

#[test]
fn channel_acks_are_the_servers_word_even_unasked() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    let join_ack = Pdu::channel_ack(Command::JoinChannel, ByteOrder::Little, &ch("@c"));
    assert_eq!(
        client.handle(&join_ack, t0, &mut out),
        Ok(Some(Event::Joined { channel: ch("@c") }))
    );
    assert_eq!(client.channel(), Some(&ch("@c")));
    // A LEAVE_CHANNEL nobody asked for: an operator removed us (v2 section 5).
    let leave_ack = Pdu::channel_ack(Command::LeaveChannel, ByteOrder::Little, &ch("@c"));
    assert_eq!(
        client.handle(&leave_ack, t0, &mut out),
        Ok(Some(Event::Removed { channel: ch("@c") }))
    );
    assert_eq!(client.channel(), None);
    assert!(client.is_settled());
    assert!(out.is_empty());
    // Not before the connection is established.
    let (mut early, mut out) = started(ByteOrder::Little, t0);
    assert_eq!(
        unexpected(early.handle(&join_ack, t0, &mut out)),
        Unexpected::Unsolicited(Command::JoinChannel)
    );
    assert_eq!(
        unexpected(early.handle(&leave_ack, t0, &mut out)),
        Unexpected::Unsolicited(Command::LeaveChannel)
    );
}

#[test]
fn error_notice_refuses_the_oldest_join_or_leave() {
    let t0 = Instant::now();
    let mut client = in_channel(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.leave(t0, &mut out).unwrap();
    client.join(&ch("@d"), t0, &mut out).unwrap();
    assert_eq!(
        (client.leaves_in_flight(), client.joins_in_flight()),
        (1, 1)
    );
    let err = Pdu::notice(ByteOrder::Little, None, b"error: not in a channel");
    assert_eq!(
        client.handle(&err, t0, &mut out),
        Ok(Some(Event::Refused {
            request: Request::Leave,
            reason: b"not in a channel"
        }))
    );
    assert_eq!(client.channel(), Some(&ch("@c")), "nothing changed");
    let err = Pdu::notice(ByteOrder::Little, None, b"error: invalid channel name");
    assert_eq!(
        client.handle(&err, t0, &mut out),
        Ok(Some(Event::Refused {
            request: Request::Join,
            reason: b"invalid channel name"
        }))
    );
    assert!(client.is_settled());
    // With nothing pending, an error notice is just a notice.
    assert!(matches!(
        client.handle(&err, t0, &mut out),
        Ok(Some(Event::Notice { is_error: true, .. }))
    ));
}

#[test]
fn error_notice_after_a_message_is_not_taken_as_a_refusal() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.join(&ch("@c"), t0, &mut out).unwrap();
    client.send_message(b"hi", t0, &mut out).unwrap();
    let err = Pdu::notice(ByteOrder::Little, Some(&ch("@c")), b"error: slow down");
    assert!(matches!(
        client.handle(&err, t0, &mut out),
        Ok(Some(Event::Notice { is_error: true, .. }))
    ));
    assert_eq!(client.joins_in_flight(), 1);
    let ack = Pdu::channel_ack(Command::JoinChannel, ByteOrder::Little, &ch("@c"));
    client.handle(&ack, t0, &mut out).unwrap();
    assert!(client.is_settled());
    // Once all are answered, refusals are recognised again.
    client.leave(t0, &mut out).unwrap();
    assert!(matches!(
        client.handle(&err, t0, &mut out),
        Ok(Some(Event::Refused {
            request: Request::Leave,
            ..
        }))
    ));
}

#[test]
fn pending_channel_requests_are_bounded() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    for i in 0..MAX_PENDING_REQUESTS {
        if i % 2 == 0 {
            client.join(&ch("@c"), t0, &mut out).unwrap();
        } else {
            client.leave(t0, &mut out).unwrap();
        }
    }
    assert_eq!(
        (client.joins_in_flight(), client.leaves_in_flight()),
        (16, 16)
    );
    assert_eq!(
        client.join(&ch("@c"), t0, &mut out),
        Err(ClientError::TooManyPending)
    );
    assert_eq!(client.leave(t0, &mut out), Err(ClientError::TooManyPending));
    assert_eq!(out.len(), 32);
    let err = Pdu::notice(ByteOrder::Little, None, b"error: x");
    for i in 0..32 {
        let want = if i % 2 == 0 {
            Request::Join
        } else {
            Request::Leave
        };
        match client.handle(&err, t0, &mut out) {
            Ok(Some(Event::Refused { request, .. })) => assert_eq!(request, want),
            other => panic!("{other:?}"),
        }
    }
    assert!(client.is_settled());
}

#[test]
fn channel_requests_are_not_timed() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.join(&ch("@c"), t0, &mut out).unwrap();
    assert_eq!(
        client.next_wakeup(),
        Some(t0 + 30 * S),
        "only the keep-alive"
    );
    client.poll(t0 + 30 * S, &mut out).unwrap();
    assert_eq!(out.last(), Some(&Pdu::ping(ByteOrder::Little)));
}

#[test]
fn leave() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    assert_eq!(client.leave(t0, &mut out), Err(ClientError::NotInChannel));
    let mut client = in_channel(ByteOrder::Little, t0);
    client.leave(t0, &mut out).unwrap();
    assert_eq!(out, [Pdu::leave(ByteOrder::Little)]);
    assert_eq!(client.leaves_in_flight(), 1);
    let ack = Pdu::channel_ack(Command::LeaveChannel, ByteOrder::Little, &ch("@c"));
    assert_eq!(
        client.handle(&ack, t0, &mut out),
        Ok(Some(Event::Left { channel: ch("@c") }))
    );
    assert_eq!(client.channel(), None);
    assert!(client.is_settled());
}

#[test]
fn leave_allowed_while_join_pending() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.join(&ch("@c"), t0, &mut out).unwrap();
    assert!(client.leave(t0, &mut out).is_ok());
    // The LEAVE went out after the JOIN, and both wait for their answers.
    assert_eq!(out.len(), 2);
    assert_eq!(out[1], Pdu::leave(ByteOrder::Little));
    assert_eq!(client.owed.len, 2);
    assert_eq!(client.owed.joins(), 1);
}

// --- Messages and queries. ---

#[test]
fn send_message_checks() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    assert_eq!(
        client.send_message(b"hi", t0, &mut out),
        Err(ClientError::NotInChannel)
    );
    client.join(&ch("@c"), t0, &mut out).unwrap();
    out.clear();
    assert_eq!(
        client.send_message(b"", t0, &mut out),
        Err(ClientError::EmptyMessage)
    );
    assert_eq!(
        client.send_message(b"a\0b", t0, &mut out),
        Err(ClientError::MessageHasNul)
    );
    assert_eq!(
        client.send_message(&[b'x'; 2001], t0, &mut out),
        Err(ClientError::MessageTooLong { len: 2001 })
    );
    assert!(out.is_empty());
    // Allowed while the JOIN is on its way: the server handles PDUs in order.
    client.send_message(b"hello", t0, &mut out).unwrap();
    client.send_message(&[b'x'; 2000], t0, &mut out).unwrap();
    assert_eq!(out[0], Pdu::send_message(ByteOrder::Little, b"hello"));
    assert_eq!(out[1].params_text().len(), 2000);
    assert!(out[0].prefix().iter().all(|&b| b == 0), "prefix is zero");
    assert_eq!(client.joins_in_flight(), 1, "no ack owed for a message");
}

#[test]
fn query_answer_is_messages_notices_then_up_to_date() {
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let t0 = Instant::now();
        let mut client = in_channel(order, t0);
        let mut out: Vec<Pdu> = Vec::new();
        client.query(t0, &mut out).unwrap();
        assert_eq!(out, [Pdu::query(order)]);
        assert_eq!(client.queries_in_flight(), 1);

        let msg = Pdu::receive(order, b"bob", Some(&ch("@c")), b"hi amy");
        assert_eq!(
            client.handle(&msg, t0, &mut out),
            Ok(Some(Event::Message {
                sender: b"bob",
                channel: b"@c",
                text: b"hi amy",
                time: 0,
                own: false
            }))
        );
        let joined = Pdu::notice(order, Some(&ch("@c")), b"bob joined");
        assert_eq!(
            client.handle(&joined, t0, &mut out),
            Ok(Some(Event::Notice {
                channel: b"@c",
                text: b"bob joined",
                is_error: false,
                time: 0
            }))
        );
        let long = Pdu::receive(order, b"bob", Some(&ch("@c")), &[b'z'; 2000]);
        match client.handle(&long, t0, &mut out) {
            Ok(Some(Event::Message { text, .. })) => assert_eq!(text.len(), 2000),
            other => panic!("{other:?}"),
        }
        assert_eq!(client.queries_in_flight(), 1);
        let done = Pdu::up_to_date_marker(order, Some(&ch("@c")));
        assert_eq!(
            client.handle(&done, t0, &mut out),
            Ok(Some(Event::UpToDate { channel: b"@c" }))
        );
        assert_eq!(client.queries_in_flight(), 0);
        assert!(client.is_settled());
        assert_eq!(
            unexpected(client.handle(&done, t0, &mut out)),
            Unexpected::Unsolicited(Command::ReceiveMessage)
        );
    }
}

#[test]
fn query_outside_a_channel_and_forged_up_to_date() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.query(t0, &mut out).unwrap();
    let mut forged = Pdu::up_to_date_marker(ByteOrder::Little, None);
    forged.set_username(b"eve");
    assert_eq!(
        unexpected(client.handle(&forged, t0, &mut out)),
        Unexpected::Unsolicited(Command::ReceiveMessage)
    );
    assert_eq!(client.queries_in_flight(), 1);
    let done = Pdu::up_to_date_marker(ByteOrder::Little, None);
    assert_eq!(
        client.handle(&done, t0, &mut out),
        Ok(Some(Event::UpToDate { channel: b"" }))
    );
}

#[test]
fn error_notice_once_established() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    let err = Pdu::notice(ByteOrder::Little, None, b"error: not in a channel");
    assert_eq!(
        client.handle(&err, t0, &mut out),
        Ok(Some(Event::Notice {
            channel: b"",
            text: b"error: not in a channel",
            is_error: true,
            time: 0
        }))
    );
    assert!(client.is_established());
}

#[test]
fn several_queries_in_flight() {
    let t0 = Instant::now();
    let mut client = in_channel(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.query(t0, &mut out).unwrap();
    client.query(t0, &mut out).unwrap();
    assert_eq!(client.queries_in_flight(), 2);
    let done = Pdu::up_to_date_marker(ByteOrder::Little, Some(&ch("@c")));
    client.handle(&done, t0, &mut out).unwrap();
    assert_eq!(client.queries_in_flight(), 1);
    client.handle(&done, t0, &mut out).unwrap();
    assert_eq!(client.queries_in_flight(), 0);
}

// --- Keep-alive, automatic queries, reply deadline. ---

#[test]
fn automatic_query_in_a_channel() {
    let t0 = Instant::now();
    let mut client = in_channel(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    // Right after the join ack: query at once for the history.
    assert_eq!(client.next_wakeup(), Some(t0));
    client.poll(t0, &mut out).unwrap();
    assert_eq!(out, [Pdu::query(ByteOrder::Little)]);
    // Answer outstanding: only the reply deadline is scheduled.
    assert_eq!(client.next_wakeup(), Some(t0 + 30 * S));
    client.poll(t0 + 5 * S, &mut out).unwrap();
    assert_eq!(out.len(), 1, "one automatic QUERY at a time");
    let done = Pdu::up_to_date_marker(ByteOrder::Little, Some(&ch("@c")));
    client.handle(&done, t0 + 5 * S, &mut out).unwrap();
    // Overdue (interval 3 s passed): due now.
    assert_eq!(client.next_wakeup(), Some(t0 + 3 * S));
    client.poll(t0 + 5 * S, &mut out).unwrap();
    assert_eq!(out.len(), 2);
    client.handle(&done, t0 + 5 * S, &mut out).unwrap();
    assert_eq!(client.next_wakeup(), Some(t0 + 8 * S));
    client.poll(t0 + 7 * S, &mut out).unwrap();
    assert_eq!(out.len(), 2);
    client.poll(t0 + 8 * S, &mut out).unwrap();
    assert_eq!(out.len(), 3);
}

#[test]
fn manual_query_reschedules_the_automatic_one() {
    let t0 = Instant::now();
    let mut client = in_channel(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.query(t0 + S, &mut out).unwrap();
    let done = Pdu::up_to_date_marker(ByteOrder::Little, Some(&ch("@c")));
    client.handle(&done, t0 + S, &mut out).unwrap();
    assert_eq!(client.next_wakeup(), Some(t0 + 4 * S));
}

#[test]
fn no_automatic_query_without_interval() {
    let t0 = Instant::now();
    let mut client = Client::new(Settings {
        query_interval: None,
        keepalive_interval: Some(10 * S),
        ..Settings::default()
    });
    let mut out: Vec<Pdu> = Vec::new();
    client.offer_name(name("amy"), t0, &mut out).unwrap();
    client.start(t0, &mut out);
    client
        .handle(&Pdu::ping(ByteOrder::Little), t0, &mut out)
        .unwrap();
    client
        .handle(&Pdu::server_version(ByteOrder::Little, 1), t0, &mut out)
        .unwrap();
    client
        .handle(
            &Pdu::client_info_ack(ByteOrder::Little, b"amy"),
            t0,
            &mut out,
        )
        .unwrap();
    client.join(&ch("@c"), t0, &mut out).unwrap();
    let ack = Pdu::channel_ack(Command::JoinChannel, ByteOrder::Little, &ch("@c"));
    client.handle(&ack, t0, &mut out).unwrap();
    out.clear();
    // In a channel but querying is the caller's: keep-alive PING instead.
    assert_eq!(client.next_wakeup(), Some(t0 + 10 * S));
    client.poll(t0 + 10 * S, &mut out).unwrap();
    assert_eq!(out, [Pdu::ping(ByteOrder::Little)]);
}

#[test]
fn keepalive_ping_outside_a_channel() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Big, t0);
    let mut out: Vec<Pdu> = Vec::new();
    assert_eq!(client.next_wakeup(), Some(t0 + 30 * S));
    client.poll(t0 + 29 * S, &mut out).unwrap();
    assert!(out.is_empty());
    client.poll(t0 + 30 * S, &mut out).unwrap();
    assert_eq!(out, [Pdu::ping(ByteOrder::Big)]);
    // Waiting for the PONG: no second PING, only the reply deadline.
    assert_eq!(client.next_wakeup(), Some(t0 + 60 * S));
    assert_eq!(
        client.handle(&Pdu::ping(ByteOrder::Big), t0 + 31 * S, &mut out),
        Ok(Some(Event::Pong))
    );
    assert!(client.is_settled());
    assert_eq!(client.next_wakeup(), Some(t0 + 60 * S));
    // Anything sent counts as activity.
    client.join(&ch("@c"), t0 + 40 * S, &mut out).unwrap();
    let ack = Pdu::channel_ack(Command::JoinChannel, ByteOrder::Big, &ch("@c"));
    client.handle(&ack, t0 + 40 * S, &mut out).unwrap();
    client.leave(t0 + 41 * S, &mut out).unwrap();
    let ack = Pdu::channel_ack(Command::LeaveChannel, ByteOrder::Big, &ch("@c"));
    client.handle(&ack, t0 + 41 * S, &mut out).unwrap();
    assert_eq!(client.next_wakeup(), Some(t0 + 71 * S));
}

#[test]
fn keepalive_ping_in_a_channel_when_queries_are_rarer() {
    // A query interval longer than the server's idle deadline must not get the client
    // dropped: the keep-alive runs in a channel too, counted from the last PDU sent.
    let t0 = Instant::now();
    let mut client = Client::new(Settings {
        query_interval: Some(200 * S),
        keepalive_interval: Some(30 * S),
        ..Settings::default()
    });
    let order = ByteOrder::Little;
    let mut out: Vec<Pdu> = Vec::new();
    client.offer_name(name("amy"), t0, &mut out).unwrap();
    client.start(t0, &mut out);
    client.handle(&Pdu::ping(order), t0, &mut out).unwrap();
    client
        .handle(&Pdu::server_version(order, 1), t0, &mut out)
        .unwrap();
    client
        .handle(&Pdu::client_info_ack(order, b"amy"), t0, &mut out)
        .unwrap();
    client.join(&ch("@c"), t0, &mut out).unwrap();
    let ack = Pdu::channel_ack(Command::JoinChannel, order, &ch("@c"));
    client.handle(&ack, t0, &mut out).unwrap();
    client.poll(t0, &mut out).unwrap();
    let done = Pdu::up_to_date_marker(order, Some(&ch("@c")));
    client.handle(&done, t0, &mut out).unwrap();
    out.clear();

    assert_eq!(client.next_wakeup(), Some(t0 + 30 * S));
    client.poll(t0 + 29 * S, &mut out).unwrap();
    assert!(out.is_empty());
    client.poll(t0 + 30 * S, &mut out).unwrap();
    assert_eq!(out, [Pdu::ping(order)]);
    // Waiting for the PONG: only the reply deadline.
    assert_eq!(client.next_wakeup(), Some(t0 + 60 * S));
    client
        .handle(&Pdu::ping(order), t0 + 31 * S, &mut out)
        .unwrap();
    assert_eq!(client.next_wakeup(), Some(t0 + 60 * S));
    // A message sent counts as activity.
    client.send_message(b"hi", t0 + 50 * S, &mut out).unwrap();
    assert_eq!(client.next_wakeup(), Some(t0 + 80 * S));
    // The QUERY still comes on its own schedule, and resets the keep-alive.
    client.poll(t0 + 80 * S, &mut out).unwrap();
    client
        .handle(&Pdu::ping(order), t0 + 80 * S, &mut out)
        .unwrap();
    for at in [110, 140, 170] {
        client.poll(t0 + at * S, &mut out).unwrap();
        client
            .handle(&Pdu::ping(order), t0 + at * S, &mut out)
            .unwrap();
    }
    out.clear();
    client.poll(t0 + 200 * S, &mut out).unwrap();
    assert_eq!(out, [Pdu::query(order)]);
    client.handle(&done, t0 + 200 * S, &mut out).unwrap();
    assert_eq!(client.next_wakeup(), Some(t0 + 230 * S));
}

#[test]
fn unsolicited_pong_is_ignored() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    assert_eq!(
        unexpected(client.handle(&Pdu::ping(ByteOrder::Little), t0, &mut out)),
        Unexpected::Unsolicited(Command::PingPong)
    );
}

#[test]
fn reply_deadline() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.query(t0, &mut out).unwrap();
    client.ping(t0 + S, &mut out).unwrap();
    assert_eq!(
        client.next_wakeup(),
        Some(t0 + 30 * S),
        "runs from the oldest"
    );
    let done = Pdu::up_to_date_marker(ByteOrder::Little, None);
    client.handle(&done, t0 + 10 * S, &mut out).unwrap();
    assert_eq!(
        client.next_wakeup(),
        Some(t0 + 40 * S),
        "restarted by progress"
    );
    assert_eq!(
        client.poll(t0 + 40 * S, &mut out),
        Err(ClientError::Timeout(Waiting::Reply))
    );
    assert_eq!(client.phase(), Phase::Closed);
}

// --- Quit and close. ---

#[test]
fn quit_sends_quit_once_and_closes() {
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let t0 = Instant::now();
        let mut client = in_channel(order, t0);
        let mut out: Vec<Pdu> = Vec::new();
        client.quit(t0, &mut out);
        client.quit(t0, &mut out);
        assert_eq!(out, [Pdu::quit(order)]);
        assert_eq!(client.phase(), Phase::Closed);
        assert_eq!(client.next_wakeup(), None);
        let msg = Pdu::receive(order, b"bob", Some(&ch("@c")), b"late");
        assert_eq!(client.handle(&msg, t0, &mut out), Ok(None));
        assert_eq!(client.poll(t0 + 1000 * S, &mut out), Ok(()));
        assert_eq!(
            client.query(t0, &mut out),
            Err(ClientError::WrongPhase(Phase::Closed))
        );
        assert_eq!(out.len(), 1);
    }
}

#[test]
fn quit_during_setup() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Big, t0);
    client.quit(t0, &mut out);
    assert_eq!(out.last(), Some(&Pdu::quit(ByteOrder::Big)));
    assert_eq!(client.phase(), Phase::Closed);
}

// --- What a misbehaving server can send. ---

#[test]
fn wrong_byte_order_is_an_unknown_command() {
    let t0 = Instant::now();
    let (mut client, mut out) = started(ByteOrder::Big, t0);
    let le_pong = Pdu::ping(ByteOrder::Little);
    assert_eq!(
        unexpected(client.handle(&le_pong, t0, &mut out)),
        Unexpected::UnknownCommand([7, 0, 0, 0])
    );
    assert_eq!(client.phase(), Phase::AwaitPong);
    let mut odd = Pdu::ping(ByteOrder::Big);
    odd.bytes_mut()[256..260].copy_from_slice(&[0, 0, 0, 15]);
    assert_eq!(
        unexpected(client.handle(&odd, t0, &mut out)),
        Unexpected::UnknownCommand([0, 0, 0, 15])
    );
}

#[test]
fn client_only_commands_from_the_server_are_ignored() {
    let t0 = Instant::now();
    let mut client = in_channel(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    for pdu in [
        Pdu::quit(ByteOrder::Little),
        Pdu::send_message(ByteOrder::Little, b"x"),
        Pdu::query(ByteOrder::Little),
    ] {
        let cmd = command_of(&pdu, ByteOrder::Little);
        assert_eq!(
            unexpected(client.handle(&pdu, t0, &mut out)),
            Unexpected::ClientCommand(cmd)
        );
    }
    assert!(client.is_established());
    assert!(out.is_empty());
}

#[test]
fn setup_pdus_after_setup_are_ignored() {
    let t0 = Instant::now();
    let mut client = established(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    for pdu in [
        Pdu::server_version(ByteOrder::Little, 1),
        Pdu::client_info_ack(ByteOrder::Little, b"amy"),
    ] {
        assert!(matches!(
            unexpected(client.handle(&pdu, t0, &mut out)),
            Unexpected::Unsolicited(_)
        ));
    }
    assert!(out.is_empty());
    assert!(client.is_established());
}

#[test]
fn garbage_after_nul_and_full_fields() {
    let t0 = Instant::now();
    let mut client = in_channel(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.query(t0, &mut out).unwrap();
    let mut msg = Pdu::receive(ByteOrder::Little, b"bob", Some(&ch("@c")), b"hi");
    msg.bytes_mut()[4..10].copy_from_slice(b"\0junk!");
    msg.bytes_mut()[260 + 3..260 + 8].copy_from_slice(b"trash");
    assert_eq!(
        client.handle(&msg, t0, &mut out),
        Ok(Some(Event::Message {
            sender: b"bob",
            channel: b"@c",
            text: b"hi",
            time: 0,
            own: false
        }))
    );
    // Every byte set: fields run to their ends, nothing panics.
    let mut full = Pdu::receive(ByteOrder::Little, b"", None, b"");
    full.bytes_mut()[..256].fill(b'A');
    full.bytes_mut()[61] = 0;
    full.bytes_mut()[260..].fill(0xff);
    match client.handle(&full, t0, &mut out) {
        Ok(Some(Event::Message {
            sender,
            channel,
            text,
            ..
        })) => {
            assert_eq!(sender.len(), 10);
            assert_eq!(channel.len(), 50);
            assert_eq!(text.len(), 2000);
        }
        other => panic!("{other:?}"),
    }
}

/// A small deterministic generator, so that the no-panic sweep needs no crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_server_pdus_never_panic_in_any_phase() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let t0 = Instant::now();
    for round in 0..2000u64 {
        let order = if round % 2 == 0 {
            ByteOrder::Little
        } else {
            ByteOrder::Big
        };
        let mut client = match round % 7 {
            0 => Client::new(settings(order)),
            1 => started(order, t0).0,
            2 => {
                let (mut c, mut out) = started(order, t0);
                c.handle(&Pdu::ping(order), t0, &mut out).unwrap();
                c
            }
            3 => established(order, t0),
            4 => in_channel(order, t0),
            // Version 2 (little-endian only, as the helper sets up), with requests owed.
            _ if order == ByteOrder::Big => in_channel(order, t0),
            5 => established_v2(t0),
            _ => {
                let (mut c, mut out) = in_channel_v2(t0);
                c.list_channels(t0, &mut out).unwrap();
                c.names(None, t0, &mut out).unwrap();
                c.kick(None, &name("bob"), b"x", t0, &mut out).unwrap();
                c.oper(b"pw", t0, &mut out).unwrap();
                c
            }
        };
        let mut out: Vec<u8> = Vec::new();
        for step in 0..20u64 {
            let mut bytes = [0u8; PDU_LEN];
            // Mostly plausible commands with random fields, sometimes pure noise.
            let noise = rng.next().is_multiple_of(4);
            for chunk in bytes.chunks_mut(8) {
                let r = rng.next().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
            if !noise {
                // Every code of both versions, and one past them.
                let code = (rng.next() % 16) as u32;
                let raw = match order {
                    ByteOrder::Little => code.to_le_bytes(),
                    ByteOrder::Big => code.to_be_bytes(),
                };
                bytes[256..260].copy_from_slice(&raw);
                if rng.next().is_multiple_of(2) {
                    bytes[..10].copy_from_slice(b"SERVER\0\0\0\0");
                }
                bytes[61] = (rng.next() % 3) as u8;
                bytes[62] = (rng.next() % 3) as u8;
            }
            let pdu = Pdu::from_bytes(bytes);
            let now = t0 + Duration::from_millis(step * 700);
            let _ = client.handle(&pdu, now, &mut out);
            let _ = client.poll(now, &mut out);
            let _ = client.query(now, &mut out);
            assert_eq!(out.len() % PDU_LEN, 0);
        }
    }
}

// --- What the errors say. ---

#[test]
fn refusals_say_what_was_wrong_and_the_limit() {
    let t0 = Instant::now();
    let text = |r: Result<(), ClientError>| r.unwrap_err().to_string();
    let (mut early, mut out) = started(ByteOrder::Little, t0);
    assert_eq!(
        text(early.send_message(b"hi", t0, &mut out)),
        "not possible while waiting for the server's PONG"
    );
    let mut idle = Client::new(settings(ByteOrder::Little));
    assert_eq!(
        text(idle.query(t0, &mut out)),
        "not possible before the connection is started"
    );
    let mut client = established(ByteOrder::Little, t0);
    assert_eq!(
        text(client.offer_name(name("bob"), t0, &mut out)),
        "not possible once the connection is established"
    );
    assert_eq!(
        text(client.leave(t0, &mut out)),
        "not in a channel: join one first"
    );
    client.join(&ch("@c"), t0, &mut out).unwrap();
    assert_eq!(
        text(client.send_message(b"", t0, &mut out)),
        "message is empty: a message is 1 to 2000 bytes"
    );
    assert_eq!(
        text(client.send_message(&[b'x'; 2500], t0, &mut out)),
        "message is too long: 2500 bytes, the limit is 2000"
    );
    assert_eq!(
        text(client.send_message(b"a\0b", t0, &mut out)),
        "message contains a NUL byte, which would end it on the wire: any byte but NUL is \
         allowed"
    );
    for _ in 1..MAX_PENDING_REQUESTS {
        client.join(&ch("@c"), t0, &mut out).unwrap();
    }
    assert_eq!(
        text(client.join(&ch("@c"), t0, &mut out)),
        "too many requests waiting for an answer: at most 32"
    );
    client.quit(t0, &mut out);
    assert_eq!(
        text(client.query(t0, &mut out)),
        "not possible after the connection is closed"
    );
    assert_eq!(
        ClientError::NoCommonVersion { server_highest: 0 }.to_string(),
        "no common protocol version: the server speaks up to version 0, this client speaks \
         version 2"
    );
}

// --- Cutting long messages. ---

#[test]
fn cut_message_on_char_boundary() {
    let short = "héllo".as_bytes();
    assert_eq!(cut_message(short), (short, false));
    let exact = vec![b'a'; 2000];
    assert_eq!(cut_message(&exact), (&exact[..], false));
    let long = vec![b'a'; 2500];
    assert_eq!(cut_message(&long).0.len(), 2000);
    assert!(cut_message(&long).1);
    // A 2-, 3- and 4-byte character straddling byte 2000 is left out whole.
    for ch in ["é", "€", "🦀"] {
        for pad in 0..4 {
            let mut text = "a".repeat(1997 + pad);
            while text.len() <= 2000 {
                text.push_str(ch);
            }
            text.push_str("tail");
            let (cut, was_cut) = cut_message(text.as_bytes());
            assert!(was_cut);
            assert!(cut.len() <= 2000 && cut.len() > 2000 - ch.len());
            assert!(std::str::from_utf8(cut).is_ok(), "{ch} pad {pad}");
        }
    }
    // Not UTF-8: cut at the byte limit.
    let bin = vec![0x80u8; 2100];
    assert_eq!(cut_message(&bin).0.len(), 2000);
}

#[test]
fn outbox_for_bytes() {
    let mut bytes: Vec<u8> = Vec::new();
    bytes.send(&Pdu::ping(ByteOrder::Big));
    assert_eq!(bytes.len(), PDU_LEN);
    assert_eq!(&bytes[256..260], &[0, 0, 0, 7]);
}

// --- Version 2. ---

/// An established version-2 client named `amy` (default settings), its outbox cleared.
fn established_v2(t0: Instant) -> Client {
    let order = ByteOrder::Little;
    let (mut client, mut out) = started(order, t0);
    client.offer_name(name("amy"), t0, &mut out).unwrap();
    client.handle(&Pdu::ping(order), t0, &mut out).unwrap();
    let version = Pdu::server_version(order, 2);
    let ev = client.handle(&version, t0, &mut out);
    assert_eq!(ev, Ok(Some(Event::VersionAgreed { version: 2 })));
    let ack = Pdu::client_info_ack(order, b"amy");
    client.handle(&ack, t0, &mut out).unwrap();
    assert!(client.is_established());
    client
}

/// A version-2 client in `@c`, with the PDUs sent since it was established.
fn in_channel_v2(t0: Instant) -> (Client, Vec<Pdu>) {
    let mut client = established_v2(t0);
    let mut out: Vec<Pdu> = Vec::new();
    client.join(&ch("@c"), t0, &mut out).unwrap();
    let ack = Pdu::channel_ack(Command::JoinChannel, ByteOrder::Little, &ch("@c"));
    assert_eq!(
        client.handle(&ack, t0, &mut out),
        Ok(Some(Event::Joined { channel: ch("@c") }))
    );
    (client, out)
}

fn stamped(mut pdu: Pdu, ms: u64) -> Pdu {
    pdu.set_time(ms);
    pdu
}

#[test]
fn v2_does_not_poll_but_keeps_alive_with_ping() {
    let t0 = Instant::now();
    let (mut client, mut out) = in_channel_v2(t0);
    assert_eq!(commands(&out, ByteOrder::Little), [Command::JoinChannel]);
    out.clear();
    // No QUERY after the JOIN, nor 3 s later (the v1 default interval): the next thing
    // due is the keep-alive PING, a quarter of the server's 120 s idle deadline.
    assert_eq!(client.next_wakeup(), Some(t0 + 30 * S));
    client.poll(t0, &mut out).unwrap();
    client.poll(t0 + 3 * S, &mut out).unwrap();
    client.poll(t0 + 29 * S, &mut out).unwrap();
    assert!(out.is_empty());
    client.poll(t0 + 30 * S, &mut out).unwrap();
    assert_eq!(out, [Pdu::ping(ByteOrder::Little)]);
    assert_eq!(
        client.handle(&Pdu::ping(ByteOrder::Little), t0 + 30 * S, &mut out),
        Ok(Some(Event::Pong))
    );
    assert_eq!(client.next_wakeup(), Some(t0 + 60 * S));
    // Sending a message counts as activity.
    client.send_message(b"hi", t0 + 50 * S, &mut out).unwrap();
    assert_eq!(client.next_wakeup(), Some(t0 + 80 * S));
    // QUERY still works on demand (the sync point, v2 section 2).
    client.query(t0 + 51 * S, &mut out).unwrap();
    let done = Pdu::up_to_date_marker(ByteOrder::Little, Some(&ch("@c")));
    assert_eq!(
        client.handle(&done, t0 + 51 * S, &mut out),
        Ok(Some(Event::UpToDate { channel: b"@c" }))
    );
    assert!(client.is_settled());
}

#[test]
fn v1_still_polls_with_the_default_settings() {
    let t0 = Instant::now();
    let mut client = in_channel(ByteOrder::Little, t0);
    let mut out: Vec<Pdu> = Vec::new();
    assert_eq!(client.next_wakeup(), Some(t0));
    client.poll(t0, &mut out).unwrap();
    assert_eq!(out, [Pdu::query(ByteOrder::Little)]);
}

#[test]
fn v2_pushes_carry_time_stamps_and_the_echo_is_own() {
    let t0 = Instant::now();
    let (mut client, mut out) = in_channel_v2(t0);
    let order = ByteOrder::Little;
    // Pushed, with no QUERY owed: normal on v2.
    let push = stamped(
        Pdu::receive(order, b"bob", Some(&ch("@c")), b"hi"),
        1_700_000_000_123,
    );
    assert_eq!(
        client.handle(&push, t0, &mut out),
        Ok(Some(Event::Message {
            sender: b"bob",
            channel: b"@c",
            text: b"hi",
            time: 1_700_000_000_123,
            own: false
        }))
    );
    // The echo of our own message, in whatever case the server wrote the name.
    for sender in [&b"amy"[..], b"AMY"] {
        let echo = stamped(Pdu::receive(order, sender, Some(&ch("@c")), b"me"), 42);
        assert_eq!(
            client.handle(&echo, t0, &mut out),
            Ok(Some(Event::Message {
                sender,
                channel: b"@c",
                text: b"me",
                time: 42,
                own: true
            }))
        );
    }
    let joined = stamped(Pdu::notice(order, Some(&ch("@c")), b"amy joined"), 7);
    assert_eq!(
        client.handle(&joined, t0, &mut out),
        Ok(Some(Event::Notice {
            channel: b"@c",
            text: b"amy joined",
            is_error: false,
            time: 7
        }))
    );
    // A name that only starts like ours is not ours.
    let other = Pdu::receive(order, b"amyx", Some(&ch("@c")), b"x");
    assert!(matches!(
        client.handle(&other, t0, &mut out),
        Ok(Some(Event::Message { own: false, .. }))
    ));
}

#[test]
fn list_channels_answer_and_end() {
    let t0 = Instant::now();
    let mut client = established_v2(t0);
    let order = ByteOrder::Little;
    let mut out: Vec<Pdu> = Vec::new();
    client.list_channels(t0, &mut out).unwrap();
    assert_eq!(out, [Pdu::list_channels(order)]);
    assert!(!client.is_settled());
    let mut rust = Pdu::listing(Command::ListChannels, order, Some(&ch("@rust")));
    rust.set_param_u32(0, 12).set_param_u32(4, 340);
    assert_eq!(
        client.handle(&rust, t0, &mut out),
        Ok(Some(Event::Channel {
            channel: b"@rust",
            members: 12,
            history: 340
        }))
    );
    // Not from the server: ignored.
    let mut forged = rust.clone();
    forged.set_username(b"bob");
    assert_eq!(
        unexpected(client.handle(&forged, t0, &mut out)),
        Unexpected::NotFromServer(Command::ListChannels)
    );
    let end = Pdu::listing_end(Command::ListChannels, order, None, 1);
    assert_eq!(
        client.handle(&end, t0, &mut out),
        Ok(Some(Event::ChannelsEnd { count: 1 }))
    );
    assert!(client.is_settled());
    // Nothing owed any more: another listing PDU answers nothing.
    assert_eq!(
        unexpected(client.handle(&rust, t0, &mut out)),
        Unexpected::Unsolicited(Command::ListChannels)
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn names_of_the_own_or_another_channel() {
    let t0 = Instant::now();
    let (mut client, mut out) = in_channel_v2(t0);
    let order = ByteOrder::Little;
    out.clear();
    client.names(None, t0, &mut out).unwrap();
    client.names(Some(&ch("@rust")), t0, &mut out).unwrap();
    assert_eq!(out[0], Pdu::names(order, b""));
    assert_eq!(out[0].channel(), b"");
    assert_eq!(out[1].channel(), b"@rust");
    assert_eq!(commands(&out, order), [Command::Names, Command::Names]);

    let mut ops = Pdu::listing(Command::Names, order, Some(&ch("@c")));
    ops.set_params_text(b"amy");
    let mut bytes = *ops.as_bytes();
    bytes[crate::pdu::OPERATORS] = 1;
    let ops = Pdu::from_bytes(bytes);
    assert_eq!(
        client.handle(&ops, t0, &mut out),
        Ok(Some(Event::Names {
            channel: b"@c",
            operators: true,
            names: b"amy"
        }))
    );
    let mut members = Pdu::listing(Command::Names, order, Some(&ch("@c")));
    members.set_params_text(b"bob cy");
    assert_eq!(
        client.handle(&members, t0, &mut out),
        Ok(Some(Event::Names {
            channel: b"@c",
            operators: false,
            names: b"bob cy"
        }))
    );
    let end = Pdu::listing_end(Command::Names, order, Some(&ch("@c")), 3);
    assert_eq!(
        client.handle(&end, t0, &mut out),
        Ok(Some(Event::NamesEnd {
            channel: b"@c",
            count: 3
        }))
    );
    // The second NAMES is refused: the channel is not open.
    let refusal = Pdu::notice(order, None, b"error: no channel @rust");
    assert_eq!(
        client.handle(&refusal, t0, &mut out),
        Ok(Some(Event::Refused {
            request: Request::Names,
            reason: b"no channel @rust"
        }))
    );
    assert!(client.is_settled());
}

#[test]
fn kick_ban_unban_pdus_and_acknowledgements() {
    let t0 = Instant::now();
    let (mut client, mut out) = in_channel_v2(t0);
    let order = ByteOrder::Little;
    out.clear();
    client
        .kick(None, &name("bob"), b"spam", t0, &mut out)
        .unwrap();
    client
        .ban(Some(&ch("@rust")), &name("cy"), b"", t0, &mut out)
        .unwrap();
    client.unban(None, &name("cy"), t0, &mut out).unwrap();
    client
        .server_ban(&name("dan"), b"flood", t0, &mut out)
        .unwrap();
    client.server_unban(b"192.0.2.7", t0, &mut out).unwrap();
    assert_eq!(
        commands(&out, order),
        [
            Command::Kick,
            Command::Ban,
            Command::Unban,
            Command::Ban,
            Command::Unban
        ]
    );
    assert_eq!(
        out[0],
        Pdu::moderation(Command::Kick, order, b"", b"bob", b"spam")
    );
    assert_eq!(
        (out[0].channel(), out[0].target(), out[0].reason()),
        (&b""[..], &b"bob"[..], &b"spam"[..])
    );
    assert_eq!(
        (out[1].channel(), out[1].target()),
        (&b"@rust"[..], &b"cy"[..])
    );
    assert_eq!(
        (out[3].channel(), out[3].target(), out[3].reason()),
        (&b"*"[..], &b"dan"[..], &b"flood"[..])
    );
    assert_eq!(
        (out[4].channel(), out[4].params_text()),
        (&b"*"[..], &b"192.0.2.7"[..])
    );

    // The acknowledgement is the request sent back by SERVER.
    let ack = |pdu: &Pdu| {
        let mut ack = pdu.clone();
        ack.set_username(SERVER_NAME);
        ack
    };
    let kick_ack = ack(&out[0]);
    assert_eq!(
        client.handle(&kick_ack, t0, &mut out),
        Ok(Some(Event::Moderated {
            request: Request::Kick,
            channel: b"",
            target: b"bob"
        }))
    );
    // The BAN is refused.
    let refusal = Pdu::notice(order, None, b"error: you are not an operator of @rust");
    assert_eq!(
        client.handle(&refusal, t0, &mut out),
        Ok(Some(Event::Refused {
            request: Request::Ban,
            reason: b"you are not an operator of @rust"
        }))
    );
    let unban_ack = ack(&out[2]);
    assert!(matches!(
        client.handle(&unban_ack, t0, &mut out),
        Ok(Some(Event::Moderated {
            request: Request::Unban,
            target: b"cy",
            ..
        }))
    ));
    let server_ban_ack = ack(&out[3]);
    assert!(matches!(
        client.handle(&server_ban_ack, t0, &mut out),
        Ok(Some(Event::Moderated {
            request: Request::Ban,
            channel: b"*",
            target: b"dan"
        }))
    ));
    let address_ack = ack(&out[4]);
    assert!(matches!(
        client.handle(&address_ack, t0, &mut out),
        Ok(Some(Event::Moderated {
            request: Request::Unban,
            channel: b"*",
            target: b"192.0.2.7"
        }))
    ));
    assert!(client.is_settled());
    // Unasked acknowledgements and forged ones are ignored.
    assert_eq!(
        unexpected(client.handle(&kick_ack, t0, &mut out)),
        Unexpected::Unsolicited(Command::Kick)
    );
    client.kick(None, &name("bob"), b"", t0, &mut out).unwrap();
    let mut forged = kick_ack.clone();
    forged.set_username(b"bob");
    assert_eq!(
        unexpected(client.handle(&forged, t0, &mut out)),
        Unexpected::NotFromServer(Command::Kick)
    );
}

#[test]
fn moderation_reason_limits() {
    let t0 = Instant::now();
    let (mut client, mut out) = in_channel_v2(t0);
    out.clear();
    let long = vec![b'r'; MAX_REASON + 1];
    assert_eq!(
        client.kick(None, &name("bob"), &long, t0, &mut out),
        Err(ClientError::ReasonTooLong {
            len: MAX_REASON + 1
        })
    );
    assert_eq!(
        client.ban(None, &name("bob"), b"a\0b", t0, &mut out),
        Err(ClientError::MessageHasNul)
    );
    assert!(out.is_empty());
    assert!(client.is_settled());
    // The longest reason fits whole, NUL-terminated.
    let longest = vec![b'r'; MAX_REASON];
    client
        .kick(None, &name("bob"), &longest, t0, &mut out)
        .unwrap();
    assert_eq!(out[0].reason(), &longest[..]);
}

#[test]
fn oper_accepted_or_refused_late_without_timing_out() {
    let t0 = Instant::now();
    let order = ByteOrder::Little;
    let mut client = established_v2(t0);
    let mut out: Vec<Pdu> = Vec::new();
    assert_eq!(
        client.oper(b"", t0, &mut out),
        Err(ClientError::BadPassword { len: 0 })
    );
    assert_eq!(
        client.oper(&[b'p'; MAX_PASSWORD + 1], t0, &mut out),
        Err(ClientError::BadPassword {
            len: MAX_PASSWORD + 1
        })
    );
    assert_eq!(
        client.oper(b"a\0b", t0, &mut out),
        Err(ClientError::MessageHasNul)
    );
    assert!(out.is_empty());
    client.oper(b"s3cret", t0, &mut out).unwrap();
    assert_eq!(out, [Pdu::oper(order, b"s3cret")]);
    assert_eq!(out[0].params_text(), b"s3cret");
    // The refusal comes after at least a second (and the server does not read us
    // meanwhile): no deadline runs out, however late it is.
    client.poll(t0 + 2 * S, &mut out).unwrap();
    client.poll(t0 + 29 * S, &mut out).unwrap();
    let refusal = Pdu::notice(order, None, b"error: not an operator password");
    assert_eq!(
        client.handle(&refusal, t0 + 29 * S, &mut out),
        Ok(Some(Event::Refused {
            request: Request::Oper,
            reason: b"not an operator password"
        }))
    );
    client.oper(b"right", t0 + 30 * S, &mut out).unwrap();
    let mut ack = Pdu::new(Command::Oper, order);
    ack.set_username(SERVER_NAME);
    assert_eq!(
        client.handle(&ack, t0 + 31 * S, &mut out),
        Ok(Some(Event::Operator))
    );
    assert!(client.is_settled());
    assert_eq!(
        unexpected(client.handle(&ack, t0 + 31 * S, &mut out)),
        Unexpected::Unsolicited(Command::Oper)
    );
}

#[test]
fn time_stamps_are_zero_on_version_1() {
    let t0 = Instant::now();
    let order = ByteOrder::Little;
    let mut client = in_channel(order, t0);
    let mut out: Vec<Pdu> = Vec::new();
    let junk = stamped(Pdu::receive(order, b"bob", Some(&ch("@c")), b"hi"), 12_345);
    assert!(matches!(
        client.handle(&junk, t0, &mut out),
        Ok(Some(Event::Message { time: 0, .. }))
    ));
    let junk = stamped(Pdu::notice(order, Some(&ch("@c")), b"bob left"), 12_345);
    assert!(matches!(
        client.handle(&junk, t0, &mut out),
        Ok(Some(Event::Notice { time: 0, .. }))
    ));
}

#[test]
fn v2_requests_are_refused_on_a_v1_connection() {
    let t0 = Instant::now();
    let order = ByteOrder::Little;
    let mut client = in_channel(order, t0);
    let mut out: Vec<Pdu> = Vec::new();
    let v1 = Err(ClientError::NeedsVersion2 { agreed: 1 });
    assert_eq!(
        ClientError::NeedsVersion2 { agreed: 1 }.to_string(),
        "this needs protocol version 2, and this connection speaks version 1"
    );
    assert_eq!(client.list_channels(t0, &mut out), v1);
    assert_eq!(client.names(None, t0, &mut out), v1);
    assert_eq!(client.kick(None, &name("bob"), b"", t0, &mut out), v1);
    assert_eq!(client.ban(None, &name("bob"), b"", t0, &mut out), v1);
    assert_eq!(client.unban(None, &name("bob"), t0, &mut out), v1);
    assert_eq!(client.server_unban(b"192.0.2.7", t0, &mut out), v1);
    assert_eq!(client.oper(b"pw", t0, &mut out), v1);
    assert!(out.is_empty());
    assert!(client.is_settled());
    // And their server PDUs answer nothing on v1.
    let listing = Pdu::listing_end(Command::ListChannels, order, None, 0);
    assert_eq!(
        unexpected(client.handle(&listing, t0, &mut out)),
        Unexpected::Unsolicited(Command::ListChannels)
    );
    let mut ack = Pdu::new(Command::Oper, order);
    ack.set_username(SERVER_NAME);
    assert_eq!(
        unexpected(client.handle(&ack, t0, &mut out)),
        Unexpected::Unsolicited(Command::Oper)
    );
    // Before the connection is established, they are refused by phase.
    let (mut early, mut out) = started(order, t0);
    assert_eq!(
        early.list_channels(t0, &mut out),
        Err(ClientError::WrongPhase(Phase::AwaitPong))
    );
}

#[test]
fn removal_by_an_operator_leaves_the_channel() {
    let t0 = Instant::now();
    let order = ByteOrder::Little;
    let (mut client, mut out) = in_channel_v2(t0);
    let removal = Pdu::channel_ack(Command::LeaveChannel, order, &ch("@c"));
    assert_eq!(
        client.handle(&removal, t0, &mut out),
        Ok(Some(Event::Removed { channel: ch("@c") }))
    );
    assert_eq!(client.channel(), None);
    assert_eq!(
        client.send_message(b"hi", t0, &mut out),
        Err(ClientError::NotInChannel)
    );
    let notice = stamped(
        Pdu::notice(
            order,
            Some(&ch("@c")),
            b"you were kicked from @c by bob: spam",
        ),
        9,
    );
    assert_eq!(
        client.handle(&notice, t0, &mut out),
        Ok(Some(Event::Notice {
            channel: b"@c",
            text: b"you were kicked from @c by bob: spam",
            is_error: false,
            time: 9
        }))
    );
}

#[test]
fn removal_before_a_pending_join_is_answered() {
    // Kicked from @c while a JOIN of @d is on its way: the LEAVE_CHANNEL comes first and
    // is not the answer to anything; the JOIN stays owed.
    let t0 = Instant::now();
    let order = ByteOrder::Little;
    let (mut client, mut out) = in_channel_v2(t0);
    client.join(&ch("@d"), t0, &mut out).unwrap();
    client.leave(t0, &mut out).unwrap();
    let removal = Pdu::channel_ack(Command::LeaveChannel, order, &ch("@c"));
    assert_eq!(
        client.handle(&removal, t0, &mut out),
        Ok(Some(Event::Removed { channel: ch("@c") }))
    );
    assert_eq!(
        (client.joins_in_flight(), client.leaves_in_flight()),
        (1, 1)
    );
    let join_ack = Pdu::channel_ack(Command::JoinChannel, order, &ch("@d"));
    assert_eq!(
        client.handle(&join_ack, t0, &mut out),
        Ok(Some(Event::Joined { channel: ch("@d") }))
    );
    let leave_ack = Pdu::channel_ack(Command::LeaveChannel, order, &ch("@d"));
    assert_eq!(
        client.handle(&leave_ack, t0, &mut out),
        Ok(Some(Event::Left { channel: ch("@d") }))
    );
    assert!(client.is_settled());
}

#[test]
fn an_operator_kicking_itself_gets_the_ack_then_leaves() {
    // The server answers the KICK, then removes the kicker (v2 section 5).
    let t0 = Instant::now();
    let order = ByteOrder::Little;
    let (mut client, mut out) = in_channel_v2(t0);
    out.clear();
    client.kick(None, &name("amy"), b"", t0, &mut out).unwrap();
    let mut ack = out[0].clone();
    ack.set_username(SERVER_NAME);
    assert!(matches!(
        client.handle(&ack, t0, &mut out),
        Ok(Some(Event::Moderated {
            request: Request::Kick,
            target: b"amy",
            ..
        }))
    ));
    assert_eq!(client.channel(), Some(&ch("@c")));
    let removal = Pdu::channel_ack(Command::LeaveChannel, order, &ch("@c"));
    assert_eq!(
        client.handle(&removal, t0, &mut out),
        Ok(Some(Event::Removed { channel: ch("@c") }))
    );
    assert_eq!(client.channel(), None);
    assert!(client.is_settled());
}

#[test]
fn v1_removal_notice_is_not_a_refusal() {
    // A v1 target is told with an error notice it did not ask for (v2 section 5).
    let t0 = Instant::now();
    let order = ByteOrder::Little;
    let mut client = in_channel(order, t0);
    let mut out: Vec<Pdu> = Vec::new();
    let removal = Pdu::channel_ack(Command::LeaveChannel, order, &ch("@c"));
    assert_eq!(
        client.handle(&removal, t0, &mut out),
        Ok(Some(Event::Removed { channel: ch("@c") }))
    );
    client.join(&ch("@d"), t0, &mut out).unwrap();
    for text in [
        &b"error: you were kicked from @c by bob: spam"[..],
        b"error: you were banned from @c by bob: ",
    ] {
        let notice = Pdu::notice(order, Some(&ch("@c")), text);
        assert_eq!(
            client.handle(&notice, t0, &mut out),
            Ok(Some(Event::Notice {
                channel: b"@c",
                text,
                is_error: true,
                time: 0
            }))
        );
    }
    assert_eq!(client.joins_in_flight(), 1);
}

#[test]
fn an_answer_settles_older_requests_and_lists_are_never_refused() {
    let t0 = Instant::now();
    let order = ByteOrder::Little;
    let (mut client, mut out) = in_channel_v2(t0);
    // A LIST is oldest: an error notice cannot be its answer.
    client.list_channels(t0, &mut out).unwrap();
    client.kick(None, &name("bob"), b"", t0, &mut out).unwrap();
    let error = Pdu::notice(order, None, b"error: slow down, message not sent");
    assert!(matches!(
        client.handle(&error, t0, &mut out),
        Ok(Some(Event::Notice { is_error: true, .. }))
    ));
    // A message went out while requests were pending: its refusal would look the same,
    // so error notices are no longer attributed; the NAMES end settles all older ones.
    client.send_message(b"hi", t0, &mut out).unwrap();
    client.names(None, t0, &mut out).unwrap();
    let refusal = Pdu::notice(order, None, b"error: you are not an operator of @c");
    assert!(matches!(
        client.handle(&refusal, t0, &mut out),
        Ok(Some(Event::Notice { is_error: true, .. }))
    ));
    let end = Pdu::listing_end(Command::Names, order, Some(&ch("@c")), 0);
    assert_eq!(
        client.handle(&end, t0, &mut out),
        Ok(Some(Event::NamesEnd {
            channel: b"@c",
            count: 0
        }))
    );
    assert!(client.is_settled());
}

#[test]
fn pending_v2_requests_are_bounded() {
    let t0 = Instant::now();
    let mut client = established_v2(t0);
    let mut out: Vec<Pdu> = Vec::new();
    for _ in 0..MAX_PENDING_REQUESTS {
        client.list_channels(t0, &mut out).unwrap();
    }
    assert_eq!(
        client.names(None, t0, &mut out),
        Err(ClientError::TooManyPending)
    );
    assert_eq!(out.len(), usize::from(MAX_PENDING_REQUESTS));
    // Each end settles the oldest.
    let end = Pdu::listing_end(Command::ListChannels, ByteOrder::Little, None, 0);
    client.handle(&end, t0, &mut out).unwrap();
    client.names(None, t0, &mut out).unwrap();
}

#[test]
fn state_stays_small() {
    // Thousands of these live in one loadgen process.
    assert!(
        std::mem::size_of::<Client>() <= 256,
        "{}",
        std::mem::size_of::<Client>()
    );
}
