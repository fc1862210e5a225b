//! The single-threaded mio reactor that runs every simulated client of the process.
//!
//! One loop: poll (timeout = the earliest of the next client wake-up, the next connection
//! the ramp allows, the next progress second and the next end-of-run step) → handle socket
//! events → fire due client wake-ups → start new connections → advance the run's stage →
//! print progress. Sockets are registered once for READABLE | WRITABLE (edge-triggered);
//! reads drain to `WouldBlock` and a `writable` flag remembers whether the last write did.
//!
//! A run has stages: Ramp (connect everyone at `--ramp`), Steady (`--duration` seconds of
//! QUERY and messages: the window the numbers describe), Fence and Drain (only when
//! messages were sent: prove every SEND was processed, then read everything owed), Quit
//! (QUIT everywhere, wait for the server to close, at most a few seconds). Every stage has a
//! bound, so a run always ends by itself.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kaichat_proto::client::{Client, ClientError, Event, Settings};
use kaichat_proto::names::{ChannelName, Username};
use kaichat_proto::pdu::Pdu;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};

use crate::alarm::Alarm;
use crate::config::Config;
use crate::conn::{Conn, Stage};
use crate::ledger::{self, Loss, Member, Sent};
use crate::message::{parse_skipped, Stamp};
use crate::schedule::{phase_us, Clock, Periodic, QuerySchedule, STREAM_MESSAGE, STREAM_QUERY};
use crate::stats::{Causes, Counters, Metrics};
use crate::transport::{read_all, ReadEnd, Transport};

/// The token of the [`Alarm`]; slab keys never reach it.
const ALARM: Token = Token(usize::MAX);
/// Most connections started in one loop iteration, so that socket events keep being
/// served while a fast ramp opens thousands.
const STARTS_PER_ITERATION: u32 = 128;
/// How long the fence and the drain may each take.
const END_STEP_LIMIT: Duration = Duration::from_secs(15);
/// How long to wait for the server to close connections after QUIT.
const QUIT_LIMIT: Duration = Duration::from_secs(5);

/// The stage of the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStage {
    Ramp,
    Steady,
    Fence,
    Drain,
    Quit,
    Done,
}

impl RunStage {
    fn name(self) -> &'static str {
        match self {
            RunStage::Ramp => "ramp",
            RunStage::Steady => "steady",
            RunStage::Fence => "fence",
            RunStage::Drain => "drain",
            RunStage::Quit => "quit",
            RunStage::Done => "done",
        }
    }
}

/// One second of the run, for `timeline.csv` and the report's plots.
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    /// Seconds since the start.
    pub t: u64,
    pub stage: RunStage,
    /// Clients established (CLIENT_INFO acknowledged) during this second.
    pub handshakes: u64,
    /// Clients in their channel at the end of the second.
    pub members: u64,
    /// QUERY answers completed during this second.
    pub queries: u64,
    /// p99 of the QUERY latency of this second (µs).
    pub query_p99_us: u64,
    /// Errors so far.
    pub errors: u64,
}

/// Everything a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub counters: Counters,
    pub metrics: Metrics,
    pub errors: Causes,
    pub disconnects: Causes,
    pub loss: Loss,
    pub timeline: Vec<Tick>,
    /// Highest number of clients in their channel at once.
    pub peak_members: u64,
    /// First TCP connect start → last CLIENT_INFO acknowledgement, seconds.
    pub connect_window_s: f64,
    /// Steady window actually run, seconds.
    pub steady_s: f64,
    /// Wall-clock (Unix seconds) start and end of the steady window, for aligning server
    /// samples with it.
    pub steady_start_unix: f64,
    pub steady_end_unix: f64,
    /// Wall-clock (Unix seconds) of the first TCP connect and of the last CLIENT_INFO
    /// acknowledgement: the window of `connect_window_s`.
    pub connect_start_unix: f64,
    pub connect_end_unix: f64,
    /// Clients that completed the drain (or, without messages, were in their channel at
    /// the end).
    pub finished: u64,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// Runs the whole load and returns what it measured.
pub fn run(config: &Config, tls: Option<Arc<ClientConfig>>) -> io::Result<Outcome> {
    let server_name = ServerName::try_from(config.server_name.clone()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a valid server name: {:?}", config.server_name),
        )
    })?;
    let mut reactor = Reactor {
        cfg: config,
        tls,
        server_name,
        clock: Clock::start(),
        start_unix: unix_now(),
        poll: Poll::new()?,
        conns: Slab::with_capacity(config.clients as usize),
        timers: BinaryHeap::new(),
        next_gen: 0,
        next_client: 0,
        setting_up: 0,
        members_now: 0,
        stage: RunStage::Ramp,
        stage_deadline: None,
        steady_start_us: 0,
        steady_end_us: u64::MAX,
        steady_start_unix: 0.0,
        steady_end_unix: 0.0,
        counters: Counters::default(),
        metrics: Metrics::default(),
        errors: Causes::default(),
        disconnects: Causes::default(),
        sent: Vec::new(),
        members: Vec::new(),
        pdus: Vec::new(),
        text: String::new(),
        first_connect_us: None,
        last_established_us: 0,
        next_tick_us: 1_000_000,
        tick_established: 0,
        tick_queries: 0,
        timeline: Vec::new(),
        peak_members: 0,
        finished: 0,
    };
    reactor.run()?;
    Ok(reactor.outcome())
}

struct Reactor<'c> {
    cfg: &'c Config,
    tls: Option<Arc<ClientConfig>>,
    server_name: ServerName<'static>,
    clock: Clock,
    /// Wall-clock time of the clock's epoch.
    start_unix: f64,
    poll: Poll,
    conns: Slab<Conn>,
    /// (wake time, slab key, generation): an entry whose generation is not the
    /// connection's current one is stale and skipped.
    timers: BinaryHeap<Reverse<(u64, usize, u64)>>,
    next_gen: u64,
    next_client: u32,
    setting_up: u32,
    members_now: u64,
    stage: RunStage,
    stage_deadline: Option<u64>,
    steady_start_us: u64,
    steady_end_us: u64,
    steady_start_unix: f64,
    steady_end_unix: f64,
    counters: Counters,
    metrics: Metrics,
    errors: Causes,
    disconnects: Causes,
    sent: Vec<Sent>,
    members: Vec<Member>,
    /// Scratch: PDUs of one read.
    pdus: Vec<Pdu>,
    /// Scratch: one message text.
    text: String,
    first_connect_us: Option<u64>,
    last_established_us: u64,
    next_tick_us: u64,
    tick_established: u64,
    tick_queries: u64,
    timeline: Vec<Tick>,
    peak_members: u64,
    finished: u64,
}

impl Reactor<'_> {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(4096);
        let mut alarm = Alarm::new(self.poll.registry(), ALARM)?;
        let mut alarm_at: Option<u64> = None;
        while self.stage != RunStage::Done {
            let now = self.clock.now_us();
            let timeout = match self.next_deadline() {
                Some(at) if at <= now => Duration::ZERO,
                Some(at) => {
                    if alarm_at != Some(at) {
                        alarm.arm(Duration::from_micros(at - now))?;
                        alarm_at = Some(at);
                    }
                    // The alarm wakes us on time; the poll timeout is only a safety net.
                    Duration::from_micros(at - now) + Duration::from_millis(2)
                }
                None => Duration::from_secs(1),
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let now = self.clock.now_us();
            for event in events.iter() {
                let key = event.token().0;
                if event.token() == ALARM {
                    alarm.clear();
                    alarm_at = None;
                } else if self.conns.contains(key) {
                    self.on_event(key, event.is_readable(), event.is_writable(), now);
                }
            }
            let now = self.clock.now_us();
            self.fire_timers(now);
            self.start_clients(now);
            // A stage may end at once (nothing to wait for): advance until it holds.
            loop {
                let stage = self.stage;
                self.advance_stage(now);
                if self.stage == stage {
                    break;
                }
            }
            self.progress(now);
        }
        Ok(())
    }

    /// The earliest moment the loop must wake without a socket event.
    fn next_deadline(&self) -> Option<u64> {
        let timer = self.timers.peek().map(|Reverse((at, _, _))| *at);
        let start = (self.next_client < self.cfg.clients && self.setting_up < self.cfg.max_setup)
            .then(|| self.connect_due(self.next_client));
        let steady_end = (self.stage == RunStage::Steady).then_some(self.steady_end_us);
        [
            timer,
            start,
            steady_end,
            self.stage_deadline,
            Some(self.next_tick_us),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When the ramp lets client `i` start connecting.
    fn connect_due(&self, i: u32) -> u64 {
        if self.cfg.ramp > 0.0 {
            (f64::from(i) * 1e6 / self.cfg.ramp) as u64
        } else {
            0
        }
    }

    // --- Connections. ---

    fn start_clients(&mut self, now: u64) {
        let mut started = 0;
        while self.stage == RunStage::Ramp
            && self.next_client < self.cfg.clients
            && self.setting_up < self.cfg.max_setup
            && started < STARTS_PER_ITERATION
            && self.connect_due(self.next_client) <= now
        {
            let i = self.next_client;
            self.next_client += 1;
            started += 1;
            if let Err(cause) = self.start_client(i, now) {
                self.errors.add(&cause);
            }
        }
    }

    fn start_client(&mut self, i: u32, now: u64) -> Result<(), String> {
        self.counters.connects_started += 1;
        self.first_connect_us.get_or_insert(now);
        let cfg = self.cfg;
        let source = cfg.sources[i as usize % cfg.sources.len()];
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
            .map_err(|e| format!("socket: {}", e.kind()))?;
        socket
            .set_nonblocking(true)
            .and_then(|()| socket.set_tcp_nodelay(true))
            .map_err(|e| format!("socket: {}", e.kind()))?;
        socket
            .bind(&SocketAddr::new(source.into(), 0).into())
            .map_err(|e| format!("bind {source}: {}", e.kind()))?;
        match socket.connect(&cfg.server.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(format!("connect: {}", e.kind())),
        }
        let sock = TcpStream::from_std(std::net::TcpStream::from(socket));
        let mut transport = match &self.tls {
            Some(tls) => {
                let mut conn = rustls::ClientConnection::new(tls.clone(), self.server_name.clone())
                    .map_err(|e| format!("tls: {e}"))?;
                // Our own output is a handful of PDUs at a time; never let a write be short.
                conn.set_buffer_limit(None);
                Transport::tls(conn)
            }
            None => Transport::plain(),
        };
        let mut client = Client::new(Settings {
            setup_timeout: cfg.timeout,
            reply_timeout: cfg.timeout,
            query_interval: None,
            keepalive_interval: None,
            ..Settings::default()
        });
        let name =
            Username::new(cfg.username(i).as_bytes()).map_err(|e| format!("username: {e}"))?;
        let at = self.clock.instant(now);
        client
            .offer_name(name, at, &mut transport)
            .map_err(|e| format!("client: {e}"))?;
        // PING goes into rustls now and leaves right after the handshake.
        client.start(at, &mut transport);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let conn = entry.insert(Conn {
            id: i,
            channel: i % cfg.channels,
            sock,
            transport,
            client,
            stage: Stage::Connecting,
            writable: false,
            connect_start_us: now,
            joined_us: 0,
            queries: QuerySchedule::stopped(),
            messages: Periodic::never(),
            query_sent_us: 0,
            extra_query: false,
            msg_seq: 0,
            received_owed: 0,
            skipped: 0,
            wake_at: None,
            wake_gen: 0,
            finished: false,
        });
        if let Err(e) = self.poll.registry().register(
            &mut conn.sock,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.conns.remove(key);
            return Err(format!("register: {}", e.kind()));
        }
        self.setting_up += 1;
        self.rearm(key);
        Ok(())
    }

    /// Removes a connection. `cause` is `None` for an orderly end (the server closing
    /// after our QUIT).
    fn close(&mut self, key: usize, cause: Option<String>) {
        let mut conn = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut conn.sock);
        if conn.setting_up() {
            self.setting_up -= 1;
        } else if conn.stage != Stage::Quitting {
            self.members_now -= 1;
        }
        if let Some(cause) = cause {
            // A connection lost after it joined is also a disconnect.
            self.errors.add(&cause);
            if !conn.setting_up() {
                self.disconnects.add(&cause);
            }
        }
        if let Some(member) = conn.membership() {
            self.members.push(member);
        }
    }

    fn rearm(&mut self, key: usize) {
        let clock = self.clock;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let deadline = conn.client.next_wakeup().map(|at| clock.us(at));
        let wake = conn.next_wake(deadline);
        if wake != conn.wake_at {
            conn.wake_at = wake;
            self.next_gen += 1;
            conn.wake_gen = self.next_gen;
            if let Some(at) = wake {
                self.timers.push(Reverse((at, key, self.next_gen)));
            }
        }
    }

    fn fire_timers(&mut self, now: u64) {
        while let Some(&Reverse((at, key, gen))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let current = self.conns.get(key).is_some_and(|c| c.wake_gen == gen);
            if current {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.wake_at = None; // fired
                }
                self.act(key, now);
            }
        }
    }

    fn on_event(&mut self, key: usize, readable: bool, writable: bool, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.stage == Stage::Connecting {
            match connect_result(&conn.sock) {
                Ok(true) => conn.stage = Stage::SettingUp,
                Ok(false) => return, // not yet: a spurious wake-up
                Err(e) => {
                    self.close(key, Some(format!("connect: {}", e.kind())));
                    return;
                }
            }
        }
        if writable {
            conn.writable = true;
        }
        if readable {
            let mut pdus = std::mem::take(&mut self.pdus);
            pdus.clear();
            let end = read_all(&mut conn.transport, &mut conn.sock, &mut pdus);
            let closed_cause = self.handle_pdus(key, &pdus, now);
            self.pdus = pdus;
            if let Some(cause) = closed_cause {
                self.close(key, Some(cause));
                return;
            }
            match end {
                Ok(ReadEnd::WouldBlock) => {}
                Ok(ReadEnd::Closed) => {
                    let orderly = self.conns[key].stage == Stage::Quitting;
                    self.close(key, (!orderly).then(|| "closed by server".to_string()));
                    return;
                }
                Err(e) => {
                    // Flush a TLS alert if rustls queued one; the connection is over anyway.
                    let conn = &mut self.conns[key];
                    let _ = conn.transport.flush(&mut conn.sock);
                    let orderly = conn.stage == Stage::Quitting;
                    self.close(key, (!orderly).then(|| e.cause()));
                    return;
                }
            }
        }
        self.act(key, now);
    }

    /// Feeds the PDUs of one read to the client state machine and records what they mean.
    /// Returns a cause when the connection must close.
    fn handle_pdus(&mut self, key: usize, pdus: &[Pdu], now: u64) -> Option<String> {
        let at = self.clock.instant(now);
        for pdu in pdus {
            let conn = &mut self.conns[key];
            let event = match conn.client.handle(pdu, at, &mut conn.transport) {
                Ok(Some(event)) => event,
                Ok(None) => continue,
                Err(e) => return Some(format!("client: {}", client_error_cause(&e))),
            };
            match event {
                Event::Pong | Event::VersionAgreed { .. } => {}
                Event::Established { .. } => {
                    self.metrics
                        .connect
                        .record(now.saturating_sub(conn.connect_start_us));
                    self.counters.established += 1;
                    self.last_established_us = now;
                    // `Config::validate` checked every channel name.
                    let channel = match ChannelName::new(self.cfg.channel(conn.id).as_bytes()) {
                        Ok(channel) => channel,
                        Err(e) => return Some(format!("config: {e}")),
                    };
                    if let Err(e) = conn.client.join(&channel, at, &mut conn.transport) {
                        return Some(format!("client: {}", client_error_cause(&e)));
                    }
                    conn.stage = Stage::Joining;
                }
                Event::NameRejected { reason } => {
                    return Some(format!("name rejected: {}", short(reason)));
                }
                Event::Joined { .. } => {
                    if conn.stage != Stage::Joining {
                        self.counters.unexpected_pdus += 1;
                        self.errors.add("protocol: JOIN acknowledged twice");
                        continue;
                    }
                    conn.stage = Stage::Active;
                    conn.joined_us = now;
                    self.counters.joined += 1;
                    self.setting_up -= 1;
                    self.members_now += 1;
                    self.peak_members = self.peak_members.max(self.members_now);
                    let interval = us(self.cfg.interval);
                    let phase = phase_us(self.cfg.seed, u64::from(conn.id), STREAM_QUERY, interval);
                    conn.queries = QuerySchedule::new(now + phase, interval);
                    if self.stage == RunStage::Steady {
                        let id = conn.id;
                        self.conns[key].messages = self.message_schedule(id, now);
                    }
                }
                Event::Refused { request, reason } => {
                    return Some(format!("{request:?} refused: {}", short(reason)));
                }
                Event::Left { .. } => {
                    self.counters.unexpected_pdus += 1;
                    self.errors
                        .add("protocol: unexpected LEAVE acknowledgement");
                }
                Event::Message { text, .. } => {
                    self.counters.messages_received += 1;
                    match Stamp::parse(text) {
                        Some(stamp) => {
                            self.metrics
                                .delivery
                                .record(now.saturating_sub(stamp.due_us));
                            if conn.joined_us > 0 && stamp.sent_us > conn.joined_us {
                                conn.received_owed += 1;
                            }
                        }
                        None => self.counters.messages_foreign += 1,
                    }
                }
                Event::Notice { text, is_error, .. } => {
                    self.counters.notices += 1;
                    if is_error {
                        self.errors.add(&format!("error notice: {}", short(text)));
                    } else if let Some(n) = parse_skipped(text) {
                        self.counters.skip_notices += 1;
                        self.counters.skipped_entries += n;
                        conn.skipped += n;
                    }
                }
                Event::UpToDate { .. } => self.on_answer(key, now),
                Event::Unexpected(what) => {
                    self.counters.unexpected_pdus += 1;
                    self.errors.add(&format!("protocol: unexpected {what:?}"));
                }
            }
        }
        None
    }

    /// A QUERY answer completed.
    fn on_answer(&mut self, key: usize, now: u64) {
        self.counters.queries_total += 1;
        let conn = &mut self.conns[key];
        if let Some(due) = conn.queries.complete(now) {
            let latency = now.saturating_sub(due);
            if due >= self.steady_start_us && self.steady_start_us > 0 && due < self.steady_end_us {
                self.metrics.query.record(latency);
                self.metrics
                    .query_sent
                    .record(now.saturating_sub(conn.query_sent_us));
                self.metrics.window_query.record(latency);
                self.counters.queries += 1;
                self.tick_queries += 1;
            } else if self.steady_start_us == 0 || due < self.steady_start_us {
                self.metrics.query_ramp.record(latency);
            }
            return;
        }
        if conn.extra_query {
            conn.extra_query = false;
            conn.stage = match conn.stage {
                Stage::Fence { .. } => Stage::Fenced,
                Stage::Drain { .. } => Stage::Drained,
                other => other,
            };
        }
    }

    fn message_schedule(&self, id: u32, now: u64) -> Periodic {
        let every = us(self.cfg.msg_every);
        if every == 0 {
            return Periodic::never();
        }
        let phase = phase_us(self.cfg.seed, u64::from(id), STREAM_MESSAGE, every);
        Periodic::new(self.steady_start_us.max(now) + phase, every)
    }

    /// Whatever is due for one client: deadlines, QUERY, messages, the end-of-run QUERYs,
    /// then a flush and a new wake-up time.
    fn act(&mut self, key: usize, now: u64) {
        let at = self.clock.instant(now);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Err(e) = conn.client.poll(at, &mut conn.transport) {
            let cause = client_error_cause(&e);
            self.close(key, Some(cause));
            return;
        }
        let mut fail = None;
        match conn.stage {
            Stage::Active | Stage::Fence { .. } => {
                while let Some(due) = conn.messages.take_due(now) {
                    let stamp = Stamp {
                        sender: conn.id,
                        seq: conn.msg_seq,
                        due_us: due,
                        sent_us: now,
                    };
                    stamp.encode(&mut self.text);
                    if let Err(e) =
                        conn.client
                            .send_message(self.text.as_bytes(), at, &mut conn.transport)
                    {
                        fail = Some(format!("client: {}", client_error_cause(&e)));
                        break;
                    }
                    conn.msg_seq += 1;
                    self.counters.messages_sent += 1;
                    self.metrics.lag.record(now - due);
                    self.sent.push(Sent {
                        channel: conn.channel,
                        sender: conn.id,
                        sent_us: now,
                    });
                }
                if fail.is_none() {
                    if let Some(due) = conn.queries.take_due(now) {
                        match conn.client.query(at, &mut conn.transport) {
                            Ok(()) => {
                                conn.query_sent_us = now;
                                if due >= self.steady_start_us && self.steady_start_us > 0 {
                                    self.metrics.lag.record(now - due);
                                }
                            }
                            Err(e) => fail = Some(format!("client: {}", client_error_cause(&e))),
                        }
                    }
                }
            }
            _ => {}
        }
        // The end-of-run QUERY goes out once the scheduled one (if any) is answered: the
        // client never has two QUERYs in flight.
        if fail.is_none() {
            if let Stage::Fence { sent: false } | Stage::Drain { sent: false } = conn.stage {
                if conn.queries.outstanding().is_none() {
                    match conn.client.query(at, &mut conn.transport) {
                        Ok(()) => {
                            conn.extra_query = true;
                            conn.stage = match conn.stage {
                                Stage::Fence { .. } => Stage::Fence { sent: true },
                                _ => Stage::Drain { sent: true },
                            };
                        }
                        Err(e) => fail = Some(format!("client: {}", client_error_cause(&e))),
                    }
                }
            }
        }
        if fail.is_none() && conn.writable && conn.transport.wants_write() {
            match conn.transport.flush(&mut conn.sock) {
                Ok(all) => conn.writable = all,
                Err(e) => fail = Some(e.cause()),
            }
        }
        if let Some(cause) = fail {
            self.close(key, Some(cause));
            return;
        }
        self.rearm(key);
    }

    // --- The run's stages. ---

    fn keys(&self) -> Vec<usize> {
        self.conns.iter().map(|(k, _)| k).collect()
    }

    fn advance_stage(&mut self, now: u64) {
        match self.stage {
            RunStage::Ramp => {
                if self.next_client == self.cfg.clients && self.setting_up == 0 {
                    self.stage = RunStage::Steady;
                    let warmup = us(self.cfg.warmup);
                    self.steady_start_us = (now + warmup).max(1);
                    self.steady_start_unix = unix_now() + self.cfg.warmup.as_secs_f64();
                    self.steady_end_us = now + warmup + us(self.cfg.duration);
                    for key in self.keys() {
                        let conn = &mut self.conns[key];
                        if conn.stage == Stage::Active {
                            let (id, joined) = (conn.id, conn.joined_us);
                            self.conns[key].messages = self.message_schedule(id, joined.max(now));
                            self.rearm(key);
                        }
                    }
                }
            }
            RunStage::Steady => {
                // Every client gone (none connected, or all disconnected): nothing left to
                // measure, so the run ends now.
                if self.conns.is_empty() {
                    self.steady_end_us = now;
                }
                if now >= self.steady_end_us {
                    self.steady_end_unix = unix_now();
                    if self.cfg.msg_every.is_zero() {
                        self.enter_quit(now);
                    } else {
                        self.stage = RunStage::Fence;
                        self.stage_deadline = Some(now + us(END_STEP_LIMIT));
                        for key in self.keys() {
                            let conn = &mut self.conns[key];
                            if conn.stage == Stage::Active {
                                conn.queries.stop();
                                conn.messages.stop();
                                conn.stage = Stage::Fence { sent: false };
                            }
                            self.act(key, now);
                        }
                    }
                }
            }
            RunStage::Fence => {
                let waiting = self
                    .conns
                    .iter()
                    .any(|(_, c)| matches!(c.stage, Stage::Fence { .. }));
                let late = self.stage_deadline.is_some_and(|d| now >= d);
                if !waiting || late {
                    if late {
                        self.count_stragglers("fence timeout", |s| {
                            matches!(s, Stage::Fence { .. })
                        });
                    }
                    self.stage = RunStage::Drain;
                    self.stage_deadline = Some(now + us(END_STEP_LIMIT));
                    for key in self.keys() {
                        let conn = &mut self.conns[key];
                        if conn.stage == Stage::Fenced {
                            conn.stage = Stage::Drain { sent: false };
                        }
                        self.act(key, now);
                    }
                }
            }
            RunStage::Drain => {
                let waiting = self
                    .conns
                    .iter()
                    .any(|(_, c)| matches!(c.stage, Stage::Drain { .. }));
                let late = self.stage_deadline.is_some_and(|d| now >= d);
                if !waiting || late {
                    if late {
                        self.count_stragglers("drain timeout", |s| {
                            matches!(s, Stage::Drain { .. })
                        });
                    }
                    self.enter_quit(now);
                }
            }
            RunStage::Quit => {
                let late = self.stage_deadline.is_some_and(|d| now >= d);
                if self.conns.is_empty() || late {
                    for key in self.keys() {
                        // The server did not close in time after our QUIT: not an error of
                        // the run, but worth a count.
                        self.disconnects.add("no close after QUIT");
                        self.close(key, None);
                    }
                    self.stage = RunStage::Done;
                }
            }
            RunStage::Done => {}
        }
    }

    fn count_stragglers(&mut self, cause: &str, stuck: impl Fn(Stage) -> bool) {
        let n = self.conns.iter().filter(|(_, c)| stuck(c.stage)).count();
        for _ in 0..n {
            self.errors.add(cause);
        }
    }

    fn enter_quit(&mut self, now: u64) {
        if self.steady_end_unix == 0.0 {
            self.steady_end_unix = unix_now();
        }
        self.stage = RunStage::Quit;
        self.stage_deadline = Some(now + us(QUIT_LIMIT));
        let with_messages = !self.cfg.msg_every.is_zero();
        let at = self.clock.instant(now);
        for key in self.keys() {
            let conn = &mut self.conns[key];
            let finished = if with_messages {
                conn.stage == Stage::Drained
            } else {
                conn.stage == Stage::Active
            };
            if finished {
                self.finished += 1;
                conn.finished = true;
            }
            if conn.setting_up() {
                self.setting_up -= 1;
            } else {
                self.members_now -= 1;
            }
            conn.queries.stop();
            conn.messages.stop();
            conn.client.quit(at, &mut conn.transport);
            conn.stage = Stage::Quitting;
            self.counters.quits += 1;
            let result = conn.transport.flush(&mut conn.sock);
            match result {
                Ok(all) => conn.writable = all,
                Err(_) => {
                    // The QUIT could not be written; the connection is over either way.
                    self.close(key, None);
                    continue;
                }
            }
            self.rearm(key);
        }
    }

    // --- Progress. ---

    fn progress(&mut self, now: u64) {
        if now < self.next_tick_us {
            return;
        }
        let t = self.next_tick_us / 1_000_000;
        self.next_tick_us += 1_000_000;
        let handshakes = self.counters.established - self.tick_established;
        self.tick_established = self.counters.established;
        let queries = self.tick_queries;
        self.tick_queries = 0;
        let window_p99 = self.metrics.window_query.quantile(0.99);
        self.metrics.window_query.reset();
        let tick = Tick {
            t,
            stage: self.stage,
            handshakes,
            members: self.members_now,
            queries,
            query_p99_us: window_p99,
            errors: self.errors.total(),
        };
        self.timeline.push(tick);
        if !self.cfg.quiet {
            eprintln!(
                "[{t:>4}s] {:<6} connected {}/{} (+{handshakes}/s) in-channel {} | queries/s {queries} \
                 p99 {:.2} ms (run {:.2} ms) lag p99 {:.2} ms | msgs sent {} recv {} | errors {} disconnects {}",
                self.stage.name(),
                self.counters.established,
                self.cfg.clients,
                self.members_now,
                window_p99 as f64 / 1000.0,
                self.metrics.query.quantile(0.99) as f64 / 1000.0,
                self.metrics.lag.quantile(0.99) as f64 / 1000.0,
                self.counters.messages_sent,
                self.counters.messages_received,
                self.errors.total(),
                self.disconnects.total(),
            );
        }
    }

    fn outcome(self) -> Outcome {
        let loss = ledger::account(&self.sent, &self.members);
        let connect_window_s = match self.first_connect_us {
            Some(first) if self.last_established_us > first => {
                (self.last_established_us - first) as f64 / 1e6
            }
            _ => 0.0,
        };
        let steady_s = if self.steady_start_us > 0 {
            self.steady_end_us
                .min(self.clock.now_us())
                .saturating_sub(self.steady_start_us) as f64
                / 1e6
        } else {
            0.0
        };
        Outcome {
            counters: self.counters,
            metrics: self.metrics,
            errors: self.errors,
            disconnects: self.disconnects,
            loss,
            timeline: self.timeline,
            peak_members: self.peak_members,
            connect_window_s,
            steady_s,
            steady_start_unix: self.steady_start_unix,
            steady_end_unix: self.steady_end_unix,
            connect_start_unix: self.start_unix + self.first_connect_us.unwrap_or(0) as f64 / 1e6,
            connect_end_unix: self.start_unix + self.last_established_us as f64 / 1e6,
            finished: self.finished,
        }
    }
}

/// After a connect-in-progress socket reported readiness: connected, not yet, or failed.
fn connect_result(sock: &TcpStream) -> io::Result<bool> {
    if let Some(e) = sock.take_error()? {
        return Err(e);
    }
    match sock.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

fn client_error_cause(e: &ClientError) -> String {
    match e {
        ClientError::Timeout(waiting) => format!("timeout waiting for {waiting}"),
        other => other.to_string(),
    }
}

/// At most 60 bytes of a server text, for a cause name (printable, one line).
fn short(text: &[u8]) -> String {
    let cut = &text[..text.len().min(60)];
    String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
