//! Where a state machine (the server's session, the client) puts the PDUs it wants sent.
//! The sans-IO core pushes PDUs here; the caller moves them to a connection.

use crate::pdu::Pdu;

/// Where a state machine (the server's session, the client) puts the PDUs it wants sent,
/// in order; the caller moves them to the connection.
pub trait Outbox {
    /// Queues one PDU for sending.
    fn send(&mut self, pdu: &Pdu);
}

/// Wire bytes, back to back.
impl Outbox for Vec<u8> {
    fn send(&mut self, pdu: &Pdu) {
        self.extend_from_slice(pdu.as_bytes());
    }
}

/// Whole PDUs, for tests and callers that inspect what goes out.
impl Outbox for Vec<Pdu> {
    fn send(&mut self, pdu: &Pdu) {
        self.push(pdu.clone());
    }
}
