//! A connection's readiness, kept in user space (sozu's `Readiness`): what the kernel last
//! reported for the socket (`event`) and what the connection wants to do next
//! (`interest`). The connection acts on `event & interest`.
//!
//! The socket is registered once for reading and writing, with edge-triggered events: an
//! edge is reported once, so a bit of `event` is set by an event and cleared only when the
//! socket says it has nothing more (`WouldBlock`, or a read that came back short). Pausing
//! a direction is clearing its `interest` bit: the `event` bit stays, so resuming needs no
//! new edge (none would come) and no `reregister` syscall.
//!
//! Every change to a connection's readiness is one of the methods below.

use mio::event::Event;

/// A set of readiness bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready(u8);

impl Ready {
    pub const EMPTY: Ready = Ready(0);
    pub const READABLE: Ready = Ready(1);
    pub const WRITABLE: Ready = Ready(1 << 1);
    /// The peer hung up or the socket failed: a hint to read on until EOF is seen.
    pub const HUP: Ready = Ready(1 << 2);

    fn contains(self, other: Ready) -> bool {
        self.0 & other.0 == other.0
    }

    fn insert(&mut self, other: Ready) {
        self.0 |= other.0;
    }

    fn remove(&mut self, other: Ready) {
        self.0 &= !other.0;
    }
}

impl std::ops::BitOr for Ready {
    type Output = Ready;

    fn bitor(self, other: Ready) -> Ready {
        Ready(self.0 | other.0)
    }
}

impl std::ops::BitAnd for Ready {
    type Output = Ready;

    fn bitand(self, other: Ready) -> Ready {
        Ready(self.0 & other.0)
    }
}

/// What the kernel said about a socket, and what its connection wants to do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Reported by the poll and not yet used up.
    event: Ready,
    /// Wanted by the connection: reading unless paused for backpressure, writing until
    /// the write side is shut down.
    interest: Ready,
}

impl Readiness {
    /// A new connection: nothing reported yet, both directions wanted.
    pub fn new() -> Readiness {
        Readiness {
            event: Ready::EMPTY,
            interest: Ready::READABLE | Ready::WRITABLE,
        }
    }

    /// ORs a poll event in. A hang-up or an error also means "readable" and "writable",
    /// so that the next read or write reports what happened.
    pub fn on_event(&mut self, event: &Event) {
        let failed = event.is_error();
        if event.is_readable() || event.is_read_closed() || failed {
            self.event.insert(Ready::READABLE);
        }
        if event.is_writable() || event.is_write_closed() || failed {
            self.event.insert(Ready::WRITABLE);
        }
        if event.is_read_closed() || failed {
            self.event.insert(Ready::HUP);
        }
    }

    /// The socket has no more input for now: a read said `WouldBlock`, or came back short
    /// (epoll(7): the receive buffer is empty then).
    pub fn read_drained(&mut self) {
        self.event.remove(Ready::READABLE);
    }

    /// The socket's send buffer is full: a write said `WouldBlock`.
    pub fn write_blocked(&mut self) {
        self.event.remove(Ready::WRITABLE);
    }

    /// Backpressure: stop reading (and so stop answering) until the output drains. True
    /// if reading was wanted until now (a new pause, which the metrics count).
    pub fn pause_reading(&mut self) -> bool {
        let was_reading = self.interest.contains(Ready::READABLE);
        self.interest.remove(Ready::READABLE);
        was_reading
    }

    /// The output drained below its bound: reading may go on.
    pub fn resume_reading(&mut self) {
        self.interest.insert(Ready::READABLE);
    }

    /// The write side is shut down (a closing connection said all it had to say): nothing
    /// will be written again.
    pub fn stop_writing(&mut self) {
        self.interest.remove(Ready::WRITABLE);
    }

    /// Whether a read may be tried now: reported readable and wanted.
    pub fn can_read(&self) -> bool {
        (self.event & self.interest).contains(Ready::READABLE)
    }

    /// Whether a write may be tried now: reported writable and wanted.
    pub fn can_write(&self) -> bool {
        (self.event & self.interest).contains(Ready::WRITABLE)
    }

    /// Whether the peer hung up (or the socket failed): a short read then does not mean
    /// the input is drained, since the FIN may be queued behind the data.
    pub fn hung_up(&self) -> bool {
        self.event.contains(Ready::HUP)
    }
}

#[cfg(test)]
mod tests;
