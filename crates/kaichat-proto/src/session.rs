//! One connection's protocol state machine, server side (contract sections 4 to 7).
//!
//! A `Session` takes whole PDUs and the current time (in milliseconds) and writes its
//! answers into an [`Outbox`]; it changes the shared [`Hub`] as the contract says. It never
//! touches a socket or reads a clock, so every rule of the contract is unit-tested, in
//! `session/tests.rs`, down to the text of each error notice.
//!
//! Deadlines are configured in seconds but counted in milliseconds: a deadline of N seconds
//! has passed only once more than N seconds separate its start from the current time, so
//! it never fires early, whatever the caller's clock rounds.
//!
//! A QUERY answer is not produced in one go: [`Session::on_pdu`] only records where it
//! ends, and the reactor pulls it with [`Session::continue_answer`] as the client's
//! socket drains. While an answer is in flight the reactor reads no further PDU from the
//! client, which keeps the contract's rule that an answer is never interleaved.
//!
//! In cluster mode (v2 section 8, [`crate::network`]) what needs the network's shared state
//! (a name's claim, a JOIN, KICK, BAN, UNBAN, NAMES, LIST_CHANNELS) becomes a [`Request`]
//! the caller takes ([`Session::take_network_request`]) and answers with a [`Verdict`]
//! ([`Session::network_verdict`]); meanwhile no PDU is read, as during an OPER. The hub
//! journals the rest (messages, LEAVE, close, OPER) for the network.

use std::net::IpAddr;

use crate::hub::{
    fit_reason, ChannelId, ConnRef, Entry, Hub, JoinRefusal, Listed, Next, Rules, MAX_BANS,
    V1_TEXT_ROOM,
};
use crate::names::{ChannelName, Username};
use crate::network::{Moderation, NamesSnapshot, Request, Verdict, UNAVAILABLE};
use crate::outbox::Outbox;
use crate::pdu::{
    ByteOrder, Command, Decoded, Pdu, MAX_PASSWORD, NAMES_ROOM, OPERATORS, PREFIX_LEN, SERVER_NAME,
    SERVER_WIDE,
};

/// The server's deadlines in whole seconds (contract section 7); 0 turns one off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// Each set-up phase: accept → PING, PONG → version, version → accepted CLIENT_INFO.
    pub handshake: u64,
    /// Established connection without a PDU.
    pub idle: u64,
}

impl Default for Deadlines {
    fn default() -> Deadlines {
        Deadlines {
            handshake: 30,
            idle: 120,
        }
    }
}

/// The set-up DFA of contract section 4, then the established states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    AwaitPing,
    AwaitVersion,
    AwaitClientInfo,
    /// Established, in no channel.
    Connected,
    /// Established, member of a channel.
    InChannel,
}

/// What the connection should do after a PDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Continue,
    /// Close with TLS close_notify, after what was sent so far.
    Close(Ending),
}

/// Why a session asked for its connection to close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The client sent QUIT.
    Quit,
    /// The client's VERSION_NEGOTIATION named a version this server does not speak; the
    /// error notice saying so was sent first.
    VersionRejected,
}

/// How long a refused OPER waits before its error notice, at least (v2 section 4), in ms.
pub const OPER_REFUSAL_DELAY_MS: u64 = 1000;

/// Where a connection stands. Everything that only exists once established lives inside
/// the variant that has it, so no combination the contract forbids can be represented.
#[derive(Debug)]
enum State {
    AwaitPing,
    AwaitVersion,
    /// The client selected `version`. `claim`: cluster mode, the network is deciding
    /// whether the name is the client's; no PDU is read meanwhile.
    AwaitClientInfo {
        version: u16,
        claim: Option<Box<Pending>>,
    },
    Established(Established),
}

/// An established connection.
#[derive(Debug)]
struct Established {
    user: Username,
    /// The version the client selected: 1 or 2.
    version: u16,
    member: Option<Membership>,
    /// The answer being sent; no PDU is read until it is complete.
    answer: Option<Answer>,
    /// Removed from a channel by a KICK or BAN: LEAVE_CHANNEL, then the notice, to be sent
    /// once no answer is in flight. Rare, so boxed: a session stays small.
    removed: Option<Box<Removal>>,
    /// An OPER in progress or (cluster mode) a request to the network: no PDU is read
    /// meanwhile. Rare, so boxed: a session stays small.
    wait: Option<Box<Wait>>,
    /// The rate limit's state (GCRA): the theoretical arrival time of the next message, µs
    /// of the session's clock. 0 starts the bucket full.
    rate_tat_us: u64,
    /// Cluster mode: messages the network could not take whose error notice waits for the
    /// answer in flight to end ([`Session::post_failed`]).
    failed_posts: u16,
    /// Cluster mode: a message handed to the network and not yet stored and applied here
    /// ([`Session::posted`]) nor given back: no PDU is read meanwhile (so there is one at
    /// most), and a QUERY after a message (the sync point) answers with it, as on one
    /// server.
    post_in_flight: bool,
}

/// A removal by KICK or BAN that the client is still to be told of (v2 section 5).
#[derive(Debug)]
struct Removal {
    channel: ChannelName,
    notice: Box<[u8]>,
    /// The LEAVE_CHANNEL has gone out and the notice is next: one PDU per step keeps
    /// [`Session::continue_output`]'s budget.
    left: bool,
}

/// A client's place in its channel. Replaced whole on JOIN and dropped on LEAVE (or a
/// removal), so a read position never outlives the channel it belongs to.
#[derive(Debug)]
struct Membership {
    channel: ChannelId,
    /// Read position in the channel's history.
    cursor: u64,
}

/// An answer produced lazily under the output bound (v1 section 5, v2 section 3).
#[derive(Debug)]
enum Answer {
    /// A QUERY answer: entries up to `end`, then the up-to-date PDU.
    Query { end: u64 },
    /// A listing (rarer, and larger: boxed, so a session stays small).
    Listing(Box<Listing>),
}

/// A listing in flight (v2 section 3).
#[derive(Debug)]
enum Listing {
    /// A LIST_CHANNELS listing: channels after `after`, `count` listed so far.
    Channels {
        after: Option<ChannelName>,
        count: u32,
    },
    /// A NAMES listing of `channel` (`name`): operators first, then the others, each in
    /// join order, resuming after join number `after`.
    Names {
        channel: ChannelId,
        name: ChannelName,
        operators: bool,
        after: u64,
        count: u32,
    },
    /// Cluster mode: a LIST_CHANNELS listing of the network's `channels`, from `next`.
    NetworkChannels { channels: Vec<Listed>, next: usize },
    /// Cluster mode: a NAMES listing of the network's `members` of `name`: operators
    /// first, then the others, from index `next` of the group, `count` listed so far.
    NetworkNames {
        name: ChannelName,
        members: Box<NamesSnapshot>,
        operators: bool,
        next: usize,
        count: u32,
    },
}

/// What an established session waits for before it reads the next PDU (besides an
/// answer's end): both come from a PDU, so one at a time.
#[derive(Debug)]
enum Wait {
    Oper(Oper),
    Network(Pending),
}

/// A request to the network in progress (cluster mode).
#[derive(Debug)]
struct Pending {
    /// The request, until the caller takes it ([`Session::take_network_request`]).
    request: Option<Request>,
    /// What the verdict completes.
    awaits: Awaits,
}

/// What a [`Verdict`] completes, with what its answers need.
#[derive(Debug)]
enum Awaits {
    /// CLIENT_INFO with the name `user`.
    Claim { user: Username },
    /// JOIN_CHANNEL of `name`; `push`: a version-2 member.
    Join { name: ChannelName, push: bool },
    /// NAMES of `name`.
    Names { name: ChannelName },
    /// LIST_CHANNELS.
    List,
    /// KICK, BAN or UNBAN of `target` in `name`, acknowledged with `ack`. `own_removal`:
    /// the client removes itself from its own channel, and is sent this notice after.
    Moderate {
        name: ChannelName,
        target: Username,
        ack: Box<Pdu>,
        own_removal: Option<Box<[u8]>>,
    },
    /// BAN `*` of the connected `target`, acknowledged with `ack`.
    ServerBan { target: Username, ack: Box<Pdu> },
    /// UNBAN `*` of `address`, acknowledged with `ack`.
    ServerUnban { address: IpAddr, ack: Box<Pdu> },
}

/// Where an OPER request stands (v2 section 4).
#[derive(Debug)]
enum Oper {
    /// The password waits for the caller to take it ([`Session::take_oper_request`]) and
    /// verify it; asked at `since` (ms).
    Verifying {
        since: u64,
        password: Option<Box<[u8]>>,
    },
    /// Refused: the error notice goes out at `at` (ms), not before.
    Refusing { at: u64 },
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    state: State,
    order: ByteOrder,
    /// Set by the client's VERSION_NEGOTIATION; before it, either order is accepted.
    order_fixed: bool,
    /// Where the running deadline counts from, in milliseconds: the start of the current
    /// set-up phase (a rejected name does not restart it), or the last PDU once established.
    clock_from: u64,
    /// The caller's handle of this connection, given to the hub with the name.
    conn: ConnRef,
    /// The client's address, for server bans.
    peer: Option<IpAddr>,
}

impl Session {
    /// A session for a connection accepted at `now` (milliseconds): the pre-PING deadline
    /// runs from here. For tests and tools that need no [`ConnRef`] or address.
    pub fn new(now: u64) -> Session {
        Session::accepted(now, 0, None)
    }

    /// A session for connection `conn` from `peer`, accepted at `now` (ms).
    pub fn accepted(now: u64, conn: ConnRef, peer: Option<IpAddr>) -> Session {
        Session {
            state: State::AwaitPing,
            order: ByteOrder::Little,
            order_fixed: false,
            clock_from: now,
            conn,
            peer,
        }
    }

    pub fn phase(&self) -> Phase {
        match &self.state {
            State::AwaitPing => Phase::AwaitPing,
            State::AwaitVersion => Phase::AwaitVersion,
            State::AwaitClientInfo { .. } => Phase::AwaitClientInfo,
            State::Established(e) if e.member.is_none() => Phase::Connected,
            State::Established(_) => Phase::InChannel,
        }
    }

    /// The byte order the server writes to this client in.
    pub fn order(&self) -> ByteOrder {
        self.order
    }

    /// The accepted username, once established.
    pub fn user(&self) -> Option<&Username> {
        match &self.state {
            State::Established(e) => Some(&e.user),
            _ => None,
        }
    }

    /// The protocol version the client selected, once established.
    pub fn version(&self) -> Option<u16> {
        match &self.state {
            State::Established(e) => Some(e.version),
            _ => None,
        }
    }

    /// The client's address, as given at accept.
    pub fn peer(&self) -> Option<IpAddr> {
        self.peer
    }

    fn established(&self) -> Option<&Established> {
        match &self.state {
            State::Established(e) => Some(e),
            _ => None,
        }
    }

    /// Whether no PDU may be read now: an answer or listing is still being sent, an OPER
    /// is being verified or its refusal delayed, or (cluster mode) a request waits for the
    /// network's verdict.
    pub fn answering(&self) -> bool {
        match &self.state {
            State::AwaitClientInfo { claim, .. } => claim.is_some(),
            State::Established(e) => e.answer.is_some() || e.wait.is_some() || e.post_in_flight,
            _ => false,
        }
    }

    /// Whether an answer or listing is being sent.
    pub fn answer_in_flight(&self) -> bool {
        self.established().is_some_and(|e| e.answer.is_some())
    }

    /// Whether [`Session::continue_output`] has something to send now: an answer, a
    /// removal's notices, notices of failed posts, or (version 2) entries not yet pushed.
    pub fn has_output(&self, hub: &Hub) -> bool {
        self.established().is_some_and(|e| {
            e.answer.is_some()
                || e.removed.is_some()
                || e.failed_posts > 0
                || (e.version >= 2
                    && e.member
                        .as_ref()
                        .is_some_and(|m| m.cursor < hub.end_seq(m.channel)))
        })
    }

    /// The first millisecond at which this connection has timed out, if a deadline runs:
    /// one past the start of the deadline plus its length. Both times are whole
    /// milliseconds rounded down, so only a difference of more than the length proves the
    /// full length has passed; at exactly the length it could be up to 1 ms short.
    pub fn deadline(&self, deadlines: &Deadlines) -> Option<u64> {
        let seconds = match self.state {
            State::Established(_) => deadlines.idle,
            _ => deadlines.handshake,
        };
        (seconds > 0).then(|| {
            self.clock_from
                .saturating_add(seconds.saturating_mul(1000))
                .saturating_add(1)
        })
    }

    /// When the session wants [`Session::wake`] called (a delayed OPER refusal), in ms.
    pub fn wake_at(&self) -> Option<u64> {
        match self.established()?.wait.as_deref()? {
            Wait::Oper(Oper::Refusing { at }) => Some(*at),
            _ => None,
        }
    }

    /// The command this session reads in `pdu`: in the connection's byte order once the
    /// version negotiation fixed it, in either order before; None for an unknown code.
    /// Exactly what [`Session::on_pdu`] acts on, for callers that count PDUs by command.
    pub fn command_of(&self, pdu: &Pdu) -> Option<Command> {
        self.decode(pdu).map(|(command, _)| command)
    }

    fn decode(&self, pdu: &Pdu) -> Option<(Command, ByteOrder)> {
        let fixed = self.order_fixed.then_some(self.order);
        match pdu.decode_command(fixed) {
            Decoded::Known { command, order } => Some((command, order)),
            Decoded::Unknown(_) => None,
        }
    }

    /// Handles one whole PDU received at `now` (milliseconds; the time it was read, not
    /// earlier, or a deadline could fire early).
    pub fn on_pdu(&mut self, pdu: &Pdu, now: u64, hub: &mut Hub, out: &mut impl Outbox) -> Step {
        let command = self.decode(pdu);
        if command.is_some_and(|(c, _)| c == Command::Quit) {
            return Step::Close(Ending::Quit);
        }
        let highest = hub.rules().max_version;
        match self.state {
            State::AwaitPing => {
                if let Some((Command::PingPong, order)) = command {
                    // Before the order is fixed, the server answers in the PING's order.
                    self.order = order;
                    out.send(&Pdu::ping(order));
                    out.send(&Pdu::server_version(order, highest));
                    self.enter_setup(State::AwaitVersion, now);
                }
                Step::Continue
            }
            State::AwaitVersion => match command {
                Some((Command::VersionNegotiation, order)) => {
                    self.order = order;
                    self.order_fixed = true;
                    let version = pdu.version();
                    if (1..=highest).contains(&version) {
                        let state = State::AwaitClientInfo {
                            version,
                            claim: None,
                        };
                        self.enter_setup(state, now);
                        Step::Continue
                    } else {
                        let spoken = match highest {
                            1 => "version 1".to_string(),
                            _ => format!("versions 1 to {highest}"),
                        };
                        let text = format!(
                            "error: unsupported protocol version {version}: this server \
                             speaks {spoken}, a big-endian u16 in params[0..2]"
                        );
                        out.send(&Pdu::notice(self.order, None, text.as_bytes()));
                        Step::Close(Ending::VersionRejected)
                    }
                }
                _ => Step::Continue,
            },
            State::AwaitClientInfo { version, .. } => {
                if let Some((Command::ClientInfo, _)) = command {
                    self.client_info(pdu, version, now, hub, out);
                }
                Step::Continue
            }
            State::Established(_) => {
                self.clock_from = now;
                self.on_request(pdu, command.map(|(c, _)| c), now, hub, out);
                Step::Continue
            }
        }
    }

    fn enter_setup(&mut self, state: State, now: u64) {
        self.state = state;
        self.clock_from = now;
    }

    fn client_info(
        &mut self,
        pdu: &Pdu,
        version: u16,
        now: u64,
        hub: &mut Hub,
        out: &mut impl Outbox,
    ) {
        let user = match pdu.client_info_username() {
            Ok(user) => user,
            Err(e) => {
                let text = format!("error: {e}");
                return out.send(&Pdu::notice(self.order, None, text.as_bytes()));
            }
        };
        if hub.is_clustered() && !hub.is_connected(&user) {
            // Held here: taken at once. Otherwise the network decides; the set-up deadline
            // keeps running meanwhile.
            let request = Request::Claim {
                user,
                peer: self.peer,
            };
            let claim = Some(Box::new(ask(request, Awaits::Claim { user })));
            self.state = State::AwaitClientInfo { version, claim };
            return;
        }
        if !hub.claim_name(user, self.conn, self.peer) {
            return self.name_taken(&user, out);
        }
        self.establish(user, version, now, out);
    }

    /// The network's verdict on the claim of `user` (cluster mode).
    fn claimed(
        &mut self,
        user: Username,
        version: u16,
        verdict: Verdict,
        now: u64,
        hub: &mut Hub,
        out: &mut impl Outbox,
    ) {
        match verdict {
            Verdict::Claimed if hub.claim_name(user, self.conn, self.peer) => {
                self.establish(user, version, now, out)
            }
            Verdict::Claimed | Verdict::Taken => self.name_taken(&user, out),
            // Unavailable, or no answer to a claim: nothing changed.
            _ => out.send(&Pdu::notice(self.order, None, UNAVAILABLE)),
        }
    }

    fn name_taken(&self, user: &Username, out: &mut impl Outbox) {
        let text = format!(
            "error: username '{user}' is taken: a connected client has it (names are \
             compared ignoring case)"
        );
        out.send(&Pdu::notice(self.order, None, text.as_bytes()));
    }

    /// Set-up is complete at `now`: `user` holds its name.
    fn establish(&mut self, user: Username, version: u16, now: u64, out: &mut impl Outbox) {
        self.state = State::Established(Established {
            user,
            version,
            member: None,
            answer: None,
            removed: None,
            wait: None,
            rate_tat_us: 0,
            failed_posts: 0,
            post_in_flight: false,
        });
        self.clock_from = now;
        out.send(&Pdu::client_info_ack(self.order, user.as_bytes()));
    }

    /// A PDU of an established connection.
    fn on_request(
        &mut self,
        pdu: &Pdu,
        command: Option<Command>,
        now: u64,
        hub: &mut Hub,
        out: &mut impl Outbox,
    ) {
        let order = self.order;
        let State::Established(e) = &mut self.state else {
            return;
        };
        let mut reply = Reply::new(order, e.version, hub.wall_ms(now), out);
        // A command of a later version is unknown here (v2 section 1).
        let command = command.filter(|c| c.since_version() <= e.version);
        // Cluster mode: what the network must answer first.
        let mut pending = None;
        let asked = &mut pending;
        match command {
            Some(Command::JoinChannel) => e.join(pdu, now, hub, &mut reply, asked),
            Some(Command::LeaveChannel) => match e.member.take() {
                Some(left) => {
                    // A channel exists while it has members: it has a name until the
                    // `leave` below.
                    if let Some(name) = hub.channel_name(left.channel) {
                        reply.send(&Pdu::channel_ack(Command::LeaveChannel, order, name));
                    }
                    hub.leave(left.channel, &e.user, now);
                }
                None => reply.error(None, b"error: cannot leave: not in a channel"),
            },
            Some(Command::SendMessage) => e.send_message(pdu, now, hub, &mut reply),
            Some(Command::Query) => match &e.member {
                Some(m) => {
                    e.answer = Some(Answer::Query {
                        end: hub.end_seq(m.channel),
                    })
                }
                None => reply.marker(None),
            },
            Some(Command::PingPong) => reply.send(&Pdu::ping(order)),
            Some(Command::ListChannels) if hub.is_clustered() => {
                *asked = Some(ask(Request::List, Awaits::List))
            }
            Some(Command::ListChannels) => {
                e.answer = Some(Answer::Listing(Box::new(Listing::Channels {
                    after: None,
                    count: 0,
                })))
            }
            Some(Command::Names) => e.names(pdu, hub, &mut reply, asked),
            Some(c @ (Command::Kick | Command::Ban | Command::Unban)) => {
                e.moderate(c, pdu, now, hub, &mut reply, asked)
            }
            Some(Command::Oper) => {
                let password = pdu.params_text();
                e.wait = Some(Box::new(Wait::Oper(
                    if hub.rules().oper && (1..=MAX_PASSWORD).contains(&password.len()) {
                        Oper::Verifying {
                            since: now,
                            password: Some(password.into()),
                        }
                    } else {
                        Oper::Refusing {
                            at: now.saturating_add(OPER_REFUSAL_DELAY_MS),
                        }
                    },
                )));
            }
            Some(Command::ReceiveMessage) => {
                let channel = e.channel_name(hub);
                reply.error(
                    channel.as_ref(),
                    b"error: RECEIVE_MESSAGE (5) is sent by the server only",
                )
            }
            Some(Command::VersionNegotiation) => {
                let channel = e.channel_name(hub);
                reply.error(
                    channel.as_ref(),
                    b"error: VERSION_NEGOTIATION (1) is only accepted during set-up, and this \
                      connection is already established",
                )
            }
            Some(Command::ClientInfo) => {
                let text = format!(
                    "error: CLIENT_INFO (2) is only accepted during set-up, and this \
                     connection is already established as '{}'",
                    e.user
                );
                let channel = e.channel_name(hub);
                reply.error(channel.as_ref(), text.as_bytes())
            }
            // QUIT closed the connection before this match.
            Some(Command::Quit) | None => {
                let text = unknown_command(pdu.command_bytes(), order, e.version);
                let channel = e.channel_name(hub);
                reply.error(channel.as_ref(), text.as_bytes())
            }
        }
        if let Some(pending) = pending {
            e.wait = Some(Box::new(Wait::Network(pending)));
        }
    }

    /// The request for the network that the last PDU made (cluster mode), once: the caller
    /// hands it on and answers with [`Session::network_verdict`]. Until then no PDU is
    /// read ([`Session::answering`]).
    pub fn take_network_request(&mut self) -> Option<Request> {
        let pending = match &mut self.state {
            State::AwaitClientInfo { claim, .. } => claim.as_deref_mut()?,
            State::Established(e) => match e.wait.as_deref_mut()? {
                Wait::Network(pending) => pending,
                Wait::Oper(_) => return None,
            },
            _ => return None,
        };
        pending.request.take()
    }

    /// The network's verdict on the request in progress, at `now`: the acknowledgement,
    /// the listing, or the error notice today's server sends for the same outcome;
    /// [`Verdict::Unavailable`] (or a verdict that does not answer the request) is the
    /// notice [`UNAVAILABLE`], about the current channel if there is one, and changes
    /// nothing. Afterwards PDUs are read again. Without a request in progress (the
    /// connection closed meanwhile), nothing happens.
    pub fn network_verdict(
        &mut self,
        verdict: Verdict,
        now: u64,
        hub: &mut Hub,
        out: &mut impl Outbox,
    ) {
        let order = self.order;
        match &mut self.state {
            State::AwaitClientInfo { version, claim } => {
                let version = *version;
                if let Some(Awaits::Claim { user }) = claim.take().map(|p| p.awaits) {
                    self.claimed(user, version, verdict, now, hub, out);
                }
            }
            State::Established(e) => {
                let network = e.wait.take_if(|w| matches!(**w, Wait::Network(_)));
                let Some(Wait::Network(pending)) = network.map(|w| *w) else {
                    return;
                };
                let mut reply = Reply::new(order, e.version, hub.wall_ms(now), out);
                e.verdict(pending.awaits, verdict, hub, &mut reply);
            }
            _ => {}
        }
    }

    /// A message this connection sent could not be handed to the network (cluster mode):
    /// the client is sent [`UNAVAILABLE`] about its channel, at once or, while an answer
    /// is in flight, after it (an answer is never interleaved).
    pub fn post_failed(&mut self, now: u64, hub: &Hub, out: &mut impl Outbox) {
        if let State::Established(e) = &mut self.state {
            e.post_in_flight = false;
        }
        match &mut self.state {
            State::Established(e) if e.answer.is_some() => {
                e.failed_posts = e.failed_posts.saturating_add(1)
            }
            _ => self.tell(UNAVAILABLE, now, hub, out),
        }
    }

    /// Sends the error notice `text` at `now`, about the client's channel if it has one,
    /// stamped on version 2: for what the caller must tell outside any request (an
    /// established connection only; nothing otherwise). It does not wait for an answer in
    /// flight: use it only for a connection about to close.
    pub fn tell(&mut self, text: &[u8], now: u64, hub: &Hub, out: &mut impl Outbox) {
        let order = self.order;
        let State::Established(e) = &mut self.state else {
            return;
        };
        let channel = e.channel_name(hub);
        let mut reply = Reply::new(order, e.version, hub.wall_ms(now), out);
        reply.error(channel.as_ref(), text);
    }

    /// A message this connection sent was stored by the network and applied to this
    /// server's copy of its channel (cluster mode): the next PDU may be read.
    pub fn posted(&mut self) {
        if let State::Established(e) = &mut self.state {
            e.post_in_flight = false;
        }
    }

    /// The password of an OPER to verify, once: the caller checks it against the
    /// configured hash (slowly, away from the loop) and answers [`Session::oper_checked`].
    pub fn take_oper_request(&mut self) -> Option<Box<[u8]>> {
        match &mut self.state {
            State::Established(e) => match e.wait.as_deref_mut()? {
                Wait::Oper(Oper::Verifying { password, .. }) => password.take(),
                _ => None,
            },
            _ => None,
        }
    }

    /// The verification of the OPER password ended at `now`: accepted, the connection is a
    /// server operator and is acknowledged; refused, the error notice waits until a second
    /// after the request ([`Session::wake_at`]).
    pub fn oper_checked(&mut self, accepted: bool, now: u64, hub: &mut Hub, out: &mut impl Outbox) {
        let order = self.order;
        let State::Established(e) = &mut self.state else {
            return;
        };
        let Some(Wait::Oper(Oper::Verifying { since, .. })) = e.wait.as_deref() else {
            return;
        };
        let since = *since;
        if accepted {
            hub.make_server_operator(&e.user);
            e.wait = None;
            let mut ack = Pdu::new(Command::Oper, order);
            ack.set_username(SERVER_NAME);
            out.send(&ack);
        } else {
            e.wait = Some(Box::new(Wait::Oper(Oper::Refusing {
                at: since.saturating_add(OPER_REFUSAL_DELAY_MS).max(now),
            })));
        }
    }

    /// Does what was due by `now` ([`Session::wake_at`]): sends a delayed OPER refusal.
    pub fn wake(&mut self, now: u64, hub: &Hub, out: &mut impl Outbox) {
        let order = self.order;
        let State::Established(e) = &mut self.state else {
            return;
        };
        if let Some(&Wait::Oper(Oper::Refusing { at })) = e.wait.as_deref() {
            if at <= now {
                e.wait = None;
                let channel = e.channel_name(hub);
                let mut reply = Reply::new(order, e.version, hub.wall_ms(now), out);
                reply.error(channel.as_ref(), b"error: not an operator password");
            }
        }
    }

    /// Another connection removed this one's user from channel `channel` (`name`) with a
    /// KICK or BAN ([`crate::hub::Event::Removed`]): the membership is gone at once, and
    /// LEAVE_CHANNEL and `notice` are sent once no answer is in flight.
    pub fn removed(&mut self, channel: ChannelId, name: ChannelName, notice: Box<[u8]>) {
        if let State::Established(e) = &mut self.state {
            if e.member.as_ref().is_some_and(|m| m.channel == channel) {
                e.member = None;
                e.removed = Some(Box::new(Removal {
                    channel: name,
                    notice,
                    left: false,
                }));
            }
        }
    }

    /// Sends up to `budget` more PDUs: the rest of the answer in flight, then a removal's
    /// notices, then (version 2) the entries of the channel not yet pushed. Returns true
    /// when nothing more is to be sent now.
    pub fn continue_output(
        &mut self,
        hub: &Hub,
        now: u64,
        budget: usize,
        out: &mut impl Outbox,
    ) -> bool {
        let order = self.order;
        let State::Established(e) = &mut self.state else {
            return true;
        };
        let mut reply = Reply::new(order, e.version, hub.wall_ms(now), out);
        for _ in 0..budget {
            if e.answer.is_some() {
                e.step_answer(hub, &mut reply);
                continue;
            }
            if e.failed_posts > 0 {
                e.failed_posts -= 1;
                let channel = e.channel_name(hub);
                reply.error(channel.as_ref(), UNAVAILABLE);
                continue;
            }
            if let Some(removal) = e.removed.as_mut().filter(|r| !r.left) {
                reply.send(&Pdu::channel_ack(
                    Command::LeaveChannel,
                    order,
                    &removal.channel,
                ));
                removal.left = true;
                continue;
            }
            if let Some(Removal {
                channel: name,
                notice,
                ..
            }) = e.removed.take().map(|r| *r)
            {
                if e.version >= 2 {
                    reply.notice(Some(&name), &notice);
                } else {
                    reply.error(Some(&name), &[b"error: ", &notice[..]].concat());
                }
                continue;
            }
            match &mut e.member {
                Some(m) if e.version >= 2 => {
                    let end = hub.end_seq(m.channel);
                    let channel = hub.channel_name(m.channel);
                    match hub.next_entry(m.channel, &mut m.cursor, end, None) {
                        Next::Skipped(n) => reply.skipped(channel, n),
                        Next::Entry(entry) => reply.entry(channel, entry),
                        Next::Done => return true,
                    }
                }
                _ => return true,
            }
        }
        false
    }

    /// Releases what the connection held: its channel (`<user> left`, at `now`) and its
    /// name. Called once, whatever closed the connection. In cluster mode the hub journals
    /// the LEAVE and the name's release; a verdict that comes after finds nothing to
    /// complete (what the network did for the request is the engine's to undo).
    pub fn close(&mut self, hub: &mut Hub, now: u64) {
        if let State::Established(e) = std::mem::replace(&mut self.state, State::AwaitPing) {
            if let Some(m) = e.member {
                hub.leave(m.channel, &e.user, now);
            }
            hub.release_name(&e.user);
        }
    }
}

/// Where an established session writes, with what every PDU it makes needs: the
/// connection's byte order and version, and the time (wall-clock ms) to stamp on v2.
struct Reply<'o, O: Outbox> {
    order: ByteOrder,
    version: u16,
    time: u64,
    out: &'o mut O,
}

impl<'o, O: Outbox> Reply<'o, O> {
    fn new(order: ByteOrder, version: u16, time: u64, out: &'o mut O) -> Reply<'o, O> {
        Reply {
            order,
            version,
            time,
            out,
        }
    }

    fn send(&mut self, pdu: &Pdu) {
        self.out.send(pdu);
    }

    /// A RECEIVE_MESSAGE made now (a notice, the up-to-date PDU): stamped on v2.
    fn stamped(&mut self, mut pdu: Pdu) {
        if self.version >= 2 {
            pdu.set_time(self.time);
        }
        self.out.send(&pdu);
    }

    fn notice(&mut self, channel: Option<&ChannelName>, text: &[u8]) {
        self.stamped(Pdu::notice(self.order, channel, text));
    }

    /// An error notice (v1 section 6), about `channel` if it concerns one.
    fn error(&mut self, channel: Option<&ChannelName>, text: &[u8]) {
        self.notice(channel, text);
    }

    fn marker(&mut self, channel: Option<&ChannelName>) {
        self.stamped(Pdu::up_to_date_marker(self.order, channel));
    }

    fn skipped(&mut self, channel: Option<&ChannelName>, n: u64) {
        let text = format!("{n} messages were skipped");
        self.notice(channel, text.as_bytes());
    }

    /// A history entry, as this connection's version defines it (v2 sections 1 and 2a).
    fn entry(&mut self, channel: Option<&ChannelName>, entry: &Entry) {
        let sender = entry.sender.as_ref().map_or(SERVER_NAME, |s| s.as_bytes());
        if self.version >= 2 {
            let mut pdu = Pdu::receive(self.order, sender, channel, &entry.text);
            pdu.set_time(entry.time_ms);
            self.out.send(&pdu);
        } else {
            let mut room = [0u8; V1_TEXT_ROOM];
            if let Some(text) = entry.v1_text(&mut room) {
                self.out
                    .send(&Pdu::receive(self.order, sender, channel, text));
            }
        }
    }
}

impl Established {
    fn channel_name(&self, hub: &Hub) -> Option<ChannelName> {
        self.member
            .as_ref()
            .and_then(|m| hub.channel_name(m.channel).copied())
    }

    fn join(
        &mut self,
        pdu: &Pdu,
        now: u64,
        hub: &mut Hub,
        reply: &mut Reply<'_, impl Outbox>,
        asked: &mut Option<Pending>,
    ) {
        let order = reply.order;
        let current = self.channel_name(hub);
        let name = match pdu.channel_name() {
            Ok(name) => name,
            Err(e) => return reply.error(current.as_ref(), format!("error: {e}").as_bytes()),
        };
        if current == Some(name) {
            return reply.send(&Pdu::channel_ack(Command::JoinChannel, order, &name));
        }
        let push = self.version >= 2;
        if hub.is_clustered() {
            let request = Request::Join {
                user: self.user,
                channel: name,
                from: current,
                push,
            };
            *asked = Some(ask(request, Awaits::Join { name, push }));
            return;
        }
        // The hub leaves the current channel first, unless the JOIN is refused.
        match hub.join(&name, &self.user, push, now) {
            Ok((channel, cursor)) => {
                self.member = Some(Membership { channel, cursor });
                reply.send(&Pdu::channel_ack(Command::JoinChannel, order, &name));
            }
            Err(JoinRefusal::Banned) => {
                let text = format!("error: you are banned from {name}");
                reply.error(current.as_ref(), text.as_bytes())
            }
        }
    }

    fn send_message(
        &mut self,
        pdu: &Pdu,
        now: u64,
        hub: &mut Hub,
        reply: &mut Reply<'_, impl Outbox>,
    ) {
        let channel = self.channel_name(hub);
        let Some(id) = self.member.as_ref().map(|m| m.channel) else {
            return reply.error(
                None,
                b"error: message not sent: not in a channel, join one first",
            );
        };
        let text = pdu.params_text();
        if text.is_empty() {
            return reply.error(
                channel.as_ref(),
                b"error: message not sent: it is empty (a message is 1 to 2000 bytes before \
                  the first NUL)",
            );
        }
        let rules = *hub.rules();
        if !self.take_token(&rules, now) {
            let text = format!(
                "error: slow down, message not sent: at most {} messages a second, {} at once",
                rules.rate_limit, rules.rate_burst
            );
            return reply.error(channel.as_ref(), text.as_bytes());
        }
        hub.post(id, self.user, text, now);
        // Cluster mode: answered by [`Session::posted`] or [`Session::post_failed`].
        self.post_in_flight = hub.is_clustered();
    }

    /// The rate limit (v2 section 6) as a GCRA: a message is allowed when the bucket,
    /// refilled at `rate_limit` a second up to `rate_burst`, holds one.
    fn take_token(&mut self, rules: &Rules, now: u64) -> bool {
        if rules.rate_limit == 0 {
            return true;
        }
        let interval = 1_000_000 / u64::from(rules.rate_limit).min(1_000_000);
        let tolerance = interval * u64::from(rules.rate_burst.max(1) - 1);
        let now_us = now.saturating_mul(1000);
        let tat = self.rate_tat_us.max(now_us);
        if tat - now_us > tolerance {
            return false;
        }
        self.rate_tat_us = tat + interval;
        true
    }

    /// NAMES (v2 section 3): of the named channel, or of the client's own.
    fn names(
        &mut self,
        pdu: &Pdu,
        hub: &Hub,
        reply: &mut Reply<'_, impl Outbox>,
        asked: &mut Option<Pending>,
    ) {
        let current = self.channel_name(hub);
        let Some(name) = named_channel(pdu.channel(), current, reply) else {
            return;
        };
        if hub.is_clustered() {
            *asked = Some(ask(
                Request::Names { channel: name },
                Awaits::Names { name },
            ));
            return;
        }
        match hub.open_channel(&name) {
            Some(channel) => {
                self.answer = Some(Answer::Listing(Box::new(Listing::Names {
                    channel,
                    name,
                    operators: true,
                    after: 0,
                    count: 0,
                })))
            }
            None => {
                let text = format!("error: {name} is not open: it has no members");
                reply.error(current.as_ref(), text.as_bytes())
            }
        }
    }

    /// Completes what the request that `awaits` it asked, by the network's `verdict`
    /// (cluster mode; see [`Session::network_verdict`]).
    fn verdict(
        &mut self,
        awaits: Awaits,
        verdict: Verdict,
        hub: &mut Hub,
        reply: &mut Reply<'_, impl Outbox>,
    ) {
        let order = reply.order;
        let current = self.channel_name(hub);
        let text = match (awaits, verdict) {
            (Awaits::Join { name, push }, Verdict::Joined { seq }) => {
                let (channel, cursor) = hub.join_local(&name, &self.user, push, seq);
                self.member = Some(Membership { channel, cursor });
                return reply.send(&Pdu::channel_ack(Command::JoinChannel, order, &name));
            }
            (Awaits::Join { name, .. }, Verdict::Banned) => {
                format!("error: you are banned from {name}")
            }
            (Awaits::Names { name }, Verdict::Names(members)) => {
                let listing = Listing::NetworkNames {
                    name,
                    members,
                    operators: true,
                    next: 0,
                    count: 0,
                };
                self.answer = Some(Answer::Listing(Box::new(listing)));
                return;
            }
            (Awaits::Names { name }, Verdict::NotOpen) => {
                format!("error: {name} is not open: it has no members")
            }
            (Awaits::List, Verdict::Channels(channels)) => {
                let listing = Listing::NetworkChannels { channels, next: 0 };
                self.answer = Some(Answer::Listing(Box::new(listing)));
                return;
            }
            (
                Awaits::Moderate {
                    name,
                    ack,
                    own_removal,
                    ..
                },
                Verdict::Done,
            ) => {
                reply.send(&ack);
                // An operator that removed itself from its channel: the hub sends no
                // event for it, it is done here (unless a removal by another came first).
                if let Some(notice) = own_removal {
                    if self.member.take().is_some() {
                        self.removed = Some(Box::new(Removal {
                            channel: name,
                            notice,
                            left: false,
                        }));
                    }
                }
                return;
            }
            (Awaits::Moderate { name, .. }, Verdict::NotOperator) => {
                format!("error: you are not an operator of {name}")
            }
            (Awaits::Moderate { target, .. }, Verdict::TargetIsServerOperator) => format!(
                "error: {target} is a server operator: a channel operator cannot kick or ban one"
            ),
            (Awaits::Moderate { name, target, .. }, Verdict::NotMember) => {
                format!("error: {target} is not in {name}")
            }
            (Awaits::Moderate { name, .. }, Verdict::BanListFull) => {
                format!("error: ban list of {name} is full: at most {MAX_BANS} names")
            }
            (Awaits::Moderate { name, target, .. }, Verdict::NotBanned) => {
                format!("error: {target} is not banned from {name}")
            }
            (Awaits::ServerBan { ack, .. } | Awaits::ServerUnban { ack, .. }, Verdict::Done) => {
                return reply.send(&ack);
            }
            (Awaits::ServerBan { target, .. }, Verdict::NotConnected) => format!(
                "error: {target} is not connected: a server ban takes the address of a \
                 connected user"
            ),
            (Awaits::ServerUnban { address, .. }, Verdict::NotBanned) => {
                format!("error: {address} is not banned")
            }
            // Unavailable, or a verdict that does not answer the request: nothing changed.
            _ => return reply.error(current.as_ref(), UNAVAILABLE),
        };
        reply.error(current.as_ref(), text.as_bytes());
    }

    /// One PDU of the answer in flight; the answer is dropped when its last PDU is sent.
    fn step_answer(&mut self, hub: &Hub, reply: &mut Reply<'_, impl Outbox>) {
        let order = reply.order;
        let done = match &mut self.answer {
            None => true,
            Some(Answer::Query { end }) => match &mut self.member {
                Some(m) => {
                    let channel = hub.channel_name(m.channel);
                    // A v1 reader is not sent its own messages (v1 section 5); v2 is.
                    let skip_own = (reply.version < 2).then_some(&self.user);
                    match hub.next_entry(m.channel, &mut m.cursor, *end, skip_own) {
                        Next::Skipped(n) => {
                            reply.skipped(channel, n);
                            false
                        }
                        Next::Entry(entry) => {
                            reply.entry(channel, entry);
                            false
                        }
                        Next::Done => {
                            reply.marker(channel);
                            true
                        }
                    }
                }
                // Removed from the channel while answering: the answer ends here.
                None => {
                    reply.marker(None);
                    true
                }
            },
            Some(Answer::Listing(listing)) => match &mut **listing {
                Listing::Channels { after, count } => match hub.next_channel(after.as_ref()) {
                    Some(listed) => {
                        reply.send(&listed_pdu(order, &listed));
                        *after = Some(listed.name);
                        *count += 1;
                        false
                    }
                    None => {
                        reply.send(&Pdu::listing_end(
                            Command::ListChannels,
                            order,
                            None,
                            *count,
                        ));
                        true
                    }
                },
                Listing::Names {
                    channel,
                    name,
                    operators,
                    after,
                    count,
                } => {
                    // The channel closed (and its handle may be another's now): nothing more.
                    let open = hub.channel_name(*channel) == Some(&*name);
                    let mut pdu = Pdu::listing(Command::Names, order, Some(name));
                    let mut used = 0;
                    if open {
                        let members = hub.members_after(*channel, *operators, *after);
                        used = pack_names(&mut pdu, members, |key| {
                            *after = key;
                            *count += 1;
                        });
                    }
                    if used > 0 {
                        pdu.bytes_mut()[OPERATORS] = u8::from(*operators);
                        reply.send(&pdu);
                        false
                    } else if *operators && open {
                        *operators = false;
                        *after = 0;
                        false
                    } else {
                        reply.send(&Pdu::listing_end(Command::Names, order, Some(name), *count));
                        true
                    }
                }
                Listing::NetworkChannels { channels, next } => match channels.get(*next) {
                    Some(listed) => {
                        reply.send(&listed_pdu(order, listed));
                        *next += 1;
                        false
                    }
                    None => {
                        let count = u32::try_from(*next).unwrap_or(u32::MAX);
                        reply.send(&Pdu::listing_end(Command::ListChannels, order, None, count));
                        true
                    }
                },
                Listing::NetworkNames {
                    name,
                    members,
                    operators,
                    next,
                    count,
                } => {
                    let group = if *operators {
                        &members.operators
                    } else {
                        &members.others
                    };
                    let mut pdu = Pdu::listing(Command::Names, order, Some(name));
                    let rest = group.get(*next..).unwrap_or_default();
                    let used = pack_names(&mut pdu, rest.iter().map(|u| ((), u)), |()| {
                        *next += 1;
                        *count += 1;
                    });
                    if used > 0 {
                        pdu.bytes_mut()[OPERATORS] = u8::from(*operators);
                        reply.send(&pdu);
                        false
                    } else if *operators {
                        *operators = false;
                        *next = 0;
                        false
                    } else {
                        reply.send(&Pdu::listing_end(Command::Names, order, Some(name), *count));
                        true
                    }
                }
            },
        };
        if done {
            self.answer = None;
        }
    }

    /// KICK, BAN and UNBAN (v2 section 5).
    fn moderate(
        &mut self,
        command: Command,
        pdu: &Pdu,
        now: u64,
        hub: &mut Hub,
        reply: &mut Reply<'_, impl Outbox>,
        asked: &mut Option<Pending>,
    ) {
        let current = self.channel_name(hub);
        let field = pdu.channel();
        if field == SERVER_WIDE {
            return self.moderate_server(command, pdu, hub, reply, asked);
        }
        let Some(name) = named_channel(field, current, reply) else {
            return;
        };
        let target = match Username::new(pdu.target()) {
            Ok(target) => target,
            Err(e) => {
                let text = format!("error: no such user: {e}");
                return reply.error(current.as_ref(), text.as_bytes());
            }
        };
        if hub.is_clustered() {
            let (moderation, banned) = match command {
                Command::Kick => (Moderation::Kick, false),
                Command::Ban => (Moderation::Ban, true),
                _ => (Moderation::Unban, false),
            };
            // The reason as the texts keep it, so every server words them alike.
            let reason = fit_reason(pdu.reason());
            let removes_self =
                moderation != Moderation::Unban && target == self.user && current == Some(name);
            let own_removal =
                removes_self.then(|| Hub::removal_notice(&name, &self.user, reason, banned));
            let request = Request::Moderate {
                user: self.user,
                command: moderation,
                channel: name,
                target,
                reason: reason.into(),
                server_operator: hub.is_server_operator(&self.user),
            };
            let ack = Box::new(acknowledgement(command, reply.order, pdu));
            *asked = Some(ask(
                request,
                Awaits::Moderate {
                    name,
                    target,
                    ack,
                    own_removal,
                },
            ));
            return;
        }
        let open = hub.open_channel(&name);
        let allowed = hub.is_server_operator(&self.user)
            || open.is_some_and(|id| hub.is_operator(id, &self.user));
        if !allowed {
            let text = format!("error: you are not an operator of {name}");
            return reply.error(current.as_ref(), text.as_bytes());
        }
        if command != Command::Unban
            && target != self.user
            && hub.is_server_operator(&target)
            && !hub.is_server_operator(&self.user)
        {
            let text = format!(
                "error: {target} is a server operator: a channel operator cannot kick or ban one"
            );
            return reply.error(current.as_ref(), text.as_bytes());
        }
        let reason = pdu.reason();
        match command {
            Command::Kick => {
                let removed =
                    open.is_some_and(|id| hub.remove(id, &target, &self.user, reason, false, now));
                if !removed {
                    let text = format!("error: {target} is not in {name}");
                    return reply.error(current.as_ref(), text.as_bytes());
                }
            }
            Command::Ban => {
                if hub.ban(&name, &target).is_err() {
                    let text =
                        format!("error: ban list of {name} is full: at most {MAX_BANS} names");
                    return reply.error(current.as_ref(), text.as_bytes());
                }
                if let Some(id) = open {
                    hub.remove(id, &target, &self.user, reason, true, now);
                }
            }
            _ => {
                if !hub.unban(&name, &target) {
                    let text = format!("error: {target} is not banned from {name}");
                    return reply.error(current.as_ref(), text.as_bytes());
                }
            }
        }
        reply.send(&acknowledgement(command, reply.order, pdu));
        // An operator that removed itself: the hub sends no event for it, it is done here.
        if command != Command::Unban
            && target == self.user
            && self.member.take_if(|m| Some(m.channel) == open).is_some()
        {
            let banned = command == Command::Ban;
            let notice = Hub::removal_notice(&name, &self.user, reason, banned);
            self.removed = Some(Box::new(Removal {
                channel: name,
                notice,
                left: false,
            }));
        }
    }

    /// BAN and UNBAN with channel `*`: a server ban by address (v2 section 5).
    fn moderate_server(
        &mut self,
        command: Command,
        pdu: &Pdu,
        hub: &mut Hub,
        reply: &mut Reply<'_, impl Outbox>,
        asked: &mut Option<Pending>,
    ) {
        let current = self.channel_name(hub);
        if !hub.is_server_operator(&self.user) {
            return reply.error(
                current.as_ref(),
                b"error: only a server operator can ban from the whole server (*)",
            );
        }
        match command {
            Command::Ban => {
                let target = Username::new(pdu.target()).ok();
                if let Some(target) = target.filter(|_| hub.is_clustered()) {
                    let ack = Box::new(acknowledgement(command, reply.order, pdu));
                    let request = Request::ServerBan { target };
                    *asked = Some(ask(request, Awaits::ServerBan { target, ack }));
                    return;
                }
                let address = target.and_then(|target| hub.address_of(&target));
                let Some(address) = address else {
                    let text = format!(
                        "error: {} is not connected: a server ban takes the address of a \
                         connected user",
                        String::from_utf8_lossy(pdu.target())
                    );
                    return reply.error(current.as_ref(), text.as_bytes());
                };
                hub.ban_address(address);
            }
            Command::Unban => {
                let text = pdu.params_text();
                let address = std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.parse::<IpAddr>().ok());
                let Some(address) = address else {
                    let text = format!(
                        "error: '{}' is not an IP address (UNBAN * takes the address as text)",
                        String::from_utf8_lossy(text)
                    );
                    return reply.error(current.as_ref(), text.as_bytes());
                };
                if hub.is_clustered() {
                    let ack = Box::new(acknowledgement(command, reply.order, pdu));
                    let request = Request::ServerUnban { address };
                    *asked = Some(ask(request, Awaits::ServerUnban { address, ack }));
                    return;
                }
                if !hub.unban_address(&address) {
                    let text = format!("error: {address} is not banned");
                    return reply.error(current.as_ref(), text.as_bytes());
                }
            }
            _ => {
                return reply.error(
                    current.as_ref(),
                    b"error: KICK needs a channel: * is only for BAN and UNBAN",
                )
            }
        }
        reply.send(&acknowledgement(command, reply.order, pdu));
    }
}

/// A request for the network, waiting to be taken, and what its verdict completes.
fn ask(request: Request, awaits: Awaits) -> Pending {
    Pending {
        request: Some(request),
        awaits,
    }
}

/// Writes as many whole `names` as fit into the params of the NAMES PDU `pdu`, separated
/// by spaces and leaving room for the NUL (v2 section 3); `taken` is called with the key
/// of each one written. Returns the bytes used (0: none written).
fn pack_names<'a, K>(
    pdu: &mut Pdu,
    names: impl Iterator<Item = (K, &'a Username)>,
    mut taken: impl FnMut(K),
) -> usize {
    let params = &mut pdu.bytes_mut()[PREFIX_LEN + 4..];
    let mut used = 0;
    for (key, user) in names {
        let sep = usize::from(used > 0);
        let bytes = user.as_bytes();
        // Whole names, then the NUL, within the params.
        if used + sep + bytes.len() + 1 > NAMES_ROOM {
            break;
        }
        if sep == 1 {
            params[used] = b' ';
        }
        params[used + sep..used + sep + bytes.len()].copy_from_slice(bytes);
        used += sep + bytes.len();
        taken(key);
    }
    used
}

/// One channel's PDU of a LIST_CHANNELS listing (v2 section 3).
fn listed_pdu(order: ByteOrder, listed: &Listed) -> Pdu {
    let mut pdu = Pdu::listing(Command::ListChannels, order, Some(&listed.name));
    pdu.set_param_u32(0, listed.members)
        .set_param_u32(4, listed.retained);
    pdu
}

/// The channel a NAMES, KICK, BAN or UNBAN names in its channel `field`: that one, or the
/// client's `current` one when the field is empty. None after the error notice saying why
/// there is none.
fn named_channel(
    field: &[u8],
    current: Option<ChannelName>,
    reply: &mut Reply<'_, impl Outbox>,
) -> Option<ChannelName> {
    match (field, current) {
        (b"", Some(name)) => Some(name),
        (b"", None) => {
            reply.error(None, b"error: no channel given and not in a channel");
            None
        }
        (field, _) => match ChannelName::new(field) {
            Ok(name) => Some(name),
            Err(e) => {
                reply.error(current.as_ref(), format!("error: {e}").as_bytes());
                None
            }
        },
    }
}

/// The acknowledgement of a KICK, BAN or UNBAN (v2 section 5): the request back from
/// `SERVER`, with the channel field, target and reason (or, for UNBAN `*`, the address) the
/// request gave. Built from those fields rather than copied, so that whatever a client left
/// after a field's first NUL or past the channel field is not echoed: a sender zeroes it
/// (v1 section 2).
fn acknowledgement(command: Command, order: ByteOrder, request: &Pdu) -> Pdu {
    let mut ack = if command == Command::Unban && request.channel() == SERVER_WIDE {
        Pdu::unban_address(order, request.params_text())
    } else {
        let (channel, target, reason) = (request.channel(), request.target(), request.reason());
        Pdu::moderation(command, order, channel, target, reason)
    };
    ack.set_username(SERVER_NAME);
    ack
}

/// The error notice for a command field that is none of the codes in the connection's
/// fixed byte order (or a code of a later version than the connection's): the code as
/// read, and the bytes, since a client that writes the other order sends a known code that
/// reads as a huge one.
fn unknown_command(raw: [u8; 4], order: ByteOrder, version: u16) -> String {
    let code = order.decode(raw);
    let read = match order {
        ByteOrder::Little => "little-endian",
        ByteOrder::Big => "big-endian",
    };
    let last = if version >= 2 { 14 } else { 8 };
    let [a, b, c, d] = raw;
    format!(
        "error: unknown command code {code} (command field {a:02x} {b:02x} {c:02x} {d:02x}, \
         read {read}, the byte order this connection fixed): the codes of version {version} \
         are 0 to {last}"
    )
}

#[cfg(test)]
mod tests;
