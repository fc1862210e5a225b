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

use crate::hub::{ChannelId, Hub, Next};
use crate::names::Username;
use crate::outbox::Outbox;
use crate::pdu::{ByteOrder, Command, Decoded, Pdu, SERVER_NAME};

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

/// Where a connection stands. Everything that only exists once established (the name,
/// the channel, the read position, an answer in flight) lives inside the variant that has
/// it, so no combination the contract forbids can be represented.
#[derive(Debug)]
enum State {
    AwaitPing,
    AwaitVersion,
    AwaitClientInfo,
    Established {
        user: Username,
        member: Option<Membership>,
    },
}

/// A client's place in its channel. Replaced whole on JOIN and dropped on LEAVE, so a
/// read position or an answer never outlives the channel it belongs to.
#[derive(Debug)]
struct Membership {
    channel: ChannelId,
    /// Read position in the channel's history.
    cursor: u64,
    /// While a QUERY answer is being sent: the history position where it ends.
    answer_end: Option<u64>,
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
}

impl Session {
    /// A session for a connection accepted at `now` (milliseconds): the pre-PING deadline
    /// runs from here.
    pub fn new(now: u64) -> Session {
        Session {
            state: State::AwaitPing,
            order: ByteOrder::Little,
            order_fixed: false,
            clock_from: now,
        }
    }

    pub fn phase(&self) -> Phase {
        match &self.state {
            State::AwaitPing => Phase::AwaitPing,
            State::AwaitVersion => Phase::AwaitVersion,
            State::AwaitClientInfo => Phase::AwaitClientInfo,
            State::Established { member: None, .. } => Phase::Connected,
            State::Established {
                member: Some(_), ..
            } => Phase::InChannel,
        }
    }

    /// The byte order the server writes to this client in.
    pub fn order(&self) -> ByteOrder {
        self.order
    }

    /// The accepted username, once established.
    pub fn user(&self) -> Option<&Username> {
        match &self.state {
            State::Established { user, .. } => Some(user),
            _ => None,
        }
    }

    fn member(&self) -> Option<&Membership> {
        match &self.state {
            State::Established { member, .. } => member.as_ref(),
            _ => None,
        }
    }

    /// Whether a QUERY answer is still being sent; no PDU may be read until it is done.
    pub fn answering(&self) -> bool {
        self.member().is_some_and(|m| m.answer_end.is_some())
    }

    /// The first millisecond at which this connection has timed out, if a deadline runs:
    /// one past the start of the deadline plus its length. Both times are whole
    /// milliseconds rounded down, so only a difference of more than the length proves the
    /// full length has passed; at exactly the length it could be up to 1 ms short.
    pub fn deadline(&self, deadlines: &Deadlines) -> Option<u64> {
        let seconds = match self.state {
            State::Established { .. } => deadlines.idle,
            _ => deadlines.handshake,
        };
        (seconds > 0).then(|| {
            self.clock_from
                .saturating_add(seconds.saturating_mul(1000))
                .saturating_add(1)
        })
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
        match self.state {
            State::AwaitPing => {
                if let Some((Command::PingPong, order)) = command {
                    // Before the order is fixed, the server answers in the PING's order.
                    self.order = order;
                    out.send(&Pdu::ping(order));
                    out.send(&Pdu::server_version(order, 1));
                    self.enter_setup(State::AwaitVersion, now);
                }
                Step::Continue
            }
            State::AwaitVersion => match command {
                Some((Command::VersionNegotiation, order)) => {
                    self.order = order;
                    self.order_fixed = true;
                    let version = pdu.version();
                    if version == 1 {
                        self.enter_setup(State::AwaitClientInfo, now);
                        Step::Continue
                    } else {
                        let text = format!(
                            "error: unsupported protocol version {version}: this server \
                             speaks version 1, a big-endian u16 in params[0..2]"
                        );
                        self.error(text.as_bytes(), hub, out);
                        Step::Close(Ending::VersionRejected)
                    }
                }
                _ => Step::Continue,
            },
            State::AwaitClientInfo => {
                if let Some((Command::ClientInfo, _)) = command {
                    self.client_info(pdu, now, hub, out);
                }
                Step::Continue
            }
            State::Established { .. } => {
                self.clock_from = now;
                self.established(pdu, command.map(|(c, _)| c), hub, out);
                Step::Continue
            }
        }
    }

    fn enter_setup(&mut self, state: State, now: u64) {
        self.state = state;
        self.clock_from = now;
    }

    fn client_info(&mut self, pdu: &Pdu, now: u64, hub: &mut Hub, out: &mut impl Outbox) {
        let user = match pdu.client_info_username() {
            Ok(user) => user,
            Err(e) => {
                self.error(format!("error: {e}").as_bytes(), hub, out);
                return;
            }
        };
        if !hub.claim_name(user) {
            let text = format!(
                "error: username '{user}' is taken: a connected client has it (names are \
                 compared ignoring case)"
            );
            self.error(text.as_bytes(), hub, out);
            return;
        }
        self.state = State::Established { user, member: None };
        self.clock_from = now;
        out.send(&Pdu::client_info_ack(self.order, user.as_bytes()));
    }

    fn established(
        &mut self,
        pdu: &Pdu,
        command: Option<Command>,
        hub: &mut Hub,
        out: &mut impl Outbox,
    ) {
        let State::Established { user, member } = &mut self.state else {
            return;
        };
        let user = *user;
        let order = self.order;
        match (command, member) {
            (Some(Command::JoinChannel), member) => {
                let name = match pdu.channel_name() {
                    Ok(name) => name,
                    Err(e) => return self.error(format!("error: {e}").as_bytes(), hub, out),
                };
                if let Some(current) = member {
                    if hub.channel_name(current.channel) == Some(&name) {
                        return out.send(&Pdu::channel_ack(Command::JoinChannel, order, &name));
                    }
                    hub.leave(current.channel, &user);
                }
                let (channel, cursor) = hub.join(&name, &user);
                *member = Some(Membership {
                    channel,
                    cursor,
                    answer_end: None,
                });
                out.send(&Pdu::channel_ack(Command::JoinChannel, order, &name));
            }
            (Some(Command::LeaveChannel), member @ Some(_)) => {
                if let Some(left) = member.take() {
                    // A channel exists while it has members: it has a name until the
                    // `leave` below.
                    if let Some(name) = hub.channel_name(left.channel) {
                        out.send(&Pdu::channel_ack(Command::LeaveChannel, order, name));
                    }
                    hub.leave(left.channel, &user);
                }
            }
            (Some(Command::LeaveChannel), None) => {
                self.error(b"error: cannot leave: not in a channel", hub, out)
            }
            (Some(Command::SendMessage), Some(m)) if !pdu.params_text().is_empty() => {
                hub.post(m.channel, user, pdu.params_text())
            }
            (Some(Command::SendMessage), Some(_)) => self.error(
                b"error: message not sent: it is empty (a message is 1 to 2000 bytes before \
                  the first NUL)",
                hub,
                out,
            ),
            (Some(Command::SendMessage), None) => self.error(
                b"error: message not sent: not in a channel, join one first",
                hub,
                out,
            ),
            (Some(Command::Query), Some(m)) => m.answer_end = Some(hub.end_seq(m.channel)),
            (Some(Command::Query), None) => out.send(&Pdu::up_to_date_marker(order, None)),
            (Some(Command::PingPong), _) => out.send(&Pdu::ping(order)),
            (Some(Command::ReceiveMessage), _) => self.error(
                b"error: RECEIVE_MESSAGE (5) is sent by the server only",
                hub,
                out,
            ),
            (Some(Command::VersionNegotiation), _) => self.error(
                b"error: VERSION_NEGOTIATION (1) is only accepted during set-up, and this \
                  connection is already established",
                hub,
                out,
            ),
            (Some(Command::ClientInfo), _) => {
                let text = format!(
                    "error: CLIENT_INFO (2) is only accepted during set-up, and this \
                     connection is already established as '{user}'"
                );
                self.error(text.as_bytes(), hub, out)
            }
            // QUIT closed the connection before this match.
            (
                Some(
                    Command::Quit
                    | Command::ListChannels
                    | Command::Names
                    | Command::Kick
                    | Command::Ban
                    | Command::Unban
                    | Command::Oper,
                )
                | None,
                _,
            ) => {
                let text = unknown_command(pdu.command_bytes(), order);
                self.error(text.as_bytes(), hub, out)
            }
        }
    }

    fn error(&self, text: &[u8], hub: &Hub, out: &mut impl Outbox) {
        let channel = self.member().and_then(|m| hub.channel_name(m.channel));
        out.send(&Pdu::notice(self.order, channel, text));
    }

    /// Sends up to `budget` more PDUs of the QUERY answer in flight. Returns true when the
    /// answer is complete (its up-to-date PDU sent) or none was in flight.
    pub fn continue_answer(&mut self, hub: &Hub, budget: usize, out: &mut impl Outbox) -> bool {
        let order = self.order;
        let State::Established {
            user,
            member: Some(m),
        } = &mut self.state
        else {
            return true;
        };
        let Some(end) = m.answer_end else {
            return true;
        };
        let channel = hub.channel_name(m.channel);
        for _ in 0..budget {
            match hub.next_entry(m.channel, &mut m.cursor, end, user) {
                Next::Skipped(n) => {
                    let text = format!("{n} messages were skipped");
                    out.send(&Pdu::notice(order, channel, text.as_bytes()));
                }
                Next::Entry(entry) => {
                    let sender = entry.sender.as_ref().map_or(SERVER_NAME, |s| s.as_bytes());
                    out.send(&Pdu::receive(order, sender, channel, &entry.text));
                }
                Next::Done => {
                    out.send(&Pdu::up_to_date_marker(order, channel));
                    m.answer_end = None;
                    return true;
                }
            }
        }
        false
    }

    /// Releases what the connection held: its channel (`<user> left`) and its name. Called
    /// once, whatever closed the connection.
    pub fn close(&mut self, hub: &mut Hub) {
        if let State::Established { user, member } =
            std::mem::replace(&mut self.state, State::AwaitPing)
        {
            if let Some(m) = member {
                hub.leave(m.channel, &user);
            }
            hub.release_name(&user);
        }
    }
}

/// The error notice for a command field that is none of the codes in the connection's
/// fixed byte order: the code as read, and the bytes, since a client that writes the other
/// order sends a known code that reads as a huge one.
fn unknown_command(raw: [u8; 4], order: ByteOrder) -> String {
    let code = order.decode(raw);
    let read = match order {
        ByteOrder::Little => "little-endian",
        ByteOrder::Big => "big-endian",
    };
    let [a, b, c, d] = raw;
    format!(
        "error: unknown command code {code} (command field {a:02x} {b:02x} {c:02x} {d:02x}, \
         read {read}, the byte order this connection fixed): the codes are 0 to 8"
    )
}

#[cfg(test)]
mod tests;
