//! The server's TLS through rustls's unbuffered API (`UnbufferedServerConnection`): rustls
//! keeps only its protocol state, and the bytes live in buffers lent by the thread's
//! [`pool`](super::pool) while they must wait: received TLS bytes rustls has not consumed
//! yet (a partial record, or a handshake message spread over records), decrypted bytes
//! short of a whole PDU, and ciphertext the socket has not taken yet. Each buffer goes back
//! to the pool as soon as it is empty, so an idle connection holds no buffer at all, and
//! a busy loop reuses the same few (issue 10: about 2.2 KB per idle session against 6.4 KB
//! with the buffered `ServerConnection`).
//!
//! Every state of `process_tls_records` is handled here and nowhere else: handshake
//! records are encoded into the output as soon as rustls offers them (the handshake is
//! pumped by the reads that bring the client's flights), application data is decrypted
//! into the input, the peer's close_notify is remembered, and a TLS error leaves rustls's
//! alert in the output for the lingering close to write.

use std::fmt;
use std::io::{self, Read, Write};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};

use super::{classify, pool, Fill, TransportError};
use kaichat_proto::pdu::{Pdu, PDU_LEN};

/// What rustls offers when application data may be sent.
type Traffic<'a> = rustls::unbuffered::WriteTraffic<'a, rustls::server::ServerConnectionData>;

/// Free room asked for before each socket read: a whole TLS record of 16 KiB of payload
/// with its header and expansion fits, so one read takes what a client normally sends.
const READ_ROOM: usize = 16 * 1024 + 512;
/// Most bytes rustls may leave unconsumed (a handshake message spread over records can be
/// up to 64 KiB): a client that sends more without completing anything is refused.
const MAX_INCOMING: usize = 80 * 1024;
/// Room asked for before encrypting one PDU: its record's header, content type and tag
/// (TLS 1.3 adds 22 bytes, TLS 1.2 with AES-GCM 29); a queued key update grows the ask.
const PDU_RECORD_ROOM: usize = PDU_LEN + 64;
/// Room asked for a close_notify alert record.
const ALERT_ROOM: usize = 64;
/// Room first asked for one handshake record (most fit; rustls asks for more if not).
const HANDSHAKE_ROOM: usize = 4096;

/// Bytes waiting in a buffer lent by the pool: `buf[start..end]`. The buffer keeps its
/// length (zeroed once, when the pool first made it) so that reads and encryption write
/// into it without zeroing it again; it goes back to the pool when it holds nothing.
#[derive(Default)]
struct Lent {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Lent {
    fn len(&self) -> usize {
        self.end - self.start
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    /// Free room of at least `at_least` bytes after the data (borrowing a buffer from the
    /// pool if none is held, moving the data to the front or growing the buffer if
    /// needed).
    fn room(&mut self, at_least: usize) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = pool::lend(at_least);
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end < at_least && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < at_least {
            self.buf.resize(self.end + at_least, 0);
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were written into the room.
    fn commit(&mut self, n: usize) {
        self.end += n;
    }

    /// The first `n` bytes of the data are used up; an emptied buffer goes back.
    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.release();
        }
    }

    fn release(&mut self) {
        pool::give(std::mem::take(&mut self.buf));
        self.start = 0;
        self.end = 0;
    }
}

/// One server connection's TLS over the unbuffered API.
pub struct UnbufferedTls {
    conn: UnbufferedServerConnection,
    /// TLS bytes received that rustls has not consumed.
    incoming: Lent,
    /// Decrypted bytes not yet taken as whole PDUs.
    plain: Lent,
    /// Ciphertext (handshake, records, alerts) not yet written to the socket.
    outgoing: Lent,
    peer_closed: bool,
    /// The peer's close_notify arrived.
    goodbye: bool,
    /// A PDU could not be encrypted (the handshake is not done, or the keys are spent).
    overflow: bool,
    /// A TLS error ended the connection: nothing more is processed.
    failed: bool,
}

impl fmt::Debug for UnbufferedTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnbufferedTls")
            .field("incoming", &self.incoming.len())
            .field("plain", &self.plain.len())
            .field("outgoing", &self.outgoing.len())
            .field("peer_closed", &self.peer_closed)
            .field("goodbye", &self.goodbye)
            .field("overflow", &self.overflow)
            .field("failed", &self.failed)
            .finish()
    }
}

/// What one step of rustls's state machine asked for.
enum Step {
    /// Go on processing.
    Again,
    /// Nothing more until more bytes arrive (or, after the handshake, nothing at all).
    Idle,
}

impl UnbufferedTls {
    /// A session for one accepted socket, holding no buffer yet.
    pub fn new(conn: UnbufferedServerConnection) -> UnbufferedTls {
        UnbufferedTls {
            conn,
            incoming: Lent::default(),
            plain: Lent::default(),
            outgoing: Lent::default(),
            peer_closed: false,
            goodbye: false,
            overflow: false,
            failed: false,
        }
    }

    /// Whether the TLS handshake is still under way.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether the peer closed, or the session failed: either way nothing more will be
    /// read from it.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed || self.failed
    }

    /// Whether the peer's close_notify arrived.
    pub fn closed_cleanly(&self) -> bool {
        self.goodbye
    }

    /// Bytes of ciphertext produced and not yet written to the socket.
    pub fn queued(&self) -> usize {
        self.outgoing.len()
    }

    /// Whether there is ciphertext for the socket.
    pub fn wants_write(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether a PDU could not be encrypted (the connection must close).
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Reads once from the socket (at most about 16 KiB), then lets rustls process every
    /// whole record that is there. Errors: the socket's (`Io`); the peer broke TLS
    /// (`Tls`, with rustls's alert queued for the flush); more than 80 KiB received that
    /// complete nothing (`Io`, `InvalidData`). After an error nothing more is processed.
    pub fn fill(&mut self, socket: &mut impl Read) -> Result<Fill, TransportError> {
        if self.peer_closed || self.failed {
            return Ok(Fill::Closed);
        }
        if self.plain.len() >= PDU_LEN {
            return Ok(Fill::Full);
        }
        if self.incoming.len() + READ_ROOM > MAX_INCOMING {
            self.failed = true;
            return Err(TransportError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "TLS input that completes nothing grew too large",
            )));
        }
        let room = self.incoming.room(READ_ROOM);
        let asked = room.len();
        let result = socket.read(room);
        let n = *result.as_ref().unwrap_or(&0);
        let short = n < asked;
        let fill = classify(result, short, &mut self.peer_closed);
        if n > 0 {
            self.incoming.commit(n);
        }
        // An empty read leaves the lent buffer unused.
        if self.incoming.is_empty() {
            self.incoming.release();
        }
        let fill = fill?;
        if matches!(fill, Fill::Progress | Fill::Drained) {
            self.process()?;
        }
        Ok(fill)
    }

    /// Takes the next whole PDU decrypted, if there is one.
    pub fn next_pdu(&mut self) -> Option<Pdu> {
        let pdu = Pdu::from_slice(self.plain.data().get(..PDU_LEN)?)?;
        self.plain.consume(PDU_LEN);
        Some(pdu)
    }

    /// Encrypts one PDU into the output (after any handshake records rustls still has).
    pub fn send(&mut self, pdu: &Pdu) {
        if self.failed || self.overflow {
            self.overflow = true;
            return;
        }
        let sent = self.with_write_traffic(|write, out| {
            encrypt_into(out, PDU_RECORD_ROOM, |room| {
                write.encrypt(pdu.as_bytes(), room)
            })
        });
        if !matches!(sent, Some(Ok(()))) {
            self.overflow = true;
        }
    }

    /// Queues a close_notify, if the handshake is done (before that, rustls's unbuffered
    /// API has no way to send one: the connection just closes).
    pub fn close_notify(&mut self) {
        if self.failed {
            return;
        }
        let _ = self.with_write_traffic(|write, out| {
            encrypt_into(out, ALERT_ROOM, |room| write.queue_close_notify(room))
        });
    }

    /// Writes the output until it is all written (true) or the socket is full (false).
    pub fn flush(&mut self, socket: &mut impl Write) -> Result<bool, TransportError> {
        while !self.outgoing.is_empty() {
            match socket.write(self.outgoing.data()) {
                Ok(0) => return Err(TransportError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.outgoing.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TransportError::Io(e)),
            }
        }
        Ok(true)
    }

    /// Drives rustls until it offers `WriteTraffic` (encoding what it has queued on the
    /// way), then calls `write` with it and the output. None if the connection cannot
    /// send application data now (handshake not done, closed, failed).
    fn with_write_traffic<T>(
        &mut self,
        write: impl FnOnce(&mut Traffic<'_>, &mut Lent) -> T,
    ) -> Option<T> {
        self.drive(Some(write)).ok().flatten()
    }

    /// Lets rustls process the bytes received, until it needs more.
    fn process(&mut self) -> Result<(), TransportError> {
        let nothing: Option<fn(&mut Traffic<'_>, &mut Lent)> = None;
        self.drive(nothing).map(|_| ()).map_err(TransportError::Tls)
    }

    /// The one loop over `process_tls_records`: every state is handled (`handle`) until
    /// rustls needs more bytes; if `write` is given, it is called with the first
    /// `WriteTraffic` offered, and its result returned. A TLS error marks the connection
    /// failed and leaves rustls's alert in the output.
    fn drive<T>(
        &mut self,
        mut write: Option<impl FnOnce(&mut Traffic<'_>, &mut Lent) -> T>,
    ) -> Result<Option<T>, rustls::Error> {
        loop {
            let Self {
                conn,
                incoming,
                plain,
                outgoing,
                goodbye,
                peer_closed,
                ..
            } = self;
            let status = conn.process_tls_records(incoming.data_mut());
            let mut discard = status.discard;
            let mut result = None;
            let step = match status.state {
                Ok(ConnectionState::WriteTraffic(mut traffic)) if write.is_some() => {
                    if let Some(f) = write.take() {
                        result = Some(f(&mut traffic, outgoing));
                    }
                    Ok(Step::Idle)
                }
                Ok(state) => handle(state, plain, outgoing, goodbye, peer_closed, &mut discard),
                Err(e) => Err(e),
            };
            self.incoming.consume_or_keep(discard);
            match step {
                Ok(Step::Again) => {}
                Ok(Step::Idle) => return Ok(result),
                Err(e) => {
                    self.failed = true;
                    self.encode_alerts();
                    return Err(e);
                }
            }
        }
    }

    /// After a TLS error, rustls has queued the alert for the peer: encode it into the
    /// output, for the lingering close to write. One call to rustls, and no more on this
    /// connection: a further call would process the offending bytes again. The bytes
    /// received stay where they are: rustls's handshake deframer remembers positions in
    /// them, and a shorter buffer would make it index out of range.
    fn encode_alerts(&mut self) {
        let Self {
            conn,
            incoming,
            outgoing,
            ..
        } = self;
        let status = conn.process_tls_records(incoming.data_mut());
        let discard = status.discard;
        if let Ok(ConnectionState::EncodeTlsData(mut encode)) = status.state {
            let _ = encode_into(outgoing, &mut encode);
        }
        self.incoming.consume_or_keep(discard);
    }
}

impl Lent {
    /// The first `n` bytes were consumed by rustls: as [`Lent::consume`], also when
    /// nothing is held.
    fn consume_or_keep(&mut self, n: usize) {
        if n > 0 {
            self.consume(n);
        } else if self.is_empty() && !self.buf.is_empty() {
            self.release();
        }
    }
}

/// One state of rustls met while processing (`WriteTraffic` only when nothing is to be
/// written: it then ends the processing).
fn handle(
    state: ConnectionState<'_, '_, rustls::server::ServerConnectionData>,
    plain: &mut Lent,
    outgoing: &mut Lent,
    goodbye: &mut bool,
    peer_closed: &mut bool,
    discard: &mut usize,
) -> Result<Step, rustls::Error> {
    match state {
        ConnectionState::ReadTraffic(mut traffic) => {
            while let Some(record) = traffic.next_record() {
                let record = record?;
                *discard += record.discard;
                let payload = record.payload;
                plain.room(payload.len())[..payload.len()].copy_from_slice(payload);
                plain.commit(payload.len());
            }
            Ok(Step::Again)
        }
        ConnectionState::EncodeTlsData(mut encode) => {
            encode_into(outgoing, &mut encode)?;
            Ok(Step::Again)
        }
        // The records encoded are in `outgoing`, which the connection's flush writes,
        // in order, before anything produced later.
        ConnectionState::TransmitTlsData(transmit) => {
            transmit.done();
            Ok(Step::Again)
        }
        ConnectionState::PeerClosed => {
            *goodbye = true;
            *peer_closed = true;
            Ok(Step::Again)
        }
        ConnectionState::Closed => {
            *peer_closed = true;
            Ok(Step::Idle)
        }
        // Handshake waiting for the client, or done with nothing to process; early data
        // is never accepted (the server config offers none).
        _ => Ok(Step::Idle),
    }
}

/// Encodes one handshake record rustls offers into the output.
fn encode_into(
    outgoing: &mut Lent,
    encode: &mut rustls::unbuffered::EncodeTlsData<'_, rustls::server::ServerConnectionData>,
) -> Result<(), rustls::Error> {
    let mut room = HANDSHAKE_ROOM;
    loop {
        match encode.encode(outgoing.room(room)) {
            Ok(n) => {
                outgoing.commit(n);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                room = required_size;
            }
            Err(EncodeError::AlreadyEncoded) => {
                return Err(rustls::Error::General("a TLS record encoded twice".into()));
            }
        }
    }
}

/// Runs `encrypt` with room of `room` bytes in the output, more if it asks for more.
fn encrypt_into(
    outgoing: &mut Lent,
    room: usize,
    mut encrypt: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), EncryptError> {
    let mut room = room;
    loop {
        match encrypt(outgoing.room(room)) {
            Ok(n) => {
                outgoing.commit(n);
                return Ok(());
            }
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size }))
                if required_size > room =>
            {
                room = required_size;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
