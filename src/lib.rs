//! KaiChat's I/O half: the server's reactor (`server`), whole PDUs over a socket through
//! rustls or in plaintext (`transport`, used by the server and loadgen), rustls
//! configurations from PEM files (`tls`), the connection to Redis in cluster mode
//! (`cluster`), the open-file limit (`fd_limit`) and the build's version (`VERSION`).
//!
//! The protocol itself (PDUs, the session and client state machines, the hub, the timer
//! wheel) is the sans-IO crate `kaichat_proto`; this crate moves its bytes. The data path
//! reads in one direction: socket → TLS → PDU framing → session → hub → answer → TLS →
//! socket. `server`, `transport` and `terminal` touch sockets, `store` the disk; the
//! binaries wire them up.
//!
//! Where unit tests live, in this crate, kaichat-proto and loadgen alike: a module's unit
//! tests are its child module `tests`, declared last as `#[cfg(test)] mod tests;` and
//! written in their own file beside it, `<module>/tests.rs` (`server/stats.rs` →
//! `server/stats/tests.rs`; a module of a binary loaded by `#[path]` names the file).

pub mod cluster;
pub mod fd_limit;
pub mod server;
pub mod store;
#[cfg(feature = "cli")]
pub mod terminal;
pub mod tls;
pub mod transport;

/// The protocol's TCP port (contract section 1): where the server listens and where the
/// client connects when not told otherwise.
pub const DEFAULT_PORT: u16 = 29200;

/// This build's version, as every binary's `--version` prints it: the package version,
/// then the git commit when built from a checkout, as in "0.1.0 (abc1234)"; the package
/// version alone otherwise. Set by `build.rs`; needs no feature, so loadgen has it too.
pub const VERSION: &str = env!("KAICHAT_VERSION");

/// [`VERSION`], for callers that prefer a function.
pub fn version() -> &'static str {
    VERSION
}
