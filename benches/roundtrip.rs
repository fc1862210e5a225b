//! Loopback round trips through the real reactor: `kaichat::server::Server` runs in a
//! background thread (one with TLS, one in plaintext, each stopped through its shutdown
//! handle at the end), and one blocking client per server times QUERY → up-to-date PDU,
//! and PING → PONG.
//!
//! Run with `cargo bench --bench roundtrip`. Each figure is the whole path both ways:
//! client write, loopback TCP, the server's poll, read, TLS, session, answer, TLS, write,
//! and the client's read. The client's set-up (PING, version, CLIENT_INFO, JOIN) happens
//! once, outside the timed loop.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use kaichat::server::{Config, Server, Shutdown};
use kaichat::tls;
use kaichat_proto::names::ChannelName;
use kaichat_proto::pdu::{ByteOrder, Command, Decoded, Pdu, PDU_LEN, PROTOCOL_VERSION};

const ORDER: ByteOrder = ByteOrder::Little;
const CHANNEL: &[u8] = b"@bench";

/// A server on an ephemeral loopback port, running in a thread until it is stopped.
struct BenchServer {
    addr: SocketAddr,
    shutdown: Shutdown,
    thread: thread::JoinHandle<()>,
}

impl BenchServer {
    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> BenchServer {
        let config = Config {
            max_clients: 64,
            ..Config::new(SocketAddr::from(([127, 0, 0, 1], 0)), tls)
        };
        let mut server = Server::bind(config).expect("cannot bind the bench server on 127.0.0.1");
        let addr = server.local_addr().expect("bound address");
        let shutdown = server.shutdown_handle();
        let thread = thread::Builder::new()
            .name("server".to_string())
            .spawn(move || {
                server.run().expect("the bench server's loop failed");
            })
            .expect("cannot spawn the server thread");
        BenchServer {
            addr,
            shutdown,
            thread,
        }
    }

    /// Stops the loop the way SIGTERM would, and waits for it.
    fn stop(self) {
        self.shutdown.trigger();
        self.thread.join().expect("the server thread panicked");
    }
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
        let channel = ChannelName::new(CHANNEL).expect("a valid channel name");
        self.send(&Pdu::join(ORDER, name, &channel))
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
        roots: Vec::new(),
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
    let tls_server = BenchServer::start(Some(server_tls));
    let plain_server = BenchServer::start(None);
    let mut tls = tls_client(tls_server.addr);
    let mut plain = plain_client(plain_server.addr);

    let mut group = c.benchmark_group("roundtrip_query");
    group.bench_function("tls", |b| b.iter(|| tls.query()));
    group.bench_function("plaintext", |b| b.iter(|| plain.query()));
    group.finish();

    let mut group = c.benchmark_group("roundtrip_ping");
    group.bench_function("tls", |b| b.iter(|| tls.ping()));
    group.bench_function("plaintext", |b| b.iter(|| plain.ping()));
    group.finish();

    drop((tls, plain));
    tls_server.stop();
    plain_server.stop();
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
