//! Loopback round trips through the real reactor: `kaichat::server::Server` runs in a
//! background thread (one with TLS, one in plaintext), and one blocking client per server
//! times QUERY → up-to-date PDU, and PING → PONG.
//!
//! Run with `cargo bench --bench roundtrip`. Each figure is the whole path both ways:
//! client write, loopback TCP, the server's poll, read, TLS, session, answer, TLS, write,
//! and the client's read. The client's set-up (PING, version, CLIENT_INFO, JOIN) happens
//! once, outside the timed loop.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use kaichat::pdu::{ByteOrder, Command, Decoded, Pdu, PDU_LEN, PROTOCOL_VERSION};
use kaichat::server::{Config, Server};
use kaichat::session::Deadlines;
use kaichat::tls;

const ORDER: ByteOrder = ByteOrder::Little;
const CHANNEL: &[u8] = b"@bench";

/// Starts a server on an ephemeral loopback port in a thread that lives as long as the
/// process, and returns its address.
fn start_server(tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
    let name = if tls.is_some() {
        "server-tls"
    } else {
        "server-plain"
    };
    let (bound, address) = mpsc::channel();
    thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let config = Config {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                tls,
                deadlines: Deadlines::default(),
                history: 1000,
                replay: 20,
                max_clients: 64,
                stats_interval: 0,
            };
            let mut server = match Server::bind(config) {
                Ok(server) => server,
                Err(e) => {
                    let _ = bound.send(Err(e));
                    return;
                }
            };
            let _ = bound.send(server.local_addr());
            // `Server::bind` took SIGINT and SIGTERM over; `run` returns on them. End the
            // process as the signal would have, so that Ctrl-C still stops the bench.
            let _ = server.run();
            std::process::exit(130);
        })
        .expect("cannot spawn the server thread");
    address
        .recv()
        .expect("the server thread ended before binding")
        .expect("cannot bind the bench server on 127.0.0.1")
}

/// A blocking client over any stream (TLS or plaintext).
struct Client<S> {
    stream: S,
}

impl<S: Read + Write> Client<S> {
    fn send(&mut self, pdu: &Pdu) -> io::Result<()> {
        self.stream.write_all(pdu.as_bytes())?;
        self.stream.flush()
    }

    fn expect(&mut self, command: Command) -> Pdu {
        let mut bytes = [0u8; PDU_LEN];
        self.stream
            .read_exact(&mut bytes)
            .expect("the server closed the connection");
        let pdu = Pdu::from_bytes(bytes);
        match pdu.decode_command(Some(ORDER)) {
            Decoded::Known { command: got, .. } if got == command => pdu,
            other => panic!("expected {command:?}, got {other:?}: {pdu:?}"),
        }
    }

    /// Set-up and JOIN, then a first QUERY to read the channel's replay.
    fn set_up(&mut self, name: &[u8]) {
        self.send(&Pdu::ping(ORDER)).expect("send PING");
        self.expect(Command::PingPong);
        self.expect(Command::VersionNegotiation);
        self.send(&Pdu::client_version(ORDER, PROTOCOL_VERSION))
            .expect("send version");
        self.send(&Pdu::client_info(ORDER, name))
            .expect("send CLIENT_INFO");
        self.expect(Command::ClientInfo);
        self.send(&Pdu::join(ORDER, name, CHANNEL))
            .expect("send JOIN");
        self.expect(Command::JoinChannel);
        self.send(&Pdu::query(ORDER)).expect("send QUERY");
        while !self.expect(Command::ReceiveMessage).up_to_date() {}
    }

    /// QUERY on a channel with nothing new: the answer is the up-to-date PDU alone.
    fn query(&mut self) {
        self.send(&Pdu::query(ORDER)).expect("send QUERY");
        let answer = self.expect(Command::ReceiveMessage);
        assert!(answer.up_to_date(), "unexpected backlog: {answer:?}");
    }

    fn ping(&mut self) {
        self.send(&Pdu::ping(ORDER)).expect("send PING");
        self.expect(Command::PingPong);
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let socket = TcpStream::connect(addr).expect("cannot connect to the bench server");
    socket.set_nodelay(true).expect("TCP_NODELAY");
    socket
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_client(addr: SocketAddr) -> Client<TlsStream> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = tls::client_config(&tls::Trust {
        ca: Some(root.join(tls::DEV_CA)),
        system_roots: false,
    })
    .expect("client TLS configuration");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let conn = rustls::ClientConnection::new(config, name).expect("TLS client");
    let mut client = Client {
        stream: rustls::StreamOwned::new(conn, connect(addr)),
    };
    client.set_up(b"bench");
    client
}

fn plain_client(addr: SocketAddr) -> Client<TcpStream> {
    let mut client = Client {
        stream: connect(addr),
    };
    client.set_up(b"bench");
    client
}

fn roundtrip(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let server_tls = tls::server_config(&root.join(tls::DEV_CERT), &root.join(tls::DEV_KEY))
        .expect("server TLS configuration");
    let mut tls = tls_client(start_server(Some(server_tls)));
    let mut plain = plain_client(start_server(None));

    let mut group = c.benchmark_group("roundtrip_query");
    group.bench_function("tls", |b| b.iter(|| tls.query()));
    group.bench_function("plaintext", |b| b.iter(|| plain.query()));
    group.finish();

    let mut group = c.benchmark_group("roundtrip_ping");
    group.bench_function("tls", |b| b.iter(|| tls.ping()));
    group.bench_function("plaintext", |b| b.iter(|| plain.ping()));
    group.finish();
}

criterion_group! {
    name = benches;
    // Modest times: the whole file runs in well under a minute on a 2-core machine.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = roundtrip
}
criterion_main!(benches);
