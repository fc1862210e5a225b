//! The client side of the KaiChat contract, versions 1 and 2 (v1 sections 4, 5, 6 and 8;
//! v2 sections 1 to 5), sans-IO.
//!
//! A [`Client`] is one connection's state machine: decoded server PDUs and the current time
//! go in, [`Event`]s come out, and the PDUs to send are pushed into an [`Outbox`] the caller
//! provides. It owns set-up (PING, version, CLIENT_INFO with retries on a rejected name),
//! the client-side deadlines, the current channel, the bookkeeping of answers still owed
//! (QUERY, PING, JOIN, LEAVE and the v2 requests) and the optional automatic QUERY / PING
//! keep-alive schedule.
//!
//! The version is `min(server's highest, Settings::max_version)`. On version 1 the client
//! polls with QUERY; on version 2 the server pushes every entry of the channel (the client's
//! own messages included, each with its time stamp), so the client only sends PING to keep
//! the connection alive, and it can list channels and names and moderate.
//!
//! It never touches a socket, never reads a clock and never allocates per PDU: events
//! borrow their text from the PDU they were decoded from. The same machine drives the
//! `kaichat` terminal client (one person) and `loadgen` (thousands of simulated clients in
//! one reactor), so its state is a couple of hundred bytes.
//!
//! A typical life:
//! ```
//! use std::time::{Duration, Instant};
//! use kaichat_proto::client::{Client, Event, Phase, Settings};
//! use kaichat_proto::names::{ChannelName, Username};
//! use kaichat_proto::pdu::{ByteOrder, Command, Pdu};
//!
//! let now = Instant::now();
//! let mut client = Client::new(Settings::default());
//! let mut out: Vec<Pdu> = Vec::new();
//! client.offer_name(Username::new(b"amy").unwrap(), now, &mut out).unwrap();
//! client.start(now, &mut out); // PING
//! let order = ByteOrder::Little;
//! client.handle(&Pdu::ping(order), now, &mut out).unwrap(); // PONG
//! client.handle(&Pdu::server_version(order, 1), now, &mut out).unwrap(); // -> VERSION, CLIENT_INFO
//! let ack = Pdu::client_info_ack(order, b"amy");
//! assert!(matches!(client.handle(&ack, now, &mut out), Ok(Some(Event::Established { .. }))));
//! client.join(&ChannelName::new(b"@rust").unwrap(), now, &mut out).unwrap();
//! assert_eq!(client.phase(), Phase::Established);
//! assert_eq!(out.len(), 4); // PING, VERSION, CLIENT_INFO, JOIN
//! ```

use std::fmt;
use std::time::{Duration, Instant};

use crate::names::{ChannelName, Username};
use crate::outbox::Outbox;
use crate::pdu::{
    ByteOrder, Command, Decoded, Pdu, MAX_MESSAGE, MAX_PASSWORD, MAX_USERNAME, PROTOCOL_VERSION,
    SERVER_NAME, SERVER_WIDE,
};

/// The prefix of an error notice's text (contract section 6).
pub const ERROR_PREFIX: &[u8] = b"error: ";

/// The default keep-alive interval: a quarter of the server's default idle deadline
/// (120 s), as v2 section 2 asks of a client with nothing to say.
pub const KEEPALIVE: Duration = Duration::from_secs(30);

/// How a [`Client`] behaves. A zero timeout turns that deadline off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Byte order of the command field, for every PDU sent and received.
    pub order: ByteOrder,
    /// Client-side set-up deadlines (section 8): PING → PONG, PONG → server version, our
    /// VERSION_NEGOTIATION → accepted CLIENT_INFO (not restarted by a rejected name, as
    /// the server's own deadline is not).
    pub setup_timeout: Duration,
    /// Once established: how long the server may go without answering a QUERY or PING it
    /// owes. Restarted by every such answer. (JOIN and LEAVE are not timed: a refusal
    /// cannot always be told from a refused message, see [`Event::Refused`].)
    pub reply_timeout: Duration,
    /// On version 1, send QUERY this often while in a channel ([`Client::poll`]); `None`
    /// leaves querying to the caller. Not used on version 2, where the server pushes.
    pub query_interval: Option<Duration>,
    /// Send PING when nothing was sent for this long and no answer is owed, so that the
    /// server's idle deadline (120 s) never ends the connection; `None` turns it off. It
    /// runs in a channel too: automatic QUERY less frequent than this would let the idle
    /// deadline pass, and any PDU sent (QUERY included) restarts it. On version 2 it is
    /// the only thing a quiet client sends, and v2 section 2 asks for at most a quarter
    /// of the idle deadline: the default, 30 s, is a quarter of the default 120 s.
    pub keepalive_interval: Option<Duration>,
    /// The highest protocol version this client offers: 2 (the default) or 1 to force
    /// version 1 (polling, no echo, no time stamps). 0 counts as 1; above
    /// [`PROTOCOL_VERSION`] counts as it.
    pub max_version: u16,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            order: ByteOrder::Little,
            setup_timeout: Duration::from_secs(30),
            reply_timeout: Duration::from_secs(30),
            query_interval: Some(Duration::from_secs(3)),
            keepalive_interval: Some(KEEPALIVE),
            max_version: PROTOCOL_VERSION,
        }
    }
}

/// Where a connection is in its life (contract section 4, seen from the client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// [`Client::start`] not called yet.
    Idle,
    /// PING sent, waiting for PONG.
    AwaitPong,
    /// PONG received, waiting for the server's VERSION_NEGOTIATION.
    AwaitServerVersion,
    /// Version agreed; waiting for the caller to [`Client::offer_name`].
    AwaitName,
    /// CLIENT_INFO sent, waiting for its acknowledgement or an error notice.
    AwaitNameAck,
    /// Accepted: join, leave, send, query.
    Established,
    /// QUIT sent, or a fatal error or deadline: nothing more is sent or accepted.
    Closed,
}

impl Phase {
    /// When a request refused in this phase was made, for [`ClientError::WrongPhase`].
    fn when(self) -> &'static str {
        match self {
            Phase::Idle => "before the connection is started",
            Phase::AwaitPong => "while waiting for the server's PONG",
            Phase::AwaitServerVersion => "while waiting for the server's protocol version",
            Phase::AwaitName => "while no username is offered",
            Phase::AwaitNameAck => "while the server has not accepted the username yet",
            Phase::Established => "once the connection is established",
            Phase::Closed => "after the connection is closed",
        }
    }
}

/// What a [`Client`] was waiting for when a deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiting {
    Pong,
    ServerVersion,
    NameAccepted,
    Reply,
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Waiting::Pong => "the server's PONG",
            Waiting::ServerVersion => "the server's protocol version",
            Waiting::NameAccepted => "a username to be accepted",
            Waiting::Reply => "an answer from the server",
        })
    }
}

/// Why a request was refused or the connection is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// A deadline passed; the connection should be closed.
    Timeout(Waiting),
    /// The server offered no version we speak (its highest was 0).
    NoCommonVersion { server_highest: u16 },
    /// The request does not fit the current phase (e.g. JOIN before the name is accepted).
    WrongPhase(Phase),
    /// SEND_MESSAGE or LEAVE_CHANNEL outside a channel.
    NotInChannel,
    /// A message must have 1 to 2000 bytes.
    EmptyMessage,
    /// Longer than 2000 bytes (`len`): cut it with [`cut_message`] first.
    MessageTooLong { len: usize },
    /// [`MAX_PENDING_REQUESTS`] requests (JOIN, LEAVE and the v2 ones) already wait for
    /// an answer.
    TooManyPending,
    /// A NUL byte would end the message (or reason, or password) early on the wire.
    MessageHasNul,
    /// The request exists from protocol version 2 on; this connection agreed on `agreed`.
    NeedsVersion2 { agreed: u16 },
    /// A KICK/BAN reason longer than [`MAX_REASON`] bytes (`len`).
    ReasonTooLong { len: usize },
    /// An OPER password must have 1 to [`MAX_PASSWORD`] bytes (v2 section 4); `len` had.
    BadPassword { len: usize },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Timeout(waiting) => write!(f, "timed out waiting for {waiting}"),
            ClientError::NoCommonVersion { server_highest } => write!(
                f,
                "no common protocol version: the server speaks up to version \
                 {server_highest}, this client speaks version {PROTOCOL_VERSION}"
            ),
            ClientError::WrongPhase(phase) => write!(f, "not possible {}", phase.when()),
            ClientError::NotInChannel => f.write_str("not in a channel: join one first"),
            ClientError::EmptyMessage => {
                write!(f, "message is empty: a message is 1 to {MAX_MESSAGE} bytes")
            }
            ClientError::MessageTooLong { len } => write!(
                f,
                "message is too long: {len} bytes, the limit is {MAX_MESSAGE}"
            ),
            ClientError::MessageHasNul => f.write_str(
                "message contains a NUL byte, which would end it on the wire: any byte but \
                 NUL is allowed",
            ),
            ClientError::TooManyPending => write!(
                f,
                "too many requests waiting for an answer: at most {MAX_PENDING_REQUESTS}"
            ),
            ClientError::NeedsVersion2 { agreed } => write!(
                f,
                "this needs protocol version 2, and this connection speaks version {agreed}"
            ),
            ClientError::ReasonTooLong { len } => write!(
                f,
                "reason is too long: {len} bytes, the limit is {MAX_REASON}"
            ),
            ClientError::BadPassword { len } => write!(
                f,
                "password has {len} bytes: an operator password is 1 to {MAX_PASSWORD} \
                 bytes without NUL"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

/// A server PDU that made no sense where it arrived. It is ignored (the connection goes
/// on); it is reported so that tools can count protocol violations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unexpected {
    /// A command field that is none of the fifteen codes in our byte order.
    UnknownCommand([u8; 4]),
    /// A command only clients send (QUIT, SEND_MESSAGE, QUERY).
    ClientCommand(Command),
    /// An acknowledgement or version whose username field is not `SERVER`.
    NotFromServer(Command),
    /// A JOIN_CHANNEL or LEAVE_CHANNEL acknowledgement whose channel field holds no valid
    /// channel name.
    InvalidChannel(Command),
    /// A known command that answers nothing we asked for, or arrives in the wrong phase
    /// (a version-2 command on a version-1 connection among them).
    Unsolicited(Command),
}

/// A request that waits for its answer, see [`Event::Refused`]. All but `ListChannels`
/// can be refused with an error notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Request {
    Join = 1,
    Leave = 2,
    /// Version 2 from here on.
    ListChannels = 3,
    Names = 4,
    Kick = 5,
    Ban = 6,
    Unban = 7,
    Oper = 8,
}

impl Request {
    fn from_code(code: u8) -> Option<Request> {
        Some(match code {
            1 => Request::Join,
            2 => Request::Leave,
            3 => Request::ListChannels,
            4 => Request::Names,
            5 => Request::Kick,
            6 => Request::Ban,
            7 => Request::Unban,
            8 => Request::Oper,
            _ => return None,
        })
    }

    /// The command the request is sent as.
    pub fn command(self) -> Command {
        match self {
            Request::Join => Command::JoinChannel,
            Request::Leave => Command::LeaveChannel,
            Request::ListChannels => Command::ListChannels,
            Request::Names => Command::Names,
            Request::Kick => Command::Kick,
            Request::Ban => Command::Ban,
            Request::Unban => Command::Unban,
            Request::Oper => Command::Oper,
        }
    }
}

/// What a server PDU meant. Text borrows from the PDU: copy it if you keep it. The channel
/// of an acknowledgement is checked, as the client keeps it; the channel of a message,
/// notice or up-to-date PDU is the field as the server wrote it (empty for a notice or
/// an answer outside a channel), passed on unread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'p> {
    /// PONG: during set-up, or the answer to a keep-alive PING.
    Pong,
    /// The server's VERSION_NEGOTIATION arrived and we answered with `version`.
    VersionAgreed { version: u16 },
    /// CLIENT_INFO was acknowledged: the connection is established.
    Established { username: &'p [u8] },
    /// CLIENT_INFO was refused; `reason` is the text after `error: `. Offer another name.
    NameRejected { reason: &'p [u8] },
    /// JOIN_CHANNEL acknowledged: `channel` is now the current channel.
    Joined { channel: ChannelName },
    /// LEAVE_CHANNEL acknowledged: no current channel now.
    Left { channel: ChannelName },
    /// A LEAVE_CHANNEL from `SERVER` that answers no LEAVE of ours: an operator kicked or
    /// banned this client (v2 section 5; a v1 client gets it too). No current channel now;
    /// the notice saying who and why follows.
    Removed { channel: ChannelName },
    /// An error notice that answers our oldest pending request: it was refused and
    /// nothing changed. `reason` is the text after `error: `. (An error notice that may
    /// answer a SEND_MESSAGE is reported as [`Event::Notice`] instead.)
    Refused { request: Request, reason: &'p [u8] },
    /// Chat (in a QUERY answer, or pushed on version 2). `own` when the sender is this
    /// client's name: on version 2 the echo of its own message (v2 section 2a); version 1
    /// never sends those. `time` is when the server stored it, ms since the Unix epoch
    /// (v2 section 2a); 0 on version 1.
    Message {
        sender: &'p [u8],
        channel: &'p [u8],
        text: &'p [u8],
        time: u64,
        own: bool,
    },
    /// A notice from `SERVER`: a channel notice (`joined`, `left`, `skipped`, and on v2
    /// `was kicked`, `is now an operator`, `you were kicked`) or, when `is_error`, the
    /// answer to a request of ours that failed. `text` is the whole text. `time` as for
    /// [`Event::Message`] (0 on version 1).
    Notice {
        channel: &'p [u8],
        text: &'p [u8],
        is_error: bool,
        time: u64,
    },
    /// The end of one QUERY answer.
    UpToDate { channel: &'p [u8] },
    /// One channel of a LIST_CHANNELS answer (v2 section 3), in byte order of the names.
    Channel {
        channel: &'p [u8],
        members: u32,
        history: u32,
    },
    /// The end of a LIST_CHANNELS answer: `count` channels were listed.
    ChannelsEnd { count: u32 },
    /// Part of a NAMES answer (v2 section 3): usernames separated by single spaces;
    /// `operators` when they are the channel's operators (these come first).
    Names {
        channel: &'p [u8],
        operators: bool,
        names: &'p [u8],
    },
    /// The end of a NAMES answer: `count` names were listed.
    NamesEnd { channel: &'p [u8], count: u32 },
    /// A KICK, BAN or UNBAN was acknowledged (done). `target` is the username (or, for an
    /// UNBAN of a server ban, the address), `channel` the field as sent back (`*` for a
    /// server ban).
    Moderated {
        request: Request,
        channel: &'p [u8],
        target: &'p [u8],
    },
    /// OPER was accepted: this connection is a server operator until it closes.
    Operator,
    /// A PDU that was ignored; see [`Unexpected`].
    Unexpected(Unexpected),
}

/// Most requests ([`Request`]: JOIN, LEAVE and the v2 ones) that can wait for their
/// answer at once.
pub const MAX_PENDING_REQUESTS: u8 = 32;
// Each pending request is 4 bits of `Owed::requests`.
const _: () = assert!(MAX_PENDING_REQUESTS as u32 * 4 <= u128::BITS);

/// Longest KICK/BAN reason: params[11..], NUL-terminated (v2 section 5).
pub const MAX_REASON: usize = MAX_MESSAGE - MAX_USERNAME - 2;

/// The texts of the notice a removed client gets (v2 section 5); on v1 after `error: `.
/// It is sent unasked, so it never refuses a request of ours.
const REMOVAL_NOTICES: [&[u8]; 2] = [b"you were kicked from ", b"you were banned from "];

/// Answers the server still owes us. The server answers in order and each kind has its own
/// answer PDU, so QUERY and PING need only a count. The other requests can be refused by an
/// error notice, which does not say what it refuses: their order is kept, 4 bits each, so
/// that a refusal goes to the oldest, and an answer settles every older request too (the
/// server answered those first, so they were refused in a way we could not attribute).
#[derive(Clone, Copy, Debug, Default)]
struct Owed {
    queries: u16,
    pings: u16,
    /// Pending [`Request`] codes in the order sent, the oldest in bits 0..4. Nibbles from
    /// `len` up are always zero (pushes set nibble `len`, pops shift zeros in).
    requests: u128,
    len: u8,
    /// A SEND_MESSAGE went out while a request was pending. Its refusal would be an error
    /// notice too, so no error notice is taken as a refusal until the pending ones are all
    /// answered.
    mixed: bool,
}

impl Owed {
    /// Whether an answer that must come (QUERY, PING) is owed: the reply deadline runs.
    fn timed(&self) -> bool {
        self.queries != 0 || self.pings != 0
    }

    fn nth(&self, i: u8) -> Option<Request> {
        if i >= self.len {
            return None;
        }
        Request::from_code(((self.requests >> (4 * u32::from(i))) & 0xF) as u8)
    }

    fn count(&self, request: Request) -> u16 {
        (0..self.len)
            .filter(|&i| self.nth(i) == Some(request))
            .count() as u16
    }

    fn joins(&self) -> u16 {
        self.count(Request::Join)
    }

    fn push(&mut self, request: Request) -> Result<(), ClientError> {
        if self.len >= MAX_PENDING_REQUESTS {
            return Err(ClientError::TooManyPending);
        }
        self.requests |= u128::from(request as u8) << (4 * u32::from(self.len));
        self.len += 1;
        Ok(())
    }

    /// Drops the `n` oldest.
    fn drop_oldest(&mut self, n: u8) {
        let n = n.min(self.len);
        self.requests = self.requests.checked_shr(4 * u32::from(n)).unwrap_or(0);
        self.len -= n;
        if self.len == 0 {
            self.mixed = false;
        }
    }

    fn pop(&mut self) -> Option<Request> {
        let oldest = self.nth(0)?;
        self.drop_oldest(1);
        Some(oldest)
    }

    /// The oldest pending JOIN or LEAVE.
    fn oldest_channel_request(&self) -> Option<Request> {
        (0..self.len)
            .filter_map(|i| self.nth(i))
            .find(|r| matches!(r, Request::Join | Request::Leave))
    }

    /// An answer to `request` arrived: drops the oldest such request and all older ones.
    /// False when none is pending.
    fn settle(&mut self, request: Request) -> bool {
        match (0..self.len).find(|&i| self.nth(i) == Some(request)) {
            Some(i) => {
                self.drop_oldest(i + 1);
                true
            }
            None => false,
        }
    }
}

/// One connection's client-side state machine. See the module documentation.
#[derive(Clone)]
pub struct Client {
    settings: Settings,
    phase: Phase,
    /// The name offered (before acceptance) or accepted.
    name: Option<Username>,
    channel: Option<ChannelName>,
    /// The agreed protocol version; 0 until the server's VERSION_NEGOTIATION is answered.
    version: u16,
    owed: Owed,
    /// The set-up deadline, or once established the reply deadline (set while
    /// `owed.timed()`).
    deadline: Option<Instant>,
    /// When the name deadline started (our VERSION_NEGOTIATION); not restarted on retries.
    name_deadline: Option<Instant>,
    last_sent: Option<Instant>,
    /// When the next automatic QUERY is due (in a channel with `query_interval` set).
    query_due: Option<Instant>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("phase", &self.phase)
            .field("name", &self.name)
            .field("channel", &self.channel)
            .field("version", &self.version)
            .field("owed", &self.owed)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// Cuts `text` to at most 2000 bytes on a UTF-8 character boundary (bytes that are not
/// UTF-8 are cut at 2000). Returns the part that fits and whether anything was cut.
pub fn cut_message(text: &[u8]) -> (&[u8], bool) {
    if text.len() <= MAX_MESSAGE {
        return (text, false);
    }
    let mut end = MAX_MESSAGE;
    // Step back over continuation bytes (10xxxxxx) to the start of the character that
    // straddles the limit; at most 3 steps in valid UTF-8.
    while MAX_MESSAGE - end < 3 && (text[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    if (text[end] & 0xC0) == 0x80 {
        end = MAX_MESSAGE; // not UTF-8 around the limit: cut at the byte limit
    }
    (&text[..end], true)
}

/// Checks a text field: at most `max` bytes, no NUL.
fn check_text(
    text: &[u8],
    max: usize,
    too_long: impl FnOnce(usize) -> ClientError,
) -> Result<(), ClientError> {
    if text.len() > max {
        return Err(too_long(text.len()));
    }
    if text.contains(&0) {
        return Err(ClientError::MessageHasNul);
    }
    Ok(())
}

/// The earlier of two optional instants; `None` only when both are.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn later(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| now >= d)
}

impl Client {
    /// A client that has not connected yet.
    pub fn new(settings: Settings) -> Client {
        Client {
            settings,
            phase: Phase::Idle,
            name: None,
            channel: None,
            version: 0,
            owed: Owed::default(),
            deadline: None,
            name_deadline: None,
            last_sent: None,
            query_due: None,
        }
    }

    // --- What the caller can read. ---

    /// The byte order of every PDU this client sends and accepts.
    pub fn order(&self) -> ByteOrder {
        self.settings.order
    }

    /// Where the connection is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the connection is established (and not closed).
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// The current channel, as the server acknowledged it.
    pub fn channel(&self) -> Option<&ChannelName> {
        self.channel.as_ref()
    }

    /// The agreed protocol version (1 or 2); 0 before the server's VERSION_NEGOTIATION.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Whether the server pushes the channel's entries (version 2): no polling needed.
    pub fn is_pushed(&self) -> bool {
        self.version >= 2
    }

    /// QUERY answers not yet complete (each ends with [`Event::UpToDate`]).
    pub fn queries_in_flight(&self) -> u16 {
        self.owed.queries
    }

    /// The next instant at which [`Client::poll`] has something to do: a deadline, or an
    /// automatic QUERY or PING. `None` when nothing is scheduled.
    pub fn next_wakeup(&self) -> Option<Instant> {
        earliest(self.deadline, self.next_auto())
    }

    // --- What the caller asks for. ---

    /// Starts set-up: sends PING. Does nothing unless [`Phase::Idle`].
    pub fn start(&mut self, now: Instant, out: &mut impl Outbox) {
        if self.phase != Phase::Idle {
            return;
        }
        self.emit(&Pdu::ping(self.order()), now, out);
        self.phase = Phase::AwaitPong;
        self.deadline = self.after(self.settings.setup_timeout, now);
    }

    /// Offers a username. Before the version is agreed it is kept and sent right after our
    /// VERSION_NEGOTIATION; after a rejection (or in [`Phase::AwaitName`]) CLIENT_INFO is
    /// sent at once. Refused while an earlier CLIENT_INFO awaits its answer, or once
    /// established.
    pub fn offer_name(
        &mut self,
        name: Username,
        now: Instant,
        out: &mut impl Outbox,
    ) -> Result<(), ClientError> {
        match self.phase {
            Phase::Idle | Phase::AwaitPong | Phase::AwaitServerVersion => {
                self.name = Some(name);
                Ok(())
            }
            Phase::AwaitName => {
                self.name = Some(name);
                self.send_client_info(now, out);
                Ok(())
            }
            phase => Err(ClientError::WrongPhase(phase)),
        }
    }

    /// Sends JOIN_CHANNEL. The channel changes when the server acknowledges it
    /// ([`Event::Joined`]).
    pub fn join(
        &mut self,
        channel: &ChannelName,
        now: Instant,
        out: &mut impl Outbox,
    ) -> Result<(), ClientError> {
        let name = self.established_name()?;
        self.owed.push(Request::Join)?;
        let pdu = Pdu::join(self.order(), name.as_bytes(), channel);
        self.emit(&pdu, now, out);
        Ok(())
    }

    /// Sends LEAVE_CHANNEL. Refused when not in a channel and no JOIN is pending.
    pub fn leave(&mut self, now: Instant, out: &mut impl Outbox) -> Result<(), ClientError> {
        self.established_name()?;
        if !self.heading_for_channel() {
            return Err(ClientError::NotInChannel);
        }
        self.owed.push(Request::Leave)?;
        self.emit(&Pdu::leave(self.order()), now, out);
        Ok(())
    }

    /// Sends a message to the current channel (or the one being joined). `text` must be
    /// 1–2000 bytes without NUL; use [`cut_message`] for longer text.
    pub fn send_message(
        &mut self,
        text: &[u8],
        now: Instant,
        out: &mut impl Outbox,
    ) -> Result<(), ClientError> {
        self.established_name()?;
        if text.is_empty() {
            return Err(ClientError::EmptyMessage);
        }
        if text.len() > MAX_MESSAGE {
            return Err(ClientError::MessageTooLong { len: text.len() });
        }
        if text.contains(&0) {
            return Err(ClientError::MessageHasNul);
        }
        if !self.heading_for_channel() {
            return Err(ClientError::NotInChannel);
        }
        self.emit(&Pdu::send_message(self.order(), text), now, out);
        if self.owed.len > 0 {
            self.owed.mixed = true;
        }
        Ok(())
    }

    /// Sends QUERY. Its answer is any number of [`Event::Message`] / [`Event::Notice`],
    /// then one [`Event::UpToDate`].
    pub fn query(&mut self, now: Instant, out: &mut impl Outbox) -> Result<(), ClientError> {
        self.established_name()?;
        self.emit(&Pdu::query(self.order()), now, out);
        self.owe(now, |owed| owed.queries = owed.queries.saturating_add(1));
        if let Some(interval) = self.settings.query_interval {
            self.query_due = Some(now + interval);
        }
        Ok(())
    }

    /// Sends PING; the answer is [`Event::Pong`].
    pub fn ping(&mut self, now: Instant, out: &mut impl Outbox) -> Result<(), ClientError> {
        self.established_name()?;
        self.emit(&Pdu::ping(self.order()), now, out);
        self.owe(now, |owed| owed.pings = owed.pings.saturating_add(1));
        Ok(())
    }

    /// Sends LIST_CHANNELS (v2 section 3). The answer is one [`Event::Channel`] per open
    /// channel, then [`Event::ChannelsEnd`].
    pub fn list_channels(
        &mut self,
        now: Instant,
        out: &mut impl Outbox,
    ) -> Result<(), ClientError> {
        self.v2_request(Request::ListChannels)?;
        self.emit(&Pdu::list_channels(self.order()), now, out);
        Ok(())
    }

    /// Sends NAMES of `channel`, or of the current channel when `None` (v2 section 3). The
    /// answer is [`Event::Names`] (operators first) then [`Event::NamesEnd`], or
    /// [`Event::Refused`] (channel not open, or no channel).
    pub fn names(
        &mut self,
        channel: Option<&ChannelName>,
        now: Instant,
        out: &mut impl Outbox,
    ) -> Result<(), ClientError> {
        self.v2_request(Request::Names)?;
        let field = channel.map_or(&[][..], |c| c.as_bytes());
        self.emit(&Pdu::names(self.order(), field), now, out);
        Ok(())
    }

    /// Sends KICK of `target` from `channel` (`None`: the current one) with an optional
    /// `reason` (0–[`MAX_REASON`] bytes, no NUL), v2 section 5. The answer is
    /// [`Event::Moderated`] or [`Event::Refused`].
    pub fn kick(
        &mut self,
        channel: Option<&ChannelName>,
        target: &Username,
        reason: &[u8],
        now: Instant,
        out: &mut impl Outbox,
    ) -> Result<(), ClientError> {
        self.moderate(
            Request::Kick,
            channel.map(|c| c.as_bytes()),
            target,
            reason,
            now,
            out,
        )
    }

    /// Sends BAN of `target` in `channel` (`None`: the current one), as [`Client::kick`].
    pub fn ban(
        &mut self,
        channel: Option<&ChannelName>,
        target: &Username,
        reason: &[u8],
        now: Instant,
        out: &mut impl Outbox,
    ) -> Result<(), ClientError> {
        self.moderate(
            Request::Ban,
            channel.map(|c| c.as_bytes()),
            target,
            reason,
            now,
            out,
        )
    }

    /// Sends UNBAN of `target` in `channel` (`None`: the current one), as [`Client::kick`]
    /// without a reason.
    pub fn unban(
        &mut self,
        channel: Option<&ChannelName>,
        target: &Username,
        now: Instant,
        out: &mut impl Outbox,
    ) -> Result<(), ClientError> {
        self.moderate(
            Request::Unban,
            channel.map(|c| c.as_bytes()),
            target,
            b"",
            now,
            out,
        )
    }

    /// Sends a server ban (BAN with channel `*`, server operators only, v2 section 5):
    /// every connection of `target`'s address is closed.
    pub fn server_ban(
        &mut self,
        target: &Username,
        reason: &[u8],
        now: Instant,
        out: &mut impl Outbox,
    ) -> Result<(), ClientError> {
        self.moderate(Request::Ban, Some(SERVER_WIDE), target, reason, now, out)
    }

    /// Lifts a server ban of `address` (UNBAN with channel `*`, the address as text).
    pub fn server_unban(
        &mut self,
        address: &[u8],
        now: Instant,
        out: &mut impl Outbox,
    ) -> Result<(), ClientError> {
        check_text(address, MAX_MESSAGE, |len| ClientError::MessageTooLong {
            len,
        })?;
        if address.is_empty() {
            return Err(ClientError::EmptyMessage);
        }
        self.v2_request(Request::Unban)?;
        self.emit(&Pdu::unban_address(self.order(), address), now, out);
        Ok(())
    }

    /// Sends OPER with `password` (1–[`MAX_PASSWORD`] bytes, no NUL), v2 section 4. The
    /// answer is [`Event::Operator`] or [`Event::Refused`]; a refusal comes after at least
    /// a second, so it is not timed by the reply deadline either.
    pub fn oper(
        &mut self,
        password: &[u8],
        now: Instant,
        out: &mut impl Outbox,
    ) -> Result<(), ClientError> {
        if password.is_empty() {
            return Err(ClientError::BadPassword { len: 0 });
        }
        check_text(password, MAX_PASSWORD, |len| ClientError::BadPassword {
            len,
        })?;
        self.v2_request(Request::Oper)?;
        self.emit(&Pdu::oper(self.order(), password), now, out);
        Ok(())
    }

    /// Sends QUIT (in any phase but [`Phase::Closed`]) and closes. The caller then
    /// flushes and closes the connection.
    pub fn quit(&mut self, now: Instant, out: &mut impl Outbox) {
        if self.phase != Phase::Closed {
            self.emit(&Pdu::quit(self.order()), now, out);
        }
        self.close();
    }

    /// Marks the connection closed without sending anything (the peer closed it, or the
    /// transport failed).
    pub fn close(&mut self) {
        self.phase = Phase::Closed;
        self.deadline = None;
        self.query_due = None;
    }

    /// Runs the clock: reports a passed deadline (the client is then closed and the caller
    /// should drop the connection) and sends an automatic QUERY or PING when one is due.
    pub fn poll(&mut self, now: Instant, out: &mut impl Outbox) -> Result<(), ClientError> {
        if later(self.deadline, now) {
            let waiting = match self.phase {
                Phase::AwaitPong => Waiting::Pong,
                Phase::AwaitServerVersion => Waiting::ServerVersion,
                Phase::AwaitName | Phase::AwaitNameAck => Waiting::NameAccepted,
                _ => Waiting::Reply,
            };
            self.close();
            return Err(ClientError::Timeout(waiting));
        }
        if self.query_due_at().is_some_and(|at| now >= at) {
            self.query(now, out)?;
        } else if self.ping_due_at().is_some_and(|at| now >= at) {
            self.ping(now, out)?;
        }
        Ok(())
    }

    /// Takes one PDU from the server. Never panics: what does not fit is reported as
    /// [`Event::Unexpected`] and otherwise ignored. An error means the connection is over.
    pub fn handle<'p>(
        &mut self,
        pdu: &'p Pdu,
        now: Instant,
        out: &mut impl Outbox,
    ) -> Result<Option<Event<'p>>, ClientError> {
        if matches!(self.phase, Phase::Idle | Phase::Closed) {
            return Ok(None);
        }
        // The server writes in our order from its first PDU on (it follows our PING).
        let command = match pdu.decode_command(Some(self.order())) {
            Decoded::Known { command, .. } => command,
            Decoded::Unknown(raw) => {
                return Ok(Some(Event::Unexpected(Unexpected::UnknownCommand(raw))))
            }
        };
        let unsolicited = Ok(Some(Event::Unexpected(Unexpected::Unsolicited(command))));
        let from_server = pdu.username() == SERVER_NAME;
        match command {
            Command::Quit | Command::SendMessage | Command::Query => {
                Ok(Some(Event::Unexpected(Unexpected::ClientCommand(command))))
            }
            Command::PingPong => match self.phase {
                Phase::AwaitPong => {
                    self.phase = Phase::AwaitServerVersion;
                    self.deadline = self.after(self.settings.setup_timeout, now);
                    Ok(Some(Event::Pong))
                }
                Phase::Established if self.owed.pings > 0 => {
                    self.answered(now, |owed| owed.pings -= 1);
                    Ok(Some(Event::Pong))
                }
                _ => unsolicited,
            },
            Command::VersionNegotiation => {
                if self.phase != Phase::AwaitServerVersion {
                    return unsolicited;
                }
                if !from_server {
                    return Ok(Some(Event::Unexpected(Unexpected::NotFromServer(command))));
                }
                let server_highest = pdu.version();
                if server_highest == 0 {
                    self.quit(now, out);
                    return Err(ClientError::NoCommonVersion { server_highest });
                }
                let own = self.settings.max_version.clamp(1, PROTOCOL_VERSION);
                let version = server_highest.min(own);
                self.version = version;
                self.emit(&Pdu::client_version(self.order(), version), now, out);
                self.name_deadline = Some(now);
                self.deadline = self.after(self.settings.setup_timeout, now);
                self.phase = Phase::AwaitName;
                if self.name.is_some() {
                    self.send_client_info(now, out);
                }
                Ok(Some(Event::VersionAgreed { version }))
            }
            Command::ClientInfo => {
                if self.phase != Phase::AwaitNameAck {
                    return unsolicited;
                }
                if !from_server {
                    return Ok(Some(Event::Unexpected(Unexpected::NotFromServer(command))));
                }
                let echo = pdu.client_info_name();
                match &self.name {
                    Some(name) if name.matches(echo) => {
                        self.phase = Phase::Established;
                        self.deadline = None;
                        self.name_deadline = None;
                        Ok(Some(Event::Established { username: echo }))
                    }
                    _ => unsolicited,
                }
            }
            // A channel acknowledgement is the server's word on where we are: it is taken
            // even when it answers nothing we know of (the request may have been taken for
            // refused after an ambiguous error notice).
            Command::JoinChannel => {
                let channel = match self.channel_ack(pdu, command, from_server) {
                    Ok(channel) => channel,
                    Err(refused) => return Ok(Some(refused)),
                };
                self.channel = Some(channel);
                // On v1, query at once: the joiner's first answer is the recent history. On
                // v2 the server pushes it.
                if self.version < 2 {
                    self.query_due = self.settings.query_interval.map(|_| now);
                }
                Ok(Some(Event::Joined { channel }))
            }
            Command::LeaveChannel => {
                let channel = match self.channel_ack(pdu, command, from_server) {
                    Ok(channel) => channel,
                    Err(refused) => return Ok(Some(refused)),
                };
                // The server answers in order, so the channel left is the current one. One
                // that comes before the answer to our oldest JOIN or LEAVE, or with none
                // pending, answers no LEAVE of ours: a removal (v2 section 5).
                self.channel = None;
                self.query_due = None;
                if self.owed.oldest_channel_request() == Some(Request::Leave) {
                    self.owed.settle(Request::Leave);
                    Ok(Some(Event::Left { channel }))
                } else {
                    Ok(Some(Event::Removed { channel }))
                }
            }
            Command::ReceiveMessage => self.receive(pdu, from_server, now),
            Command::ListChannels | Command::Names => {
                let request = if command == Command::Names {
                    Request::Names
                } else {
                    Request::ListChannels
                };
                if let Err(refused) = self.v2_answer(request, command, from_server) {
                    return Ok(Some(refused));
                }
                let channel = pdu.channel();
                if !pdu.up_to_date() {
                    return Ok(Some(match request {
                        Request::Names => Event::Names {
                            channel,
                            operators: pdu.lists_operators(),
                            names: pdu.params_text(),
                        },
                        _ => Event::Channel {
                            channel,
                            members: pdu.param_u32(0),
                            history: pdu.param_u32(4),
                        },
                    }));
                }
                self.owed.settle(request);
                let count = pdu.param_u32(0);
                Ok(Some(match request {
                    Request::Names => Event::NamesEnd { channel, count },
                    _ => Event::ChannelsEnd { count },
                }))
            }
            Command::Kick | Command::Ban | Command::Unban | Command::Oper => {
                let request = match command {
                    Command::Kick => Request::Kick,
                    Command::Ban => Request::Ban,
                    Command::Unban => Request::Unban,
                    _ => Request::Oper,
                };
                if let Err(refused) = self.v2_answer(request, command, from_server) {
                    return Ok(Some(refused));
                }
                self.owed.settle(request);
                if request == Request::Oper {
                    return Ok(Some(Event::Operator));
                }
                let channel = pdu.channel();
                let target = if request == Request::Unban && channel == SERVER_WIDE {
                    pdu.params_text()
                } else {
                    pdu.target()
                };
                Ok(Some(Event::Moderated {
                    request,
                    channel,
                    target,
                }))
            }
        }
    }

    // --- Inside. ---

    fn receive<'p>(
        &mut self,
        pdu: &'p Pdu,
        from_server: bool,
        now: Instant,
    ) -> Result<Option<Event<'p>>, ClientError> {
        let channel = pdu.channel();
        if pdu.up_to_date() {
            if self.phase != Phase::Established || self.owed.queries == 0 || !from_server {
                return Ok(Some(Event::Unexpected(Unexpected::Unsolicited(
                    Command::ReceiveMessage,
                ))));
            }
            self.answered(now, |owed| owed.queries -= 1);
            return Ok(Some(Event::UpToDate { channel }));
        }
        let text = pdu.params_text();
        // v1 leaves prefix[62..] zero, but an old server may leave garbage there.
        let time = if self.version >= 2 { pdu.time() } else { 0 };
        if !from_server {
            let sender = pdu.username();
            return Ok(Some(Event::Message {
                sender,
                channel,
                text,
                time,
                own: self.name.is_some_and(|name| name.matches(sender)),
            }));
        }
        let is_error = text.starts_with(ERROR_PREFIX);
        if is_error && self.phase == Phase::AwaitNameAck {
            // Contract 4.4: the only request pending is our CLIENT_INFO; offer another name
            // within the same deadline.
            self.phase = Phase::AwaitName;
            return Ok(Some(Event::NameRejected {
                reason: &text[ERROR_PREFIX.len()..],
            }));
        }
        let reason = &text[ERROR_PREFIX.len().min(text.len())..];
        // A v1 client is told of its removal with an error notice it did not ask for.
        let unasked = REMOVAL_NOTICES.iter().any(|n| reason.starts_with(n));
        // A LIST is never refused (v2 section 3): an error notice then answers something
        // else.
        let refusable = self
            .owed
            .nth(0)
            .is_some_and(|oldest| oldest != Request::ListChannels);
        if is_error && self.phase == Phase::Established && !self.owed.mixed && !unasked && refusable
        {
            if let Some(request) = self.owed.pop() {
                return Ok(Some(Event::Refused { request, reason }));
            }
        }
        Ok(Some(Event::Notice {
            channel,
            text,
            is_error,
            time,
        }))
    }

    /// Checks a version-2 server answer to `request`: established on v2, from the server,
    /// and asked for.
    fn v2_answer<'p>(
        &self,
        request: Request,
        command: Command,
        from_server: bool,
    ) -> Result<(), Event<'p>> {
        if self.phase != Phase::Established || self.version < 2 {
            return Err(Event::Unexpected(Unexpected::Unsolicited(command)));
        }
        if !from_server {
            return Err(Event::Unexpected(Unexpected::NotFromServer(command)));
        }
        if self.owed.count(request) == 0 {
            return Err(Event::Unexpected(Unexpected::Unsolicited(command)));
        }
        Ok(())
    }

    /// A version-2 request may go out: established on v2, and room to wait for its answer.
    fn v2_request(&mut self, request: Request) -> Result<(), ClientError> {
        self.established_name()?;
        if self.version < 2 {
            return Err(ClientError::NeedsVersion2 {
                agreed: self.version,
            });
        }
        self.owed.push(request)
    }

    fn moderate(
        &mut self,
        request: Request,
        channel: Option<&[u8]>,
        target: &Username,
        reason: &[u8],
        now: Instant,
        out: &mut impl Outbox,
    ) -> Result<(), ClientError> {
        check_text(reason, MAX_REASON, |len| ClientError::ReasonTooLong { len })?;
        self.v2_request(request)?;
        let pdu = Pdu::moderation(
            request.command(),
            self.order(),
            channel.unwrap_or_default(),
            target.as_bytes(),
            reason,
        );
        self.emit(&pdu, now, out);
        Ok(())
    }

    /// Takes a JOIN or LEAVE acknowledgement's channel, once it has passed the checks both
    /// share (established, from the server, a valid name) and settled the oldest request
    /// owed; otherwise the event that reports why it was not taken.
    fn channel_ack<'p>(
        &mut self,
        pdu: &'p Pdu,
        command: Command,
        from_server: bool,
    ) -> Result<ChannelName, Event<'p>> {
        if self.phase != Phase::Established {
            return Err(Event::Unexpected(Unexpected::Unsolicited(command)));
        }
        if !from_server {
            return Err(Event::Unexpected(Unexpected::NotFromServer(command)));
        }
        let Ok(channel) = pdu.channel_name() else {
            return Err(Event::Unexpected(Unexpected::InvalidChannel(command)));
        };
        if command == Command::JoinChannel {
            self.owed.settle(Request::Join);
        }
        Ok(channel)
    }

    fn send_client_info(&mut self, now: Instant, out: &mut impl Outbox) {
        if let Some(name) = self.name {
            self.emit(&Pdu::client_info(self.order(), name.as_bytes()), now, out);
            self.phase = Phase::AwaitNameAck;
            // Not restarted by a retry: it runs from our VERSION_NEGOTIATION.
            self.deadline = self
                .name_deadline
                .and_then(|start| self.after(self.settings.setup_timeout, start));
        }
    }

    fn established_name(&self) -> Result<Username, ClientError> {
        match (self.phase, self.name) {
            (Phase::Established, Some(name)) => Ok(name),
            (phase, _) => Err(ClientError::WrongPhase(phase)),
        }
    }

    /// In a channel, or a JOIN is on its way (the server handles PDUs in order, so a
    /// message sent after a JOIN goes to the joined channel).
    fn heading_for_channel(&self) -> bool {
        self.channel.is_some() || self.owed.joins() > 0
    }

    /// Automatic QUERY: version 1 only (on version 2 the server pushes).
    fn auto_queries(&self) -> bool {
        self.version < 2 && self.channel.is_some() && self.settings.query_interval.is_some()
    }

    fn next_auto(&self) -> Option<Instant> {
        earliest(self.query_due_at(), self.ping_due_at())
    }

    /// When the next automatic QUERY is due. One at a time: the next waits for the
    /// previous answer.
    fn query_due_at(&self) -> Option<Instant> {
        if self.phase != Phase::Established || !self.auto_queries() || self.owed.queries != 0 {
            return None;
        }
        self.query_due
    }

    /// When a keep-alive PING is due: the keep-alive interval after the last PDU sent,
    /// unless an answer is owed (what it answers reached the server, and the reply deadline
    /// watches it).
    fn ping_due_at(&self) -> Option<Instant> {
        if self.phase != Phase::Established || self.owed.timed() {
            return None;
        }
        match (self.settings.keepalive_interval, self.last_sent) {
            (Some(every), Some(last)) => Some(last + every),
            _ => None,
        }
    }

    fn after(&self, timeout: Duration, from: Instant) -> Option<Instant> {
        (!timeout.is_zero()).then(|| from + timeout)
    }

    fn emit(&mut self, pdu: &Pdu, now: Instant, out: &mut impl Outbox) {
        out.send(pdu);
        self.last_sent = Some(now);
    }

    /// A QUERY or PING went out: the reply deadline starts unless it already runs.
    fn owe(&mut self, now: Instant, add: impl FnOnce(&mut Owed)) {
        if !self.owed.timed() {
            self.deadline = self.after(self.settings.reply_timeout, now);
        }
        add(&mut self.owed);
    }

    /// A QUERY or PING answer arrived: the reply deadline restarts, or ends when no more
    /// is owed.
    fn answered(&mut self, now: Instant, sub: impl FnOnce(&mut Owed)) {
        sub(&mut self.owed);
        self.deadline = if self.owed.timed() {
            self.after(self.settings.reply_timeout, now)
        } else {
            None
        };
    }
}

#[cfg(test)]
mod tests;
