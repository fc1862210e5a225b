//! Bytes between one simulated client and its socket: TLS through a rustls
//! `ClientConnection`, or plaintext for `--plaintext` runs.
//!
//! The transport knows PDU boundaries only as "2260 bytes"; what a PDU means is the
//! client state machine's business. Reads drain the socket until `WouldBlock` (mio is
//! edge-triggered) and hand out whole PDUs only: with TLS a partial PDU stays inside rustls
//! (no buffer of ours), in plaintext it waits in a small per-connection buffer.

use std::io::{self, Read, Write};

use kaichat::client::Outbox;
use kaichat::pdu::{Pdu, PDU_LEN};
use mio::net::TcpStream;
use rustls::ClientConnection;

/// Why a connection's transport failed.
#[derive(Debug)]
pub enum Failure {
    /// A socket error.
    Io(io::Error),
    /// A TLS error (bad certificate, bad record...).
    Tls(rustls::Error),
}

impl Failure {
    /// A short cause for the error counters.
    pub fn cause(&self) -> String {
        match self {
            Failure::Io(e) => format!("io: {}", e.kind()),
            Failure::Tls(e) => format!("tls: {e}"),
        }
    }
}

/// What a read found besides PDUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// The socket has no more bytes for now.
    WouldBlock,
    /// The peer closed (TCP FIN, or TLS close_notify).
    Closed,
}

/// Plaintext mode: what has not been written yet, and a partial PDU read.
#[derive(Debug, Default)]
pub struct Plain {
    out: Vec<u8>,
    written: usize,
    partial: Vec<u8>,
}

/// The transport of one connection.
#[derive(Debug)]
pub enum Transport {
    Tls(Box<ClientConnection>),
    Plain(Plain),
}

impl Outbox for Transport {
    fn send(&mut self, pdu: &Pdu) {
        self.queue(pdu.as_bytes());
    }
}

fn read_plain(plain: &mut Plain, sock: &mut TcpStream, pdus: &mut Vec<Pdu>) -> io::Result<ReadEnd> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return Ok(ReadEnd::Closed),
            Ok(n) => {
                let mut data = &buf[..n];
                if !plain.partial.is_empty() {
                    let need = PDU_LEN - plain.partial.len();
                    let take = need.min(data.len());
                    plain.partial.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if plain.partial.len() == PDU_LEN {
                        pdus.extend(Pdu::from_slice(&plain.partial));
                        plain.partial.clear();
                    }
                }
                let mut chunks = data.chunks_exact(PDU_LEN);
                for chunk in &mut chunks {
                    pdus.extend(Pdu::from_slice(chunk));
                }
                plain.partial.extend_from_slice(chunks.remainder());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadEnd::WouldBlock),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn read_tls(
    tls: &mut ClientConnection,
    sock: &mut TcpStream,
    pdus: &mut Vec<Pdu>,
) -> Result<ReadEnd, Failure> {
    let mut buf = [0u8; PDU_LEN];
    loop {
        let end = match tls.read_tls(sock) {
            Ok(0) => Some(ReadEnd::Closed),
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(ReadEnd::WouldBlock),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Io(e)),
        };
        let state = tls.process_new_packets().map_err(Failure::Tls)?;
        // Whole PDUs only: a partial one stays inside rustls until the rest arrives.
        let mut available = state.plaintext_bytes_to_read();
        while available >= PDU_LEN {
            tls.reader().read_exact(&mut buf).map_err(Failure::Io)?;
            pdus.push(Pdu::from_bytes(buf));
            available -= PDU_LEN;
        }
        if state.peer_has_closed() {
            return Ok(ReadEnd::Closed);
        }
        if let Some(end) = end {
            return Ok(end);
        }
    }
}

impl Transport {
    /// Queues bytes to send. rustls buffers them (also before the handshake ends: its
    /// buffer limit is lifted when the connection is made), plaintext keeps them here.
    pub fn queue(&mut self, bytes: &[u8]) {
        match self {
            Transport::Tls(tls) => {
                // With no buffer limit rustls takes everything; a short write would be a
                // rustls bug, so there is no loop to hide it.
                let _ = tls.writer().write(bytes);
            }
            Transport::Plain(plain) => plain.out.extend_from_slice(bytes),
        }
    }

    /// Reads until the socket would block or closes, appending every whole PDU to `pdus`.
    pub fn read(&mut self, sock: &mut TcpStream, pdus: &mut Vec<Pdu>) -> Result<ReadEnd, Failure> {
        match self {
            Transport::Tls(tls) => read_tls(tls, sock, pdus),
            Transport::Plain(plain) => read_plain(plain, sock, pdus).map_err(Failure::Io),
        }
    }

    /// Whether bytes wait to be written.
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Tls(tls) => tls.wants_write(),
            Transport::Plain(plain) => plain.written < plain.out.len(),
        }
    }

    /// Writes until everything is out (`Ok(true)`) or the socket would block (`Ok(false)`).
    pub fn flush(&mut self, sock: &mut TcpStream) -> Result<bool, Failure> {
        loop {
            let result = match self {
                Transport::Tls(tls) => {
                    if !tls.wants_write() {
                        return Ok(true);
                    }
                    tls.write_tls(sock)
                }
                Transport::Plain(plain) => {
                    if plain.written == plain.out.len() {
                        plain.out.clear();
                        plain.written = 0;
                        return Ok(true);
                    }
                    let r = sock.write(&plain.out[plain.written..]);
                    if let Ok(n) = r {
                        plain.written += n;
                    }
                    r
                }
            };
            match result {
                Ok(0) => return Err(Failure::Io(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Failure::Io(e)),
            }
        }
    }
}
