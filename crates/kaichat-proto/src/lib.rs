//! The sans-IO core of KaiChat, protocol versions 1 and 2: the PDU codec, the name rules, the server's session
//! state machine, the chat state (hub), the timer wheel, the client state machine, and the
//! `Outbox` the two state machines write their PDUs to.
//!
//! Everything here takes decoded PDUs and time as arguments and returns what to send; none
//! of it touches a socket, a clock or a thread. That is a compile-time fact: this crate
//! depends on no I/O crate (mio, rustls, libc, socket2), so a stray `use mio` fails to
//! build. The reactor (`kaichat::server`), the transport and the binaries live in the
//! `kaichat` crate above it. The contracts (versions 1 and 2) are documented for client
//! authors in `docs/PROTOCOL.md`.
//!
//! Where unit tests live: a module's unit tests are its child module `tests`, declared last
//! in the module as `#[cfg(test)] mod tests;` and written in their own file beside it,
//! `<module>/tests.rs` (`pdu.rs` → `pdu/tests.rs`, `client/mod.rs` → `client/tests.rs`).
//! Being a child module, they see the module's private items, so nothing is made public
//! for a test's sake; what only tests need is defined in the tests (what several
//! modules' tests share, in `test_support`, built for tests only).

pub mod client;
pub mod hub;
pub mod names;
pub mod network;
pub mod outbox;
pub mod pdu;
pub mod session;
pub mod timer_wheel;

#[cfg(test)]
mod test_support;
