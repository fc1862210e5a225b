//! The sans-IO core of KaiChat v1: the PDU codec, the name rules, the server's session
//! state machine, the chat state (hub), the timer wheel, and the client state machine.
//!
//! Everything here takes decoded PDUs and time as arguments and returns what to send; none
//! of it touches a socket, a clock or a thread. That is a compile-time fact: this crate
//! depends on no I/O crate (mio, rustls, libc, socket2), so a stray `use mio` fails to
//! build. The reactor (`kaichat::server`), the transport and the binaries live in the
//! `kaichat` crate above it. The contract is the project's `kaichat-v1.md`, documented for
//! client authors in `docs/PROTOCOL.md`.

pub mod client;
pub mod hub;
pub mod names;
pub mod outbox;
pub mod pdu;
pub mod session;
pub mod timer_wheel;
