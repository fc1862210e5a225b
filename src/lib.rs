//! KaiChat's I/O half: the server's reactor (`server`), whole PDUs over a socket through
//! rustls or in plaintext (`transport`, used by the server and loadgen), rustls
//! configurations from PEM files (`tls`) and the open-file limit (`fd_limit`).
//!
//! The protocol itself (PDUs, the session and client state machines, the hub, the timer
//! wheel) is the sans-IO crate `kaichat_proto`; this crate moves its bytes. The data path
//! reads in one direction: socket → TLS → PDU framing → session → hub → answer → TLS →
//! socket. `server` and `transport` touch sockets; the binaries wire them up.

pub mod fd_limit;
pub mod server;
#[cfg(feature = "cli")]
pub mod terminal;
pub mod tls;
pub mod transport;
