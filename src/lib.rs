//! KaiChat v1 (`shared/spec/kaichat-v1.md`): the sans-IO protocol core shared by the
//! server, the terminal client and the load generator, and the server's reactor.
//!
//! The data path reads in one direction: socket → TLS → PDU framing (`pdu`) → the
//! connection's state machine (`session`) → chat state (`hub`) → answer → TLS → socket.
//! Only `server` and the binaries touch sockets.

pub mod client;
pub mod fd_limit;
pub mod hub;
pub mod names;
pub mod pdu;
pub mod server;
pub mod session;
pub mod timer_wheel;
pub mod tls;
pub mod transport;
