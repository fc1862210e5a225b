//! The link against loopback sockets that stand in for Redis (a std listener that writes
//! raw bytes, or nothing at all) and a clock the test moves: backoff, address rotation,
//! frame boundaries, ordering of events, and the bounds. Real Redis: tests/cluster_link.rs.

use std::io::Write as _;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use mio::{Events, Poll};

use super::*;

const TOKEN: Token = Token(7);

fn url(addr: SocketAddr, tls: bool) -> RedisUrl {
    RedisUrl {
        tls,
        host: addr.ip().to_string(),
        port: addr.port(),
        username: None,
        password: None,
        db: 0,
    }
}

/// A loopback address where nothing listens.
fn refused() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

struct Rig {
    poll: Poll,
    events: Events,
    link: Link,
}

impl Rig {
    fn new(addr: SocketAddr) -> Rig {
        Rig::with(Link::new(&url(addr, false), TOKEN, None).unwrap())
    }

    fn with(link: Link) -> Rig {
        Rig {
            poll: Poll::new().unwrap(),
            events: Events::with_capacity(16),
            link,
        }
    }

    /// Ticks at `now` if due, then polls once (20 ms at most) and hands the link its
    /// events; the clock stands still. Adds what the link said to `said`.
    fn pump(&mut self, now: u64, said: &mut Vec<LinkEvent>) {
        if self.link.next_deadline().is_some_and(|due| due <= now) {
            self.link.tick(self.poll.registry(), now);
        }
        while let Some(event) = self.link.next_event() {
            said.push(event);
        }
        self.poll
            .poll(&mut self.events, Some(Duration::from_millis(20)))
            .unwrap();
        for event in self.events.iter() {
            assert_eq!(event.token(), TOKEN, "registered under the link's token");
            self.link.on_ready(event, self.poll.registry(), now);
        }
        while let Some(event) = self.link.next_event() {
            said.push(event);
        }
    }

    /// Pumps at `now` until `done` holds for what the link said, at most 5 s; returns
    /// everything it said.
    fn until(&mut self, now: u64, done: impl Fn(&[LinkEvent]) -> bool) -> Vec<LinkEvent> {
        let mut said = Vec::new();
        let give_up = Instant::now() + Duration::from_secs(5);
        while !done(&said) {
            assert!(Instant::now() < give_up, "the link said only {said:?}");
            self.pump(now, &mut said);
        }
        said
    }
}

fn has_connected(said: &[LinkEvent]) -> bool {
    said.iter().any(|e| matches!(e, LinkEvent::Connected(_)))
}

fn has_unreachable(said: &[LinkEvent]) -> bool {
    said.iter()
        .any(|e| matches!(e, LinkEvent::Unreachable { .. }))
}

fn has_disconnected(said: &[LinkEvent]) -> bool {
    said.iter()
        .any(|e| matches!(e, LinkEvent::Disconnected { .. }))
}

fn frames(said: &[LinkEvent]) -> Vec<&OwnedFrame> {
    said.iter()
        .filter_map(|e| match e {
            LinkEvent::Frame(frame) => Some(frame),
            _ => None,
        })
        .collect()
}

fn simple(text: &str) -> OwnedFrame {
    OwnedFrame::SimpleString {
        data: text.as_bytes().to_vec(),
        attributes: None,
    }
}

#[test]
fn the_first_attempt_is_due_at_once() {
    let link = Link::new(&url(refused(), false), TOKEN, None).unwrap();
    assert_eq!(link.next_deadline(), Some(0));
    assert!(!link.is_up());
}

#[test]
fn failed_attempts_back_off_from_100_ms_doubling_to_5_s() {
    let mut rig = Rig::new(refused());
    let mut now = 0;
    let mut waits = Vec::new();
    for _ in 0..8 {
        let said = rig.until(now, has_unreachable);
        let [LinkEvent::Unreachable {
            error: LinkError::Io(e),
            retry_at,
            ..
        }] = said.as_slice()
        else {
            panic!("{said:?}");
        };
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(rig.link.next_deadline(), Some(*retry_at));
        waits.push(retry_at - now);
        now = *retry_at;
    }
    assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
}

#[test]
fn the_next_address_is_tried_at_once_then_the_backoff_starts_over_the_list() {
    let redis = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = refused();
    let mut rig = Rig::new(dead);
    rig.link.addrs = vec![dead, redis.local_addr().unwrap()];
    let said = rig.until(1000, has_connected);
    assert!(
        matches!(&said[..], [LinkEvent::Unreachable { addr, retry_at: 1000, .. }, LinkEvent::Connected(up)]
            if *addr == dead && *up == redis.local_addr().unwrap()),
        "{said:?}"
    );
}

#[test]
fn frames_are_cut_where_they_end_whatever_the_reads() {
    let redis = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut rig = Rig::new(redis.local_addr().unwrap());
    assert!(rig.until(0, has_connected).len() == 1);
    let (mut peer, _) = redis.accept().unwrap();
    // Two frames and the start of a third, then the rest of it.
    peer.write_all(b"+OK\r\n$5\r\nhel").unwrap();
    let said = rig.until(0, |said| !said.is_empty());
    assert_eq!(frames(&said), [&simple("OK")]);
    peer.write_all(b"lo\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx")
        .unwrap();
    let said = rig.until(0, |said| !said.is_empty());
    assert_eq!(
        frames(&said),
        [&OwnedFrame::BlobString {
            data: b"hello".to_vec(),
            attributes: None
        }]
    );
    peer.write_all(b"\r\n").unwrap();
    let said = rig.until(0, |said| !said.is_empty());
    assert!(
        matches!(frames(&said)[..], [OwnedFrame::Push { data, .. }] if data.len() == 3),
        "{said:?}"
    );
    assert!(rig.link.input.is_empty());
}

#[test]
fn frames_sent_before_a_close_come_before_disconnected() {
    let redis = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut rig = Rig::new(redis.local_addr().unwrap());
    rig.until(0, has_connected);
    let (mut peer, _) = redis.accept().unwrap();
    peer.write_all(b"-ERR max number of clients reached\r\n")
        .unwrap();
    drop(peer);
    let said = rig.until(10, has_disconnected);
    assert!(
        matches!(
            &said[..],
            [
                LinkEvent::Frame(OwnedFrame::SimpleError { data, .. }),
                LinkEvent::Disconnected {
                    error: LinkError::Closed,
                    retry_at: 110
                }
            ] if data == "ERR max number of clients reached"
        ),
        "{said:?}"
    );
    assert!(!rig.link.is_up());
    assert_eq!(rig.link.next_deadline(), Some(110));
}

#[test]
fn a_confirmed_connection_resets_the_backoff_an_unconfirmed_one_does_not() {
    let redis = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut rig = Rig::new(redis.local_addr().unwrap());
    // Two failed attempts first: the backoff is at 400 ms.
    rig.link.backoff_ms = 400;
    rig.until(0, has_connected);
    // Connected but never confirmed (say, Redis refused the password): still 400.
    let (peer, _) = redis.accept().unwrap();
    drop(peer);
    let said = rig.until(10, has_disconnected);
    assert!(
        matches!(said[..], [LinkEvent::Disconnected { retry_at: 410, .. }]),
        "{said:?}"
    );
    rig.until(410, has_connected);
    rig.link.confirm();
    let (peer, _) = redis.accept().unwrap();
    drop(peer);
    let said = rig.until(450, has_disconnected);
    assert!(
        matches!(said[..], [LinkEvent::Disconnected { retry_at: 550, .. }]),
        "{said:?}"
    );
    // And the attempt after that is the same address, which works again.
    let said = rig.until(550, has_connected);
    assert!(matches!(said[..], [LinkEvent::Connected(_)]), "{said:?}");
}

#[test]
fn garbage_from_redis_ends_the_connection() {
    let redis = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut rig = Rig::new(redis.local_addr().unwrap());
    rig.until(0, has_connected);
    let (mut peer, _) = redis.accept().unwrap();
    peer.write_all(b"+OK\r\nHTTP/1.1 400 Bad Request\r\n")
        .unwrap();
    let said = rig.until(0, has_disconnected);
    assert!(
        matches!(
            &said[..],
            [
                LinkEvent::Frame(_),
                LinkEvent::Disconnected {
                    error: LinkError::Protocol(_),
                    ..
                }
            ]
        ),
        "{said:?}"
    );
}

#[test]
fn bytes_are_written_in_order_and_dropped_while_down() {
    let redis = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut rig = Rig::new(redis.local_addr().unwrap());
    rig.link
        .send(b"*1\r\n$4\r\nPING\r\n", rig.poll.registry(), 0);
    assert_eq!(
        rig.link.unsent(),
        0,
        "nothing is kept for a connection not up"
    );
    rig.until(0, has_connected);
    let (mut peer, _) = redis.accept().unwrap();
    rig.link.send(b"*1\r\n$4\r\nPING", rig.poll.registry(), 0);
    rig.link.send(b"\r\n", rig.poll.registry(), 0);
    let mut got = [0; 16];
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Read::read_exact(&mut peer, &mut got[..14]).unwrap();
    assert_eq!(&got[..14], b"*1\r\n$4\r\nPING\r\n");
}

#[test]
fn output_that_redis_does_not_take_is_bounded() {
    let redis = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut rig = Rig::new(redis.local_addr().unwrap());
    rig.until(0, has_connected);
    let (_peer, _) = redis.accept().unwrap();
    // A Redis that reads nothing: the socket buffers fill, then the link's own.
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0;
    while rig.link.is_up() {
        rig.link.send(&chunk, rig.poll.registry(), 0);
        sent += chunk.len();
        assert!(sent <= 2 * BUFFER_LIMIT, "never bounded");
    }
    assert!(sent > BUFFER_LIMIT);
    let said = rig.until(0, has_disconnected);
    assert!(
        matches!(
            said[..],
            [LinkEvent::Disconnected {
                error: LinkError::OutputLimit,
                ..
            }]
        ),
        "{said:?}"
    );
    assert_eq!(rig.link.unsent(), 0);
}

#[test]
fn an_attempt_not_up_within_the_timeout_is_given_up() {
    // Accepts TCP but never answers the TLS handshake.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let config = ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let link = Link::new(&url(addr, true), TOKEN, Some(Arc::new(config))).unwrap();
    let mut rig = Rig::with(link);
    let mut said = Vec::new();
    rig.pump(0, &mut said);
    let (mut peer, _) = silent.accept().unwrap();
    peer.set_nonblocking(true).unwrap();
    // The ClientHello arrives: TCP is up, TLS is not.
    let mut hello = [0; 5];
    let give_up = Instant::now() + Duration::from_secs(5);
    while std::io::Read::read_exact(&mut peer, &mut hello).is_err() {
        assert!(Instant::now() < give_up, "no ClientHello");
        rig.pump(0, &mut said);
    }
    assert!(said.is_empty(), "{said:?}");
    assert_eq!(hello[0], 22, "a TLS handshake record");
    assert!(!rig.link.is_up());
    assert_eq!(rig.link.next_deadline(), Some(CONNECT_TIMEOUT_MS));
    let said = rig.until(CONNECT_TIMEOUT_MS, has_unreachable);
    assert!(
        matches!(
            said[..],
            [LinkEvent::Unreachable {
                error: LinkError::ConnectTimeout,
                retry_at: 5100,
                ..
            }]
        ),
        "{said:?}"
    );
}

#[test]
fn rediss_needs_a_tls_configuration() {
    let error = Link::new(&url(refused(), true), TOKEN, None).err().unwrap();
    assert!(matches!(error, SetupError::NoTlsConfig));
    assert_eq!(
        error.to_string(),
        "rediss:// needs a TLS client configuration"
    );
}

#[test]
fn an_unknown_host_is_an_error_at_setup() {
    let mut bad = url(refused(), false);
    bad.host = "no-such-host.invalid".into();
    let error = Link::new(&bad, TOKEN, None).err().unwrap();
    assert!(
        error
            .to_string()
            .starts_with("cannot resolve the Redis host \"no-such-host.invalid\""),
        "{error}"
    );
}

#[test]
fn the_caller_can_drop_a_connection_and_a_new_one_follows_the_backoff() {
    let redis = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut rig = Rig::new(redis.local_addr().unwrap());
    rig.until(0, has_connected);
    rig.link.disconnect(rig.poll.registry(), 30);
    let said = rig.until(30, has_disconnected);
    assert!(
        matches!(
            said[..],
            [LinkEvent::Disconnected {
                error: LinkError::Dropped,
                retry_at: 130
            }]
        ),
        "{said:?}"
    );
    assert!(!rig.link.is_up());
    // Waiting: nothing to drop.
    rig.link.disconnect(rig.poll.registry(), 40);
    assert!(rig.link.next_event().is_none());
    assert_eq!(rig.link.next_deadline(), Some(130));
    assert!(matches!(
        rig.until(130, has_connected)[..],
        [LinkEvent::Connected(_)]
    ));
}
