//! The connection to Redis: one non-blocking TCP socket, with rustls client TLS for
//! `rediss://`, registered in the reactor's poll under a token of its own. It moves bytes
//! out and RESP3 frames in, connects again with backoff when the connection is lost, and
//! says when it came up and went down.
//!
//! It knows nothing of KaiChat: the engine writes HELLO, AUTH and SELECT after each
//! [`LinkEvent::Connected`] and reads the frames. It never blocks, never sleeps and never
//! reads a clock: time comes in as milliseconds of the reactor's clock, and the link asks
//! for the next moment it must be looked at ([`Link::next_deadline`]).
//!
//! Host names are resolved once, by [`Link::new`], at start-up and before the loop runs
//! (the only blocking call here): reconnections use the addresses found then, so a DNS
//! change of the Redis host is seen only by a restart. An IP literal needs no resolution.
//!
//! The socket is registered once for reading and writing (edge-triggered), and what the
//! kernel reported is kept in user space, as for the clients' connections
//! (`server/readiness.rs`): a direction's bit is cleared only by `WouldBlock`, so no
//! `reregister` call is ever made, and a writable edge while nothing waits costs one
//! wake-up and nothing else.
//!
//! Input and output are each bounded by [`BUFFER_LIMIT`]: a reply larger than that, or that
//! much output that Redis does not take, ends the connection with an error that says so
//! (and a reconnection follows, as for any other loss).

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use redis_protocol::resp3::decode::complete::decode;
use redis_protocol::resp3::types::OwnedFrame;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use socket2::{SockRef, TcpKeepalive};

use super::url::RedisUrl;

/// The wait before the first reconnection attempt after a loss, and after a failed attempt
/// it doubles, up to [`MAX_BACKOFF_MS`]; a successful connection resets it.
pub const MIN_BACKOFF_MS: u64 = 100;
/// The longest wait between two attempts.
pub const MAX_BACKOFF_MS: u64 = 5000;
/// An attempt (TCP connect, and TLS handshake for `rediss://`) that has not succeeded
/// within this is given up, as if refused.
pub const CONNECT_TIMEOUT_MS: u64 = 5000;
/// Most bytes buffered each way: a reply not yet whole, or commands Redis has not taken.
pub const BUFFER_LIMIT: usize = 64 << 20;
/// Bytes asked of the socket by one read.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes read per turn at most, so that a flood from Redis cannot hold the loop; the rest
/// is read in the next iteration ([`Link::next_deadline`] says "now").
const READ_BUDGET: usize = 1 << 20;
/// A buffer emptied above this capacity gives its memory back (a burst must not keep it).
const KEEP_CAPACITY: usize = 256 * 1024;

/// What happened on the link, in order: the frames of a connection always come after its
/// `Connected` and before its `Disconnected`.
#[derive(Debug)]
pub enum LinkEvent {
    /// A connection is up (TCP, and the TLS handshake for `rediss://`): bytes may be sent.
    /// The engine starts its session (HELLO 3, AUTH, SELECT, ...) now: nothing of the
    /// previous connection carries over.
    Connected(SocketAddr),
    /// A whole RESP3 frame from Redis: a reply, or a push (pub/sub messages).
    Frame(OwnedFrame),
    /// The connection that was up is lost: whatever was sent and not answered is lost with
    /// it. The next attempt is at `retry_at` (ms, the reactor's clock).
    Disconnected { error: LinkError, retry_at: u64 },
    /// An attempt to connect to `addr` failed before the connection was up (for the log;
    /// the state did not change). The next attempt is at `retry_at`.
    Unreachable {
        addr: SocketAddr,
        error: LinkError,
        retry_at: u64,
    },
}

/// Why a connection (or an attempt) ended.
#[derive(Debug)]
pub enum LinkError {
    /// Connecting, reading or writing failed (refused, reset, unreachable, ...).
    Io(io::Error),
    /// TLS failed: the handshake (a certificate refused), or a record Redis sent.
    Tls(rustls::Error),
    /// The attempt was not up within [`CONNECT_TIMEOUT_MS`].
    ConnectTimeout,
    /// Redis closed the connection.
    Closed,
    /// Redis sent bytes that are not RESP3.
    Protocol(String),
    /// A reply larger than [`BUFFER_LIMIT`].
    InputLimit,
    /// [`BUFFER_LIMIT`] bytes of commands waiting that Redis does not take.
    OutputLimit,
    /// The caller dropped the connection ([`Link::disconnect`]).
    Dropped,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Io(e) => write!(f, "{e}"),
            LinkError::Tls(e) => write!(f, "TLS: {e}"),
            LinkError::ConnectTimeout => {
                write!(f, "not connected within {} s", CONNECT_TIMEOUT_MS / 1000)
            }
            LinkError::Closed => write!(f, "Redis closed the connection"),
            LinkError::Protocol(e) => write!(f, "Redis sent something that is not RESP3: {e}"),
            LinkError::InputLimit => {
                write!(f, "a reply from Redis exceeds {} MiB", BUFFER_LIMIT >> 20)
            }
            LinkError::OutputLimit => write!(
                f,
                "Redis is not reading: {} MiB of commands wait",
                BUFFER_LIMIT >> 20
            ),
            LinkError::Dropped => write!(f, "connection dropped"),
        }
    }
}

impl std::error::Error for LinkError {}

/// Why a link cannot be made at all (at start-up).
#[derive(Debug)]
pub enum SetupError {
    /// The host name could not be resolved, or to no address.
    Resolve { host: String, error: io::Error },
    /// `rediss://` without a TLS client configuration.
    NoTlsConfig,
    /// The host is not a name or an address a certificate can be checked against.
    ServerName(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Resolve { host, error } => {
                write!(f, "cannot resolve the Redis host {host:?}: {error}")
            }
            SetupError::NoTlsConfig => write!(f, "rediss:// needs a TLS client configuration"),
            SetupError::ServerName(host) => write!(
                f,
                "the Redis host {host:?} cannot be checked against a TLS certificate"
            ),
        }
    }
}

impl std::error::Error for SetupError {}

/// The connection to Redis, owned by the reactor.
///
/// Contract: after every call that takes a registry (`on_ready`, `tick`, `send`,
/// `disconnect`) the caller drains [`Link::next_event`] until it returns None, and it
/// calls [`Link::tick`] whenever `now >= next_deadline()`.
pub struct Link {
    token: Token,
    /// Resolved once by `new`; tried in turn until one connects.
    addrs: Vec<SocketAddr>,
    next_addr: usize,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    /// The connection, up or being made; None while waiting for `retry_at`.
    conn: Option<Conn>,
    /// When the next attempt starts (ms), while `conn` is None.
    retry_at: u64,
    /// The wait before the next attempt after a failure.
    backoff_ms: u64,
    /// Bytes read and not yet decoded: at most the start of one frame.
    input: Vec<u8>,
    /// Bytes to write; `output[written..]` is what Redis has not taken yet.
    output: Vec<u8>,
    written: usize,
    events: VecDeque<LinkEvent>,
}

/// One connection (or attempt).
struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    tls: Option<Box<ClientConnection>>,
    /// The TCP connect completed.
    tcp_up: bool,
    /// `Connected` was reported: TCP up and, with TLS, the handshake done.
    up: bool,
    /// Until `up`: when the attempt is given up (ms).
    deadline: u64,
    /// Reported by the poll and not used up yet (cleared by `WouldBlock` only); also set
    /// while rustls holds plaintext the bounded input had no room for.
    readable: bool,
    writable: bool,
}

impl Link {
    /// A link to the Redis of `url`, polled under `token`. Resolves the host now (blocking,
    /// once: call it before the loop). `tls` is required for `rediss://` and ignored for
    /// `redis://`. No connection is made yet: the first attempt is due at once
    /// (`next_deadline()` is `Some(0)`), made by the first [`Link::tick`].
    pub fn new(
        url: &RedisUrl,
        token: Token,
        tls: Option<Arc<ClientConfig>>,
    ) -> Result<Link, SetupError> {
        let resolve_error = |error| SetupError::Resolve {
            host: url.host.clone(),
            error,
        };
        let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(resolve_error)?
            .collect();
        if addrs.is_empty() {
            return Err(resolve_error(io::Error::new(
                io::ErrorKind::NotFound,
                "no address",
            )));
        }
        let tls = if url.tls {
            let config = tls.ok_or(SetupError::NoTlsConfig)?;
            let name = ServerName::try_from(url.host.clone())
                .map_err(|_| SetupError::ServerName(url.host.clone()))?;
            Some((config, name))
        } else {
            None
        };
        Ok(Link {
            token,
            addrs,
            next_addr: 0,
            tls,
            conn: None,
            retry_at: 0,
            backoff_ms: MIN_BACKOFF_MS,
            input: Vec::new(),
            output: Vec::new(),
            written: 0,
            events: VecDeque::new(),
        })
    }

    pub fn token(&self) -> Token {
        self.token
    }

    /// Whether a connection is up: [`Link::send`] takes bytes only then.
    pub fn is_up(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.up)
    }

    /// Bytes queued and not yet taken by Redis.
    pub fn unsent(&self) -> usize {
        self.output.len() - self.written
    }

    /// The next moment (ms) at which [`Link::tick`] has something to do: the next attempt,
    /// the end of one under way, or 0 ("now") while input is owed a turn (the read budget
    /// ran out). None: only a poll event can make work.
    pub fn next_deadline(&self) -> Option<u64> {
        match &self.conn {
            None => Some(self.retry_at),
            Some(conn) if conn.tcp_up && conn.readable => Some(0),
            Some(conn) if !conn.up => Some(conn.deadline),
            Some(_) => None,
        }
    }

    /// What happened, in order (see [`LinkEvent`]); None when nothing is left.
    pub fn next_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// A poll event for this link's token: reads what came, writes what waits.
    pub fn on_ready(&mut self, event: &Event, registry: &Registry, now: u64) {
        if let Some(conn) = &mut self.conn {
            let failed = event.is_error();
            conn.readable |= event.is_readable() || event.is_read_closed() || failed;
            conn.writable |= event.is_writable() || event.is_write_closed() || failed;
        }
        self.drive(registry, now);
    }

    /// Time passed: starts an attempt that is due, gives up one that took too long, and
    /// reads on where the read budget ran out.
    pub fn tick(&mut self, registry: &Registry, now: u64) {
        match &self.conn {
            None if now >= self.retry_at => self.connect(registry, now),
            None => {}
            Some(conn) if conn.tcp_up && conn.readable => self.drive(registry, now),
            Some(conn) if !conn.up && now >= conn.deadline => {
                self.fail(registry, now, LinkError::ConnectTimeout)
            }
            Some(_) => {}
        }
    }

    /// Queues `bytes` (whole RESP commands, pipelined) and writes what the socket takes
    /// now; the rest goes out as the socket drains. Bytes given while the link is not up
    /// are dropped: each connection starts afresh at [`LinkEvent::Connected`]. More than
    /// [`BUFFER_LIMIT`] waiting ends the connection ([`LinkError::OutputLimit`]).
    pub fn send(&mut self, bytes: &[u8], registry: &Registry, now: u64) {
        if !self.is_up() || bytes.is_empty() {
            return;
        }
        if self.unsent() + bytes.len() > BUFFER_LIMIT {
            return self.fail(registry, now, LinkError::OutputLimit);
        }
        self.output.extend_from_slice(bytes);
        if let Err(error) = self.write() {
            self.fail(registry, now, error);
        }
    }

    /// The caller found the connection usable (Redis accepted its set-up): the wait
    /// before the next attempt starts from the shortest again. Until then a connection
    /// that Redis accepts and then refuses (a wrong password, its client limit) keeps
    /// doubling the wait, so a misconfigured node does not retry ten times a second.
    pub fn confirm(&mut self) {
        self.backoff_ms = MIN_BACKOFF_MS;
    }

    /// Drops the connection (or the attempt) as if it failed: for a caller that cannot go
    /// on with this one (an unexpected reply, a failed AUTH, no answer to its own PING in
    /// time). A new attempt follows after the backoff, reported as
    /// [`LinkEvent::Disconnected`] with [`LinkError::Dropped`] when the connection was up.
    /// Nothing happens while the link is waiting for its next attempt.
    pub fn disconnect(&mut self, registry: &Registry, now: u64) {
        self.fail(registry, now, LinkError::Dropped);
    }

    /// Starts an attempt to the next address.
    fn connect(&mut self, registry: &Registry, now: u64) {
        let addr = self.addrs[self.next_addr];
        let mut stream = match TcpStream::connect(addr) {
            Ok(stream) => stream,
            Err(e) => return self.attempt_failed(addr, LinkError::Io(e), now),
        };
        if let Err(e) = registry.register(
            &mut stream,
            self.token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return self.attempt_failed(addr, LinkError::Io(e), now);
        }
        let tls = match &self.tls {
            None => None,
            Some((config, name)) => match ClientConnection::new(Arc::clone(config), name.clone()) {
                Ok(tls) => Some(Box::new(tls)),
                Err(e) => {
                    let _ = registry.deregister(&mut stream);
                    return self.attempt_failed(addr, LinkError::Tls(e), now);
                }
            },
        };
        self.conn = Some(Conn {
            stream,
            addr,
            tls,
            tcp_up: false,
            up: false,
            deadline: now.saturating_add(CONNECT_TIMEOUT_MS),
            readable: false,
            writable: false,
        });
    }

    /// Does what the readiness allows; a failure ends the connection.
    fn drive(&mut self, registry: &Registry, now: u64) {
        if let Err(error) = self.io() {
            self.fail(registry, now, error);
        }
    }

    /// Completes the connect, reads and decodes, reports the connection up, writes.
    fn io(&mut self) -> Result<(), LinkError> {
        let Some(conn) = &mut self.conn else {
            return Ok(());
        };
        if !conn.tcp_up {
            if !(conn.readable || conn.writable) {
                return Ok(());
            }
            // mio's recipe for a non-blocking connect: an error, or a peer address once
            // connected; NotConnected means not yet (a spurious wake-up).
            if let Some(e) = conn.stream.take_error().map_err(LinkError::Io)? {
                return Err(LinkError::Io(e));
            }
            match conn.stream.peer_addr() {
                Ok(_) => conn.tcp_up = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    conn.readable = false;
                    conn.writable = false;
                    return Ok(());
                }
                Err(e) => return Err(LinkError::Io(e)),
            }
            // Pipelined small commands must not wait for Nagle. Keep-alive finds a Redis
            // host that vanished without a word, after minutes: the engine's own PING is
            // the quick check (`disconnect`).
            let _ = conn.stream.set_nodelay(true);
            let keepalive = TcpKeepalive::new().with_time(std::time::Duration::from_secs(60));
            let _ = SockRef::from(&conn.stream).set_tcp_keepalive(&keepalive);
        }
        self.mark_up();
        let closed = self.read();
        // Frames that arrived before a close or an error still count: decoded first.
        self.decode()?;
        closed?;
        self.write()
    }

    /// Reports the connection up once TCP is, and the TLS handshake if any: before any
    /// frame of it (a Redis at its client limit says so at once, then closes).
    fn mark_up(&mut self) {
        let Some(conn) = &mut self.conn else {
            return;
        };
        if conn.tcp_up && !conn.up && !conn.tls.as_ref().is_some_and(|tls| tls.is_handshaking()) {
            conn.up = true;
            self.events.push_back(LinkEvent::Connected(conn.addr));
        }
    }

    /// Reads into `input` until the socket has no more, the budget is spent, or the input
    /// reaches its bound (then `decode` says whether a frame ended within it).
    fn read(&mut self) -> Result<(), LinkError> {
        let Some(conn) = &mut self.conn else {
            return Ok(());
        };
        let mut budget = READ_BUDGET;
        while conn.readable && budget > 0 && self.input.len() < BUFFER_LIMIT {
            // Never past the bound: a reply that does not fit is one that never decodes.
            let room = BUFFER_LIMIT - self.input.len();
            match &mut conn.tls {
                None => {
                    let len = self.input.len();
                    self.input.resize(len + READ_CHUNK.min(room), 0);
                    let result = conn.stream.read(&mut self.input[len..]);
                    self.input.truncate(len + result.as_ref().map_or(0, |n| *n));
                    match result {
                        Ok(0) => return Err(LinkError::Closed),
                        Ok(n) => budget = budget.saturating_sub(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.readable = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(LinkError::Io(e)),
                    }
                }
                Some(tls) => {
                    // Plaintext rustls still holds comes first (read_tls refuses more while
                    // its plaintext buffer is full); then records from the socket.
                    let mut state = process(tls, &mut conn.stream)?;
                    let mut eof = false;
                    if state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed() {
                        match tls.read_tls(&mut conn.stream) {
                            Ok(0) => eof = true,
                            Ok(n) => budget = budget.saturating_sub(n),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                conn.readable = false
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(LinkError::Io(e)),
                        }
                        state = process(tls, &mut conn.stream)?;
                    }
                    let plaintext = state.plaintext_bytes_to_read();
                    let take = plaintext.min(room);
                    if take > 0 {
                        let len = self.input.len();
                        self.input.resize(len + take, 0);
                        tls.reader()
                            .read_exact(&mut self.input[len..])
                            .map_err(LinkError::Io)?;
                    }
                    if take < plaintext {
                        // Input left inside rustls: read on when there is room.
                        conn.readable = true;
                    } else if eof || state.peer_has_closed() {
                        return Err(LinkError::Closed);
                    }
                }
            }
        }
        Ok(())
    }

    /// Decodes the whole frames at the start of `input` into events; keeps the rest.
    fn decode(&mut self) -> Result<(), LinkError> {
        // A TLS handshake that completed in this read: `Connected` before its frames.
        self.mark_up();
        let mut start = 0;
        let result = loop {
            match decode(&self.input[start..]) {
                Ok(Some((frame, used))) if used > 0 => {
                    self.events.push_back(LinkEvent::Frame(frame));
                    start += used;
                }
                Ok(_) => break Ok(()),
                Err(e) => break Err(LinkError::Protocol(e.to_string())),
            }
        };
        self.input.drain(..start);
        result?;
        if self.input.len() >= BUFFER_LIMIT {
            return Err(LinkError::InputLimit);
        }
        if self.input.is_empty() && self.input.capacity() > KEEP_CAPACITY {
            self.input = Vec::new();
        }
        Ok(())
    }

    /// Writes what waits (TLS records, then `output`) until the socket is full.
    fn write(&mut self) -> Result<(), LinkError> {
        let Some(conn) = &mut self.conn else {
            return Ok(());
        };
        if !conn.tcp_up {
            return Ok(());
        }
        while conn.writable {
            let result = match &mut conn.tls {
                None => {
                    if self.written == self.output.len() {
                        break;
                    }
                    let result = conn.stream.write(&self.output[self.written..]);
                    if let Ok(n) = result {
                        self.written += n;
                    }
                    result
                }
                Some(tls) => {
                    // Application data only once the handshake is done; rustls takes what
                    // fits under its buffer limit, written out just below.
                    if conn.up && self.written < self.output.len() {
                        let taken = tls.writer().write(&self.output[self.written..]);
                        self.written += taken.map_err(LinkError::Io)?;
                    }
                    if !tls.wants_write() {
                        break;
                    }
                    tls.write_tls(&mut conn.stream)
                }
            };
            match result {
                Ok(0) => return Err(LinkError::Io(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LinkError::Io(e)),
            }
        }
        if self.written == self.output.len() {
            self.output.clear();
            self.written = 0;
            if self.output.capacity() > KEEP_CAPACITY {
                self.output = Vec::new();
            }
        } else if self.written > KEEP_CAPACITY && self.written > self.output.len() / 2 {
            self.output.drain(..self.written);
            self.written = 0;
        }
        Ok(())
    }

    /// Ends the connection or attempt (if any) and schedules the next attempt.
    fn fail(&mut self, registry: &Registry, now: u64, error: LinkError) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let _ = registry.deregister(&mut conn.stream);
        self.input = Vec::new();
        self.output = Vec::new();
        self.written = 0;
        if conn.up {
            // Start again with the address that worked.
            self.retry_at = now.saturating_add(self.backoff_ms);
            self.backoff_ms = (self.backoff_ms * 2).min(MAX_BACKOFF_MS);
            self.events.push_back(LinkEvent::Disconnected {
                error,
                retry_at: self.retry_at,
            });
        } else {
            self.attempt_failed(conn.addr, error, now);
        }
    }

    /// An attempt to `addr` failed: the next address at once, or, when every address was
    /// tried, the first one after the backoff.
    fn attempt_failed(&mut self, addr: SocketAddr, error: LinkError, now: u64) {
        self.next_addr += 1;
        if self.next_addr < self.addrs.len() {
            self.retry_at = now;
        } else {
            self.next_addr = 0;
            self.retry_at = now.saturating_add(self.backoff_ms);
            self.backoff_ms = (self.backoff_ms * 2).min(MAX_BACKOFF_MS);
        }
        self.events.push_back(LinkEvent::Unreachable {
            addr,
            error,
            retry_at: self.retry_at,
        });
    }
}

/// rustls's `process_new_packets`; on a TLS error, the alert rustls queued is sent if the
/// socket takes it.
fn process(
    tls: &mut ClientConnection,
    stream: &mut TcpStream,
) -> Result<rustls::IoState, LinkError> {
    tls.process_new_packets().map_err(|e| {
        let _ = tls.write_tls(stream);
        LinkError::Tls(e)
    })
}

#[cfg(test)]
mod tests;
