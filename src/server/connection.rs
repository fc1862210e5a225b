//! One client connection inside the reactor: its socket, its transport, its protocol
//! session, its readiness and its deadline. The reactor hands it events, turns of work,
//! fired deadlines and the order to close; everything the connection holds changes here.
//!
//! Readiness is kept in user space (sozu's model, `readiness.rs`): the socket is
//! registered once for reading and writing, an edge sets an event bit, and a bit is
//! cleared only when the socket says `WouldBlock`. Pausing a connection for backpressure is
//! therefore clearing an interest bit, and resuming needs no new edge and no `reregister`.

use mio::event::Event;
use mio::net::TcpStream;
use mio::Registry;
use rustls::ServerConnection;

use super::readiness::Readiness;
use super::stats::{CloseReason, Stats};
use super::{Clock, TimerKey};
use crate::transport::{Fill, Transport};
use kaichat_proto::hub::Hub;
use kaichat_proto::session::{Deadlines, Session, Step};
use kaichat_proto::timer_wheel::TimerWheel;

/// Output (TLS ciphertext or plaintext) produced but not yet written, above which the
/// connection produces nothing more and reads nothing more until the socket drains.
const OUTPUT_BOUND: usize = 16 * 1024;
/// PDUs of a QUERY answer produced per step.
const ANSWER_BATCH: usize = 4;

/// How a turn of work on a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    /// Nothing more to do until the socket reports readiness.
    Idle,
    /// The work budget ran out with work left: come back in the same loop.
    More,
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

    /// Whether a fired entry is the live one; it is then used up. Entries of a previous
    /// connection in this slab slot, or superseded by an earlier deadline, are stale: this
    /// is how the wheel's entries are cancelled.
    fn fired(&mut self, generation: u32, due: u64) -> bool {
        let live = self.generation == generation && self.armed == due;
        if live {
            self.armed = 0;
        }
        live
    }
}

pub struct Connection {
    socket: TcpStream,
    transport: Transport<ServerConnection>,
    session: Session,
    readiness: Readiness,
    timer: Timer,
    /// On the reactor's list of connections whose turn ran out of budget.
    pending: bool,
    /// Set once the connection is to be torn down at the end of the loop iteration.
    closing: Option<CloseReason>,
}

impl Connection {
    /// A connection accepted at `accepted_at` (ms): its pre-PING deadline, TLS handshake
    /// included, runs from there.
    pub fn new(
        socket: TcpStream,
        transport: Transport<ServerConnection>,
        accepted_at: u64,
        generation: u32,
    ) -> Connection {
        Connection {
            socket,
            transport,
            session: Session::new(accepted_at),
            readiness: Readiness::new(),
            timer: Timer {
                generation,
                armed: 0,
            },
            pending: false,
            closing: None,
        }
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
    /// read), then writes out what was produced. A PDU is handed to the session with the
    /// time read after the socket read that completed it, never earlier, so that no
    /// deadline it starts can fire early.
    pub fn turn(
        &mut self,
        hub: &mut Hub,
        clock: &Clock,
        budget: usize,
        stats: &mut Stats,
    ) -> Result<Turn, CloseReason> {
        let result = self.work(hub, clock, budget, stats);
        self.flush()?;
        if self.transport.overflowed() {
            return Err(CloseReason::Overflow);
        }
        result
    }

    /// Writes what is queued while the socket takes it; true once everything is written.
    fn flush(&mut self) -> Result<bool, CloseReason> {
        if !self.transport.wants_write() {
            return Ok(true);
        }
        if !self.readiness.can_write() {
            return Ok(false);
        }
        let done = self.transport.flush(&mut self.socket)?;
        if !done {
            self.readiness.write_blocked();
        }
        Ok(done)
    }

    fn work(
        &mut self,
        hub: &mut Hub,
        clock: &Clock,
        mut budget: usize,
        stats: &mut Stats,
    ) -> Result<Turn, CloseReason> {
        let mut now = clock.now();
        loop {
            // Backpressure: above the bound, neither produce nor read until it drains.
            if self.transport.queued() >= OUTPUT_BOUND {
                if !self.flush()? {
                    self.readiness.pause_reading();
                    return Ok(Turn::Idle);
                }
                self.readiness.resume_reading();
            }
            if budget == 0 {
                return Ok(Turn::More);
            }
            budget -= 1;
            if self.session.answering() {
                self.session
                    .continue_answer(hub, ANSWER_BATCH, &mut self.transport);
                continue;
            }
            if let Some(pdu) = self.transport.next_pdu() {
                stats.pdus_in += 1;
                if let Step::Close(ending) =
                    self.session.on_pdu(&pdu, now, hub, &mut self.transport)
                {
                    return Err(ending.into());
                }
                continue;
            }
            if self.transport.peer_closed() {
                return Err(CloseReason::PeerClosed);
            }
            if !self.readiness.can_read() {
                return Ok(Turn::Idle);
            }
            let fill = self.transport.fill(&mut self.socket)?;
            if fill != Fill::Blocked {
                // Bytes (or the peer's close) arrived after the turn began.
                now = clock.now();
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

    /// The first millisecond at which the connection's deadline has passed, if one runs.
    fn deadline(&self, deadlines: &Deadlines) -> Option<u64> {
        self.session.deadline(deadlines)
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
        if self.closing.is_some() {
            return;
        }
        if let Some(due) = self.deadline(deadlines) {
            self.timer.arm(key, due, wheel);
        }
    }

    /// A wheel entry of slot `key` fired at `now`. True when it is this connection's live
    /// entry and its deadline has passed; a live entry whose deadline moved later (a PDU
    /// came since) is re-armed.
    pub fn deadline_fired(
        &mut self,
        (key, generation, due): TimerKey,
        now: u64,
        deadlines: &Deadlines,
        wheel: &mut TimerWheel<TimerKey>,
    ) -> bool {
        if !self.timer.fired(generation, due) || self.closing.is_some() {
            return false;
        }
        match self.deadline(deadlines) {
            Some(deadline) if deadline <= now => true,
            _ => {
                self.arm_deadline(key, deadlines, wheel);
                false
            }
        }
    }

    // --- Closing --------------------------------------------------------------------------

    /// Marks the connection for closing at the end of the loop iteration; false if it was
    /// already (the first reason counts).
    pub fn mark_closing(&mut self, reason: CloseReason) -> bool {
        if self.closing.is_some() {
            return false;
        }
        self.closing = Some(reason);
        true
    }

    /// Whether the connection is marked for closing.
    pub fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// Tears the connection down: releases what its session held in the hub (its name,
    /// its channel), says goodbye on the wire, deregisters the socket. Returns the reason
    /// it was marked with.
    pub fn close(mut self, hub: &mut Hub, registry: &Registry) -> CloseReason {
        let reason = self.closing.unwrap_or(CloseReason::IoError);
        self.session.close(hub);
        self.say_goodbye(reason);
        let _ = registry.deregister(&mut self.socket);
        reason
    }

    /// Last words before the socket closes: a TLS close_notify (or the alert rustls queued
    /// after an error), written if the socket takes it.
    fn say_goodbye(&mut self, reason: CloseReason) {
        if !matches!(reason, CloseReason::TlsError | CloseReason::IoError) {
            self.transport.close_notify();
        }
        if reason != CloseReason::IoError {
            // Written even without a writable edge: this is the last chance.
            let _ = self.transport.flush(&mut self.socket);
        }
        let _ = self.socket.shutdown(std::net::Shutdown::Write);
    }
}

#[cfg(test)]
mod tests {
    use super::Connection;

    /// The server's own state per connection stays small: rustls's session (boxed, about
    /// 6 KB) is the real cost of an idle client, and this guard keeps ours from growing
    /// unnoticed.
    #[test]
    fn connection_state_is_small() {
        let size = std::mem::size_of::<Connection>();
        // 168 bytes on x86_64 today: socket, boxed transport, session, readiness, timer.
        assert!(size <= 176, "Connection grew to {size} bytes");
    }
}
