//! One simulated client's life in the loop: its connection is started when the ramp
//! allows, its socket is read to `WouldBlock` and the PDUs fed to the client state
//! machine, its events move it through set-up and join, it QUERYs and sends when due, and
//! its connection is closed in one place. What each event means as a measurement is
//! `record`'s; when the run moves on is `stages`'.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kaichat_proto::client::{Client, ClientError, Event, Settings};
use kaichat_proto::names::{ChannelName, Username};
use kaichat_proto::pdu::Pdu;
use mio::net::TcpStream;
use mio::{Interest, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::record::{short, Arrival};
use super::stages::{Phase, RunStage};
use super::Reactor;
use crate::config::Config;
use crate::conn::{Conn, EndStep, Stage};
use crate::message::Stamp;
use crate::schedule::{phase, Periodic, QuerySchedule, STREAM_PING, STREAM_QUERY};
use crate::transport::{read_all, ReadEnd, Transport};

/// Most connections started in one loop iteration, so that socket events keep being
/// served while a fast ramp opens thousands.
const STARTS_PER_ITERATION: u32 = 128;

impl Reactor<'_> {
    /// When the ramp lets client `i` start connecting.
    pub(super) fn connect_due(&self, i: u32) -> Instant {
        let after = if self.cfg.ramp > 0.0 {
            Duration::from_micros((f64::from(i) * 1e6 / self.cfg.ramp) as u64)
        } else {
            Duration::ZERO
        };
        self.clock.epoch() + after
    }

    /// Starts the connections the ramp allows by `now`.
    pub(super) fn start_clients(&mut self, now: Instant) {
        let mut started = 0;
        while self.run.stage == RunStage::Ramp
            && self.next_client < self.cfg.clients
            && self.setting_up < self.cfg.max_setup
            && started < STARTS_PER_ITERATION
            && self.connect_due(self.next_client) <= now
        {
            let i = self.next_client;
            self.next_client += 1;
            started += 1;
            if let Err(cause) = self.start_client(i, now) {
                self.record.errors.add(&cause);
                self.handshake_ended(now);
            }
        }
    }

    /// A connection's handshake ended (established, failed, or never started): if it was
    /// the last one, the connect window closes and the CPU is read at its edge.
    fn handshake_ended(&mut self, now: Instant) {
        if self.next_client == self.cfg.clients && self.handshaking == 0 {
            self.run.connect_cpu.close(now, self.cpu.read());
        }
    }

    fn start_client(&mut self, i: u32, now: Instant) -> Result<(), String> {
        if self.record.first_connect.is_none() {
            self.run.connect_cpu.open(now, self.cpu.read());
        }
        self.record.connect_started(now);
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
        let server = cfg.server_of(i);
        match socket.connect(&cfg.servers[server].into()) {
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
        let version = cfg.version(i);
        let mut client = Client::new(client_settings(cfg, version));
        let name =
            Username::new(cfg.username(i).as_bytes()).map_err(|e| format!("username: {e}"))?;
        client
            .offer_name(name, now, &mut transport)
            .map_err(|e| format!("client: {e}"))?;
        // PING goes into rustls now and leaves right after the handshake.
        client.start(now, &mut transport);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let conn = entry.insert(Conn::new(cfg, i, sock, transport, client, now));
        if let Err(e) = self.poll.registry().register(
            &mut conn.sock,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.conns.remove(key);
            return Err(format!("register: {}", e.kind()));
        }
        self.setting_up += 1;
        self.handshaking += 1;
        self.rearm(key);
        Ok(())
    }

    /// Removes a connection. `cause` is `None` for an orderly end (the server closing
    /// after our QUIT).
    pub(super) fn close(&mut self, key: usize, cause: Option<String>) {
        let mut conn = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut conn.sock);
        if conn.setting_up() {
            self.setting_up -= 1;
        } else if conn.stage != Stage::Quitting {
            self.members_now -= 1;
        }
        self.record.closed(&conn, cause.as_deref());
        if conn.handshaking() {
            self.handshaking -= 1;
            self.handshake_ended(Instant::now());
        }
    }

    /// A socket event for connection `key`.
    pub(super) fn on_event(&mut self, key: usize, readable: bool, writable: bool, now: Instant) {
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

    /// Feeds the PDUs of one read to the client state machine, moves the client on, and
    /// records what the events mean. Returns a cause when the connection must close.
    fn handle_pdus(&mut self, key: usize, pdus: &[Pdu], now: Instant) -> Option<String> {
        for pdu in pdus {
            let conn = &mut self.conns[key];
            let event = match conn.client.handle(pdu, now, &mut conn.transport) {
                Ok(Some(event)) => event,
                Ok(None) => continue,
                Err(e) => return Some(format!("client: {}", client_error_cause(&e))),
            };
            match event {
                Event::Pong => {
                    if let Some(due) = conn.ping_due.take() {
                        self.record.pong(due, self.run.phase(due), now);
                    }
                }
                Event::VersionAgreed { version } => {
                    if version != conn.version {
                        return Some(format!(
                            "protocol: version {version} agreed, version {} wanted",
                            conn.version
                        ));
                    }
                }
                Event::Established { .. } => {
                    self.record
                        .established(conn.server, conn.connect_start, now);
                    self.handshaking -= 1;
                    self.handshake_ended(now);
                    let conn = &mut self.conns[key];
                    // `Config::validate` checked every channel name.
                    let channel = match ChannelName::new(self.cfg.channel(conn.id).as_bytes()) {
                        Ok(channel) => channel,
                        Err(e) => return Some(format!("config: {e}")),
                    };
                    if let Err(e) = conn.client.join(&channel, now, &mut conn.transport) {
                        return Some(format!("client: {}", client_error_cause(&e)));
                    }
                    conn.stage = Stage::Joining;
                }
                Event::NameRejected { reason } => {
                    return Some(format!("name rejected: {}", short(reason)));
                }
                Event::Joined { .. } => {
                    if conn.stage != Stage::Joining {
                        self.record.unexpected("protocol: JOIN acknowledged twice");
                        continue;
                    }
                    conn.stage = Stage::Active;
                    conn.joined = Some(now);
                    self.setting_up -= 1;
                    self.members_now += 1;
                    self.record.joined(conn.server, self.members_now);
                    let cfg = self.cfg;
                    let id = u64::from(conn.id);
                    if conn.version >= 2 {
                        // Pushed, not polled (kaichat-v2 section 2): only the keep-alive.
                        let every = cfg.keepalive;
                        let first = now + phase(cfg.seed, id, STREAM_PING, every);
                        conn.pings = Periodic::new(first, every);
                    } else {
                        let interval = cfg.interval;
                        let phase = phase(cfg.seed, id, STREAM_QUERY, interval);
                        conn.queries = QuerySchedule::new(now + phase, interval);
                    }
                    if matches!(self.run.stage, RunStage::Warmup | RunStage::Steady) {
                        conn.messages = self.run.message_schedule(
                            self.cfg.msg_every,
                            self.cfg.seed,
                            conn.id,
                            now,
                        );
                    }
                }
                Event::Refused { request, reason } => {
                    return Some(format!("{request:?} refused: {}", short(reason)));
                }
                Event::Left { .. } => {
                    self.record
                        .unexpected("protocol: unexpected LEAVE acknowledgement");
                }
                Event::Message {
                    sender, text, time, ..
                } => {
                    let arrival = Arrival {
                        sender,
                        text,
                        time_ms: time,
                        asked: conn.client.queries_in_flight() > 0,
                    };
                    self.record
                        .message_read(conn, arrival, self.cfg, &self.clock, now);
                }
                Event::Notice { text, is_error, .. } => self.record.notice(conn, text, is_error),
                Event::UpToDate { .. } => self.on_answer(key, now),
                Event::Unexpected(what) => {
                    self.record
                        .unexpected(&format!("protocol: unexpected {what:?}"));
                }
                // Version 2 answers and removals: loadgen asks for none of them.
                Event::Removed { .. }
                | Event::Channel { .. }
                | Event::ChannelsEnd { .. }
                | Event::Names { .. }
                | Event::NamesEnd { .. }
                | Event::Moderated { .. }
                | Event::Operator => {
                    self.record
                        .unexpected(&format!("protocol: unexpected {event:?}"));
                }
            }
        }
        None
    }

    /// A QUERY answer completed: a scheduled one, or the client's end-step QUERY.
    fn on_answer(&mut self, key: usize, now: Instant) {
        let conn = &mut self.conns[key];
        let due = conn.queries.complete(now);
        let phase = due.map_or(Phase::Before, |d| self.run.phase(d));
        self.record.answer(due, phase, conn.query_sent, now);
        if due.is_none() && conn.extra_query {
            conn.extra_query = false;
            if let Stage::Ending { step, .. } = conn.stage {
                conn.stage = Stage::Ended(step);
            }
        }
    }

    /// Whatever is due for one client: deadlines, QUERY, messages, the end-of-run QUERYs,
    /// then a flush and a new wake-up time.
    pub(super) fn act(&mut self, key: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Err(e) = conn.client.poll(now, &mut conn.transport) {
            let cause = client_error_cause(&e);
            self.close(key, Some(cause));
            return;
        }
        let mut fail = None;
        if let Stage::Active
        | Stage::Ending {
            step: EndStep::Fence,
            ..
        } = conn.stage
        {
            while let Some(due) = conn.messages.take_due(now) {
                let stamp = Stamp {
                    sender: conn.id,
                    seq: conn.msg_seq,
                    due,
                    sent: now,
                };
                stamp.encode(&self.clock, &mut self.text);
                if let Err(e) =
                    conn.client
                        .send_message(self.text.as_bytes(), now, &mut conn.transport)
                {
                    fail = Some(format!("client: {}", client_error_cause(&e)));
                    break;
                }
                conn.msg_seq += 1;
                self.record.message_sent(conn, due, now);
            }
            if fail.is_none() {
                // One keep-alive PING at a time; one due while the last is unanswered is
                // dropped (the server is alive and being read from anyway).
                if let Some(due) = conn.pings.take_due(now) {
                    if conn.ping_due.is_none() {
                        match conn.client.ping(now, &mut conn.transport) {
                            Ok(()) => {
                                conn.ping_due = Some(due);
                                self.record.ping_sent(due, self.run.phase(due), now);
                            }
                            Err(e) => fail = Some(format!("client: {}", client_error_cause(&e))),
                        }
                    }
                }
            }
            if fail.is_none() {
                if let Some(due) = conn.queries.take_due(now) {
                    match conn.client.query(now, &mut conn.transport) {
                        Ok(()) => {
                            conn.query_sent = now;
                            self.record.query_sent(due, self.run.phase(due), now);
                        }
                        Err(e) => fail = Some(format!("client: {}", client_error_cause(&e))),
                    }
                }
            }
        }
        // The end-of-run QUERY goes out once the scheduled one (if any) is answered: the
        // client never has two QUERYs in flight.
        if fail.is_none() {
            if let Stage::Ending { step, sent: false } = conn.stage {
                if conn.queries.outstanding().is_none() {
                    match conn.client.query(now, &mut conn.transport) {
                        Ok(()) => {
                            conn.extra_query = true;
                            conn.stage = Stage::Ending { step, sent: true };
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
}

/// The client state machine's settings for a client of protocol `version`: loadgen
/// drives QUERY and PING itself (on its seeded schedules), so the machine's own automatic
/// ones are off.
fn client_settings(cfg: &Config, version: u16) -> Settings {
    Settings {
        setup_timeout: cfg.timeout,
        reply_timeout: cfg.timeout,
        query_interval: None,
        keepalive_interval: None,
        // The highest version offered: a v2 client agrees on 1 only with a v1-only
        // server, which the VersionAgreed check then reports.
        max_version: version,
        ..Settings::default()
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
