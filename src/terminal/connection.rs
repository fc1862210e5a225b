//! One connection to the server, on the network thread's `mio::Poll`: a non-blocking
//! connect that tries each address the name resolves to, TLS (or plaintext) through the
//! project's shared [`Transport`], whole PDUs in, bytes out, and why it ended, in words a
//! person can act on ("not reachable", "certificate not valid for this name").
//!
//! It knows bytes and PDUs, never what they mean: that is `kaichat_proto::client`.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kaichat_proto::client::Waiting;
use kaichat_proto::pdu::Pdu;
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::pki_types::ServerName;
use rustls::ClientConnection;

use crate::transport::{Fill, Transport, TransportError};

/// How long one address may take to accept the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the TLS handshake may take once TCP is connected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to connect, and how.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// TLS with this configuration; `None` is plaintext.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The CA file trusted besides the system's roots, or where the development CA was
    /// looked for when none was found: named when a certificate is not trusted.
    pub ca: CaFile,
}

/// The CA file the client trusts, for the error that says which one to pass instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaFile {
    /// `--ca PEM` was given.
    Given(PathBuf),
    /// The bundled development CA, found there.
    Development(PathBuf),
    /// No `--ca`, and the development CA is not where it was looked for.
    NotFound(PathBuf),
}

impl Target {
    /// `host:port`, with brackets around an IPv6 address.
    pub fn display(&self) -> String {
        display_server(&self.host, self.port)
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub fn display_server(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Why a connection could not be made, or ended.
#[derive(Debug)]
pub enum Cause {
    /// The host name does not resolve.
    Resolve(io::Error),
    /// No address accepted the TCP connection (the last address's error).
    Unreachable(io::Error),
    /// The host name is not a valid TLS server name.
    BadName(String),
    /// No TLS answer in time.
    NoTlsAnswer,
    /// The server's certificate was refused.
    Certificate(rustls::CertificateError),
    /// Another TLS failure.
    Tls(rustls::Error),
    /// The socket failed once connected (reset, broken pipe...).
    Io(io::Error),
    /// The server closed the connection; `cleanly` when it said goodbye first (TLS
    /// close_notify), as it does on a deadline, a QUIT or a shutdown.
    Closed { cleanly: bool },
    /// A deadline of the client state machine passed: the server did not answer in time.
    Deadline(Waiting),
    /// Setting up again, the server refused our name: most likely the lost connection
    /// still holds it, until the server notices that it is gone.
    NameRefused { name: String, reason: String },
}

impl Cause {
    /// Whether trying again later may work (a refused certificate will not).
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            Cause::BadName(_) | Cause::Certificate(_) | Cause::Tls(_)
        )
    }
}

/// A [`Cause`] told for one server and trust setting: the text after `kaichat: `.
pub struct Explained<'a> {
    pub cause: &'a Cause,
    pub target: &'a Target,
}

impl fmt::Display for Explained<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let server = self.target.display();
        let host = &self.target.host;
        match self.cause {
            Cause::Resolve(e) => write!(f, "cannot resolve the server name {host}: {e}"),
            Cause::Unreachable(e) => write!(
                f,
                "cannot reach the server at {server}: {e} (is kaichat-server running there?)"
            ),
            Cause::BadName(e) => write!(f, "{host} is not a valid TLS server name: {e}"),
            Cause::NoTlsAnswer => write!(
                f,
                "no TLS answer from {server} in time (is it a plaintext server? then pass --plaintext)"
            ),
            Cause::Certificate(e) => certificate_problem(f, e, &server, host, &self.target.ca),
            Cause::Tls(e) => write!(f, "TLS with {server} failed: {e}"),
            Cause::Io(e) => write!(f, "the connection to {server} failed: {e}"),
            Cause::Closed { cleanly: true } => write!(f, "the server closed the connection"),
            Cause::Closed { cleanly: false } => write!(
                f,
                "the connection was cut (the server stopped without saying goodbye, or the network failed)"
            ),
            Cause::Deadline(waiting) => write!(
                f,
                "the server did not answer in time (timed out waiting for {waiting})"
            ),
            Cause::NameRefused { name, reason } => write!(
                f,
                "the server refused the name {name} ({reason}); the lost connection may hold \
                 it until the server notices that it is gone"
            ),
        }
    }
}

fn certificate_problem(
    f: &mut fmt::Formatter<'_>,
    error: &rustls::CertificateError,
    server: &str,
    host: &str,
    ca: &CaFile,
) -> fmt::Result {
    use rustls::CertificateError as E;
    match error {
        // Another CA would not help: the name is wrong, or the certificate is.
        E::NotValidForName => write!(f, "the server's certificate is not valid for '{host}'"),
        E::NotValidForNameContext { presented, .. } => write!(
            f,
            "the server's certificate is not valid for '{host}' (it is for {}); \
             connect with one of those names",
            presented
                .iter()
                .map(|name| plain_name(name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        E::Expired | E::ExpiredContext { .. } => {
            write!(f, "the TLS certificate of {server} has expired")
        }
        E::NotValidYet | E::NotValidYetContext { .. } => {
            write!(f, "the TLS certificate of {server} is not valid yet")
        }
        other => {
            let detail = match other {
                E::UnknownIssuer => "signed by an unknown certificate authority".to_string(),
                E::BadSignature => "bad signature".to_string(),
                other => format!("{other:?}"),
            };
            write!(
                f,
                "the TLS certificate of {server} is not trusted ({detail}); "
            )?;
            match ca {
                CaFile::Given(path) => write!(
                    f,
                    "{} did not sign it: pass the CA that did with --ca PEM",
                    path.display()
                ),
                CaFile::Development(path) => write!(
                    f,
                    "neither the system's roots nor the development CA {} signed it: \
                     pass the CA that did with --ca PEM",
                    path.display()
                ),
                CaFile::NotFound(path) => write!(
                    f,
                    "pass the CA that signed it with --ca PEM (the development CA was not \
                     found at {}; for a development server pass its certs/ca.pem)",
                    path.display()
                ),
            }
        }
    }
}

/// What [`Connection::progress`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Still connecting, or nothing new.
    Waiting,
    /// Whole PDUs were appended (and more may come).
    Pdus,
}

/// One connection: a socket registered with the network thread's `Poll`, and its
/// transport. Readiness is kept in user space (mio is edge-triggered): a flag is set by an
/// event and cleared only when the socket says `WouldBlock`.
pub struct Connection {
    socket: TcpStream,
    transport: Transport<ClientConnection>,
    token: Token,
    addrs: Vec<SocketAddr>,
    /// The address being tried.
    addr: usize,
    connected: bool,
    readable: bool,
    writable: bool,
    /// Until when the current step (TCP connect, then TLS handshake) may take.
    step_deadline: Option<Instant>,
    last_error: Option<io::Error>,
    /// Our write side is shut.
    shut: bool,
}

impl Connection {
    /// Resolves the server's name and starts connecting to its first address. What is
    /// written to [`Connection::transport`] before the connection is up waits in it.
    pub fn open(
        target: &Target,
        registry: &Registry,
        token: Token,
        now: Instant,
    ) -> Result<Connection, Cause> {
        let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map_err(Cause::Resolve)?
            .collect();
        let transport = match &target.tls {
            None => Transport::plain(),
            Some(config) => {
                let name = ServerName::try_from(target.host.clone())
                    .map_err(|e| Cause::BadName(e.to_string()))?;
                let mut conn =
                    ClientConnection::new(Arc::clone(config), name).map_err(Cause::Tls)?;
                // What is queued before the handshake (PING, or messages typed while
                // reconnecting) waits in rustls: never let a write into it be short.
                conn.set_buffer_limit(None);
                Transport::tls(conn)
            }
        };
        let mut last_error = None;
        for (i, &addr) in addrs.iter().enumerate() {
            match start_connect(addr, registry, token) {
                Ok(socket) => {
                    return Ok(Connection {
                        socket,
                        transport,
                        token,
                        addrs,
                        addr: i,
                        connected: false,
                        readable: false,
                        writable: false,
                        step_deadline: Some(now + CONNECT_TIMEOUT),
                        last_error: None,
                        shut: false,
                    })
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(Cause::Unreachable(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the name has no address")
        })))
    }

    /// Where PDUs to send go; they leave at the next [`Connection::progress`].
    pub fn transport(&mut self) -> &mut Transport<ClientConnection> {
        &mut self.transport
    }

    /// Whether TCP is connected (TLS may still be handshaking).
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Takes one readiness event for this connection's token.
    pub fn on_event(&mut self, event: &Event) {
        // Errors and hang-ups are found by the read or write they make fail.
        self.readable |= event.is_readable() || event.is_read_closed() || event.is_error();
        self.writable |= event.is_writable() || event.is_write_closed() || event.is_error();
    }

    /// When [`Connection::progress`] must run even without an event (a connect or
    /// handshake deadline).
    pub fn deadline(&self) -> Option<Instant> {
        self.step_deadline
    }

    /// Moves the connection forward: completes the connect (trying the next address on
    /// failure), reads every whole PDU the socket has into `pdus`, and writes what is
    /// queued. An error means the connection is over; PDUs that came before it are in
    /// `pdus` all the same.
    pub fn progress(
        &mut self,
        registry: &Registry,
        now: Instant,
        pdus: &mut Vec<Pdu>,
    ) -> Result<Progress, Cause> {
        if !self.connected && !self.finish_connect(registry, now)? {
            return Ok(Progress::Waiting);
        }
        let before = pdus.len();
        let read = self.read(pdus);
        // Answers to what was read (TLS handshake messages, alerts) and what was queued.
        let written = self.flush();
        read?;
        written?;
        if self.transport.is_handshaking() {
            if self.step_deadline.is_some_and(|d| now >= d) {
                return Err(Cause::NoTlsAnswer);
            }
        } else {
            self.step_deadline = None;
        }
        if pdus.len() > before {
            return Ok(Progress::Pdus);
        }
        if self.transport.peer_closed() {
            return Err(Cause::Closed {
                cleanly: self.transport.closed_cleanly(),
            });
        }
        Ok(Progress::Waiting)
    }

    /// Whether the connect is complete; moves on to the next address when this one failed.
    fn finish_connect(&mut self, registry: &Registry, now: Instant) -> Result<bool, Cause> {
        let timed_out = self.step_deadline.is_some_and(|d| now >= d);
        if self.writable || timed_out {
            // mio's documented way to learn how a non-blocking connect went.
            let outcome = match self.socket.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => match self.socket.peer_addr() {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected && !timed_out => Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::TimedOut.into())
                    }
                    Err(e) => Err(e),
                },
            };
            match outcome {
                Ok(true) => {
                    self.connected = true;
                    let _ = self.socket.set_nodelay(true);
                    self.step_deadline = Some(now + HANDSHAKE_TIMEOUT);
                    return Ok(true);
                }
                Ok(false) => self.writable = false,
                Err(e) => {
                    self.last_error = Some(e);
                    self.next_address(registry, now)?;
                }
            }
        }
        Ok(false)
    }

    fn next_address(&mut self, registry: &Registry, now: Instant) -> Result<(), Cause> {
        let _ = registry.deregister(&mut self.socket);
        while self.addr + 1 < self.addrs.len() {
            self.addr += 1;
            match start_connect(self.addrs[self.addr], registry, self.token) {
                Ok(socket) => {
                    self.socket = socket;
                    self.readable = false;
                    self.writable = false;
                    self.step_deadline = Some(now + CONNECT_TIMEOUT);
                    return Ok(());
                }
                Err(e) => self.last_error = Some(e),
            }
        }
        Err(Cause::Unreachable(self.last_error.take().unwrap_or_else(
            || io::Error::new(io::ErrorKind::NotConnected, "connection failed"),
        )))
    }

    /// Reads until the socket has nothing more (or closed), taking out whole PDUs.
    fn read(&mut self, pdus: &mut Vec<Pdu>) -> Result<(), Cause> {
        while self.readable {
            while let Some(pdu) = self.transport.next_pdu() {
                pdus.push(pdu);
            }
            if self.transport.peer_closed() {
                self.readable = false;
                break;
            }
            match self.transport.fill(&mut self.socket) {
                Ok(Fill::Progress | Fill::Full | Fill::Closed) => {}
                Ok(Fill::Drained | Fill::Blocked) => self.readable = false,
                Err(e) => {
                    while let Some(pdu) = self.transport.next_pdu() {
                        pdus.push(pdu);
                    }
                    return Err(transport_cause(e));
                }
            }
        }
        while let Some(pdu) = self.transport.next_pdu() {
            pdus.push(pdu);
        }
        Ok(())
    }

    /// Writes what is queued, as far as the socket takes it.
    fn flush(&mut self) -> Result<(), Cause> {
        if self.writable && self.transport.wants_write() {
            match self.transport.flush(&mut self.socket) {
                Ok(true) => {}
                Ok(false) => self.writable = false,
                Err(e) => return Err(transport_cause(e)),
            }
        }
        Ok(())
    }

    /// Whether everything queued has been written.
    pub fn is_flushed(&self) -> bool {
        !self.transport.wants_write()
    }

    /// Whether there is output and the socket can take some: [`Connection::progress`]
    /// would write.
    pub fn can_write(&self) -> bool {
        self.connected && self.writable && self.transport.wants_write()
    }

    /// Says goodbye: a TLS close_notify goes out with whatever is still queued, and the
    /// socket's write side is shut once it is written ([`Connection::shut_write`]).
    pub fn close_notify(&mut self) {
        self.transport.close_notify();
    }

    /// Leaves the poll; the socket closes when the connection is dropped.
    pub fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.socket);
    }

    /// Ends our side of the TCP connection (after the last bytes), once.
    pub fn shut_write(&mut self) {
        if !self.shut {
            self.shut = true;
            let _ = self.socket.shutdown(std::net::Shutdown::Write);
        }
    }
}

/// A certificate name as webpki reports it (`DnsName("a.example")`, `IpAddress(0::1)`),
/// as a person would write it.
fn plain_name(presented: &str) -> String {
    if let Some(dns) = presented
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
    {
        return dns.to_string();
    }
    let ip = presented
        .strip_prefix("IpAddress(")
        .and_then(|rest| rest.strip_suffix(')'));
    match ip.map(|ip| (ip, ip.parse::<std::net::IpAddr>())) {
        Some((_, Ok(ip))) => ip.to_string(),
        Some((ip, Err(_))) => ip.to_string(),
        None => presented.to_string(),
    }
}

fn start_connect(addr: SocketAddr, registry: &Registry, token: Token) -> io::Result<TcpStream> {
    let mut socket = TcpStream::connect(addr)?;
    registry.register(&mut socket, token, Interest::READABLE | Interest::WRITABLE)?;
    Ok(socket)
}

fn transport_cause(error: TransportError) -> Cause {
    match error {
        TransportError::Tls(rustls::Error::InvalidCertificate(e)) => Cause::Certificate(e),
        TransportError::Tls(e) => Cause::Tls(e),
        TransportError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Cause::Closed { cleanly: false }
        }
        TransportError::Io(e) => Cause::Io(e),
    }
}

#[cfg(test)]
mod tests;
