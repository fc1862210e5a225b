//! The listening socket: bound through socket2 with a deep backlog, and an accept that
//! survives running out of file descriptors.

use std::fs::File;
use std::io;
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

/// Thousands of clients may connect at once; mio's own `bind` listens with 128.
const BACKLOG: i32 = 4096;

/// Binds `addr` (IPv4 or IPv6; an IPv6 wildcard also takes IPv4 where the system allows).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // Best effort: some systems do not allow dual-stack sockets.
        let _ = socket.set_only_v6(false);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// What one accept attempt gave.
pub enum Accepted {
    /// A connection, and the client's address; not [`tune`]d yet, since it may be refused.
    Stream(TcpStream, SocketAddr),
    /// No connection waiting.
    Empty,
    /// The process is out of file descriptors: one waiting connection was accepted and
    /// closed at once so the listener does not stay readable forever.
    OutOfDescriptors,
    /// A connection that failed before it could be accepted (reset, aborted): try again.
    Retry,
}

/// A listener with a spare descriptor held back for the EMFILE case (mosquitto's trick).
pub struct Listener {
    socket: TcpListener,
    spare: Option<File>,
}

impl Listener {
    pub fn new(socket: TcpListener) -> Listener {
        Listener {
            socket,
            spare: File::open("/dev/null").ok(),
        }
    }

    pub fn socket_mut(&mut self) -> &mut TcpListener {
        &mut self.socket
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Accepts one connection.
    pub fn accept(&mut self) -> Accepted {
        match self.socket.accept() {
            Ok((stream, peer)) => Accepted::Stream(stream, peer),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Accepted::Empty,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                self.spare = None;
                if let Ok((stream, _)) = self.socket.accept() {
                    drop(stream);
                }
                self.spare = File::open("/dev/null").ok();
                Accepted::OutOfDescriptors
            }
            Err(_) => Accepted::Retry,
        }
    }
}

/// Sets TCP_NODELAY and keep-alive on an accepted connection that is admitted (a refused
/// one is closed at once, so its two system calls are saved).
pub fn tune(stream: &TcpStream) {
    // A TLS record of a PDU spans several segments: never let Nagle hold one.
    let _ = stream.set_nodelay(true);
    let keepalive = TcpKeepalive::new().with_time(std::time::Duration::from_secs(60));
    let _ = SockRef::from(stream).set_tcp_keepalive(&keepalive);
}
