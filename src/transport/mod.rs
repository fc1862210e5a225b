//! Moving bytes between a non-blocking socket and whole PDUs: through rustls (the server's
//! `UnbufferedServerConnection` in `unbuffered.rs`; the buffered `ClientConnection` of
//! loadgen and the terminal client here), or in plaintext for debugging and benchmarks.
//! Knows nothing of what a PDU means.
//!
//! No connection keeps a buffer it is not using: the server's TLS bytes and plaintext
//! input and output live in buffers lent by the thread's [`pool`] while they wait; a
//! client's partial PDU waits inside rustls's plaintext buffer. Output is counted so that
//! the server's reactor can stop producing (and stop reading) above a small bound.

use std::io::{self, Read, Write};
use std::ops::DerefMut;

use rustls::ConnectionCommon;

use kaichat_proto::outbox::Outbox;
use kaichat_proto::pdu::{Pdu, PDU_LEN};

pub mod pool;
mod unbuffered;

pub use unbuffered::UnbufferedTls;

/// Plaintext input is read in chunks up to this much buffered, like rustls's own bound.
const PLAIN_INPUT_LIMIT: usize = 16 * 1024;
/// Most bytes one plaintext read takes (rustls reads TLS in the same size).
const PLAIN_READ: usize = 4096;

/// What one read from the socket did.
#[derive(Debug, PartialEq, Eq)]
pub enum Fill {
    /// Bytes arrived (they may or may not complete a PDU).
    Progress,
    /// Bytes arrived and the read returned fewer than asked for: the socket's receive
    /// buffer is empty now, so another read would only say `WouldBlock` (epoll(7)).
    Drained,
    /// Nothing more to read now.
    Blocked,
    /// The peer closed its side (TCP FIN or TLS close_notify).
    Closed,
    /// Input is full until PDUs are taken out.
    Full,
}

/// Why a connection's transport failed.
#[derive(Debug)]
pub enum TransportError {
    /// The socket failed (reset, broken pipe...).
    Io(io::Error),
    /// The peer broke the TLS protocol (or its certificate was refused); rustls has
    /// queued an alert for it.
    Tls(rustls::Error),
}

impl TransportError {
    /// A short cause, for counters and messages.
    pub fn cause(&self) -> String {
        match self {
            TransportError::Io(e) => format!("io: {}", e.kind()),
            TransportError::Tls(e) => format!("tls: {e}"),
        }
    }
}

/// One connection's transport; `C` is rustls's `ServerConnection` or `ClientConnection`
/// for the buffered API (loadgen's clients); the server uses the unbuffered one.
#[derive(Debug)]
pub enum Transport<C> {
    Tls(Box<TlsState<C>>),
    /// The server's TLS: rustls's unbuffered API over buffers lent by the loop's pool.
    Unbuffered(Box<UnbufferedTls>),
    Plain(PlainState),
}

#[derive(Debug)]
pub struct TlsState<C> {
    conn: C,
    /// Decrypted bytes waiting in rustls.
    plaintext: usize,
    /// Bytes handed to rustls since its output was last fully flushed.
    queued: usize,
    peer_closed: bool,
    /// The peer's TLS close_notify arrived (a close without it may be a truncation).
    goodbye: bool,
    overflow: bool,
}

#[derive(Debug, Default)]
pub struct PlainState {
    input: Vec<u8>,
    output: Vec<u8>,
    /// Bytes of `output` already written to the socket.
    written: usize,
    peer_closed: bool,
}

impl<C, D> Transport<C>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
{
    pub fn tls(conn: C) -> Transport<C> {
        Transport::Tls(Box::new(TlsState {
            conn,
            plaintext: 0,
            queued: 0,
            peer_closed: false,
            goodbye: false,
            overflow: false,
        }))
    }

    /// The server's TLS session, over rustls's unbuffered API.
    pub fn unbuffered(conn: rustls::server::UnbufferedServerConnection) -> Transport<C> {
        Transport::Unbuffered(Box::new(UnbufferedTls::new(conn)))
    }

    pub fn plain() -> Transport<C> {
        Transport::Plain(PlainState::default())
    }

    /// Reads once from the socket (one TLS read is at most about 4 KiB). The socket is any
    /// reader over the connection's stream, so that the server can count what it reads.
    pub fn fill(&mut self, socket: &mut impl Read) -> Result<Fill, TransportError> {
        match self {
            Transport::Tls(tls) => tls.fill(socket),
            Transport::Unbuffered(tls) => tls.fill(socket),
            Transport::Plain(plain) => plain.fill(socket),
        }
    }

    /// Takes the next whole PDU received, if there is one.
    pub fn next_pdu(&mut self) -> Option<Pdu> {
        match self {
            Transport::Tls(tls) => {
                if tls.plaintext < PDU_LEN {
                    return None;
                }
                let mut bytes = [0u8; PDU_LEN];
                tls.conn.reader().read_exact(&mut bytes).ok()?;
                tls.plaintext -= PDU_LEN;
                Some(Pdu::from_bytes(bytes))
            }
            Transport::Unbuffered(tls) => tls.next_pdu(),
            Transport::Plain(plain) => {
                let pdu = Pdu::from_slice(plain.input.get(..PDU_LEN)?)?;
                plain.input.drain(..PDU_LEN);
                if plain.input.is_empty() {
                    // Idle plaintext connections keep no buffer: it goes back to the pool.
                    pool::give(std::mem::take(&mut plain.input));
                }
                Some(pdu)
            }
        }
    }

    /// Whether the peer has closed its side; what it sent before is still readable.
    pub fn peer_closed(&self) -> bool {
        match self {
            Transport::Tls(tls) => tls.peer_closed,
            Transport::Unbuffered(tls) => tls.peer_closed(),
            Transport::Plain(plain) => plain.peer_closed,
        }
    }

    /// Whether the peer said goodbye before closing: a TLS close_notify (a plaintext peer
    /// has only its close). A TLS peer that closed without it stopped abruptly, or the
    /// connection was cut.
    pub fn closed_cleanly(&self) -> bool {
        match self {
            Transport::Tls(tls) => tls.goodbye,
            Transport::Unbuffered(tls) => tls.closed_cleanly(),
            Transport::Plain(plain) => plain.peer_closed,
        }
    }

    /// Whether the TLS handshake is still under way (never in plaintext).
    pub fn is_handshaking(&self) -> bool {
        match self {
            Transport::Tls(tls) => tls.conn.is_handshaking(),
            Transport::Unbuffered(tls) => tls.is_handshaking(),
            Transport::Plain(_) => false,
        }
    }

    /// Bytes produced and not yet known to be written.
    pub fn queued(&self) -> usize {
        match self {
            Transport::Tls(tls) => tls.queued,
            Transport::Unbuffered(tls) => tls.queued(),
            Transport::Plain(plain) => plain.output.len() - plain.written,
        }
    }

    /// Whether there is output for the socket.
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Tls(tls) => tls.conn.wants_write(),
            Transport::Unbuffered(tls) => tls.wants_write(),
            Transport::Plain(plain) => plain.written < plain.output.len(),
        }
    }

    /// Writes output until it is all written (true) or the socket is full (false).
    pub fn flush(&mut self, socket: &mut impl Write) -> Result<bool, TransportError> {
        match self {
            Transport::Tls(tls) => tls.flush(socket),
            Transport::Unbuffered(tls) => tls.flush(socket),
            Transport::Plain(plain) => plain.flush(socket),
        }
    }

    /// Queues a TLS close_notify (nothing in plaintext).
    pub fn close_notify(&mut self) {
        match self {
            Transport::Tls(tls) => tls.conn.send_close_notify(),
            Transport::Unbuffered(tls) => tls.close_notify(),
            Transport::Plain(_) => {}
        }
    }

    /// Whether a PDU could not be handed to rustls.
    pub fn overflowed(&self) -> bool {
        match self {
            Transport::Tls(tls) => tls.overflow,
            Transport::Unbuffered(tls) => tls.overflowed(),
            Transport::Plain(_) => false,
        }
    }
}

impl<C, D> Outbox for Transport<C>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
{
    fn send(&mut self, pdu: &Pdu) {
        match self {
            Transport::Tls(tls) => {
                // The writer encrypts at once; a short count means rustls's own buffer
                // limit (64 KiB) was hit, which the reactor's far smaller bound prevents.
                match tls.conn.writer().write(pdu.as_bytes()) {
                    Ok(n) if n == PDU_LEN => tls.queued += PDU_LEN,
                    _ => tls.overflow = true,
                }
            }
            Transport::Unbuffered(tls) => tls.send(pdu),
            Transport::Plain(plain) => {
                if plain.output.capacity() == 0 {
                    plain.output = pool::take();
                }
                plain.output.extend_from_slice(pdu.as_bytes());
            }
        }
    }
}

/// What one socket read means. `short` says the read returned fewer bytes than asked
/// for; a read of 0 bytes is the peer's close.
fn classify(
    result: io::Result<usize>,
    short: bool,
    peer_closed: &mut bool,
) -> Result<Fill, TransportError> {
    match result {
        Ok(0) => {
            *peer_closed = true;
            Ok(Fill::Closed)
        }
        Ok(_) if short => Ok(Fill::Drained),
        Ok(_) => Ok(Fill::Progress),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Fill::Blocked),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Fill::Progress),
        Err(e) => Err(TransportError::Io(e)),
    }
}

/// Passes reads through to the socket and notes whether the last one came back short,
/// which saves the `WouldBlock` read per request that draining would otherwise cost.
struct ShortReadProbe<'a, S> {
    socket: &'a mut S,
    short: bool,
}

impl<S: Read> Read for ShortReadProbe<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.socket.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

impl<C, D> TlsState<C>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
{
    fn fill(&mut self, socket: &mut impl Read) -> Result<Fill, TransportError> {
        if self.peer_closed {
            return Ok(Fill::Closed);
        }
        // rustls refuses to read past 16 KiB of undelivered plaintext; whole PDUs are
        // taken out before reading more, so this only guards the contract of `fill`.
        if self.plaintext >= PDU_LEN {
            return Ok(Fill::Full);
        }
        let mut probe = ShortReadProbe {
            socket,
            short: false,
        };
        let result = self.conn.read_tls(&mut probe);
        let fill = classify(result, probe.short, &mut self.peer_closed)?;
        if matches!(fill, Fill::Progress | Fill::Drained) {
            let state = self
                .conn
                .process_new_packets()
                .map_err(TransportError::Tls)?;
            self.plaintext = state.plaintext_bytes_to_read();
            self.goodbye |= state.peer_has_closed();
            self.peer_closed |= state.peer_has_closed();
        }
        Ok(fill)
    }

    fn flush(&mut self, socket: &mut impl Write) -> Result<bool, TransportError> {
        while self.conn.wants_write() {
            match self.conn.write_tls(socket) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TransportError::Io(e)),
            }
        }
        self.queued = 0;
        Ok(true)
    }
}

impl PlainState {
    fn fill(&mut self, socket: &mut impl Read) -> Result<Fill, TransportError> {
        if self.peer_closed {
            return Ok(Fill::Closed);
        }
        let room = PLAIN_INPUT_LIMIT - self.input.len();
        if room == 0 {
            return Ok(Fill::Full);
        }
        // Read through a stack chunk, as rustls does, so that only bytes that arrived are
        // kept, in a buffer that exists only while a PDU is incomplete.
        let mut chunk = [0u8; PLAIN_READ];
        let want = room.min(PLAIN_READ);
        let result = socket.read(&mut chunk[..want]);
        let short = result.as_ref().is_ok_and(|&n| n < want);
        if let Ok(n) = result {
            if n > 0 && self.input.capacity() == 0 {
                self.input = pool::take();
            }
            self.input.extend_from_slice(&chunk[..n]);
        }
        classify(result, short, &mut self.peer_closed)
    }

    fn flush(&mut self, socket: &mut impl Write) -> Result<bool, TransportError> {
        while self.written < self.output.len() {
            match socket.write(&self.output[self.written..]) {
                Ok(0) => return Err(TransportError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TransportError::Io(e)),
            }
        }
        pool::give(std::mem::take(&mut self.output));
        self.written = 0;
        Ok(true)
    }
}
