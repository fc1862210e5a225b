//! Bytes between one simulated client and its socket: the project's shared transport
//! (`kaichat::transport`, the same code the server runs) over a rustls `ClientConnection`,
//! or plaintext for `--plaintext` runs. This module only adds the client's way of reading:
//! everything the socket has, as whole PDUs.

use kaichat::transport::{Fill, TransportError};
use kaichat_proto::pdu::Pdu;
use mio::net::TcpStream;
use rustls::ClientConnection;

/// A simulated client's transport.
pub type Transport = kaichat::transport::Transport<ClientConnection>;

/// What a read found besides PDUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// The socket has no more bytes for now.
    WouldBlock,
    /// The peer closed (TCP FIN, or TLS close_notify).
    Closed,
}

/// Reads until the socket has nothing more (mio is edge-triggered) or closes, appending
/// every whole PDU to `pdus`.
pub fn read_all(
    transport: &mut Transport,
    sock: &mut TcpStream,
    pdus: &mut Vec<Pdu>,
) -> Result<ReadEnd, TransportError> {
    loop {
        while let Some(pdu) = transport.next_pdu() {
            pdus.push(pdu);
        }
        if transport.peer_closed() {
            return Ok(ReadEnd::Closed);
        }
        match transport.fill(sock)? {
            Fill::Progress | Fill::Full | Fill::Closed => {}
            Fill::Drained | Fill::Blocked => {
                while let Some(pdu) = transport.next_pdu() {
                    pdus.push(pdu);
                }
                return Ok(if transport.peer_closed() {
                    ReadEnd::Closed
                } else {
                    ReadEnd::WouldBlock
                });
            }
        }
    }
}
