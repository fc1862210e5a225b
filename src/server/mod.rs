//! The reactor: one thread, one mio `Poll`, every connection in a slab whose key is its
//! token, and a timer wheel for the deadlines. It moves bytes and time; what the bytes
//! mean is the session's business.
//!
//! One loop iteration, in order (docs/LIFECYCLE.md has the long version):
//! 1. poll, with a zero timeout while work is pending, else until the next second;
//! 2. dispatch events: a listener is marked ready, a connection does a bounded turn;
//! 3. serve connections whose last turn ran out of budget;
//! 4. on a new second, give back what a burst grew; fire due deadlines;
//! 5. accept into a queue, closing at once what an address's limits refuse (before any
//!    TLS: `admission.rs`), and start a bounded number of new sessions (TLS handshakes
//!    cost about 100 µs each, so a connection storm must not starve established clients);
//! 6. free the slots of the connections that finished closing, in one place.
//!
//! A connection that closes says goodbye over several turns (a lingering close, in
//! `connection.rs`) and keeps its slot until then, for at most about two seconds. A
//! shutdown request closes every connection so, stops accepting, and lets the loop run for
//! at most one more second.
//!
//! Operations are edges of the loop. Log lines go through the `log` facade, whose logger
//! the binary installs: a line per connection event at info, errors of TLS, sockets and
//! accept at warn. The optional metrics endpoint (`scrape.rs`, a plaintext HTTP listener in
//! the same poll) reads the plain counters of `stats.rs`, encoded (`exposition.rs`) only
//! when scraped.
//!
//! With a store ([`Server::use_store`]), the end of each iteration hands the entries the
//! hub journaled to the store's writer thread (never waiting for it), and under `always`
//! advances the hub's durable watermark from the writer's confirmations.

mod admission;
mod clock;
mod connection;
mod exposition;
mod listener;
pub mod network;
pub mod oper;
mod readiness;
mod scrape;
mod shutdown;
mod stats;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::cluster::engine::{Cluster, ClusterConfig};
use crate::cluster::link::{Link, SetupError};
use crate::cluster::url::RedisUrl;
use crate::store::{LoadedBans, LoadedChannel, Opened, Record, Store, SyncPolicy};
use crate::transport::Transport;
use admission::{Admission, Claim, Refusal};
pub(crate) use clock::Clock;
use connection::{Connection, Expiry, Life, Turn};
use exposition::{Lives, Snapshot};
use kaichat_proto::hub::{Appended, BanChange, Event, Hub, Rules};
use kaichat_proto::session::Deadlines;
use kaichat_proto::timer_wheel::TimerWheel;
use listener::{Accepted, Listener};
use network::Network;
use oper::Verifier;
use scrape::Endpoint;
pub use scrape::{MAX_SCRAPES as METRICS_CONNECTIONS, SCRAPE_TIMEOUT_MS as METRICS_TIMEOUT_MS};
pub use shutdown::Shutdown;
use stats::{CloseReason, DeadlineKind, Stats};

pub use admission::{AddressLimits, DEFAULT_ACCEPT_RATE, DEFAULT_MAX_PER_ADDRESS, MAX_RATE};

/// Tokens at the top of the range; slab keys (connections) start at 0.
const SHUTDOWN: Token = Token(usize::MAX - 1);
const LISTENER: Token = Token(usize::MAX - 2);

/// Work units a connection gets per turn before others are served.
const TURN_BUDGET: usize = 32;
/// Connections accepted (or refused) per loop iteration at most; redis takes 1000 too.
const ACCEPTS_PER_ITERATION: usize = 1000;
/// New sessions (TLS handshakes) started per loop iteration.
const NEW_SESSIONS_PER_ITERATION: usize = 16;
/// Entries retained per channel unless configured (`--history`).
pub const DEFAULT_HISTORY: usize = 1000;
/// Last entries shown to a joiner unless configured (`--replay`).
pub const DEFAULT_REPLAY: usize = 20;
/// Entries the slab, the accept queue and the list of fired deadlines keep room for
/// whatever they hold; above it, what a burst left is given back (`give_back_memory`).
const MIN_RETAINED: usize = 1024;
/// A Redis reply later than this (ms) means Redis stalled: the connection is dropped and
/// made again (cluster mode).
const REDIS_REPLY_TIMEOUT_MS: u64 = 5000;
/// After a shutdown request, how long the loop still runs for clients to take their
/// pending output and close_notify, at most.
const SHUTDOWN_GRACE_MS: u64 = 1000;

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
    /// Connections and new connections per second allowed to one client address.
    pub limits: AddressLimits,
    /// The highest protocol version offered, the rate limit, and whether OPER can succeed
    /// (`rules.oper` is set from `oper_hash` by [`Server::bind`]).
    pub rules: Rules,
    /// The server operator password's argon2id PHC string (`--oper-password-file`, read
    /// with [`oper::load_hash`]); None: OPER always fails.
    pub oper_hash: Option<String>,
}

impl Config {
    /// `listen` and `tls` with every other setting at the server's default (deadlines,
    /// history, replay, address limits, protocol rules), 1024 clients, no statistics line
    /// and no operator password: for embedding the server in tests and benches.
    pub fn new(listen: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> Config {
        Config {
            listen,
            tls,
            deadlines: Deadlines::default(),
            history: DEFAULT_HISTORY,
            replay: DEFAULT_REPLAY,
            max_clients: 1024,
            stats_interval: 0,
            limits: AddressLimits::default(),
            rules: Rules::default(),
            oper_hash: None,
        }
    }
}

/// A timer-wheel entry: slab key, generation of the connection in that slot, due ms.
type TimerKey = (usize, u32, u64);

/// An accepted socket waiting for a session.
struct Queued {
    socket: TcpStream,
    /// The millisecond it was accepted: its pre-PING deadline runs from there.
    accepted_at: u64,
    /// Its place in its address's count, if counted.
    claim: Option<Claim>,
}

pub struct Server {
    poll: Poll,
    listener: Listener,
    shutdown: Shutdown,
    connections: Slab<Connection>,
    hub: Hub,
    wheel: TimerWheel<TimerKey>,
    config: Config,
    /// Accepted sockets waiting for a session.
    accept_queue: VecDeque<Queued>,
    /// Connections per client address, and their rate of new connections.
    admission: Admission,
    /// The listener may have connections waiting (its edge will not fire again).
    listener_ready: bool,
    /// Accepting paused after the process ran out of descriptors, until a slot frees.
    out_of_fds: bool,
    /// Accepting paused at `--max-clients` (counted once per pause).
    at_max_clients: bool,
    /// Connections whose turn ran out of budget with work left.
    pending: Vec<usize>,
    /// Connections done closing, whose slots are freed at the end of the iteration.
    released: Vec<usize>,
    /// Once shutting down: the millisecond at which the loop stops waiting for goodbyes.
    stop_at: Option<u64>,
    next_generation: u32,
    clock: Clock,
    stats: Stats,
    /// The metrics endpoint, once [`Server::serve_metrics`] opened it.
    metrics: Option<Endpoint>,
    /// None: history in memory only.
    store: Option<Store>,
    /// The hub's journals, taken each iteration (kept to reuse their allocations).
    appended: Vec<Appended>,
    ban_changes: Vec<BanChange>,
    /// Checks OPER passwords on its own thread; None without an operator password.
    verifier: Option<Verifier>,
    /// What the hub asked for, taken after each turn (kept to reuse their allocations).
    events: Vec<Event>,
    woken: Vec<usize>,
    /// Cluster mode (`--redis`): the Redis link and the cluster engine; None: one server.
    network: Option<Network>,
}

/// What cluster mode needs (`--redis`, `--node-id`, `--lease-ms`; docs/CLUSTER.md).
pub struct ClusterSettings {
    pub url: RedisUrl,
    pub node_id: String,
    pub lease_ms: u64,
    /// The TLS client configuration for `rediss://` (None for `redis://`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Server {
    /// Binds the listener. The server installs no signal handler: whoever owns the process
    /// stops it through [`Server::shutdown_handle`].
    pub fn bind(config: Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = Listener::new(listener::bind(config.listen)?);
        poll.registry()
            .register(listener.socket_mut(), LISTENER, Interest::READABLE)?;
        let shutdown = Shutdown::new(Waker::new(poll.registry(), SHUTDOWN)?);
        // Room for every connection's address, and as many again whose rate of new
        // connections is remembered (admission.rs: the map's bound).
        let admission = Admission::new(config.limits, config.max_clients.saturating_mul(2));
        let verifier = match &config.oper_hash {
            Some(phc) => Some(Verifier::start(phc.clone(), Arc::clone(&shutdown.waker))?),
            None => None,
        };
        let clock = Clock::new();
        let mut hub = Hub::new(config.history, config.replay);
        hub.set_rules(Rules {
            oper: verifier.is_some(),
            ..config.rules
        });
        hub.set_epoch(epoch_at(&clock));
        Ok(Server {
            poll,
            listener,
            shutdown,
            connections: Slab::new(),
            hub,
            wheel: TimerWheel::new(0),
            config,
            accept_queue: VecDeque::new(),
            admission,
            listener_ready: false,
            out_of_fds: false,
            at_max_clients: false,
            pending: Vec::new(),
            released: Vec::new(),
            stop_at: None,
            next_generation: 0,
            clock,
            stats: Stats::default(),
            metrics: None,
            store: None,
            appended: Vec::new(),
            ban_changes: Vec::new(),
            verifier,
            events: Vec::new(),
            woken: Vec::new(),
            network: None,
        })
    }

    /// Makes this server a node of the network sharing the Redis of `settings` (cluster
    /// mode, docs/CLUSTER.md): the hub becomes a replica, and the Redis host is resolved now
    /// (the connection is made by the loop). Call before `run`, instead of `use_store`.
    pub fn use_cluster(&mut self, settings: ClusterSettings) -> Result<(), SetupError> {
        let link = Link::new(&settings.url, network::REDIS, settings.tls)?;
        let engine = Cluster::new(ClusterConfig {
            node_id: settings.node_id,
            // Unique per run: the process and the wall-clock time it started.
            instance: format!("{}-{}", std::process::id(), epoch_at(&self.clock)),
            lease_ms: settings.lease_ms,
            history: self.config.history,
            username: settings.url.username.clone(),
            password: settings.url.password.clone(),
            db: settings.url.db,
            reply_timeout_ms: REDIS_REPLY_TIMEOUT_MS,
        });
        let rules = *self.hub.rules();
        self.hub = Hub::clustered(self.config.history, self.config.replay);
        self.hub.set_rules(rules);
        self.hub.set_epoch(epoch_at(&self.clock));
        self.network = Some(Network::new(engine, link));
        Ok(())
    }

    /// Serves the metrics (Prometheus text format, `GET /metrics` over plain HTTP) on
    /// `addr`, from this server's own loop. Returns the address bound.
    pub fn serve_metrics(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let endpoint = Endpoint::bind(addr, self.poll.registry())?;
        let bound = endpoint.local_addr()?;
        self.metrics = Some(endpoint);
        Ok(bound)
    }

    /// Keeps history and bans in `store` from now on: the hub is rebuilt from `loaded` and
    /// `bans` (what [`Opened::load`] and [`Opened::load_bans`] read), and the store's writer
    /// thread starts. Call before `run`.
    pub fn use_store(
        &mut self,
        store: Opened,
        loaded: Vec<LoadedChannel>,
        bans: LoadedBans,
    ) -> io::Result<()> {
        let always = store.sync() == SyncPolicy::Always;
        let rules = *self.hub.rules();
        self.hub = Hub::with_store(self.config.history, self.config.replay, always);
        self.hub.set_rules(rules);
        self.hub.set_epoch(epoch_at(&self.clock));
        for channel in loaded {
            self.hub
                .restore(channel.name, channel.end_seq, channel.entries);
        }
        for (channel, names) in bans.channels {
            self.hub.restore_bans(channel, names);
        }
        self.hub.restore_server_bans(bans.addresses);
        // mio allows one Waker per Poll: the writer shares the shutdown handle's, and each
        // iteration looks at the store's confirmations whatever woke it.
        let waker = always.then(|| Arc::clone(&self.shutdown.waker));
        self.store = Some(store.start(waker)?);
        Ok(())
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

    /// Runs until its [`Shutdown`] handle is triggered, then closes every client with a TLS
    /// close_notify, gives them up to a second to take their output, and returns the final
    /// statistics line.
    pub fn run(&mut self) -> io::Result<String> {
        let mut events = Events::with_capacity(1024);
        let mut fired = Vec::new();
        let mut last_stats: u64 = 0;
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let now = self.clock.now();
            for event in events.iter() {
                match event.token() {
                    SHUTDOWN => {}
                    LISTENER => self.listener_ready = true,
                    scrape::LISTENER => {
                        if let Some(metrics) = &mut self.metrics {
                            metrics.listener_ready();
                        }
                    }
                    token if scrape::owns(token) => self.scrape_event(token, event),
                    network::REDIS => {
                        if let Some(network) = &mut self.network {
                            network.link.on_ready(event, self.poll.registry(), now);
                            network.drain(&mut self.hub, self.poll.registry(), now);
                        }
                    }
                    Token(key) => {
                        if let Some(conn) = self.connections.get_mut(key) {
                            conn.on_event(event);
                            self.serve(key);
                        }
                    }
                }
            }
            if self.stop_at.is_none() && self.shutdown.requested() {
                self.begin_shutdown(now);
            }
            self.oper_verdicts(now);
            if let Some(network) = &mut self.network {
                network.tick(&mut self.hub, self.poll.registry(), now);
            }
            for key in std::mem::take(&mut self.pending) {
                if let Some(conn) = self.connections.get_mut(key) {
                    conn.unlist_pending();
                }
                self.serve(key);
            }
            if now / 1000 > self.wheel.now() / 1000 {
                // A new second: retry accepting after running out of descriptors.
                self.out_of_fds = false;
                self.give_back_memory(&mut fired);
            }
            self.wheel.advance(now, &mut fired);
            for entry in fired.drain(..) {
                self.deadline_fired(entry, now);
            }
            if let Some(metrics) = &mut self.metrics {
                metrics.expire(now, self.poll.registry());
                if self.stop_at.is_none() {
                    metrics.accept(now, self.poll.registry());
                }
            }
            if self.stop_at.is_none() {
                self.accept();
                self.start_sessions();
            }
            self.reap();
            self.persist();
            // What changed the hub outside a turn (a release's `<user> left` and new operator,
            // a durable watermark the store advanced) is carried out here, in one place: the
            // woken readers' turns come in the next iteration, which polls without waiting.
            self.carry_out();
            if let Some(network) = &mut self.network {
                // Everything this iteration asked of Redis goes out in one write.
                network.flush(&mut self.hub, self.poll.registry(), self.clock.now());
                if let Some(why) = network.fatal.take() {
                    return Err(io::Error::other(format!("cluster: {why}")));
                }
            }
            if let Some(stop_at) = self.stop_at {
                if self.connections.is_empty() || self.clock.now() >= stop_at {
                    return Ok(self.finish_shutdown());
                }
            }
            // Counted in whole seconds of the clock, as the poll wakes on second boundaries:
            // a line every `interval` seconds, not every `interval` seconds and a bit.
            let interval = self.config.stats_interval;
            if interval > 0 && now / 1000 >= last_stats.saturating_add(interval) {
                last_stats = now / 1000;
                log::info!("stats: {}", self.stats_line());
            }
        }
    }

    /// Zero while work is pending; otherwise until the next whole second, when the wheel's
    /// next slot is due, or the end of a shutdown's grace if that comes first.
    fn poll_timeout(&self) -> Duration {
        if !self.pending.is_empty() || !self.accept_queue.is_empty() || self.can_accept() {
            return Duration::ZERO;
        }
        let mut second = self.clock.until_next_second();
        if self.store.as_ref().is_some_and(Store::behind) {
            // Entries wait for room in the writer's channel: look again soon.
            second = second.min(Duration::from_millis(10));
        }
        let stop_at = self.stop_at.into_iter();
        let scrape_due = self.metrics.as_ref().and_then(Endpoint::next_deadline);
        let network_due = self.network.as_ref().and_then(Network::next_deadline);
        match stop_at.chain(scrape_due).chain(network_due).min() {
            Some(due) => {
                let left = Duration::from_millis(due.saturating_sub(self.clock.now()));
                second.min(left)
            }
            None => second,
        }
    }

    /// A poll event for a metrics connection: a turn for it, with the metrics text made
    /// only if it asked for them.
    fn scrape_event(&mut self, token: Token, event: &mio::event::Event) {
        let Some(metrics) = &mut self.metrics else {
            return;
        };
        let Some(key) = metrics.on_event(token, event) else {
            return;
        };
        let (stats, hub, clock) = (&self.stats, &self.hub, &self.clock);
        let store = self.store.as_ref().map(Store::progress);
        let (connections, queued) = (&self.connections, self.accept_queue.len());
        let max_clients = self.config.max_clients;
        let redis_up = self.network.as_ref().map(|n| n.engine.is_up());
        metrics.serve(key, self.poll.registry(), || {
            exposition::encode(&Snapshot {
                stats,
                hub,
                lives: lives(connections, queued),
                max_clients,
                uptime_ms: clock.now(),
                store,
                redis_up,
            })
        });
    }

    /// Gives connection `key` a turn of work, then re-arms its deadline.
    fn serve(&mut self, key: usize) {
        let Some(conn) = self.connections.get_mut(key) else {
            return;
        };
        if conn.is_done() {
            return;
        }
        match conn.turn(&mut self.hub, &self.clock, TURN_BUDGET, &mut self.stats) {
            Turn::Idle => {}
            Turn::More => {
                if conn.list_pending() {
                    self.pending.push(key);
                }
            }
            Turn::Done => return self.released.push(key),
        }
        conn.arm_deadline(key, &self.config.deadlines, &mut self.wheel);
        if let Some(password) = conn.take_oper_request() {
            let generation = conn.id();
            let queued = self
                .verifier
                .as_ref()
                .is_some_and(|v| v.submit(key, generation, password));
            if !queued {
                // The verifier's queue is full: refused, after the same delay.
                conn.oper_checked(false, self.clock.now(), &mut self.hub, &mut self.stats);
                self.schedule(key);
            }
        }
        if let Some(network) = &mut self.network {
            if let Some(conn) = self.connections.get_mut(key) {
                if let Some(request) = conn.take_network_request() {
                    let now = self.clock.now();
                    network.engine.request(key, request, now, &mut self.hub);
                }
            }
        }
        self.carry_out();
    }

    /// Lists connection `key` for a turn in this loop iteration (or the next).
    fn schedule(&mut self, key: usize) {
        if let Some(conn) = self.connections.get_mut(key) {
            if conn.list_pending() {
                self.pending.push(key);
            }
        }
    }

    /// Carries out what the hub was asked (v2): a removal from a channel, a server ban, and
    /// a turn for every push reader with new entries. Called after every turn (a removal
    /// must reach its target's session before the target's next turn) and once at the end
    /// of each iteration, for what changed the hub outside a turn.
    fn carry_out(&mut self) {
        self.hub.take_events(&mut self.events);
        for event in std::mem::take(&mut self.events) {
            match event {
                Event::Removed {
                    conn,
                    channel,
                    name,
                    notice,
                } => {
                    if let Some(c) = self.connections.get_mut(conn) {
                        c.removed(channel, name, notice);
                        self.schedule(conn);
                    }
                }
                Event::CloseAddress(address) => {
                    // Server operators stay: the one who banned may share the address.
                    let hub = &self.hub;
                    let doomed: Vec<usize> = self
                        .connections
                        .iter()
                        .filter(|(_, c)| c.peer_ip() == Some(address) && !c.is_server_operator(hub))
                        .map(|(key, _)| key)
                        .collect();
                    log::info!(
                        "server ban of {address}: closing {} connections",
                        doomed.len()
                    );
                    for key in doomed {
                        if let Some(conn) = self.connections.get_mut(key) {
                            conn.close(CloseReason::Banned, self.clock.now(), &mut self.stats);
                            self.schedule(key);
                        }
                    }
                }
            }
        }
        self.carry_out_network();
        // By index, and cleared after: the list keeps its allocation for the next message.
        self.hub.take_woken(&mut self.woken);
        for i in 0..self.woken.len() {
            self.schedule(self.woken[i]);
        }
        self.woken.clear();
    }

    /// Cluster mode: hands the hub's journal to the engine, and the engine's verdicts,
    /// failed messages and lost names to the connections.
    fn carry_out_network(&mut self) {
        let Some(network) = &mut self.network else {
            return;
        };
        let now = self.clock.now();
        self.hub.take_outbound(&mut network.outbound);
        for outbound in network.outbound.drain(..) {
            network.engine.outbound(outbound, now);
        }
        self.hub.take_deserted(&mut network.deserted);
        for channel in network.deserted.drain(..) {
            network.engine.deserted(channel);
        }
        network.engine.take_verdicts(&mut network.verdicts);
        for (key, verdict) in network.verdicts.drain(..) {
            if let Some(conn) = self.connections.get_mut(key) {
                conn.network_verdict(verdict, now, &mut self.hub, &mut self.stats);
                if conn.list_pending() {
                    self.pending.push(key);
                }
            }
        }
        network.engine.take_posted(&mut network.posted);
        for (key, user) in network.posted.drain(..) {
            if let Some(conn) = self.connections.get_mut(key) {
                if conn.user() == Some(&user) {
                    conn.posted();
                    if conn.list_pending() {
                        self.pending.push(key);
                    }
                }
            }
        }
        network.engine.take_failed_posts(&mut network.failed_posts);
        for (key, user) in network.failed_posts.drain(..) {
            if let Some(conn) = self.connections.get_mut(key) {
                if conn.user() == Some(&user) {
                    conn.post_failed(now, &self.hub, &mut self.stats);
                    if conn.list_pending() {
                        self.pending.push(key);
                    }
                }
            }
        }
        // After the verdicts: a session holds its channel's handle until its own.
        network.engine.sweep(&mut self.hub);
        network.engine.take_lost_names(&mut network.lost_names);
        for user in network.lost_names.drain(..) {
            // Rare (this node was cut off for longer than its lease): a search is fine.
            let found = self
                .connections
                .iter_mut()
                .find(|(_, c)| c.user() == Some(&user));
            if let Some((key, conn)) = found {
                let text = format!(
                    "error: the name {user} is another client's now: this server was cut off \
                     from the network for longer than its lease, and a client of another \
                     server took it meanwhile"
                );
                conn.tell(text.as_bytes(), now, &self.hub, &mut self.stats);
                conn.close(CloseReason::NameLost, now, &mut self.stats);
                if conn.list_pending() {
                    self.pending.push(key);
                }
            }
        }
    }

    /// Hands the verifier's verdicts to the connections that asked, if they are still there.
    fn oper_verdicts(&mut self, now: u64) {
        let Some(verifier) = &self.verifier else {
            return;
        };
        let verdicts: Vec<oper::Verdict> = verifier.verdicts().collect();
        for verdict in verdicts {
            if let Some(conn) = self.connections.get_mut(verdict.key) {
                if conn.id() == verdict.generation {
                    conn.oper_checked(verdict.accepted, now, &mut self.hub, &mut self.stats);
                    self.schedule(verdict.key);
                }
            }
        }
    }

    fn deadline_fired(&mut self, entry: TimerKey, now: u64) {
        let key = entry.0;
        let Some(conn) = self.connections.get_mut(key) else {
            return;
        };
        match conn.deadline_fired(entry, now, &self.config.deadlines, &mut self.wheel) {
            Expiry::None => {}
            Expiry::Timeout(kind) => {
                self.stats.expired(kind);
                self.close(key, CloseReason::Timeout);
            }
            Expiry::Wake => {
                conn.wake(now, &self.hub, &mut self.stats);
                self.serve(key);
            }
            // The bound on closing: a client that does not read or does not close.
            Expiry::Abandon => {
                self.stats.expired(DeadlineKind::Linger);
                log::debug!("connection {}: goodbye cut short at its bound", conn.id());
                self.released.push(key);
            }
        }
    }

    /// Whether connections may be waiting in the listen backlog with room to take them.
    fn can_accept(&self) -> bool {
        self.listener_ready
            && !self.out_of_fds
            && self.connections.len() + self.accept_queue.len() < self.config.max_clients
    }

    /// Accepts waiting connections into the queue while there is room, at most
    /// `ACCEPTS_PER_ITERATION` of them: connections refused at once take no room, and a
    /// flood of them must not hold the loop.
    fn accept(&mut self) {
        for _ in 0..ACCEPTS_PER_ITERATION {
            if !self.listener_ready || self.out_of_fds {
                return;
            }
            if self.connections.len() + self.accept_queue.len() >= self.config.max_clients {
                // Stay ready: accepting resumes when a connection closes.
                if !self.at_max_clients {
                    self.at_max_clients = true;
                    self.stats.paused_max_clients += 1;
                }
                return;
            }
            self.at_max_clients = false;
            match self.listener.accept() {
                Accepted::Stream(socket, peer) => {
                    // Read after the accept: the client connected before, never after.
                    let now = self.clock.now();
                    if self.hub.is_address_banned(&peer.ip()) {
                        // A server ban: closed now, before any TLS work (v2 section 5).
                        self.stats.refused_banned += 1;
                        log::debug!("a connection from {} refused: banned", peer.ip());
                        continue;
                    }
                    match self.admission.admit(peer.ip(), now) {
                        Ok(claim) => {
                            self.stats.accepted += 1;
                            listener::tune(&socket);
                            self.accept_queue.push_back(Queued {
                                socket,
                                accepted_at: now,
                                claim,
                            });
                        }
                        // Over a limit of its address: closed now (dropped), before any
                        // TLS work. The client sees the connection end before or during
                        // its handshake. Logged at debug only: a flood would flood the log.
                        Err(refusal) => {
                            match refusal {
                                Refusal::MaxPerAddress => self.stats.refused_max_per_address += 1,
                                Refusal::AcceptRate => self.stats.refused_accept_rate += 1,
                            }
                            log::debug!("a connection from {} refused: {refusal}", peer.ip());
                        }
                    }
                }
                Accepted::Empty => self.listener_ready = false,
                Accepted::OutOfDescriptors => {
                    log::warn!(
                        "out of file descriptors: a client was turned away, accepting paused"
                    );
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
            let Some(Queued {
                mut socket,
                accepted_at,
                claim,
            }) = self.accept_queue.pop_front()
            else {
                return;
            };
            let transport = match &self.config.tls {
                // rustls's unbuffered API: the connection keeps no TLS buffer of its own
                // (transport/unbuffered.rs).
                Some(tls) => match rustls::server::UnbufferedServerConnection::new(Arc::clone(tls))
                {
                    Ok(conn) => Transport::unbuffered(conn),
                    Err(e) => {
                        log::warn!("cannot start a TLS session for a client: {e}");
                        self.unclaim(claim);
                        continue;
                    }
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
                log::warn!("cannot register a client's socket with the poll");
                self.unclaim(claim);
                continue;
            }
            self.next_generation = self.next_generation.wrapping_add(1);
            // The pre-PING deadline counts from accept, TLS handshake included.
            let conn = entry.insert(Connection::new(
                socket,
                transport,
                accepted_at,
                self.next_generation,
                claim,
                key,
            ));
            if log::log_enabled!(log::Level::Info) {
                match conn.peer() {
                    Ok(peer) => log::info!("connection {} accepted from {peer}", conn.id()),
                    Err(e) => log::info!("connection {} accepted (peer unknown: {e})", conn.id()),
                }
            }
            conn.arm_deadline(key, &self.config.deadlines, &mut self.wheel);
        }
    }

    /// Gives back the place in its address's count of a connection that is gone.
    fn unclaim(&mut self, claim: Option<Claim>) {
        if let Some(claim) = claim {
            self.admission.release(claim, self.clock.now());
        }
    }

    /// Closes connection `key` for a reason decided outside its turn (a deadline, a
    /// shutdown), and gives it a turn to start saying goodbye.
    fn close(&mut self, key: usize, reason: CloseReason) {
        if let Some(conn) = self.connections.get_mut(key) {
            conn.close(reason, self.clock.now(), &mut self.stats);
            self.serve(key);
        }
    }

    /// Frees the slots of the connections done closing (or given up on): releases what
    /// they still hold and closes their sockets.
    fn reap(&mut self) {
        for key in std::mem::take(&mut self.released) {
            if let Some(conn) = self.connections.try_remove(key) {
                let claim = conn.release(&mut self.hub, self.poll.registry(), self.clock.now());
                self.unclaim(claim);
                if let Some(network) = &mut self.network {
                    // A verdict owed to this connection must not reach the slot's next one.
                    network.engine.cancel(key);
                }
            }
            // A slot is free: accept again if we had stopped.
            self.out_of_fds = false;
        }
    }

    /// Shrinks what a burst of connections grew and has since left mostly empty: the slab,
    /// the accept queue, the list of fired deadlines, and the wheel (whose slots also
    /// shrink as they fire). Called once a second; cheap when there is nothing to give
    /// back. Each shrinks only well below its capacity, so steady churn never reallocates
    /// in a loop.
    fn give_back_memory(&mut self, fired: &mut Vec<TimerKey>) {
        // Addresses with no connection whose bucket is full again are forgotten.
        self.admission.sweep(self.clock.now());
        // A closed connection's wheel entry stays until it comes due, up to an idle
        // timeout away (2 minutes by default). Once the stale entries outnumber the live
        // ones (one per connection at most), drop them all: O(entries), paid for by the
        // stale entries made since the last time.
        if self.wheel.len() > 2 * self.connections.len() + MIN_RETAINED {
            let connections = &self.connections;
            self.wheel.retain(|&entry| {
                connections
                    .get(entry.0)
                    .is_some_and(|conn| conn.holds_timer(entry))
            });
        }
        // Only the vacant slots above the highest connection can go (keys are tokens and
        // wheel entries: they never move), and the slab then refills its lowest vacant
        // keys first, so a burst's slots go once the burst is gone.
        if self.connections.capacity() > MIN_RETAINED
            && self.connections.len() < self.connections.capacity() / 4
        {
            self.connections.shrink_to_fit();
        }
        let queue = &mut self.accept_queue;
        if queue.capacity() > MIN_RETAINED && queue.len() < queue.capacity() / 4 {
            queue.shrink_to(queue.len() * 2);
        }
        if fired.capacity() > MIN_RETAINED && fired.is_empty() {
            fired.shrink_to(MIN_RETAINED);
        }
    }

    /// Stops accepting and closes every connection; the loop runs on until they are done
    /// saying goodbye or the grace is over.
    fn begin_shutdown(&mut self, now: u64) {
        if let Some(metrics) = &mut self.metrics {
            metrics.shut(self.poll.registry());
        }
        let _ = self.poll.registry().deregister(self.listener.socket_mut());
        self.listener_ready = false;
        // Accepted but never served: these clients see the connection closed.
        for queued in std::mem::take(&mut self.accept_queue) {
            self.unclaim(queued.claim);
        }
        self.stop_at = Some(now.saturating_add(SHUTDOWN_GRACE_MS));
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close(key, CloseReason::Shutdown);
        }
    }

    /// Frees every connection still there when the grace is over, and returns the final
    /// statistics line. With a store, waits for its writer to commit everything first.
    fn finish_shutdown(&mut self) -> String {
        let now = self.clock.now();
        for conn in self.connections.drain() {
            let claim = conn.release(&mut self.hub, self.poll.registry(), now);
            if let Some(claim) = claim {
                self.admission.release(claim, self.clock.now());
            }
        }
        self.persist();
        match self.store.take() {
            // The store's own figures once, as its writer finished: not also as they were
            // before it did.
            Some(store) => {
                let line =
                    self.stats
                        .line(self.clock.now() / 1000, self.connections.len(), &self.hub);
                format!("{line} {}", store.finish())
            }
            None => self.stats_line(),
        }
    }

    /// Hands what the hub appended to the store, advances the durable watermark from the
    /// writer's confirmations, and warns (once a minute) while the store is in trouble.
    fn persist(&mut self) {
        let Some(store) = &mut self.store else {
            return;
        };
        self.hub.take_appended(&mut self.appended);
        self.hub.take_ban_changes(&mut self.ban_changes);
        if !self.appended.is_empty() || !self.ban_changes.is_empty() {
            for a in self.appended.drain(..) {
                store.append(Record::Entry {
                    channel: a.channel,
                    seq: a.seq,
                    entry: a.entry,
                });
            }
            for change in self.ban_changes.drain(..) {
                store.append(match change {
                    BanChange::Channel {
                        channel,
                        name,
                        banned,
                    } => Record::Ban {
                        channel,
                        name,
                        banned,
                    },
                    BanChange::Address { address, banned } => Record::ServerBan { address, banned },
                });
            }
        } else {
            store.pump();
        }
        let hub = &mut self.hub;
        store.confirmed(|name, end| hub.made_durable(name, end));
        if let Some(warning) = store.warning(self.clock.now()) {
            eprintln!("kaichat-server: {warning}");
        }
    }

    /// One line of counters, for the periodic and the final statistics.
    pub fn stats_line(&self) -> String {
        let line = self
            .stats
            .line(self.clock.now() / 1000, self.connections.len(), &self.hub);
        match (&self.store, &self.network) {
            (Some(store), _) => format!("{line} {}", store.status()),
            (None, Some(network)) => {
                format!("{line} redis_up={}", u8::from(network.engine.is_up()))
            }
            (None, None) => line,
        }
    }
}

/// The wall-clock time (ms since the Unix epoch) at which `clock` read 0: time stamps are
/// this plus the monotonic clock, so they never go backwards within a run.
fn epoch_at(clock: &Clock) -> u64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    wall.saturating_sub(clock.now())
}

/// Connections by where they are in their life; sockets accepted and waiting for their
/// session count as setting up.
fn lives(connections: &Slab<Connection>, queued: usize) -> Lives {
    let mut lives = Lives {
        setting_up: queued,
        ..Lives::default()
    };
    for (_, conn) in connections {
        match conn.life() {
            Life::SettingUp => lives.setting_up += 1,
            Life::Established => lives.established += 1,
            Life::Closing => lives.closing += 1,
        }
    }
    lives
}
