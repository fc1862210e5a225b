//! The reactor: one thread, one mio `Poll`, every connection in a slab whose key is its
//! token, and a timer wheel for the deadlines. It moves bytes and time; what the bytes
//! mean is the session's business.
//!
//! One loop iteration, in order (docs/LIFECYCLE.md has the long version):
//! 1. poll, with a zero timeout while work is pending, else until the next second;
//! 2. dispatch events: a listener is marked ready, a connection does a bounded turn;
//! 3. serve connections whose last turn ran out of budget;
//! 4. fire due deadlines;
//! 5. accept into a queue and start a bounded number of new sessions (TLS handshakes cost
//!    about 100 µs each, so a connection storm must not starve established clients);
//! 6. tear down the connections marked closing, in one place.

mod connection;
mod listener;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::transport::Transport;
use connection::{CloseReason, Connection, Turn};
use kaichat_proto::hub::Hub;
use kaichat_proto::session::{Deadlines, Session};
use kaichat_proto::timer_wheel::TimerWheel;
use listener::{Accepted, Listener};

/// Tokens at the top of the range; slab keys (connections) start at 0.
const SHUTDOWN: Token = Token(usize::MAX - 1);
const LISTENER: Token = Token(usize::MAX - 2);

/// Work units a connection gets per turn before others are served.
const TURN_BUDGET: usize = 32;
/// New sessions (TLS handshakes) started per loop iteration.
const NEW_SESSIONS_PER_ITERATION: usize = 16;
/// Descriptors kept back from `--max-clients`'s default for the listener, the poll, the
/// shutdown waker, the EMFILE spare and standard streams.
pub const RESERVED_FDS: u64 = 32;

/// Everything the server needs to run, as parsed from the command line.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// None serves plaintext (`--plaintext`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub deadlines: Deadlines,
    pub history: usize,
    pub replay: usize,
    pub max_clients: usize,
    /// Seconds between statistics lines; 0 = none.
    pub stats_interval: u64,
}

/// Counters for the statistics line.
#[derive(Default)]
struct Stats {
    accepted: u64,
    refused_no_fd: u64,
    pdus_in: u64,
    closed: [u64; CloseReason::ALL.len()],
}

type TimerKey = (usize, u32, u64);

/// Stops a running [`Server`]: sets a flag and wakes the reactor's poll. Cheap to clone and
/// safe to trigger from any thread, any number of times.
#[derive(Clone)]
pub struct Shutdown {
    requested: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Shutdown {
    /// Asks the server to close every client and return from `run`.
    pub fn trigger(&self) {
        self.requested.store(true, Ordering::Release);
        // A failed wake can only mean the poll is gone, and then the server is too.
        let _ = self.waker.wake();
    }
}

pub struct Server {
    poll: Poll,
    listener: Listener,
    shutdown: Shutdown,
    connections: Slab<Connection>,
    hub: Hub,
    wheel: TimerWheel<TimerKey>,
    config: Config,
    /// Accepted sockets waiting for a session, with the millisecond they were accepted.
    accept_queue: VecDeque<(TcpStream, u64)>,
    /// The listener may have connections waiting (its edge will not fire again).
    listener_ready: bool,
    /// Accepting paused after the process ran out of descriptors, until a slot frees.
    out_of_fds: bool,
    /// Connections whose turn ran out of budget with work left.
    pending: Vec<usize>,
    closing: Vec<usize>,
    next_generation: u32,
    start: Instant,
    stats: Stats,
}

impl Server {
    /// Binds the listener. The server installs no signal handler: whoever owns the process
    /// stops it through [`Server::shutdown_handle`].
    pub fn bind(config: Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = Listener::new(listener::bind(config.listen)?);
        poll.registry()
            .register(listener.socket_mut(), LISTENER, Interest::READABLE)?;
        let shutdown = Shutdown {
            requested: Arc::new(AtomicBool::new(false)),
            waker: Arc::new(Waker::new(poll.registry(), SHUTDOWN)?),
        };
        Ok(Server {
            poll,
            listener,
            shutdown,
            connections: Slab::new(),
            hub: Hub::new(config.history, config.replay),
            wheel: TimerWheel::new(0),
            config,
            accept_queue: VecDeque::new(),
            listener_ready: false,
            out_of_fds: false,
            pending: Vec::new(),
            closing: Vec::new(),
            next_generation: 0,
            start: Instant::now(),
            stats: Stats::default(),
        })
    }

    /// A handle that stops [`Server::run`] from any thread (a signal handler's thread, a
    /// test, a bench).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Milliseconds since the server started, rounded down: the time the sessions and the
    /// wheel count in.
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs until its [`Shutdown`] handle is triggered, then closes every client with a TLS
    /// close_notify and returns the final statistics line.
    pub fn run(&mut self) -> io::Result<String> {
        let mut events = Events::with_capacity(1024);
        let mut fired = Vec::new();
        let mut last_stats = 0;
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let now = self.now();
            for event in events.iter() {
                match event.token() {
                    SHUTDOWN => {}
                    LISTENER => self.listener_ready = true,
                    Token(key) => {
                        if let Some(conn) = self.connections.get_mut(key) {
                            conn.readable |=
                                event.is_readable() || event.is_read_closed() || event.is_error();
                            conn.writable |=
                                event.is_writable() || event.is_write_closed() || event.is_error();
                            conn.hangup |= event.is_read_closed() || event.is_error();
                            self.serve(key, now);
                        }
                    }
                }
            }
            if self.shutdown.requested.load(Ordering::Acquire) {
                return Ok(self.shut_down());
            }
            for key in std::mem::take(&mut self.pending) {
                if let Some(conn) = self.connections.get_mut(key) {
                    conn.pending = false;
                }
                self.serve(key, now);
            }
            if now / 1000 > self.wheel.now() / 1000 {
                // A new second: retry accepting after running out of descriptors.
                self.out_of_fds = false;
            }
            self.wheel.advance(now, &mut fired);
            for (key, generation, due) in fired.drain(..) {
                self.deadline_fired(key, generation, due, now);
            }
            self.accept(now);
            self.start_sessions();
            self.reap();
            let interval = self.config.stats_interval;
            if interval > 0 && now >= last_stats + interval.saturating_mul(1000) {
                last_stats = now;
                eprintln!("kaichat-server: stats: {}", self.stats_line());
            }
        }
    }

    /// Zero while work is pending; otherwise until the next whole second, when the wheel's
    /// next slot is due.
    fn poll_timeout(&self) -> Duration {
        if !self.pending.is_empty() || !self.accept_queue.is_empty() {
            return Duration::ZERO;
        }
        let into_second = self.start.elapsed().subsec_nanos();
        Duration::from_nanos(u64::from(1_000_000_000 - into_second))
    }

    /// Gives connection `key` a turn of work, then re-arms its deadline.
    fn serve(&mut self, key: usize, now: u64) {
        let Some(conn) = self.connections.get_mut(key) else {
            return;
        };
        if conn.closing.is_some() {
            return;
        }
        match conn.turn(&mut self.hub, now, TURN_BUDGET, &mut self.stats.pdus_in) {
            Ok(Turn::Idle) => {}
            // Listed once, however many turns ran out of budget before it is served.
            Ok(Turn::More) if !conn.pending => {
                conn.pending = true;
                self.pending.push(key);
            }
            Ok(Turn::More) => {}
            Err(reason) => return self.close(key, reason),
        }
        self.arm_deadline(key);
    }

    /// Arms a wheel entry when the session's deadline is earlier than the one armed.
    /// A later deadline needs nothing: the armed entry fires and re-arms.
    fn arm_deadline(&mut self, key: usize) {
        let Some(conn) = self.connections.get_mut(key) else {
            return;
        };
        if let Some(due) = conn.session.deadline(&self.config.deadlines) {
            if conn.armed == 0 || due < conn.armed {
                conn.armed = due;
                self.wheel.arm(due, (key, conn.generation, due));
            }
        }
    }

    fn deadline_fired(&mut self, key: usize, generation: u32, due: u64, now: u64) {
        let Some(conn) = self.connections.get_mut(key) else {
            return;
        };
        // Entries of a previous connection in this slot, or superseded by an earlier
        // deadline, are stale: this is how the wheel's entries are cancelled.
        if conn.generation != generation || conn.armed != due || conn.closing.is_some() {
            return;
        }
        conn.armed = 0;
        match conn.session.deadline(&self.config.deadlines) {
            Some(deadline) if deadline <= now => self.close(key, CloseReason::Timeout),
            _ => self.arm_deadline(key),
        }
    }

    /// Accepts waiting connections into the queue while there is room.
    fn accept(&mut self, now: u64) {
        while self.listener_ready && !self.out_of_fds {
            if self.connections.len() + self.accept_queue.len() >= self.config.max_clients {
                // Stay ready: accepting resumes when a connection closes.
                return;
            }
            match self.listener.accept() {
                Accepted::Stream(stream) => {
                    self.stats.accepted += 1;
                    self.accept_queue.push_back((stream, now));
                }
                Accepted::Empty => self.listener_ready = false,
                Accepted::OutOfDescriptors => {
                    self.stats.refused_no_fd += 1;
                    self.out_of_fds = true;
                }
                Accepted::Retry => {}
            }
        }
    }

    /// Registers a bounded number of queued sockets as new connections.
    fn start_sessions(&mut self) {
        for _ in 0..NEW_SESSIONS_PER_ITERATION {
            let Some((mut socket, accepted_at)) = self.accept_queue.pop_front() else {
                return;
            };
            let transport = match &self.config.tls {
                Some(tls) => match rustls::ServerConnection::new(Arc::clone(tls)) {
                    Ok(conn) => Transport::tls(conn),
                    Err(_) => continue,
                },
                None => Transport::plain(),
            };
            let entry = self.connections.vacant_entry();
            let key = entry.key();
            // Registered once for both directions; readiness is tracked in user space.
            if self
                .poll
                .registry()
                .register(
                    &mut socket,
                    Token(key),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                continue;
            }
            self.next_generation = self.next_generation.wrapping_add(1);
            // The pre-PING deadline counts from accept, TLS handshake included.
            let session = Session::new(accepted_at);
            entry.insert(Connection::new(
                socket,
                transport,
                session,
                self.next_generation,
            ));
            self.arm_deadline(key);
        }
    }

    fn close(&mut self, key: usize, reason: CloseReason) {
        if let Some(conn) = self.connections.get_mut(key) {
            if conn.closing.is_none() {
                conn.closing = Some(reason);
                self.closing.push(key);
            }
        }
    }

    /// Tears down the connections marked closing: releases their name and channel, says
    /// goodbye on the wire, frees the slot.
    fn reap(&mut self) {
        for key in std::mem::take(&mut self.closing) {
            let mut conn = self.connections.remove(key);
            let reason = conn.closing.unwrap_or(CloseReason::IoError);
            conn.session.close(&mut self.hub);
            conn.say_goodbye(reason);
            let _ = self.poll.registry().deregister(&mut conn.socket);
            self.stats.closed[reason as usize] += 1;
            // A slot is free: accept again if we had stopped.
            self.out_of_fds = false;
        }
    }

    fn shut_down(&mut self) -> String {
        let _ = self.poll.registry().deregister(self.listener.socket_mut());
        for (_, conn) in self.connections.iter_mut() {
            conn.session.close(&mut self.hub);
            conn.say_goodbye(CloseReason::Shutdown);
            self.stats.closed[CloseReason::Shutdown as usize] += 1;
        }
        self.connections.clear();
        self.stats_line()
    }

    /// One line of counters, for the periodic and the final statistics.
    pub fn stats_line(&self) -> String {
        let s = &self.stats;
        let mut line = format!(
            "uptime={}s clients={} named={} channels={} accepted={} pdus_in={} messages={} closed:",
            self.now() / 1000,
            self.connections.len(),
            self.hub.users(),
            self.hub.channels(),
            s.accepted,
            s.pdus_in,
            self.hub.messages(),
        );
        for reason in CloseReason::ALL {
            let _ = write!(line, " {}={}", reason.name(), s.closed[reason as usize]);
        }
        if s.refused_no_fd > 0 {
            let _ = write!(line, " refused_no_fd={}", s.refused_no_fd);
        }
        if let Some(kib) = rss_kib() {
            let _ = write!(line, " rss_kib={kib}");
        }
        line
    }
}

/// The process's resident set size, from /proc (Linux).
fn rss_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()? / 1024)
}
