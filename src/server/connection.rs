//! One client connection inside the reactor: its socket, its transport, its protocol
//! session, and the readiness the kernel last reported for it.
//!
//! Readiness is kept in user space (sozu's model): the socket is registered once for
//! reading and writing, an edge sets a flag, and a flag is cleared only when the socket
//! says `WouldBlock`. Pausing a connection for backpressure is therefore just not acting
//! on a flag, and resuming needs no new edge and no `reregister`.

use mio::net::TcpStream;

use rustls::ServerConnection;

use crate::transport::{Fill, Transport, TransportError};
use kaichat_proto::hub::Hub;
use kaichat_proto::session::{Session, Step};

/// Output (TLS ciphertext or plaintext) produced but not yet written, above which the
/// connection produces nothing more and reads nothing more until the socket drains.
const OUTPUT_BOUND: usize = 16 * 1024;
/// PDUs of a QUERY answer produced per step.
const ANSWER_BATCH: usize = 4;

/// Why a connection closed; counted in the statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    Quit,
    PeerClosed,
    Timeout,
    TlsError,
    IoError,
    Overflow,
    Shutdown,
}

impl CloseReason {
    pub const ALL: [CloseReason; 7] = [
        CloseReason::Quit,
        CloseReason::PeerClosed,
        CloseReason::Timeout,
        CloseReason::TlsError,
        CloseReason::IoError,
        CloseReason::Overflow,
        CloseReason::Shutdown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CloseReason::Quit => "quit",
            CloseReason::PeerClosed => "peer",
            CloseReason::Timeout => "timeout",
            CloseReason::TlsError => "tls",
            CloseReason::IoError => "io",
            CloseReason::Overflow => "overflow",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

impl From<TransportError> for CloseReason {
    fn from(e: TransportError) -> CloseReason {
        match e {
            TransportError::Io(_) => CloseReason::IoError,
            TransportError::Tls(_) => CloseReason::TlsError,
        }
    }
}

/// How a turn of work on a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    /// Nothing more to do until the socket reports readiness.
    Idle,
    /// The work budget ran out with work left: come back in the same loop.
    More,
}

pub struct Connection {
    pub socket: TcpStream,
    pub transport: Transport<ServerConnection>,
    pub session: Session,
    /// The kernel said readable and no read has returned `WouldBlock` since.
    pub readable: bool,
    /// The kernel said writable and no write has returned `WouldBlock` since.
    pub writable: bool,
    /// The kernel hinted the peer hung up or the socket failed.
    pub hangup: bool,
    /// On the reactor's list of connections whose turn ran out of budget.
    pub pending: bool,
    /// Distinguishes this connection from earlier ones in the same slab slot.
    pub generation: u32,
    /// Due millisecond of this connection's live timer-wheel entry; 0 when none.
    pub armed: u64,
    /// Set once the connection is to be torn down at the end of the loop iteration.
    pub closing: Option<CloseReason>,
}

impl Connection {
    pub fn new(
        socket: TcpStream,
        transport: Transport<ServerConnection>,
        session: Session,
        generation: u32,
    ) -> Connection {
        Connection {
            socket,
            transport,
            session,
            readable: false,
            writable: false,
            hangup: false,
            pending: false,
            generation,
            armed: 0,
            closing: None,
        }
    }

    /// Does up to `budget` units of work (a PDU in, a batch of answer PDUs out, a socket
    /// read), then writes out what was produced.
    pub fn turn(
        &mut self,
        hub: &mut Hub,
        now: u64,
        budget: usize,
        pdus_in: &mut u64,
    ) -> Result<Turn, CloseReason> {
        let result = self.work(hub, now, budget, pdus_in);
        self.flush()?;
        if self.transport.overflowed() {
            return Err(CloseReason::Overflow);
        }
        result
    }

    fn flush(&mut self) -> Result<bool, CloseReason> {
        if !self.writable || !self.transport.wants_write() {
            return Ok(!self.transport.wants_write());
        }
        let done = self.transport.flush(&mut self.socket)?;
        if !done {
            self.writable = false;
        }
        Ok(done)
    }

    fn work(
        &mut self,
        hub: &mut Hub,
        now: u64,
        mut budget: usize,
        pdus_in: &mut u64,
    ) -> Result<Turn, CloseReason> {
        loop {
            // Backpressure: above the bound, neither produce nor read until it drains.
            if self.transport.queued() >= OUTPUT_BOUND && !self.flush()? {
                return Ok(Turn::Idle);
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
                *pdus_in += 1;
                if let Step::Close(_) = self.session.on_pdu(&pdu, now, hub, &mut self.transport) {
                    return Err(CloseReason::Quit);
                }
                continue;
            }
            if self.transport.peer_closed() {
                return Err(CloseReason::PeerClosed);
            }
            if !self.readable {
                return Ok(Turn::Idle);
            }
            match self.transport.fill(&mut self.socket)? {
                Fill::Progress | Fill::Closed => {}
                // After a hang-up hint, read on until EOF is seen rather than trust the
                // short read (the FIN may already be queued behind the data).
                Fill::Drained if !self.hangup => self.readable = false,
                Fill::Drained => {}
                Fill::Blocked => self.readable = false,
                // Cannot happen while whole PDUs are taken out first; wait for an event.
                Fill::Full => return Ok(Turn::Idle),
            }
        }
    }

    /// Last words before the socket closes: a TLS close_notify (or the alert rustls queued
    /// after an error), written if the socket takes it.
    pub fn say_goodbye(&mut self, reason: CloseReason) {
        if !matches!(reason, CloseReason::TlsError | CloseReason::IoError) {
            self.transport.close_notify();
        }
        if reason != CloseReason::IoError {
            self.writable = true;
            let _ = self.flush();
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
        // 168 bytes on x86_64 today: socket, boxed transport, session, flags, timer state.
        assert!(size <= 176, "Connection grew to {size} bytes");
    }
}
