//! One connection's protocol state machine, server side (contract sections 4 to 7).
//!
//! A `Session` takes decoded PDUs and the current time (in whole seconds) and writes its
//! answers into an [`Outbox`]; it changes the shared [`Hub`] as the contract says. It never
//! touches a socket or reads a clock, so every rule of the contract is unit-tested here.
//!
//! A QUERY answer is not produced in one go: [`Session::on_pdu`] only records where it
//! ends, and the reactor pulls it with [`Session::continue_answer`] as the client's
//! socket drains. While an answer is in flight the reactor reads no further PDU from the
//! client, which keeps the contract's rule that an answer is never interleaved.

use crate::hub::{ChannelId, Hub, Next};
use crate::names::{check_channel, NameError, Username};
use crate::pdu::{ByteOrder, Command, Decoded, Pdu, MAX_USERNAME, PROTOCOL_VERSION};

/// Where answers go: the connection's TLS or plaintext output.
pub trait Outbox {
    fn send(&mut self, pdu: &Pdu);
}

impl Outbox for Vec<Pdu> {
    fn send(&mut self, pdu: &Pdu) {
        self.push(pdu.clone());
    }
}

/// The server's deadlines in seconds (contract section 7); 0 turns one off.
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
    /// Close with TLS close_notify (QUIT, or an unsupported version after its notice).
    Close,
}

/// One connection's protocol state: about 80 bytes.
#[derive(Debug)]
pub struct Session {
    phase: Phase,
    order: ByteOrder,
    /// Set by the client's VERSION_NEGOTIATION; before it, either order is accepted.
    order_fixed: bool,
    /// When the current set-up phase began (its deadline counts from here).
    phase_started: u64,
    last_pdu_at: u64,
    user: Option<Username>,
    channel: Option<ChannelId>,
    /// Read position in the channel's history.
    cursor: u64,
    /// While a QUERY answer is being sent: the history position where it ends.
    answer_end: Option<u64>,
}

impl Session {
    /// A session for a connection accepted at `now`: the pre-PING deadline runs from here.
    pub fn new(now: u64) -> Session {
        Session {
            phase: Phase::AwaitPing,
            order: ByteOrder::Little,
            order_fixed: false,
            phase_started: now,
            last_pdu_at: now,
            user: None,
            channel: None,
            cursor: 0,
            answer_end: None,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The byte order the server writes to this client in.
    pub fn order(&self) -> ByteOrder {
        self.order
    }

    /// The accepted username, once established.
    pub fn user(&self) -> Option<&Username> {
        self.user.as_ref()
    }

    /// Whether a QUERY answer is still being sent; no PDU may be read until it is done.
    pub fn answering(&self) -> bool {
        self.answer_end.is_some()
    }

    /// The second at which this connection times out, if any.
    pub fn deadline(&self, deadlines: &Deadlines) -> Option<u64> {
        let (start, length) = match self.phase {
            Phase::AwaitPing | Phase::AwaitVersion | Phase::AwaitClientInfo => {
                (self.phase_started, deadlines.handshake)
            }
            Phase::Connected | Phase::InChannel => (self.last_pdu_at, deadlines.idle),
        };
        (length > 0).then_some(start + length)
    }

    /// Handles one whole PDU received at `now`.
    pub fn on_pdu(&mut self, pdu: &Pdu, now: u64, hub: &mut Hub, out: &mut impl Outbox) -> Step {
        let fixed = self.order_fixed.then_some(self.order);
        let command = match pdu.decode_command(fixed) {
            Decoded::Known { command, order } => Some((command, order)),
            Decoded::Unknown(_) => None,
        };
        if command.is_some_and(|(c, _)| c == Command::Quit) {
            return Step::Close;
        }
        match self.phase {
            Phase::AwaitPing => {
                if let Some((Command::PingPong, order)) = command {
                    // Before the order is fixed, the server answers in the PING's order.
                    self.order = order;
                    out.send(&Pdu::ping(order));
                    out.send(&Pdu::server_version(order, PROTOCOL_VERSION));
                    self.enter_setup(Phase::AwaitVersion, now);
                }
                Step::Continue
            }
            Phase::AwaitVersion => match command {
                Some((Command::VersionNegotiation, order)) => {
                    self.order = order;
                    self.order_fixed = true;
                    let version = pdu.version();
                    if (1..=PROTOCOL_VERSION).contains(&version) {
                        self.enter_setup(Phase::AwaitClientInfo, now);
                        Step::Continue
                    } else {
                        let text = format!(
                            "error: unsupported version {version}, this server speaks version {PROTOCOL_VERSION}"
                        );
                        self.error(text.as_bytes(), hub, out);
                        Step::Close
                    }
                }
                _ => Step::Continue,
            },
            Phase::AwaitClientInfo => {
                if let Some((Command::ClientInfo, _)) = command {
                    self.client_info(pdu, now, hub, out);
                }
                Step::Continue
            }
            Phase::Connected | Phase::InChannel => {
                self.last_pdu_at = now;
                self.established(pdu, command.map(|(c, _)| c), hub, out);
                Step::Continue
            }
        }
    }

    fn enter_setup(&mut self, phase: Phase, now: u64) {
        self.phase = phase;
        self.phase_started = now;
    }

    fn client_info(&mut self, pdu: &Pdu, now: u64, hub: &mut Hub, out: &mut impl Outbox) {
        let (name, after) = pdu.client_info_name();
        // A 10-byte name followed by anything but NUL or the hostname's space is longer.
        let checked = if name.len() == MAX_USERNAME && after != 0 && after != b' ' {
            Err(NameError::TooLong)
        } else {
            Username::new(name)
        };
        let user = match checked {
            Ok(user) => user,
            Err(e) => {
                self.error(format!("error: invalid username: {e}").as_bytes(), hub, out);
                return;
            }
        };
        if !hub.claim_name(user) {
            let text = format!("error: username {user} is taken");
            self.error(text.as_bytes(), hub, out);
            return;
        }
        self.user = Some(user);
        self.phase = Phase::Connected;
        self.last_pdu_at = now;
        out.send(&Pdu::client_info_ack(self.order, user.as_bytes()));
    }

    fn established(
        &mut self,
        pdu: &Pdu,
        command: Option<Command>,
        hub: &mut Hub,
        out: &mut impl Outbox,
    ) {
        let Some(user) = self.user else {
            return;
        };
        match command {
            Some(Command::JoinChannel) => self.join(pdu, user, hub, out),
            Some(Command::LeaveChannel) => match self.channel.take() {
                Some(id) => {
                    out.send(&Pdu::channel_ack(
                        Command::LeaveChannel,
                        self.order,
                        hub.channel_name(id),
                    ));
                    hub.leave(id, &user);
                    self.phase = Phase::Connected;
                    self.answer_end = None;
                }
                None => self.error(b"error: not in a channel", hub, out),
            },
            Some(Command::SendMessage) => match self.channel {
                Some(id) if !pdu.params_text().is_empty() => hub.post(id, user, pdu.params_text()),
                Some(_) => self.error(b"error: empty message", hub, out),
                None => self.error(b"error: not in a channel, join one first", hub, out),
            },
            Some(Command::Query) => match self.channel {
                Some(id) => self.answer_end = Some(hub.end_seq(id)),
                None => out.send(&Pdu::up_to_date_marker(self.order, b"")),
            },
            Some(Command::PingPong) => out.send(&Pdu::ping(self.order)),
            Some(Command::ReceiveMessage) => self.error(
                b"error: RECEIVE_MESSAGE is sent by the server only",
                hub,
                out,
            ),
            Some(Command::VersionNegotiation) | Some(Command::ClientInfo) => {
                self.error(b"error: already connected", hub, out)
            }
            Some(Command::Quit) | None => self.error(b"error: unknown command", hub, out),
        }
    }

    fn join(&mut self, pdu: &Pdu, user: Username, hub: &mut Hub, out: &mut impl Outbox) {
        let name = pdu.channel();
        // A 50-byte name followed by anything but NUL is longer than 50 bytes.
        let checked = if name.len() == crate::pdu::MAX_CHANNEL && pdu.after_channel() != 0 {
            Err(NameError::TooLong)
        } else {
            check_channel(name)
        };
        if let Err(e) = checked {
            self.error(
                format!("error: invalid channel name: {e}").as_bytes(),
                hub,
                out,
            );
            return;
        }
        if let Some(id) = self.channel {
            if hub.channel_name(id) == name {
                out.send(&Pdu::channel_ack(Command::JoinChannel, self.order, name));
                return;
            }
            hub.leave(id, &user);
        }
        let (id, cursor) = hub.join(name, &user);
        // An answer in flight belonged to the old channel (the reactor never lets this
        // happen, but the session does not rely on it).
        self.answer_end = None;
        self.channel = Some(id);
        self.cursor = cursor;
        self.phase = Phase::InChannel;
        out.send(&Pdu::channel_ack(Command::JoinChannel, self.order, name));
    }

    fn error(&self, text: &[u8], hub: &Hub, out: &mut impl Outbox) {
        let channel = self.channel.map_or(&[][..], |id| hub.channel_name(id));
        out.send(&Pdu::notice(self.order, channel, text));
    }

    /// Sends up to `budget` more PDUs of the QUERY answer in flight. Returns true when the
    /// answer is complete (its up-to-date PDU sent) or none was in flight.
    pub fn continue_answer(&mut self, hub: &Hub, budget: usize, out: &mut impl Outbox) -> bool {
        let (Some(end), Some(id), Some(user)) = (self.answer_end, self.channel, self.user) else {
            self.answer_end = None;
            return true;
        };
        let channel = hub.channel_name(id);
        for _ in 0..budget {
            match hub.next_entry(id, &mut self.cursor, end, &user) {
                Next::Skipped(n) => {
                    let text = format!("{n} messages were skipped");
                    out.send(&Pdu::notice(self.order, channel, text.as_bytes()));
                }
                Next::Entry(entry) => {
                    let sender = entry
                        .sender
                        .as_ref()
                        .map_or(crate::pdu::SERVER_NAME, |s| s.as_bytes());
                    out.send(&Pdu::receive(self.order, sender, channel, &entry.text));
                }
                Next::Done => {
                    out.send(&Pdu::up_to_date_marker(self.order, channel));
                    self.answer_end = None;
                    return true;
                }
            }
        }
        false
    }

    /// Releases what the connection held: its channel (`<user> left`) and its name. Called
    /// once, whatever closed the connection.
    pub fn close(&mut self, hub: &mut Hub) {
        if let Some(user) = self.user.take() {
            if let Some(id) = self.channel.take() {
                hub.leave(id, &user);
            }
            hub.release_name(&user);
        }
        self.answer_end = None;
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
