//! The connection to the server: TCP connect, the TLS handshake (or plaintext), PDU framing
//! on a blocking socket with a short read timeout, and the errors a person can act on
//! ("not reachable", "certificate not trusted: pass --ca").
//!
//! It knows bytes and PDUs, never what they mean: that is `kaichat_proto::client`.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use kaichat_proto::pdu::{Pdu, PDU_LEN};
use rustls::pki_types::ServerName;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why no connection could be made. The texts are shown after `kaichat: `.
#[derive(Debug)]
pub enum ConnectError {
    Resolve { server: String, error: io::Error },
    Unreachable { server: String, error: io::Error },
    NotTrusted { server: String, detail: String },
    Tls { server: String, detail: String },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Resolve { server, error } => {
                write!(f, "cannot resolve the server name {server}: {error}")
            }
            ConnectError::Unreachable { server, error } => write!(
                f,
                "cannot reach the server at {server}: {error} (is kaichat-server running there?)"
            ),
            ConnectError::NotTrusted { server, detail } => write!(
                f,
                "the TLS certificate of {server} is not trusted ({detail}); \
                 pass the CA that signed it with --ca PEM, e.g. --ca certs/ca.pem"
            ),
            ConnectError::Tls { server, detail } => {
                write!(f, "TLS with {server} failed: {detail}")
            }
        }
    }
}

enum Transport {
    Tls {
        conn: Box<rustls::ClientConnection>,
        sock: TcpStream,
    },
    Plain(TcpStream),
}

/// One connection, framed in PDUs.
pub struct Link {
    transport: Transport,
    /// A PDU being received: partial PDUs are normal (contract section 1).
    pending: Box<[u8; PDU_LEN]>,
    filled: usize,
}

/// What one read attempt gave.
pub enum Received {
    Pdu(Box<Pdu>),
    /// Nothing whole within the read timeout.
    Nothing,
    /// The server closed the connection.
    Closed,
}

fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, ConnectError> {
    let server = display_server(host, port);
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|error| ConnectError::Resolve {
            server: server.clone(),
            error,
        })?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address found");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(sock) => {
                // PDUs are written whole; no reason to wait for more.
                let _ = sock.set_nodelay(true);
                return Ok(sock);
            }
            Err(e) => last = e,
        }
    }
    Err(ConnectError::Unreachable {
        server,
        error: last,
    })
}

/// `host:port`, with brackets around an IPv6 address.
pub fn display_server(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn tls_error(server: &str, error: io::Error) -> ConnectError {
    let server = server.to_string();
    let inner = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(cert)) => ConnectError::NotTrusted {
            server,
            detail: certificate_problem(cert),
        },
        Some(other) => ConnectError::Tls {
            server,
            detail: other.to_string(),
        },
        None => match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ConnectError::Tls {
                server,
                detail: "no TLS answer in time (is it a plaintext server? then pass --plaintext)"
                    .to_string(),
            },
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => ConnectError::Tls {
                server,
                detail: "the server closed the connection during the handshake".to_string(),
            },
            _ => ConnectError::Tls {
                server,
                detail: error.to_string(),
            },
        },
    }
}

fn certificate_problem(error: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match error {
        E::UnknownIssuer => "signed by an unknown certificate authority".to_string(),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "issued for another host name".to_string()
        }
        E::Expired | E::ExpiredContext { .. } => "expired".to_string(),
        E::BadSignature => "bad signature".to_string(),
        other => format!("{other:?}"),
    }
}

impl Link {
    /// Connects, and completes the TLS handshake when `tls` is given.
    pub fn connect(
        host: &str,
        port: u16,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Link, ConnectError> {
        let server = display_server(host, port);
        let mut sock = tcp_connect(host, port)?;
        let _ = sock.set_write_timeout(Some(WRITE_TIMEOUT));
        let transport = match tls {
            None => Transport::Plain(sock),
            Some(config) => {
                let name =
                    ServerName::try_from(host.to_string()).map_err(|e| ConnectError::Tls {
                        server: server.clone(),
                        detail: format!("{host} is not a valid TLS server name: {e}"),
                    })?;
                let mut conn =
                    rustls::ClientConnection::new(config, name).map_err(|e| ConnectError::Tls {
                        server: server.clone(),
                        detail: e.to_string(),
                    })?;
                let _ = sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
                while conn.is_handshaking() {
                    conn.complete_io(&mut sock)
                        .map_err(|e| tls_error(&server, e))?;
                }
                Transport::Tls {
                    conn: Box::new(conn),
                    sock,
                }
            }
        };
        Ok(Link {
            transport,
            pending: Box::new([0u8; PDU_LEN]),
            filled: 0,
        })
    }

    /// How long a read waits when nothing arrives; the network loop wakes at least this
    /// often to look at commands and timers.
    pub fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.socket().set_read_timeout(Some(timeout))
    }

    fn socket(&self) -> &TcpStream {
        match &self.transport {
            Transport::Tls { sock, .. } => sock,
            Transport::Plain(sock) => sock,
        }
    }

    /// Writes all of `bytes` (whole PDUs) to the server.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.transport {
            Transport::Plain(sock) => sock.write_all(bytes),
            Transport::Tls { conn, sock } => {
                conn.writer().write_all(bytes)?;
                while conn.wants_write() {
                    conn.write_tls(sock)?;
                }
                sock.flush()
            }
        }
    }

    /// Reads until a whole PDU is there, the read timeout passes, or the server closes.
    pub fn receive(&mut self) -> io::Result<Received> {
        while self.filled < PDU_LEN {
            let read = match &mut self.transport {
                Transport::Plain(sock) => sock.read(&mut self.pending[self.filled..]),
                Transport::Tls { conn, sock } => {
                    read_plaintext(conn, sock, &mut self.pending[self.filled..])
                }
            };
            match read {
                Ok(0) => return Ok(Received::Closed),
                Ok(n) => self.filled += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(Received::Nothing)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Received::Closed),
                Err(e) => return Err(e),
            }
        }
        self.filled = 0;
        Ok(Received::Pdu(Box::new(Pdu::from_bytes(*self.pending))))
    }

    /// Ends the connection politely: TLS close_notify, then the socket's write side.
    pub fn close(&mut self) {
        if let Transport::Tls { conn, sock } = &mut self.transport {
            conn.send_close_notify();
            while conn.wants_write() {
                if conn.write_tls(sock).is_err() {
                    break;
                }
            }
        }
        let _ = self.socket().shutdown(std::net::Shutdown::Write);
    }
}

/// Plaintext from rustls, reading TLS records from the socket as needed. `Ok(0)` is a clean
/// close (close_notify or EOF); a read timeout comes back as `WouldBlock`.
fn read_plaintext(
    conn: &mut rustls::ClientConnection,
    sock: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match conn.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let n = conn.read_tls(sock)?;
        conn.process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // Alerts or key updates may want an answer.
        while conn.wants_write() {
            conn.write_tls(sock)?;
        }
        if n == 0 {
            // EOF: the reader now says whether it was clean; nothing more will come.
            return match conn.reader().read(buf) {
                Ok(n) => Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                Err(e) => Err(e),
            };
        }
    }
}
