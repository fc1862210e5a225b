//! The reactor's side of cluster mode (`--redis`, docs/CLUSTER.md): the Redis link (one
//! more source in the poll) and the cluster engine it feeds. The link moves bytes and
//! frames, the engine decides; this module only carries one to the other, logs the
//! connection's changes, and holds the lists the reactor takes from the engine each
//! iteration (kept to reuse their allocations).

use mio::{Registry, Token};

use kaichat_proto::hub::{ConnRef, Hub};
use kaichat_proto::names::{ChannelName, Username};
use kaichat_proto::network::{Outbound, Verdict};

use crate::cluster::engine::Cluster;
use crate::cluster::link::{Link, LinkEvent};

/// The Redis link's poll token.
pub const REDIS: Token = Token(usize::MAX - 4);

/// Cluster mode's state in the reactor.
pub struct Network {
    pub engine: Cluster,
    pub link: Link,
    pub verdicts: Vec<(ConnRef, Verdict)>,
    pub failed_posts: Vec<(ConnRef, Username)>,
    pub posted: Vec<(ConnRef, Username)>,
    pub lost_names: Vec<Username>,
    pub outbound: Vec<Outbound>,
    pub deserted: Vec<ChannelName>,
    /// Failed attempts since the link was last up, for a quieter log.
    failures: u32,
    /// Why the server must stop (another server runs with its node id).
    pub fatal: Option<String>,
}

impl Network {
    pub fn new(engine: Cluster, link: Link) -> Network {
        Network {
            engine,
            link,
            verdicts: Vec::new(),
            failed_posts: Vec::new(),
            posted: Vec::new(),
            lost_names: Vec::new(),
            outbound: Vec::new(),
            deserted: Vec::new(),
            failures: 0,
            fatal: None,
        }
    }

    /// Hands what the link reported to the engine, in order; drops the connection when the
    /// engine says it cannot be used.
    pub fn drain(&mut self, hub: &mut Hub, registry: &Registry, now: u64) {
        loop {
            while let Some(event) = self.link.next_event() {
                self.on_link_event(event, hub, now);
            }
            if self.engine.take_confirmed() {
                self.link.confirm();
            }
            if let Some(why) = self.engine.take_fatal() {
                self.fatal = Some(why);
            }
            match self.engine.take_broken() {
                Some(why) => {
                    log::warn!("cluster: dropping the connection to Redis: {why}");
                    self.link.disconnect(registry, now);
                }
                None => break,
            }
        }
    }

    fn on_link_event(&mut self, event: LinkEvent, hub: &mut Hub, now: u64) {
        match event {
            LinkEvent::Connected(addr) => {
                log::info!("cluster: connected to Redis at {addr}");
                self.failures = 0;
                self.engine.connected(now);
            }
            LinkEvent::Frame(frame) => self.engine.on_frame(frame, now, hub),
            LinkEvent::Disconnected { error, retry_at } => {
                log::warn!(
                    "cluster: lost Redis ({error}); new set-ups and messages are refused \
                     until it is back; next attempt in {} ms",
                    retry_at.saturating_sub(now)
                );
                self.engine.disconnected();
            }
            LinkEvent::Unreachable {
                addr,
                error,
                retry_at,
            } => {
                self.failures += 1;
                // Every attempt while the wait grows, then one line in ten.
                if self.failures <= 6 || self.failures.is_multiple_of(10) {
                    log::warn!(
                        "cluster: cannot reach Redis at {addr} ({error}); attempt {}, next in {} ms",
                        self.failures,
                        retry_at.saturating_sub(now)
                    );
                }
            }
        }
    }

    /// Writes what the engine queued (pipelined: once per loop iteration).
    pub fn flush(&mut self, hub: &mut Hub, registry: &Registry, now: u64) {
        let out = self.engine.output();
        if !out.is_empty() {
            self.link.send(out, registry, now);
            // Cleared, not taken: the buffer keeps its allocation for the next iteration.
            out.clear();
        }
        self.drain(hub, registry, now);
    }

    /// Time passed: the link's attempts and reads, the engine's renewals and reaps.
    pub fn tick(&mut self, hub: &mut Hub, registry: &Registry, now: u64) {
        if self.link.next_deadline().is_some_and(|due| now >= due) {
            self.link.tick(registry, now);
        }
        self.engine.tick(now);
        self.drain(hub, registry, now);
    }

    /// The next moment either has work, ms.
    pub fn next_deadline(&self) -> Option<u64> {
        match (self.link.next_deadline(), self.engine.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
