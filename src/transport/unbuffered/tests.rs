//! The unbuffered server TLS against rustls's ordinary (buffered) client, over in-memory
//! "sockets" that can hand bytes over in pieces and refuse writes, as a full socket does.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use rustls::ClientConnection;

use super::*;
use crate::tls;
use kaichat_proto::pdu::ByteOrder;

fn server_config() -> Arc<rustls::ServerConfig> {
    tls::server_config(&tls::dev_file(tls::DEV_CERT), &tls::dev_file(tls::DEV_KEY))
        .expect("the development certificate")
}

fn client_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in tls::load_certs(&tls::dev_file(tls::DEV_CA)).expect("the development CA") {
        roots.add(cert).expect("a CA certificate");
    }
    Arc::new(
        rustls::ClientConfig::builder_with_protocol_versions(versions)
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A socket's read side: hands out what was put in, at most `chunk` bytes a read, then
/// `WouldBlock`.
struct Inbound {
    bytes: Vec<u8>,
    chunk: usize,
}

impl Read for Inbound {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.bytes.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.chunk).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes.drain(..n);
        Ok(n)
    }
}

/// A socket's write side that takes at most `room` bytes until given more.
struct Outbound {
    bytes: Vec<u8>,
    room: usize,
}

impl Write for Outbound {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.room);
        self.bytes.extend_from_slice(&buf[..n]);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Pair {
    client: ClientConnection,
    server: UnbufferedTls,
    /// What the client sent and the server has not read yet.
    inbound: Inbound,
}

impl Pair {
    fn new(versions: &[&'static rustls::SupportedProtocolVersion], chunk: usize) -> Pair {
        Pair::with_client(client_config(versions), chunk)
    }

    fn with_client(config: Arc<rustls::ClientConfig>, chunk: usize) -> Pair {
        Pair::with_configs(config, server_config(), chunk)
    }

    fn with_configs(
        config: Arc<rustls::ClientConfig>,
        server: Arc<rustls::ServerConfig>,
        chunk: usize,
    ) -> Pair {
        let name = ServerName::try_from("localhost").expect("a name");
        Pair {
            client: ClientConnection::new(config, name).expect("a client"),
            server: UnbufferedTls::new(UnbufferedServerConnection::new(server).expect("a server")),
            inbound: Inbound {
                bytes: Vec::new(),
                chunk,
            },
        }
    }

    /// Client → server: everything the client has to send, read by the server in
    /// `chunk`-sized reads until `WouldBlock` (or until whole PDUs wait to be taken, as
    /// the reactor reads no more then).
    fn client_sends(&mut self) -> Result<(), TransportError> {
        while self.client.wants_write() {
            self.client
                .write_tls(&mut self.inbound.bytes)
                .expect("into a Vec");
        }
        loop {
            match self.server.fill(&mut self.inbound)? {
                Fill::Blocked | Fill::Closed | Fill::Full => return Ok(()),
                Fill::Progress | Fill::Drained => {}
            }
        }
    }

    /// The next PDU the server reads, reading on as the reactor does.
    fn server_pdu(&mut self) -> Option<Pdu> {
        loop {
            if let Some(pdu) = self.server.next_pdu() {
                return Some(pdu);
            }
            match self
                .server
                .fill(&mut self.inbound)
                .expect("the client's TLS")
            {
                Fill::Blocked | Fill::Closed | Fill::Full => return self.server.next_pdu(),
                Fill::Progress | Fill::Drained => {}
            }
        }
    }

    /// Server → client: everything the server has queued.
    fn server_sends(&mut self) {
        let mut socket = Outbound {
            bytes: Vec::new(),
            room: usize::MAX,
        };
        assert!(self.server.flush(&mut socket).expect("into memory"));
        self.client_receives(&socket.bytes);
    }

    /// The client reads and processes `wire`, bytes the server wrote.
    fn client_receives(&mut self, mut wire: &[u8]) {
        while !wire.is_empty() {
            self.client.read_tls(&mut wire).expect("from memory");
            self.client.process_new_packets().expect("the server's TLS");
        }
    }

    fn handshake(&mut self) {
        while self.client.is_handshaking() || self.server.is_handshaking() {
            self.client_sends().expect("the client's handshake");
            self.server_sends();
        }
        // The server's tickets, and anything else after its Finished.
        self.client_sends().expect("nothing");
        self.server_sends();
    }

    fn client_reads_pdu(&mut self) -> Pdu {
        let mut bytes = [0u8; PDU_LEN];
        self.client
            .reader()
            .read_exact(&mut bytes)
            .expect("a whole PDU");
        Pdu::from_bytes(bytes)
    }

    /// Whether the server's connection holds no buffer of its own.
    fn server_holds_nothing(&self) -> bool {
        self.server.incoming.buf.capacity() == 0
            && self.server.plain.buf.capacity() == 0
            && self.server.outgoing.buf.capacity() == 0
    }
}

fn pdus_both_ways(mut pair: Pair) -> Pair {
    pair.handshake();
    assert!(!pair.server.is_handshaking());
    let order = ByteOrder::Little;
    // Two PDUs in one write from the client: two records, maybe read in pieces.
    pair.client
        .writer()
        .write_all(Pdu::ping(order).as_bytes())
        .unwrap();
    pair.client
        .writer()
        .write_all(Pdu::query(order).as_bytes())
        .unwrap();
    pair.client_sends().expect("the client's records");
    assert_eq!(pair.server_pdu(), Some(Pdu::ping(order)));
    assert_eq!(pair.server_pdu(), Some(Pdu::query(order)));
    assert_eq!(pair.server_pdu(), None);
    pair.server.send(&Pdu::ping(order));
    pair.server.send(&Pdu::query(order));
    assert!(!pair.server.overflowed());
    assert!(pair.server.wants_write());
    pair.server_sends();
    assert_eq!(pair.client_reads_pdu(), Pdu::ping(order));
    assert_eq!(pair.client_reads_pdu(), Pdu::query(order));
    assert!(
        pair.server_holds_nothing(),
        "an idle connection keeps no buffer: {:?}",
        pair.server
    );
    pair
}

#[test]
fn tls_1_3_handshake_and_pdus_both_ways_then_no_buffer_is_held() {
    let pair = pdus_both_ways(Pair::new(&[&rustls::version::TLS13], 64 * 1024));
    assert_eq!(
        pair.client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

#[test]
fn tls_1_2_handshake_and_pdus_both_ways() {
    let pair = pdus_both_ways(Pair::new(&[&rustls::version::TLS12], 64 * 1024));
    assert_eq!(
        pair.client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[test]
fn records_arriving_a_few_bytes_at_a_time_are_put_together() {
    pdus_both_ways(Pair::new(&[&rustls::version::TLS13], 7));
    pdus_both_ways(Pair::new(&[&rustls::version::TLS12], 1));
}

#[test]
fn the_client_can_update_its_keys_and_the_server_follows() {
    let mut pair = pdus_both_ways(Pair::new(&[&rustls::version::TLS13], 64 * 1024));
    let order = ByteOrder::Little;
    for round in 0..3 {
        pair.client
            .refresh_traffic_keys()
            .expect("TLS 1.3 key update");
        pair.client
            .writer()
            .write_all(Pdu::query(order).as_bytes())
            .unwrap();
        pair.client_sends()
            .expect("a key update and a record under the new keys");
        assert_eq!(pair.server_pdu(), Some(Pdu::query(order)), "round {round}");
        pair.server.send(&Pdu::ping(order));
        pair.server_sends();
        assert_eq!(pair.client_reads_pdu(), Pdu::ping(order), "round {round}");
    }
}

#[test]
fn sessions_resume() {
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let config = client_config(&[version]);
        let server = server_config();
        // The first connection leaves a ticket (or a session id) in the client
        // configuration's cache.
        let first = Pair::with_configs(Arc::clone(&config), Arc::clone(&server), 64 * 1024);
        let first = pdus_both_ways(first);
        assert_eq!(
            first.client.handshake_kind(),
            Some(rustls::HandshakeKind::Full)
        );
        let pair = pdus_both_ways(Pair::with_configs(config, server, 64 * 1024));
        assert_eq!(
            pair.client.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed),
            "{version:?}"
        );
    }
}

#[test]
fn close_notify_both_ways() {
    let mut pair = pdus_both_ways(Pair::new(&[&rustls::version::TLS13], 64 * 1024));
    pair.client.send_close_notify();
    pair.client_sends().expect("close_notify");
    assert!(pair.server.peer_closed() && pair.server.closed_cleanly());
    assert_eq!(
        pair.server
            .fill(&mut Inbound {
                bytes: Vec::new(),
                chunk: 1
            })
            .unwrap(),
        Fill::Closed
    );
    // The server may still answer, then says goodbye itself.
    pair.server.send(&Pdu::ping(ByteOrder::Little));
    pair.server.close_notify();
    pair.server_sends();
    assert_eq!(pair.client_reads_pdu(), Pdu::ping(ByteOrder::Little));
    let state = pair.client.process_new_packets().expect("clean");
    assert!(state.peer_has_closed(), "the client saw close_notify");
}

#[test]
fn a_peer_that_breaks_tls_gets_an_error_and_an_alert() {
    let mut pair = Pair::new(&[&rustls::version::TLS13], 64 * 1024);
    pair.handshake();
    // A record of application data that does not decrypt.
    let mut garbage = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    garbage.extend_from_slice(&[0x55; 0x40]);
    let mut socket = Inbound {
        bytes: garbage,
        chunk: 4096,
    };
    let err = pair.server.fill(&mut socket).expect_err("a bad record");
    assert!(matches!(err, TransportError::Tls(_)), "{err:?}");
    assert!(
        pair.server.wants_write(),
        "the alert is queued for the peer"
    );
    let mut out = Outbound {
        bytes: Vec::new(),
        room: usize::MAX,
    };
    assert!(pair.server.flush(&mut out).unwrap());
    assert_eq!(out.bytes[0], 0x17, "the alert is an encrypted record");
}

#[test]
fn output_waits_for_a_full_socket_then_drains_and_is_released() {
    let mut pair = Pair::new(&[&rustls::version::TLS13], 64 * 1024);
    pair.handshake();
    let order = ByteOrder::Little;
    for _ in 0..8 {
        pair.server.send(&Pdu::query(order));
    }
    let queued = pair.server.queued();
    assert!(queued >= 8 * PDU_LEN, "{queued} bytes queued");
    let mut socket = Outbound {
        bytes: Vec::new(),
        room: 5000,
    };
    assert!(
        !pair.server.flush(&mut socket).unwrap(),
        "the socket is full"
    );
    assert_eq!(pair.server.queued(), queued - 5000);
    socket.room = usize::MAX;
    assert!(pair.server.flush(&mut socket).unwrap());
    assert_eq!(pair.server.queued(), 0);
    assert!(pair.server_holds_nothing());
    pair.client_receives(&socket.bytes);
    for _ in 0..8 {
        assert_eq!(pair.client_reads_pdu(), Pdu::query(order));
    }
}

#[test]
fn nothing_is_sent_before_the_handshake_is_done() {
    let mut pair = Pair::new(&[&rustls::version::TLS13], 64 * 1024);
    pair.server.send(&Pdu::ping(ByteOrder::Little));
    assert!(pair.server.overflowed());
}

/// Bytes of a small xorshift generator, so the garbage is the same each run.
fn garbage(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn garbage_instead_of_a_handshake_is_an_error_never_a_panic_or_a_loop() {
    for seed in 0..64u64 {
        let mut bytes = Vec::new();
        if seed % 2 == 0 {
            // A plausible handshake record header, then random bytes: rustls keeps what
            // it has processed of a handshake message and must see it again.
            bytes.extend_from_slice(&[0x16, 0x03, 0x01]);
            bytes.extend_from_slice(&((seed as u16 * 997) % 20000).to_be_bytes());
        }
        bytes.extend(garbage(seed, 1 + (seed as usize * 7919) % 30_000));
        for chunk in [1, 100, 4096, 64 * 1024] {
            let mut server = UnbufferedTls::new(
                UnbufferedServerConnection::new(server_config()).expect("a server"),
            );
            let mut socket = Inbound {
                bytes: bytes.clone(),
                chunk,
            };
            // Every read consumes input, so this ends: by an error, or by running dry
            // while rustls waits for the rest of a record.
            let mut reads = 0;
            let end = loop {
                reads += 1;
                assert!(reads <= bytes.len() + 2, "seed {seed}: no end");
                match server.fill(&mut socket) {
                    Err(e) => break Some(e),
                    Ok(Fill::Blocked) => break None,
                    Ok(Fill::Closed) => panic!("seed {seed}: closed without an error"),
                    Ok(_) => {}
                }
            };
            if end.is_some() {
                assert!(server.peer_closed(), "seed {seed}: nothing more is read");
                assert_eq!(server.fill(&mut socket).unwrap(), Fill::Closed);
                server.send(&Pdu::ping(ByteOrder::Little));
                assert!(server.overflowed());
                server.close_notify();
            }
        }
    }
}

#[test]
fn a_read_that_fills_its_room_is_progress_and_a_short_one_says_the_socket_is_drained() {
    let mut pair = Pair::new(&[&rustls::version::TLS13], 64 * 1024);
    pair.handshake();
    let order = ByteOrder::Little;
    // More than one read's room of records waits in the socket.
    let sent = 2 * READ_ROOM / PDU_LEN;
    for _ in 0..sent {
        pair.client
            .writer()
            .write_all(Pdu::query(order).as_bytes())
            .unwrap();
    }
    while pair.client.wants_write() {
        pair.client
            .write_tls(&mut pair.inbound.bytes)
            .expect("into a Vec");
    }
    assert_eq!(
        pair.server.fill(&mut pair.inbound).unwrap(),
        Fill::Progress,
        "the read filled its room: the socket may hold more"
    );
    let mut received = 0;
    loop {
        while pair.server.next_pdu().is_some() {
            received += 1;
        }
        match pair.server.fill(&mut pair.inbound).unwrap() {
            Fill::Progress => {}
            Fill::Drained => break,
            other => panic!("{other:?} before the socket was drained"),
        }
    }
    assert!(
        pair.inbound.bytes.is_empty(),
        "Drained only once all is read"
    );
    while pair.server.next_pdu().is_some() {
        received += 1;
    }
    assert_eq!(received, sent);
}
