//! Cluster mode (issue 13, docs/CLUSTER.md): several servers form one KaiChat network
//! through a Redis server.
//! - `url` reads the `--redis` argument;
//! - `link` is the Redis connection, one more source in the reactor's poll, which moves
//!   RESP3 frames and bytes and knows nothing of KaiChat;
//! - `engine` is the sans-IO cluster logic: the sessions' requests and the hub's journal
//!   out as commands, replies and pushes in as verdicts and channel entries;
//! - `scripts` (and `lua/`) are the server-side scripts every change of shared state is
//!   made by; `payload` is a channel entry as they write it; `resp` builds commands and
//!   reads replies through the `redis-protocol` codec.

pub mod engine;
pub mod link;
pub mod payload;
pub mod resp;
pub mod scripts;
pub mod url;

/// How long a node's names and liveness outlive its last renewal unless configured
/// (`--lease-ms`), ms: a dead node's users can take their names again within this.
pub const DEFAULT_LEASE_MS: u64 = 10_000;
/// The shortest lease accepted, ms: renewals run every third of it.
pub const MIN_LEASE_MS: u64 = 300;
