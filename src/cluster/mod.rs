//! Cluster mode (issue 13): several servers form one KaiChat network through a Redis
//! server. `url` reads the `--redis` argument; `link` is the Redis connection, one more
//! source in the reactor's poll, which moves RESP3 frames and bytes and knows nothing of
//! KaiChat. What the frames mean is the engine's business (docs/CLUSTER.md).

pub mod link;
pub mod url;
