//! One client connection inside the reactor: its socket, its transport, its protocol
//! session, its readiness and its deadline. The reactor hands it events, turns of work,
//! fired deadlines and the order to close; everything the connection holds changes here.
//!
//! Closing is a lingering close (Apache's and nginx's): the connection writes out what it
//! owes (what it produced; at a shutdown, the rest of a QUERY answer in flight), then
//! close_notify, shuts down its write side, reads and discards what the client still
//! sends until the client's EOF, and only then lets the reactor close the socket. Closing
//! a socket with unread input makes the kernel send a reset and throw away output still
//! queued, so the client would lose answers already sent. The whole close is bounded (see
//! [`LINGER_MS`]): a client that never reads or never closes cannot hold its slot longer.
//!
//! Readiness is kept in user space (sozu's model, `readiness.rs`): the socket is
//! registered once for reading and writing, an edge sets an event bit, and a bit is
//! cleared only when the socket says `WouldBlock`. Pausing a connection for backpressure is
//! therefore clearing an interest bit, and resuming needs no new edge and no `reregister`.
//!
//! What the metrics count about a connection is counted here, as it happens: PDUs by
//! command, socket bytes, set-ups, backpressure pauses and the QUERY answer latency, each
//! a field increment in `Stats`. Its life is logged here too, one line per event (accepted,
//! set up, closed) and a warning per TLS or socket error; never what a PDU says.

use std::io::{self, IoSlice, Read, Write};
use std::num::NonZeroU32;

use mio::event::Event;
use mio::net::TcpStream;
use mio::Registry;
use rustls::ServerConnection;

use super::admission::Claim;
use super::readiness::Readiness;
use super::stats::{CloseReason, DeadlineKind, Stats};
use super::{Clock, TimerKey};
use crate::transport::{Fill, Transport, TransportError};
use kaichat_proto::hub::{ChannelId, Hub};
use kaichat_proto::names::{ChannelName, Username};
use kaichat_proto::network::{Request, Verdict};
use kaichat_proto::outbox::Outbox;
use kaichat_proto::pdu::{Command, Pdu};
use kaichat_proto::session::{Deadlines, Session, Step};
use kaichat_proto::timer_wheel::TimerWheel;

/// Output (TLS ciphertext or plaintext) produced but not yet written, above which the
/// connection produces nothing more and reads nothing more until the socket drains.
const OUTPUT_BOUND: usize = 16 * 1024;
/// PDUs of a QUERY answer produced per step.
const ANSWER_BATCH: usize = 4;
/// How long a closing connection may keep its slot, from the decision to close: to write
/// what it owes, then to wait for the client's EOF. The close is given up at the first
/// whole second of the reactor's clock at least this long after the decision, where the
/// timer wheel fires exactly: so between 1 and 2 s (plus however late the loop runs).
const LINGER_MS: u64 = 1000;
/// Bytes read and thrown away per read while lingering.
const DISCARD_CHUNK: usize = 4096;

/// How a turn of work on a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    /// Nothing more to do until the socket reports readiness.
    Idle,
    /// The work budget ran out with work left: come back in the same loop.
    More,
    /// The connection is closed: the reactor frees its slot at the end of the iteration.
    Done,
}

/// What a fired deadline means for the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Nothing: a stale entry, or the deadline moved later and was re-armed.
    None,
    /// The session's deadline (a set-up phase's or the idle one) passed: close it.
    Timeout(DeadlineKind),
    /// The bound on closing passed: free the slot now, whatever is left unsaid.
    Abandon,
    /// The session asked to be woken by now ([`Connection::wake`]).
    Wake,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Reading PDUs and answering them.
    Open,
    /// Closed by the server or the client: saying goodbye (see the module comment).
    Lingering(Linger),
    /// Nothing more to do; the slot is freed at the end of the loop iteration.
    Done,
}

#[derive(Clone, Copy, Debug)]
struct Linger {
    reason: CloseReason,
    /// The second of the reactor's clock at which the close is abandoned: the wheel's slots
    /// are seconds anyway, and 4 bytes keep `Connection` small.
    until_second: u32,
    /// Everything owed is produced and close_notify queued; the session released its name
    /// and channel.
    said_goodbye: bool,
    /// Everything is written and the write side shut down (the client reads EOF next).
    write_shut: bool,
    /// The client's EOF was read: nothing unread is left to make the kernel reset.
    peer_eof: bool,
}

impl CloseReason {
    /// Whether a QUERY answer in flight is finished before the goodbye. At a shutdown the
    /// client may be reading it right now. QUIT, a rejected version or the peer's close
    /// are only ever read once no answer is in flight. A deadline with an answer in flight
    /// means the client stopped reading a whole idle period ago: it gets what was already
    /// produced, and its name and channel are freed at once, as contract section 7 says.
    fn finishes_answer(self) -> bool {
        self == CloseReason::Shutdown
    }
}

/// The connection's entry in the reactor's timer wheel. The wheel never removes an entry:
/// each fired entry is checked here, and only the one armed last for this connection is
/// live. This is the one place that knows which.
#[derive(Debug)]
struct Timer {
    /// Distinguishes this connection from earlier ones in the same slab slot.
    generation: u32,
    /// Due millisecond of the live wheel entry; 0 when none is armed.
    armed: u64,
}

impl Timer {
    /// Arms an entry for `due` unless an earlier one is live: that one fires first and the
    /// deadline is then looked at again.
    fn arm(&mut self, key: usize, due: u64, wheel: &mut TimerWheel<TimerKey>) {
        if self.armed == 0 || due < self.armed {
            self.armed = due;
            wheel.arm(due, (key, self.generation, due));
        }
    }

    /// Whether the entry of `generation` due at `due` is the live one.
    fn is_live(&self, generation: u32, due: u64) -> bool {
        self.generation == generation && self.armed == due
    }

    /// Whether a fired entry is the live one; it is then used up. Entries of a previous
    /// connection in this slab slot, or superseded by an earlier deadline, are stale: this
    /// is how the wheel's entries are cancelled.
    fn fired(&mut self, generation: u32, due: u64) -> bool {
        let live = self.is_live(generation, due);
        if live {
            self.armed = 0;
        }
        live
    }
}

/// Where a connection is in its life, as the metrics show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// Accepted, no name accepted yet (TLS handshake, PING, version, CLIENT_INFO).
    SettingUp,
    Established,
    /// Saying goodbye (lingering) or done, until its slot is freed.
    Closing,
}

pub struct Connection {
    socket: TcpStream,
    transport: Transport<ServerConnection>,
    session: Session,
    /// The reactor's millisecond of the accept, for the duration logged at close.
    accepted_at: u64,
    readiness: Readiness,
    timer: Timer,
    /// While a QUERY's answer is on its way: the reactor's microsecond (modulo 2^32, about
    /// 71 minutes, so 4 bytes) at which the QUERY was taken off the connection.
    query_from: Option<NonZeroU32>,
    /// On the reactor's list of connections whose turn ran out of budget.
    pending: bool,
    stage: Stage,
    /// Its place in its address's count (per-address limits), given back on release.
    claim: Option<Claim>,
}

/// The connection's socket seen through the byte counters of the metrics: what the
/// transport reads and writes (TLS records, or plaintext PDUs).
struct Metered<'a> {
    socket: &'a mut TcpStream,
    stats: &'a mut Stats,
}

impl Read for Metered<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.socket.read(buf)?;
        self.stats.bytes_in += n as u64;
        Ok(n)
    }
}

impl Write for Metered<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.socket.write(buf)?;
        self.stats.bytes_out += n as u64;
        Ok(n)
    }

    /// rustls writes its queued records with one `writev`: keep it one.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.socket.write_vectored(bufs)?;
        self.stats.bytes_out += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.flush()
    }
}

/// The session's outbox: the transport, with each PDU counted by command on its way.
struct Counted<'a> {
    transport: &'a mut Transport<ServerConnection>,
    stats: &'a mut Stats,
}

impl Outbox for Counted<'_> {
    fn send(&mut self, pdu: &Pdu) {
        self.stats.pdu_sent(pdu);
        self.transport.send(pdu);
    }
}

/// A microsecond of the reactor's clock as [`Connection::query_from`] keeps it.
fn micros_stamp(micros: u64) -> NonZeroU32 {
    // Truncation is the point: differences are taken modulo 2^32. A stamp of exactly 0
    // reads as 1, a microsecond off.
    NonZeroU32::new(micros as u32).unwrap_or(NonZeroU32::MIN)
}

impl Connection {
    /// A connection accepted at `accepted_at` (ms): its pre-PING deadline, TLS handshake
    /// included, runs from there.
    /// `key` is its slab key, which the hub names it by.
    pub fn new(
        socket: TcpStream,
        transport: Transport<ServerConnection>,
        accepted_at: u64,
        generation: u32,
        claim: Option<Claim>,
        key: usize,
    ) -> Connection {
        let peer = socket.peer_addr().ok().map(|a| a.ip());
        Connection {
            socket,
            transport,
            session: Session::accepted(accepted_at, key, peer),
            accepted_at,
            readiness: Readiness::new(),
            timer: Timer {
                generation,
                armed: 0,
            },
            query_from: None,
            pending: false,
            stage: Stage::Open,
            claim,
        }
    }

    /// The connection's number in the logs: its generation, unique among the last 2^32
    /// connections.
    pub fn id(&self) -> u32 {
        self.timer.generation
    }

    /// Where the connection is in its life.
    pub fn life(&self) -> Life {
        match self.stage {
            Stage::Open if self.session.user().is_some() => Life::Established,
            Stage::Open => Life::SettingUp,
            Stage::Lingering(_) | Stage::Done => Life::Closing,
        }
    }

    /// The socket's peer, for the log line of the accept.
    pub fn peer(&self) -> io::Result<std::net::SocketAddr> {
        self.socket.peer_addr()
    }

    /// The client's address, as known at accept.
    pub fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.session.peer()
    }

    /// Whether the connection's user is a server operator.
    pub fn is_server_operator(&self, hub: &Hub) -> bool {
        self.session
            .user()
            .is_some_and(|user| hub.is_server_operator(user))
    }

    /// The password of an OPER the session wants verified, once.
    pub fn take_oper_request(&mut self) -> Option<Box<[u8]>> {
        self.session.take_oper_request()
    }

    /// The verdict on the connection's OPER password; the caller gives it a turn next.
    pub fn oper_checked(&mut self, accepted: bool, now: u64, hub: &mut Hub, stats: &mut Stats) {
        let mut out = Counted {
            transport: &mut self.transport,
            stats,
        };
        self.session.oper_checked(accepted, now, hub, &mut out);
    }

    /// The request the session waits on the network for (cluster mode), once.
    pub fn take_network_request(&mut self) -> Option<Request> {
        self.session.take_network_request()
    }

    /// The network's verdict on the session's request; the caller gives it a turn next.
    pub fn network_verdict(
        &mut self,
        verdict: Verdict,
        now: u64,
        hub: &mut Hub,
        stats: &mut Stats,
    ) {
        let established = self.session.user().is_some();
        let mut out = Counted {
            transport: &mut self.transport,
            stats,
        };
        self.session.network_verdict(verdict, now, hub, &mut out);
        if !established {
            // A name the network granted completes the set-up here, not in a turn.
            self.count_setup(stats);
        }
    }

    /// Counts and logs a set-up just completed (the session has its name now).
    fn count_setup(&mut self, stats: &mut Stats) {
        if let Some(user) = self.session.user() {
            stats.setups += 1;
            log::info!("connection {} set up as {user}", self.timer.generation);
        }
    }

    /// Sends the client the error notice `text` (about its channel, stamped on version 2)
    /// right away, whatever is in flight: for a connection about to be closed.
    pub fn tell(&mut self, text: &[u8], now: u64, hub: &Hub, stats: &mut Stats) {
        let mut out = Counted {
            transport: &mut self.transport,
            stats,
        };
        self.session.tell(text, now, hub, &mut out);
    }

    /// A message of this connection's could not reach the network; the caller gives it a
    /// turn next.
    pub fn post_failed(&mut self, now: u64, hub: &Hub, stats: &mut Stats) {
        let mut out = Counted {
            transport: &mut self.transport,
            stats,
        };
        self.session.post_failed(now, hub, &mut out);
    }

    /// A message of this connection's was stored by the network and applied here; the
    /// caller gives it a turn next.
    pub fn posted(&mut self) {
        self.session.posted();
    }

    /// The connection's user, once named.
    pub fn user(&self) -> Option<&Username> {
        self.session.user()
    }

    /// Does what the session had due by `now` (a delayed OPER refusal); the caller gives
    /// the connection a turn next.
    pub fn wake(&mut self, now: u64, hub: &Hub, stats: &mut Stats) {
        let mut out = Counted {
            transport: &mut self.transport,
            stats,
        };
        self.session.wake(now, hub, &mut out);
    }

    /// Another connection's KICK or BAN removed this one's user from `channel`; the caller
    /// gives the connection a turn next.
    pub fn removed(&mut self, channel: ChannelId, name: ChannelName, notice: Box<[u8]>) {
        self.session.removed(channel, name, notice);
    }

    /// A poll event for this connection's socket.
    pub fn on_event(&mut self, event: &Event) {
        self.readiness.on_event(event);
    }

    /// Notes the connection on the reactor's pending list; false if it already is, so it is
    /// listed once however many turns ran out of budget before it is served.
    pub fn list_pending(&mut self) -> bool {
        !std::mem::replace(&mut self.pending, true)
    }

    /// The reactor took the connection off its pending list.
    pub fn unlist_pending(&mut self) {
        self.pending = false;
    }

    /// Does up to `budget` units of work (a PDU in, a batch of answer PDUs out, a socket
    /// read), then writes out what was produced; a closing connection goes on saying
    /// goodbye. A PDU is handed to the session with the time read after the socket read
    /// that completed it, never earlier, so that no deadline it starts can fire early.
    pub fn turn(&mut self, hub: &mut Hub, clock: &Clock, budget: usize, stats: &mut Stats) -> Turn {
        let mut budget = budget;
        if let Stage::Open = self.stage {
            match self.serve_open(hub, clock, &mut budget, stats) {
                Ok(turn) => return turn,
                Err(reason) => self.close(reason, clock.now(), stats),
            }
        }
        self.linger(hub, clock, &mut budget, stats)
    }

    fn serve_open(
        &mut self,
        hub: &mut Hub,
        clock: &Clock,
        budget: &mut usize,
        stats: &mut Stats,
    ) -> Result<Turn, CloseReason> {
        let result = self.work(hub, clock, budget, stats);
        let written = self.flush(stats)?;
        if self.transport.overflowed() {
            return Err(CloseReason::Overflow);
        }
        if written && !self.session.answer_in_flight() {
            self.answered(clock, stats);
        }
        result
    }

    /// The answer to the QUERY read last, if one is on its way, is complete and written
    /// out: its latency is observed.
    fn answered(&mut self, clock: &Clock, stats: &mut Stats) {
        if self.query_from.is_some() {
            self.answered_at(clock.micros(), stats);
        }
    }

    /// [`Self::answered`] with the clock already read, in microseconds.
    fn answered_at(&mut self, micros: u64, stats: &mut Stats) {
        if let Some(from) = self.query_from.take() {
            let now = micros_stamp(micros).get();
            stats
                .query_latency
                .observe(u64::from(now.wrapping_sub(from.get())));
        }
    }

    /// Writes what is queued while the socket takes it; true once everything is written.
    fn flush(&mut self, stats: &mut Stats) -> Result<bool, CloseReason> {
        if !self.transport.wants_write() {
            return Ok(true);
        }
        if !self.readiness.can_write() {
            return Ok(false);
        }
        let mut socket = Metered {
            socket: &mut self.socket,
            stats,
        };
        let done = self
            .transport
            .flush(&mut socket)
            .map_err(|e| failed(self.timer.generation, e))?;
        if !done {
            self.readiness.write_blocked();
        }
        Ok(done)
    }

    fn work(
        &mut self,
        hub: &mut Hub,
        clock: &Clock,
        budget: &mut usize,
        stats: &mut Stats,
    ) -> Result<Turn, CloseReason> {
        // The time PDUs are handed over with: read when the first one needs it, and again
        // after a socket read brings bytes; never before the bytes it stamps arrived.
        let mut stamp: Option<u64> = None;
        loop {
            // Backpressure: above the bound, neither produce nor read until it drains.
            if self.transport.queued() >= OUTPUT_BOUND {
                if !self.flush(stats)? {
                    if self.readiness.pause_reading() {
                        stats.output_pauses += 1;
                    }
                    return Ok(Turn::Idle);
                }
                self.readiness.resume_reading();
            }
            if *budget == 0 {
                return Ok(Turn::More);
            }
            *budget -= 1;
            // What is owed goes first: the answer in flight, a removal's notices, and on
            // version 2 the entries not pushed yet (v2 section 2).
            if self.session.has_output(hub) {
                let now = *stamp.get_or_insert_with(|| clock.now());
                let mut out = Counted {
                    transport: &mut self.transport,
                    stats,
                };
                self.session
                    .continue_output(hub, now, ANSWER_BATCH, &mut out);
                continue;
            }
            // An OPER being verified, or its refusal delayed: the connection is not read.
            if self.session.answering() {
                return Ok(Turn::Idle);
            }
            if let Some(pdu) = self.transport.next_pdu() {
                let command = self.session.command_of(&pdu);
                stats.pdu_received(command);
                let established = self.session.user().is_some();
                if established && command == Some(Command::Query) {
                    // An answer still being written when the next QUERY is read is
                    // complete (no PDU is read while one is produced): observed now, a
                    // little early, rather than lost. One clock read serves the latency
                    // and, in whole milliseconds, the PDU's time.
                    let micros = clock.micros();
                    self.answered_at(micros, stats);
                    self.query_from = Some(micros_stamp(micros));
                    stamp.get_or_insert(micros / 1000);
                }
                let now = *stamp.get_or_insert_with(|| clock.now());
                let mut out = Counted {
                    transport: &mut self.transport,
                    stats,
                };
                if let Step::Close(ending) = self.session.on_pdu(&pdu, now, hub, &mut out) {
                    return Err(ending.into());
                }
                if !established {
                    self.count_setup(stats);
                }
                continue;
            }
            if self.transport.peer_closed() {
                return Err(CloseReason::PeerClosed);
            }
            if !self.readiness.can_read() {
                return Ok(Turn::Idle);
            }
            let mut socket = Metered {
                socket: &mut self.socket,
                stats,
            };
            let fill = self
                .transport
                .fill(&mut socket)
                .map_err(|e| failed(self.timer.generation, e))?;
            if fill != Fill::Blocked {
                // Bytes (or the peer's close) arrived: PDUs from here on need a later time.
                stamp = None;
            }
            match fill {
                Fill::Progress | Fill::Closed => {}
                // After a hang-up hint, read on until EOF is seen rather than trust the
                // short read (the FIN may already be queued behind the data).
                Fill::Drained if !self.readiness.hung_up() => self.readiness.read_drained(),
                Fill::Drained => {}
                Fill::Blocked => self.readiness.read_drained(),
                // Cannot happen while whole PDUs are taken out first; wait for an event.
                Fill::Full => return Ok(Turn::Idle),
            }
        }
    }

    // --- The deadline ---------------------------------------------------------------------

    /// The first millisecond at which the connection's deadline has passed, if one runs:
    /// the session's while open, the bound on closing while lingering.
    fn deadline(&self, deadlines: &Deadlines) -> Option<u64> {
        match self.stage {
            Stage::Open => {
                let wake = self.session.wake_at();
                match (self.session.deadline(deadlines), wake) {
                    (Some(deadline), Some(wake)) => Some(deadline.min(wake)),
                    (deadline, wake) => deadline.or(wake),
                }
            }
            Stage::Lingering(linger) => Some(u64::from(linger.until_second) * 1000),
            Stage::Done => None,
        }
    }

    /// Arms a wheel entry for the connection's deadline, unless an earlier one is armed.
    /// Called after anything that may move the deadline; a later deadline needs nothing,
    /// since the armed entry fires and re-arms.
    pub fn arm_deadline(
        &mut self,
        key: usize,
        deadlines: &Deadlines,
        wheel: &mut TimerWheel<TimerKey>,
    ) {
        if let Some(due) = self.deadline(deadlines) {
            self.timer.arm(key, due, wheel);
        }
    }

    /// Whether `entry` (of this connection's slab slot) is its live wheel entry; every
    /// other entry of the slot is stale and may be dropped from the wheel.
    pub fn holds_timer(&self, (_, generation, due): TimerKey) -> bool {
        self.timer.is_live(generation, due)
    }

    /// A wheel entry of slot `key` fired at `now`. If it is this connection's live entry,
    /// either its deadline has passed, or it moved later (a PDU came since) and is
    /// re-armed.
    pub fn deadline_fired(
        &mut self,
        (key, generation, due): TimerKey,
        now: u64,
        deadlines: &Deadlines,
        wheel: &mut TimerWheel<TimerKey>,
    ) -> Expiry {
        if !self.timer.fired(generation, due) {
            return Expiry::None;
        }
        let timed_out = self.session.deadline(deadlines).is_some_and(|d| d <= now);
        match (self.deadline(deadlines), self.stage) {
            (Some(deadline), Stage::Open) if deadline <= now && timed_out => {
                Expiry::Timeout(self.set_up_or_idle())
            }
            (Some(deadline), Stage::Open) if deadline <= now => Expiry::Wake,
            (Some(deadline), _) if deadline <= now => {
                self.stage = Stage::Done;
                Expiry::Abandon
            }
            _ => {
                self.arm_deadline(key, deadlines, wheel);
                Expiry::None
            }
        }
    }

    // --- Closing --------------------------------------------------------------------------

    /// Which of the session's deadlines runs now.
    fn set_up_or_idle(&self) -> DeadlineKind {
        match self.session.user() {
            Some(_) => DeadlineKind::Idle,
            None => DeadlineKind::Handshake,
        }
    }

    /// Closes the connection for `reason`, decided at `now`: counts it, logs it, and starts
    /// saying goodbye, which the next turn carries on. Nothing if it is closing already
    /// (the first reason counts).
    pub fn close(&mut self, reason: CloseReason, now: u64, stats: &mut Stats) {
        if !matches!(self.stage, Stage::Open) {
            return;
        }
        stats.closed(reason);
        // An answer cut short has no latency worth observing.
        self.query_from = None;
        if log::log_enabled!(log::Level::Info) {
            let lived = now.saturating_sub(self.accepted_at);
            let id = self.timer.generation;
            let (secs, millis) = (lived / 1000, lived % 1000);
            let kind = match reason {
                CloseReason::Timeout => match self.set_up_or_idle() {
                    DeadlineKind::Handshake => " (set-up)",
                    _ => " (idle)",
                },
                _ => "",
            };
            match self.session.user() {
                Some(user) => log::info!(
                    "connection {id} closed: {}{kind}, {user}, after {secs}.{millis:03} s",
                    reason.name()
                ),
                None => log::info!(
                    "connection {id} closed: {}{kind}, after {secs}.{millis:03} s",
                    reason.name()
                ),
            }
        }
        self.stage = Stage::Lingering(Linger {
            reason,
            until_second: u32::try_from(now.saturating_add(LINGER_MS).div_ceil(1000))
                .unwrap_or(u32::MAX),
            said_goodbye: false,
            write_shut: false,
            peer_eof: false,
        });
        // Input is read from now on whatever the backpressure, to be thrown away.
        self.readiness.resume_reading();
    }

    /// Whether the connection has nothing more to do and waits for its slot to be freed.
    pub fn is_done(&self) -> bool {
        matches!(self.stage, Stage::Done)
    }

    /// One turn of a lingering close: produce what is owed, write it, shut the write side,
    /// and discard input until the client's EOF. `Done` once all of that happened, or the
    /// socket failed; said once, when it happens.
    fn linger(
        &mut self,
        hub: &mut Hub,
        clock: &Clock,
        budget: &mut usize,
        stats: &mut Stats,
    ) -> Turn {
        let Stage::Lingering(mut linger) = self.stage else {
            return Turn::Idle;
        };
        let now = clock.now();
        // A failure of the socket ends the close: nothing more can be said on it.
        let turn = self
            .say_goodbye(&mut linger, hub, now, budget, stats)
            .unwrap_or(Turn::Done);
        self.stage = match turn {
            Turn::Done => {
                // Releases the name and channel if the goodbye was never reached.
                self.session.close(hub, now);
                Stage::Done
            }
            _ => Stage::Lingering(linger),
        };
        turn
    }

    fn say_goodbye(
        &mut self,
        linger: &mut Linger,
        hub: &mut Hub,
        now: u64,
        budget: &mut usize,
        stats: &mut Stats,
    ) -> Result<Turn, CloseReason> {
        if linger.reason == CloseReason::IoError {
            // The socket is broken: nothing can be said on it.
            return Err(CloseReason::IoError);
        }
        // 1. What is owed: the rest of an answer in flight, under the same output bound,
        //    then close_notify (after a TLS error, the alert rustls queued instead).
        while !linger.said_goodbye {
            if self.session.answer_in_flight() && linger.reason.finishes_answer() {
                if self.transport.queued() >= OUTPUT_BOUND && !self.flush(stats)? {
                    break;
                }
                if *budget == 0 {
                    return Ok(Turn::More);
                }
                *budget -= 1;
                let mut out = Counted {
                    transport: &mut self.transport,
                    stats,
                };
                self.session
                    .continue_output(hub, now, ANSWER_BATCH, &mut out);
                continue;
            }
            // Everything owed is produced: the name and the channel are free from here.
            self.session.close(hub, now);
            if linger.reason != CloseReason::TlsError {
                self.transport.close_notify();
            }
            linger.said_goodbye = true;
        }
        // 2. Write it out, then shut the write side: the client reads close_notify and EOF.
        if linger.said_goodbye && !linger.write_shut && self.flush(stats)? {
            self.socket
                .shutdown(std::net::Shutdown::Write)
                .map_err(|_| CloseReason::IoError)?;
            self.readiness.stop_writing();
            linger.write_shut = true;
        }
        // 3. Read and throw away what the client still sends, until its EOF: unread input
        //    at close would make the kernel reset the connection and drop our output.
        while !linger.peer_eof && self.readiness.can_read() {
            if *budget == 0 {
                return Ok(Turn::More);
            }
            *budget -= 1;
            let mut discard = [0u8; DISCARD_CHUNK];
            let mut socket = Metered {
                socket: &mut self.socket,
                stats,
            };
            match socket.read(&mut discard) {
                Ok(0) => linger.peer_eof = true,
                Ok(n) if n < DISCARD_CHUNK && !self.readiness.hung_up() => {
                    self.readiness.read_drained()
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readiness.read_drained(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(CloseReason::IoError),
            }
        }
        if linger.write_shut && linger.peer_eof {
            return Ok(Turn::Done);
        }
        Ok(Turn::Idle)
    }

    /// Frees what the connection still holds: its session's name and channel (a no-op if
    /// the goodbye released them already), and the socket's registration; returns its
    /// place in its address's count, for the reactor to give back. The socket closes when
    /// the connection is dropped.
    pub fn release(mut self, hub: &mut Hub, registry: &Registry, now: u64) -> Option<Claim> {
        self.session.close(hub, now);
        let _ = registry.deregister(&mut self.socket);
        self.claim
    }
}

/// A transport error that closes connection `id`: logged as a warning (what failed, never
/// what was said), and turned into the reason counted.
fn failed(id: u32, e: TransportError) -> CloseReason {
    match &e {
        TransportError::Tls(tls) => log::warn!("connection {id}: TLS error: {tls}"),
        TransportError::Io(io) => log::warn!("connection {id}: socket error: {io}"),
    }
    e.into()
}

#[cfg(test)]
mod tests;
