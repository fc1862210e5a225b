//! The cluster engine (issue 13, v2 section 8): the sans-IO logic that keeps this server's
//! hub a faithful replica of the network's shared state in Redis, and carries the
//! sessions' requests to it.
//!
//! It takes decoded RESP3 frames and the time (ms of the server's clock) and writes the
//! commands to send into [`Cluster::output`]; the Redis connection itself is the reactor's
//! (`cluster::link`). One connection carries both the commands and the subscriptions
//! (RESP3 lets pushes share it), so replies come back in the order the commands went, and a
//! channel's live entries arrive in the order Redis appended them.
//!
//! What it keeps, per channel a local client is in (a replica): the next sequence number it
//! expects and the stream ID of the last entry applied. A live entry numbered past the next
//! expected one is a gap: the engine catches up with `XRANGE` from the last ID it applied,
//! and applies what it gets in order; entries it already has are passed over, so none is
//! shown twice, and entries Redis no longer has reach readers as a skip notice (the hub's
//! ring restarts at the first one it gets).
//!
//! After every (re)connect it loads the scripts, subscribes to its channels, reloads each
//! replica from the stream, and makes Redis hold this node's lease, names and members again
//! (`resync`). While Redis cannot be reached, requests get [`Verdict::Unavailable`] at once
//! and messages are given back as failed posts: nothing is lost silently.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::IpAddr;

use log::{info, warn};
use redis_protocol::resp3::types::OwnedFrame;

use kaichat_proto::hub::{fit_reason, ConnRef, Hub, Listed, MAX_BANS};
use kaichat_proto::names::{ChannelName, Username};
use kaichat_proto::network::{Moderation, NamesSnapshot, Outbound, Request, Verdict};

use super::payload::{self, Parsed};
use super::resp::{self, command};
use super::scripts::{Script, Scripts};

/// Names renewed per script call.
const RENEW_BATCH: usize = 500;
/// How long requests wait, rather than being refused, while the connection to Redis is
/// being made and set up: at start-up and right after a reconnect (ms).
const SETTLE_MS: u64 = 2000;

/// What the engine is configured with.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This server's name in the network (`--node-id`).
    pub node_id: String,
    /// What this run of the server holds the node's lease with (unique per run: a
    /// second server started with the same node id is told apart by it).
    pub instance: String,
    /// How long a name and the node's liveness outlive their last renewal, ms (`--lease-ms`).
    pub lease_ms: u64,
    /// Entries a channel retains (`--history`): the streams' MAXLEN.
    pub history: usize,
    /// Redis user and password (AUTH), and database (SELECT).
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: u32,
    /// A reply later than this (ms) means Redis stalled: the connection is dropped.
    pub reply_timeout_ms: u64,
}

/// What a reply answers.
#[derive(Debug)]
enum Expect {
    /// HELLO, SELECT, SCRIPT LOAD: an error means the connection is unusable.
    Handshake,
    /// Replies only checked for errors (LEAVE, release, OPER, resync).
    Ignore(&'static str),
    /// Dead nodes reaped: the number of members removed.
    Reap,
    /// A session's request; `conn` None once cancelled (its connection closed).
    Asked {
        conn: Option<ConnRef>,
        asked: Asked,
    },
    /// A message; failed back to the sender if it cannot be taken.
    Post {
        conn: ConnRef,
        user: Username,
        channel: ChannelName,
    },
    /// A replica's (re)load.
    Load(ChannelName),
    /// A replica's catch-up after a gap.
    CatchUp(ChannelName),
    Renew,
    ServerBans,
}

#[derive(Debug)]
enum Asked {
    Claim {
        user: Username,
        value: String,
    },
    Join {
        user: Username,
        channel: ChannelName,
    },
    Moderate,
    ServerBan,
    ServerUnban,
    Names,
    List,
}

/// Where a replica stands with its channel's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sync {
    /// A load is in flight: live entries are in it, so they are not applied.
    Loading,
    /// Applying live entries as they come.
    Live,
    /// A gap was seen: an XRANGE is in flight; live entries wait for it.
    CatchingUp,
}

#[derive(Debug)]
struct Replica {
    /// The sequence number of the next entry to apply.
    next_seq: u64,
    /// The stream ID of the last entry applied.
    last_id: Option<Vec<u8>>,
    sync: Sync,
    /// JOINs to this channel in flight: the replica stays while any is.
    joining: u32,
    /// The pub/sub channel its entries come on.
    live: Vec<u8>,
    /// Local messages Redis stored whose entries this replica has not applied yet:
    /// (sequence number, sender's connection, sender). Each is reported posted once
    /// applied, so that the sender's next request sees it.
    parked: Vec<(u64, ConnRef, Username)>,
}

/// The cluster engine. See the module documentation.
pub struct Cluster {
    config: ClusterConfig,
    scripts: Scripts,
    up: bool,
    out: Vec<u8>,
    sent: VecDeque<(Expect, u64)>,
    replicas: HashMap<ChannelName, Replica>,
    /// Pub/sub channel → channel, for live entries.
    by_live: HashMap<Vec<u8>, ChannelName>,
    /// Names this node holds, with the value their keys hold (`<node> <address>`).
    held: HashMap<Username, String>,
    /// Names released while Redis was unreachable: deleted after the next connect.
    released: Vec<(Username, String)>,
    verdicts: Vec<(ConnRef, Verdict)>,
    failed_posts: Vec<(ConnRef, Username)>,
    posted: Vec<(ConnRef, Username)>,
    lost_names: Vec<Username>,
    next_renew: u64,
    next_reap: u64,
    /// Commands sent and replies received (or given up with the connection) since start.
    sent_total: u64,
    answered_total: u64,
    /// Channels whose last local member left, with `sent_total` then: a replica goes only
    /// once every reply owed then is in and its verdict delivered ([`Cluster::sweep`]), so
    /// that no session still holds its handle (a self-kick's session keeps it until its
    /// verdict).
    deserted: Vec<(ChannelName, u64)>,
    /// Set when a reply says the connection cannot be used (a refused HELLO, a stall);
    /// frames are ignored until the next connect.
    broken: Option<String>,
    /// Redis accepted this connection's set-up (HELLO): the link may reset its backoff.
    confirmed: bool,
    /// This run holds the node's lease on this connection: requests are taken.
    leased: bool,
    /// Since when (ms) another run holds the node's lease, while it does.
    conflict_since: Option<u64>,
    /// Set when this server cannot go on (another live server with its node id).
    fatal: Option<String>,
    /// Until when (ms) requests made while the connection is being made or set up wait
    /// for it ([`SETTLE_MS`]) instead of being refused; 0 once it failed.
    settle_until: u64,
    /// Requests waiting for the set-up to finish, in order.
    waiting: Vec<(ConnRef, Request)>,
}

impl Cluster {
    pub fn new(config: ClusterConfig) -> Cluster {
        Cluster {
            config,
            scripts: Scripts::new(),
            up: false,
            out: Vec::new(),
            sent: VecDeque::new(),
            replicas: HashMap::new(),
            by_live: HashMap::new(),
            held: HashMap::new(),
            released: Vec::new(),
            verdicts: Vec::new(),
            failed_posts: Vec::new(),
            posted: Vec::new(),
            lost_names: Vec::new(),
            next_renew: 0,
            next_reap: 0,
            sent_total: 0,
            answered_total: 0,
            deserted: Vec::new(),
            broken: None,
            confirmed: false,
            leased: false,
            conflict_since: None,
            fatal: None,
            // The server's clock starts at 0 with the server: start-up settles too.
            settle_until: SETTLE_MS,
            waiting: Vec::new(),
        }
    }

    /// Whether the network can be reached: the Redis connection is up and this run holds
    /// the node's lease (requests are sent, not refused).
    pub fn is_up(&self) -> bool {
        self.up && self.leased
    }

    /// Once per connection: Redis accepted the set-up (the link's backoff may start over).
    pub fn take_confirmed(&mut self) -> bool {
        std::mem::take(&mut self.confirmed)
    }

    /// Why this server must stop, once: another server runs with its node id.
    pub fn take_fatal(&mut self) -> Option<String> {
        self.fatal.take()
    }

    /// The bytes to write to Redis; the caller drains what it wrote.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Why the connection must be dropped, once: a refused handshake or a stalled reply.
    pub fn take_broken(&mut self) -> Option<String> {
        self.broken.take()
    }

    /// Verdicts for sessions, in order.
    pub fn take_verdicts(&mut self, into: &mut Vec<(ConnRef, Verdict)>) {
        into.append(&mut self.verdicts);
    }

    /// Messages that could not be posted (Redis unreachable), by connection and sender.
    pub fn take_failed_posts(&mut self, into: &mut Vec<(ConnRef, Username)>) {
        into.append(&mut self.failed_posts);
    }

    /// Messages stored by the network and applied to this server's copy of their channel,
    /// by connection and sender: the sender's next request may be read now.
    pub fn take_posted(&mut self, into: &mut Vec<(ConnRef, Username)>) {
        into.append(&mut self.posted);
    }

    /// Local users whose name another server holds now (this node's lease ran out while
    /// it could not reach Redis): their connections must close.
    pub fn take_lost_names(&mut self, into: &mut Vec<Username>) {
        into.append(&mut self.lost_names);
    }

    /// The connection to Redis is established (TCP, and TLS if any) at `now`: handshake,
    /// scripts, subscriptions, then every replica reloaded and this node's lease, names
    /// and members made Redis's again.
    pub fn connected(&mut self, now: u64) {
        self.settle_until = now + SETTLE_MS;
        self.up = true;
        self.leased = false;
        self.broken = None;
        self.out.clear();
        self.sent.clear();
        let client = format!("kaichat:{}", self.config.node_id);
        let mut hello: Vec<&[u8]> = vec![b"HELLO", b"3"];
        let user = self
            .config
            .username
            .clone()
            .unwrap_or_else(|| "default".into());
        let password = self.config.password.clone();
        if let Some(password) = &password {
            hello.extend([b"AUTH".as_slice(), user.as_bytes(), password.as_bytes()]);
        }
        hello.extend([b"SETNAME".as_slice(), client.as_bytes()]);
        self.send(Expect::Handshake, &hello, now);
        if self.config.db != 0 {
            let db = self.config.db.to_string();
            self.send(Expect::Handshake, &[b"SELECT", db.as_bytes()], now);
        }
        for script in Script::ALL {
            let text = self.scripts.text(script).as_bytes().to_vec();
            self.send(Expect::Handshake, &[b"SCRIPT", b"LOAD", &text], now);
        }
        // The lease first, so that no other server takes this one for dead meanwhile.
        self.renew(now);
        let mut subscribe: Vec<Vec<u8>> = vec![b"SUBSCRIBE".to_vec(), b"kc:control".to_vec()];
        subscribe.extend(self.replicas.values().map(|r| r.live.clone()));
        let args: Vec<&[u8]> = subscribe.iter().map(Vec::as_slice).collect();
        // Subscription confirmations are pushes, not replies: nothing is expected.
        command(&mut self.out, &args);
        self.send(Expect::ServerBans, &[b"SMEMBERS", b"kc:server-bans"], now);
        let channels: Vec<ChannelName> = self.replicas.keys().copied().collect();
        for channel in channels {
            self.load(channel, now);
        }
        for (user, value) in std::mem::take(&mut self.released) {
            self.release(&user, &value, now);
        }
        // The members are made Redis's again once the renewal says the lease is this
        // run's (`on_renew`): not before, or a second server with this node id would be
        // undone by this one.
        self.next_reap = now + self.config.lease_ms / 2;
    }

    /// The connection to Redis is gone at `now`: every request in flight is answered
    /// [`Verdict::Unavailable`], every message in flight is given back, and every replica
    /// reloads after the next connect (those no local client is in are dropped).
    pub fn disconnected(&mut self) {
        if !self.up {
            return;
        }
        self.up = false;
        self.leased = false;
        self.broken = None;
        self.out.clear();
        self.answered_total = self.sent_total;
        self.settle_until = 0;
        self.refuse_waiting();
        for (expect, _) in self.sent.drain(..) {
            match expect {
                Expect::Asked {
                    conn: Some(conn), ..
                } => self.verdicts.push((conn, Verdict::Unavailable)),
                Expect::Post { conn, user, .. } => self.failed_posts.push((conn, user)),
                _ => {}
            }
        }
        for replica in self.replicas.values_mut() {
            replica.sync = Sync::Loading;
            replica.joining = 0;
            // Stored: their entries come with the reload after the next connect.
            let parked = replica.parked.drain(..).map(|(_, conn, user)| (conn, user));
            self.posted.extend(parked);
        }
        // Those no local client is in go at the next sweep.
        let channels: Vec<ChannelName> = self.replicas.keys().copied().collect();
        for channel in channels {
            self.deserted(channel);
        }
    }

    /// A session's request (`conn` waits for the verdict).
    pub fn request(&mut self, conn: ConnRef, request: Request, now: u64, hub: &mut Hub) {
        if !self.is_up() {
            if now < self.settle_until && self.conflict_since.is_none() {
                self.waiting.push((conn, request));
            } else {
                self.verdicts.push((conn, Verdict::Unavailable));
            }
            return;
        }
        let history = self.config.history.to_string();
        let (asked, script, args): (Asked, Script, Vec<Vec<u8>>) = match request {
            Request::Claim { user, peer } => {
                let address = peer.map_or_else(|| "-".to_string(), |p| p.to_string());
                let value = format!("{} {address}", self.config.node_id);
                let key = name_key(&user);
                let lease = self.config.lease_ms.to_string();
                let args: [&[u8]; 6] = [
                    b"SET",
                    &key,
                    value.as_bytes(),
                    b"NX",
                    b"PX",
                    lease.as_bytes(),
                ];
                command(&mut self.out, &args);
                let asked = Asked::Claim { user, value };
                let conn = Some(conn);
                self.sent.push_back((Expect::Asked { conn, asked }, now));
                return;
            }
            Request::Join {
                user,
                channel,
                from,
                push,
            } => {
                self.joining(channel, now, hub);
                let from = from.map_or(Vec::new(), |f| f.as_bytes().to_vec());
                let args = vec![
                    self.config.node_id.as_bytes().to_vec(),
                    user.as_bytes().to_vec(),
                    channel.as_bytes().to_vec(),
                    from,
                    if push { b"1".to_vec() } else { b"0".to_vec() },
                ];
                (Asked::Join { user, channel }, Script::Join, args)
            }
            Request::Moderate {
                user,
                command,
                channel,
                target,
                reason,
                server_operator,
            } => {
                let verb: &[u8] = match command {
                    Moderation::Kick => b"kick",
                    Moderation::Ban => b"ban",
                    Moderation::Unban => b"unban",
                };
                let args = vec![
                    user.as_bytes().to_vec(),
                    verb.to_vec(),
                    channel.as_bytes().to_vec(),
                    target.as_bytes().to_vec(),
                    fit_reason(&reason).to_vec(),
                    if server_operator {
                        b"1".to_vec()
                    } else {
                        b"0".to_vec()
                    },
                    MAX_BANS.to_string().into_bytes(),
                    self.config.node_id.as_bytes().to_vec(),
                ];
                (Asked::Moderate, Script::Moderate, args)
            }
            Request::ServerBan { target } => (
                Asked::ServerBan,
                Script::ServerBan,
                vec![b"ban".to_vec(), target.as_bytes().to_vec()],
            ),
            Request::ServerUnban { address } => (
                Asked::ServerUnban,
                Script::ServerBan,
                vec![b"unban".to_vec(), address.to_string().into_bytes()],
            ),
            Request::Names { channel } => (
                Asked::Names,
                Script::Names,
                vec![channel.as_bytes().to_vec()],
            ),
            Request::List => (Asked::List, Script::List, Vec::new()),
        };
        let mut all: Vec<&[u8]> = vec![history.as_bytes()];
        all.extend(args.iter().map(Vec::as_slice));
        let conn = Some(conn);
        self.eval(Expect::Asked { conn, asked }, script, &all, now);
    }

    /// Answers every waiting request [`Verdict::Unavailable`].
    fn refuse_waiting(&mut self) {
        let refused = self
            .waiting
            .drain(..)
            .map(|(conn, _)| (conn, Verdict::Unavailable));
        self.verdicts.extend(refused);
    }

    /// What the hub journaled, handed on in order.
    pub fn outbound(&mut self, outbound: Outbound, now: u64) {
        let history = self.config.history.to_string();
        match outbound {
            Outbound::Post {
                conn,
                user,
                channel,
                text,
            } => {
                if !self.is_up() {
                    self.failed_posts.push((conn, user));
                    return;
                }
                let node = self.config.node_id.clone();
                let args: [&[u8]; 5] = [
                    history.as_bytes(),
                    node.as_bytes(),
                    user.as_bytes(),
                    channel.as_bytes(),
                    &text,
                ];
                let expect = Expect::Post {
                    conn,
                    user,
                    channel,
                };
                self.eval(expect, Script::Post, &args, now);
            }
            // While Redis is unreachable a LEAVE is not sent: the resync after the next
            // connect makes Redis hold what the hub holds then.
            Outbound::Leave { user, channel } if self.is_up() => self.leave(&user, &channel, now),
            Outbound::Leave { .. } => {}
            Outbound::Release { user } => {
                let Some(value) = self.held.remove(&user) else {
                    return;
                };
                if self.up {
                    self.release(&user, &value, now);
                } else {
                    self.released.push((user, value));
                }
            }
            Outbound::Oper { user } if self.is_up() => {
                let lower = user.as_bytes().to_ascii_lowercase();
                let node = self.config.node_id.clone();
                let args: [&[u8]; 3] = [history.as_bytes(), &lower, node.as_bytes()];
                self.eval(Expect::Ignore("oper"), Script::Oper, &args, now);
            }
            // Server operators are registered by the resync after the next connect.
            Outbound::Oper { .. } => {}
        }
    }

    /// Connection `conn` closed with a request in flight: its verdict is not delivered, and
    /// what it won (a name, a membership) is given back when the reply comes.
    pub fn cancel(&mut self, conn: ConnRef) {
        for (expect, _) in self.sent.iter_mut() {
            if let Expect::Asked { conn: c, .. } = expect {
                if *c == Some(conn) {
                    *c = None;
                }
            }
        }
        // A verdict already produced but not yet delivered is dropped likewise.
        self.verdicts.retain(|(c, _)| *c != conn);
        self.waiting.retain(|(c, _)| *c != conn);
        self.failed_posts.retain(|(c, _)| *c != conn);
        self.posted.retain(|(c, _)| *c != conn);
        for replica in self.replicas.values_mut() {
            replica.parked.retain(|&(_, c, _)| c != conn);
        }
    }

    /// Channel `channel`'s last local member left: its replica is dropped and unsubscribed
    /// by a later [`Cluster::sweep`], unless a local client is in it again by then or a
    /// JOIN to it is in flight.
    pub fn deserted(&mut self, channel: ChannelName) {
        if self.replicas.contains_key(&channel) {
            self.deserted.push((channel, self.sent_total));
        }
    }

    /// Drops the deserted replicas whose owed replies are all in; call it after the
    /// verdicts taken with [`Cluster::take_verdicts`] were delivered.
    pub fn sweep(&mut self, hub: &mut Hub) {
        let answered = self.answered_total;
        let mut due = Vec::new();
        self.deserted.retain(|&(channel, mark)| {
            let done = mark <= answered;
            if done {
                due.push(channel);
            }
            !done
        });
        for channel in due {
            if self.replicas.get(&channel).is_some_and(|r| r.joining == 0) {
                self.drop_replica(channel, hub);
            }
        }
    }

    /// The periodic work due by `now`: lease renewal (every third of the lease), reaping
    /// dead nodes (every half), and the stall check.
    pub fn tick(&mut self, now: u64) {
        if now >= self.settle_until && !self.waiting.is_empty() {
            self.refuse_waiting();
        }
        if !self.up {
            return;
        }
        if let Some((_, at)) = self.sent.front() {
            if now.saturating_sub(*at) > self.config.reply_timeout_ms {
                self.broken = Some(format!(
                    "no reply from Redis within {} ms",
                    self.config.reply_timeout_ms
                ));
                return;
            }
        }
        if now >= self.next_renew {
            self.renew(now);
        }
        if now >= self.next_reap {
            self.next_reap = now + self.config.lease_ms / 2;
            let history = self.config.history.to_string();
            let node = self.config.node_id.clone();
            let args: [&[u8]; 2] = [history.as_bytes(), node.as_bytes()];
            self.eval(Expect::Reap, Script::Reap, &args, now);
        }
    }

    /// When [`Cluster::tick`] next has work, ms.
    pub fn next_deadline(&self) -> Option<u64> {
        let settle = (!self.waiting.is_empty()).then_some(self.settle_until);
        if !self.up {
            return settle;
        }
        let stall = self
            .sent
            .front()
            .map(|(_, at)| at + self.config.reply_timeout_ms + 1);
        let periodic = self.next_renew.min(self.next_reap);
        [stall, settle, Some(periodic)].into_iter().flatten().min()
    }

    /// A frame from Redis: a push (a channel's live entry, a server ban) or the reply to
    /// the oldest command in flight.
    pub fn on_frame(&mut self, frame: OwnedFrame, now: u64, hub: &mut Hub) {
        if self.broken.is_some() {
            return; // the connection is being dropped
        }
        if let OwnedFrame::Push { data, .. } = &frame {
            self.on_push(data, now, hub);
            return;
        }
        let Some((expect, _)) = self.sent.pop_front() else {
            warn!("cluster: a reply from Redis with no command in flight: {frame:?}");
            return;
        };
        self.answered_total += 1;
        self.on_reply(expect, &frame, now, hub);
    }

    fn send(&mut self, expect: Expect, args: &[&[u8]], now: u64) {
        command(&mut self.out, args);
        self.sent.push_back((expect, now));
        self.sent_total += 1;
    }

    fn eval(&mut self, expect: Expect, script: Script, args: &[&[u8]], now: u64) {
        let digest = self.scripts.digest(script).as_bytes().to_vec();
        let mut all: Vec<&[u8]> = vec![b"EVALSHA", &digest, b"0"];
        all.extend_from_slice(args);
        self.send(expect, &all, now);
    }

    fn leave(&mut self, user: &Username, channel: &ChannelName, now: u64) {
        let history = self.config.history.to_string();
        let node = self.config.node_id.clone();
        let args: [&[u8]; 4] = [
            history.as_bytes(),
            node.as_bytes(),
            user.as_bytes(),
            channel.as_bytes(),
        ];
        self.eval(Expect::Ignore("leave"), Script::Leave, &args, now);
    }

    fn release(&mut self, user: &Username, value: &str, now: u64) {
        let history = self.config.history.to_string();
        let lower = user.as_bytes().to_ascii_lowercase();
        let node = self.config.node_id.clone();
        let args: [&[u8]; 4] = [
            history.as_bytes(),
            &lower,
            value.as_bytes(),
            node.as_bytes(),
        ];
        self.eval(Expect::Ignore("release"), Script::Release, &args, now);
    }

    /// Renews the node's lease and every name it holds, in batches.
    fn renew(&mut self, now: u64) {
        self.next_renew = now + (self.config.lease_ms / 3).max(1);
        let history = self.config.history.to_string();
        let lease = self.config.lease_ms.to_string();
        let node = self.config.node_id.clone();
        let instance = self.config.instance.clone();
        let held: Vec<(Vec<u8>, Vec<u8>)> = self
            .held
            .iter()
            .map(|(u, v)| (u.as_bytes().to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect();
        let mut batches: Vec<&[(Vec<u8>, Vec<u8>)]> = held.chunks(RENEW_BATCH).collect();
        if batches.is_empty() {
            batches.push(&[]);
        }
        for batch in batches {
            let mut args: Vec<&[u8]> = vec![
                history.as_bytes(),
                node.as_bytes(),
                lease.as_bytes(),
                instance.as_bytes(),
            ];
            for (name, value) in batch {
                args.push(name);
                args.push(value);
            }
            self.eval(Expect::Renew, Script::Renew, &args, now);
        }
    }

    /// Makes Redis hold this node's members as the hub has them.
    fn resync(&mut self, hub: &Hub, now: u64) {
        let history = self.config.history.to_string();
        let members: Vec<(Username, ChannelName, bool)> = hub.local_members().collect();
        let mut args: Vec<Vec<u8>> = vec![
            history.into_bytes(),
            self.config.node_id.as_bytes().to_vec(),
        ];
        for (user, channel, push) in members {
            args.push(user.as_bytes().to_vec());
            args.push(channel.as_bytes().to_vec());
            args.push(if push { b"1".to_vec() } else { b"0".to_vec() });
        }
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        self.eval(Expect::Ignore("resync"), Script::Resync, &args, now);
        for user in hub.local_server_operators() {
            self.outbound(Outbound::Oper { user }, now);
        }
    }

    /// A JOIN to `channel` is about to be sent: its replica exists (subscribed, loading)
    /// before the JOIN's entries are published.
    fn joining(&mut self, channel: ChannelName, now: u64, hub: &mut Hub) {
        if !self.replicas.contains_key(&channel) {
            hub.replica(&channel);
            let live = channel_key(&channel, "live");
            command(&mut self.out, &[b"SUBSCRIBE", &live]);
            self.by_live.insert(live.clone(), channel);
            self.replicas.insert(
                channel,
                Replica {
                    next_seq: 0,
                    last_id: None,
                    sync: Sync::Loading,
                    joining: 0,
                    live,
                    parked: Vec::new(),
                },
            );
            self.load(channel, now);
        }
        if let Some(replica) = self.replicas.get_mut(&channel) {
            replica.joining += 1;
        }
    }

    fn drop_replica(&mut self, channel: ChannelName, hub: &mut Hub) {
        if !hub.drop_replica(&channel) {
            return;
        }
        if let Some(replica) = self.replicas.remove(&channel) {
            self.by_live.remove(&replica.live);
            let parked = replica
                .parked
                .into_iter()
                .map(|(_, conn, user)| (conn, user));
            self.posted.extend(parked);
            if self.up {
                command(&mut self.out, &[b"UNSUBSCRIBE", &replica.live]);
            }
        }
    }

    /// (Re)loads a replica: the channel's counter is raised to what the replica expects,
    /// and its last `history` entries come back.
    fn load(&mut self, channel: ChannelName, now: u64) {
        let Some(replica) = self.replicas.get_mut(&channel) else {
            return;
        };
        replica.sync = Sync::Loading;
        let expected = replica.next_seq.to_string();
        let history = self.config.history.to_string();
        let args: [&[u8]; 3] = [history.as_bytes(), channel.as_bytes(), expected.as_bytes()];
        self.eval(Expect::Load(channel), Script::Load, &args, now);
    }

    fn catch_up(&mut self, channel: ChannelName, now: u64) {
        let Some(replica) = self.replicas.get_mut(&channel) else {
            return;
        };
        let Some(last) = replica.last_id.clone() else {
            return self.load(channel, now);
        };
        replica.sync = Sync::CatchingUp;
        let key = channel_key(&channel, "log");
        let mut start = b"(".to_vec();
        start.extend_from_slice(&last);
        let count = self.config.history.to_string();
        self.send(
            Expect::CatchUp(channel),
            &[b"XRANGE", &key, &start, b"+", b"COUNT", count.as_bytes()],
            now,
        );
    }

    fn on_push(&mut self, data: &[OwnedFrame], now: u64, hub: &mut Hub) {
        let [kind, from, message, ..] = data else {
            return;
        };
        if resp::bytes(kind) != Some(b"message") {
            return; // subscribe and unsubscribe confirmations
        }
        let (Some(from), Some(message)) = (resp::bytes(from), resp::bytes(message)) else {
            return;
        };
        if from == b"kc:control" {
            return self.on_control(message, hub);
        }
        let Some(&channel) = self.by_live.get(from) else {
            return; // unsubscribed meanwhile
        };
        let Some(replica) = self.replicas.get(&channel) else {
            return;
        };
        if replica.sync != Sync::Live {
            return; // the load or catch-up in flight holds it
        }
        let (id, payload) = match payload::split_live(message) {
            Ok(parts) => parts,
            Err(e) => return warn!("cluster: {channel}: {e}"),
        };
        match payload::parse(payload) {
            Ok(parsed) if parsed.seq > replica.next_seq => self.catch_up(channel, now),
            Ok(parsed) => self.apply(channel, id, parsed, hub),
            Err(e) => warn!("cluster: {channel}: {e}"),
        }
    }

    /// Applies one entry of `channel` with stream ID `id`, unless it was applied already.
    fn apply(&mut self, channel: ChannelName, id: &[u8], parsed: Parsed, hub: &mut Hub) {
        let Some(replica) = self.replicas.get_mut(&channel) else {
            return;
        };
        if parsed.seq < replica.next_seq {
            return;
        }
        replica.next_seq = parsed.seq + 1;
        replica.last_id = Some(id.to_vec());
        if !replica.parked.is_empty() {
            let next = replica.next_seq;
            let posted = &mut self.posted;
            replica.parked.retain(|&(seq, conn, user)| {
                let applied = seq < next;
                if applied {
                    posted.push((conn, user));
                }
                !applied
            });
        }
        hub.apply(&channel, parsed.seq, parsed.entry, parsed.removal);
    }

    fn on_control(&mut self, message: &[u8], hub: &mut Hub) {
        let text = String::from_utf8_lossy(message);
        let Some((verb, address)) = text.split_once(' ') else {
            return;
        };
        let Ok(address) = address.parse::<IpAddr>() else {
            return;
        };
        match verb {
            "ban" => {
                hub.ban_address(address);
            }
            "unban" => {
                hub.unban_address(&address);
            }
            _ => {}
        }
    }

    fn on_reply(&mut self, expect: Expect, frame: &OwnedFrame, now: u64, hub: &mut Hub) {
        if let Some(error) = resp::error(frame) {
            return self.on_error(expect, error);
        }
        match expect {
            Expect::Handshake => {}
            Expect::Ignore(_) => {}
            Expect::Reap => {
                if let Some(n) = resp::int(frame).filter(|&n| n > 0) {
                    info!("cluster: removed {n} members of servers whose lease ran out");
                }
            }
            Expect::Post {
                conn,
                user,
                channel,
            } => self.on_posted(conn, user, channel, frame),
            Expect::Asked { conn, asked } => self.on_answer(conn, asked, frame, now),
            Expect::Load(channel) => self.on_load(channel, frame, hub),
            Expect::CatchUp(channel) => self.on_catch_up(channel, frame, now, hub),
            Expect::Renew => self.on_renew(frame, hub, now),
            Expect::ServerBans => {
                let now_banned: Vec<IpAddr> = resp::items(frame)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|f| std::str::from_utf8(resp::bytes(f)?).ok()?.parse().ok())
                    .collect();
                // The hub's copy made Redis's: lifted bans go, new ones close their
                // connections (those it had already are not closed again).
                let lifted: Vec<IpAddr> = hub
                    .server_bans()
                    .filter(|a| !now_banned.contains(a))
                    .collect();
                for address in lifted {
                    hub.unban_address(&address);
                }
                for address in now_banned {
                    if !hub.is_address_banned(&address) {
                        hub.ban_address(address);
                    }
                }
            }
        }
    }

    /// A message's reply: `{'ok', seq}` (stored: reported posted once applied here) or
    /// `{'not-member'}` (the network no longer has the sender in the channel: removed by a
    /// KICK or BAN not applied here yet, or this node's members were taken for gone after
    /// it was cut off): given back to the sender, never dropped silently.
    fn on_posted(
        &mut self,
        conn: ConnRef,
        user: Username,
        channel: ChannelName,
        frame: &OwnedFrame,
    ) {
        let items = resp::items(frame).unwrap_or_default();
        let status = items.first().and_then(resp::bytes);
        let seq = items
            .get(1)
            .and_then(resp::int)
            .and_then(|n| u64::try_from(n).ok());
        match (status, seq) {
            (Some(b"ok"), Some(seq)) => match self.replicas.get_mut(&channel) {
                Some(replica) if replica.next_seq <= seq => replica.parked.push((seq, conn, user)),
                _ => self.posted.push((conn, user)),
            },
            _ => self.failed_posts.push((conn, user)),
        }
    }

    fn on_error(&mut self, expect: Expect, error: String) {
        match expect {
            Expect::Handshake => {
                self.broken = Some(format!("Redis refused the connection's set-up: {error}"));
            }
            Expect::Asked {
                conn: Some(conn), ..
            } => {
                warn!("cluster: a request failed in Redis: {error}");
                self.verdicts.push((conn, Verdict::Unavailable));
            }
            Expect::Post { conn, user, .. } => {
                warn!("cluster: a message failed in Redis: {error}");
                self.failed_posts.push((conn, user));
            }
            Expect::Ignore(what) => warn!("cluster: {what} failed in Redis: {error}"),
            other => warn!("cluster: Redis answered {other:?} with an error: {error}"),
        }
    }

    fn on_answer(&mut self, conn: Option<ConnRef>, asked: Asked, frame: &OwnedFrame, now: u64) {
        let status = resp::items(frame)
            .and_then(|items| items.first())
            .and_then(resp::bytes);
        let verdict = match asked {
            Asked::Claim { user, value } => {
                if resp::is_null(frame) {
                    Verdict::Taken
                } else if conn.is_none() {
                    // Won for a connection that closed meanwhile: given back at once.
                    self.release(&user, &value, now);
                    return;
                } else {
                    self.held.insert(user, value);
                    Verdict::Claimed
                }
            }
            Asked::Join { user, channel } => {
                if let Some(replica) = self.replicas.get_mut(&channel) {
                    replica.joining = replica.joining.saturating_sub(1);
                }
                let seq = resp::items(frame)
                    .and_then(|i| i.get(1))
                    .and_then(resp::int);
                match (status, seq) {
                    (Some(b"joined"), Some(seq)) if conn.is_some() => Verdict::Joined {
                        seq: u64::try_from(seq).unwrap_or(0),
                    },
                    (Some(b"joined"), _) => {
                        // Its connection closed meanwhile: the membership goes again.
                        self.leave(&user, &channel, now);
                        self.deserted(channel);
                        return;
                    }
                    (Some(b"banned"), _) => {
                        self.deserted(channel);
                        Verdict::Banned
                    }
                    _ => {
                        self.deserted(channel);
                        Verdict::Unavailable
                    }
                }
            }
            Asked::Moderate | Asked::ServerBan | Asked::ServerUnban => match status {
                Some(b"done") => Verdict::Done,
                Some(b"not-operator") => Verdict::NotOperator,
                Some(b"target-server-operator") => Verdict::TargetIsServerOperator,
                Some(b"not-member") => Verdict::NotMember,
                Some(b"full") => Verdict::BanListFull,
                Some(b"not-banned") => Verdict::NotBanned,
                Some(b"not-connected") => Verdict::NotConnected,
                _ => Verdict::Unavailable,
            },
            Asked::Names => names_verdict(frame),
            Asked::List => list_verdict(frame),
        };
        if let Some(conn) = conn {
            self.verdicts.push((conn, verdict));
        }
    }

    fn on_load(&mut self, channel: ChannelName, frame: &OwnedFrame, hub: &mut Hub) {
        let items = resp::items(frame).unwrap_or_default();
        let counter = items.first().and_then(resp::int).unwrap_or(0);
        let entries: Vec<&OwnedFrame> = items
            .get(1)
            .and_then(resp::items)
            .unwrap_or_default()
            .iter()
            .rev()
            .collect();
        for entry in entries {
            self.apply_stream_entry(channel, entry, hub);
        }
        if let Some(replica) = self.replicas.get_mut(&channel) {
            replica.next_seq = replica
                .next_seq
                .max(u64::try_from(counter).unwrap_or(0) + 1);
            replica.sync = Sync::Live;
        }
    }

    fn on_catch_up(&mut self, channel: ChannelName, frame: &OwnedFrame, now: u64, hub: &mut Hub) {
        let entries = resp::items(frame).unwrap_or_default();
        for entry in entries {
            self.apply_stream_entry(channel, entry, hub);
        }
        if entries.len() >= self.config.history {
            // More may wait past this batch.
            self.catch_up(channel, now);
        } else if let Some(replica) = self.replicas.get_mut(&channel) {
            replica.sync = Sync::Live;
        }
    }

    /// One `[id, [field, value, ...]]` element of an XRANGE or XREVRANGE reply.
    fn apply_stream_entry(&mut self, channel: ChannelName, entry: &OwnedFrame, hub: &mut Hub) {
        let Some([id, fields]) = resp::items(entry).and_then(|i| <&[_; 2]>::try_from(i).ok())
        else {
            return;
        };
        let Some(id) = resp::bytes(id) else {
            return;
        };
        let payload = match fields {
            OwnedFrame::Map { data, .. } => data
                .iter()
                .find(|(k, _)| resp::bytes(k) == Some(b"e"))
                .and_then(|(_, v)| resp::bytes(v)),
            other => resp::items(other).and_then(|f| match f {
                [k, v, ..] if resp::bytes(k) == Some(b"e") => resp::bytes(v),
                _ => None,
            }),
        };
        match payload.map(payload::parse) {
            Some(Ok(parsed)) => self.apply(channel, id, parsed, hub),
            Some(Err(e)) => warn!("cluster: {channel}: {e}"),
            None => warn!("cluster: {channel}: a stream entry without its field 'e'"),
        }
    }

    fn on_renew(&mut self, frame: &OwnedFrame, hub: &mut Hub, now: u64) {
        let items = resp::items(frame).unwrap_or_default();
        if items.first().and_then(resp::bytes) == Some(b"taken") {
            return self.lease_taken(items.get(1).and_then(resp::int), now);
        }
        if let Some(since) = self.conflict_since.take() {
            info!(
                "cluster: this server holds the lease of node {} now, after {} ms",
                self.config.node_id,
                now.saturating_sub(since)
            );
        }
        let existed = items.first().and_then(resp::int) == Some(1);
        let lost: Vec<Username> = items
            .get(1)
            .and_then(resp::items)
            .unwrap_or_default()
            .iter()
            .filter_map(|f| Username::new(resp::bytes(f)?).ok())
            .collect();
        for user in lost {
            warn!("cluster: the name {user} is another server's now: its client is closed");
            self.held.remove(&user);
            self.lost_names.push(user);
        }
        if !self.leased {
            // The first renewal on this connection: the lease is this run's.
            self.leased = true;
            // The whole set-up worked (HELLO, SELECT, scripts, lease): the link's wait
            // before a new attempt may start over.
            self.confirmed = true;
            self.resync(hub, now);
            for (conn, request) in std::mem::take(&mut self.waiting) {
                self.request(conn, request, now, hub);
            }
        } else if !existed {
            // Redis lost the lease (a restart), or this node was cut off for longer than
            // it: another server may have removed this one's members.
            info!(
                "cluster: Redis no longer had this node's lease (it restarted, or this node \
                 was cut off for longer than the lease): its members are made Redis's again"
            );
            self.resync(hub, now);
        }
    }

    /// Another run holds the node's lease (`pttl` ms left): a second server with this
    /// node id, or this server's previous run, killed less than a lease ago. Requests
    /// are refused meanwhile; still so after two leases, it is a live twin: fatal.
    fn lease_taken(&mut self, pttl: Option<i64>, now: u64) {
        self.refuse_waiting();
        let since = *self.conflict_since.get_or_insert(now);
        if since == now {
            warn!(
                "cluster: another server holds the lease of node {} ({} ms left): a second \
                 server with this --node-id, or this one's previous run; waiting for it to \
                 lapse",
                self.config.node_id,
                pttl.unwrap_or(-1)
            );
        }
        if now.saturating_sub(since) > 2 * self.config.lease_ms {
            self.fatal = Some(format!(
                "another server is running with --node-id {}: each server of a network needs \
                 its own node id",
                self.config.node_id
            ));
        }
        self.next_renew = now + (self.config.lease_ms / 3).max(1);
    }
}

fn names_verdict(frame: &OwnedFrame) -> Verdict {
    let items = resp::items(frame).unwrap_or_default();
    if items.is_empty() {
        return Verdict::NotOpen;
    }
    let mut names = NamesSnapshot::default();
    for pair in items.chunks(2) {
        let [flags, name] = pair else {
            continue;
        };
        let (Some(flags), Some(name)) = (resp::bytes(flags), resp::bytes(name)) else {
            continue;
        };
        let Ok(name) = Username::new(name) else {
            continue;
        };
        if flags.first() == Some(&b'o') {
            names.operators.push(name);
        } else {
            names.others.push(name);
        }
    }
    Verdict::Names(Box::new(names))
}

fn list_verdict(frame: &OwnedFrame) -> Verdict {
    let items = resp::items(frame).unwrap_or_default();
    let mut channels = Vec::with_capacity(items.len() / 3);
    for triple in items.chunks(3) {
        let [name, members, retained] = triple else {
            continue;
        };
        let Some(name) = resp::bytes(name).and_then(|n| ChannelName::new(n).ok()) else {
            continue;
        };
        channels.push(Listed {
            name,
            members: resp::int(members)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            retained: resp::int(retained)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
        });
    }
    Verdict::Channels(channels)
}

/// `kc:name:<lower-case name>`.
fn name_key(user: &Username) -> Vec<u8> {
    [
        b"kc:name:".as_slice(),
        &user.as_bytes().to_ascii_lowercase(),
    ]
    .concat()
}

/// `kc:{<channel>}:<part>`: a channel's keys share the hash tag `{<channel>}`, so that
/// they would share a slot in a Redis Cluster.
fn channel_key(channel: &ChannelName, part: &str) -> Vec<u8> {
    let mut key = b"kc:{".to_vec();
    key.extend_from_slice(channel.as_bytes());
    let mut rest = String::new();
    let _ = write!(rest, "}}:{part}");
    key.extend_from_slice(rest.as_bytes());
    key
}

#[cfg(test)]
mod tests;
