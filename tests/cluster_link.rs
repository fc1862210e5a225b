//! The Redis link (`kaichat::cluster::link`) against a real redis-server, driven the way
//! the reactor drives it: a mio `Poll`, the link's token, `on_ready` for its events, `tick`
//! when its deadline comes, and its events drained after every call. The clock is real
//! (ms since the test started), so the backoff waits are real too, but short.

mod common;

use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use redis_protocol::resp3::encode::complete::encode;
use redis_protocol::resp3::types::{OwnedFrame, Resp3Frame};

use common::redis::RedisServer;
use kaichat::cluster::link::{Link, LinkError, LinkEvent, BUFFER_LIMIT, MIN_BACKOFF_MS};
use kaichat::cluster::url::RedisUrl;

const REDIS: Token = Token(3);

/// One thing the link said, and the reactor's time when it said it.
type Said = (u64, LinkEvent);

struct Reactor {
    poll: Poll,
    events: Events,
    link: Link,
    start: Instant,
}

impl Reactor {
    fn new(redis: &RedisServer) -> Reactor {
        let url = RedisUrl::parse(&redis.url()).expect("the launcher's URL parses");
        Reactor::with(Link::new(&url, REDIS, None).expect("a link"))
    }

    fn with(link: Link) -> Reactor {
        Reactor {
            poll: Poll::new().expect("a poll"),
            events: Events::with_capacity(64),
            link,
            start: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// One loop iteration: poll until the link's deadline (20 ms at most), hand it its
    /// events, tick it when due, keep what it said.
    fn iterate(&mut self, said: &mut Vec<Said>) {
        let wait = match self.link.next_deadline() {
            Some(due) => due.saturating_sub(self.now()).min(20),
            None => 20,
        };
        self.poll
            .poll(&mut self.events, Some(Duration::from_millis(wait)))
            .expect("poll");
        let now = self.now();
        for event in self.events.iter() {
            assert_eq!(event.token(), REDIS);
            self.link.on_ready(event, self.poll.registry(), now);
            while let Some(event) = self.link.next_event() {
                said.push((now, event));
            }
        }
        if self.link.next_deadline().is_some_and(|due| due <= now) {
            self.link.tick(self.poll.registry(), now);
            self.drain(now, said);
        }
    }

    fn drain(&mut self, now: u64, said: &mut Vec<Said>) {
        while let Some(event) = self.link.next_event() {
            said.push((now, event));
        }
    }

    /// Iterates until `done` holds for what the link said (at most 10 s); returns it all.
    fn until(&mut self, what: &str, done: impl Fn(&[Said]) -> bool) -> Vec<Said> {
        let mut said = Vec::new();
        let give_up = Instant::now() + Duration::from_secs(10);
        while !done(&said) {
            assert!(
                Instant::now() < give_up,
                "no {what} within 10 s; the link said {}",
                summary(&said)
            );
            self.iterate(&mut said);
        }
        said
    }

    fn connect(&mut self) {
        let said = self.until("connection", |s| has(s, connected));
        assert!(self.link.is_up());
        assert!(
            said.iter()
                .all(|(_, e)| matches!(e, LinkEvent::Connected(_))),
            "{}",
            summary(&said)
        );
    }

    fn send(&mut self, command: &[&[u8]]) {
        let now = self.now();
        self.link.send(&encoded(command), self.poll.registry(), now);
    }

    /// The next `n` frames, with nothing else said in between.
    fn frames(&mut self, n: usize) -> Vec<OwnedFrame> {
        let said = self.until("reply", |s| s.len() >= n);
        said.into_iter()
            .map(|(_, event)| match event {
                LinkEvent::Frame(frame) => frame,
                other => panic!("a frame was expected, the link said {}", describe(&other)),
            })
            .collect()
    }

    fn reply(&mut self) -> OwnedFrame {
        self.frames(1).remove(0)
    }

    /// Connects and switches to RESP3, as the engine does first.
    fn hello(&mut self) {
        self.connect();
        self.send(&[b"HELLO", b"3"]);
        let reply = self.reply();
        let OwnedFrame::Map { data, .. } = &reply else {
            panic!("HELLO 3 answers a map, not {reply:?}");
        };
        assert_eq!(data.get(&blob("proto")), Some(&number(3)), "{reply:?}");
        // As the engine does once Redis accepted its set-up.
        self.link.confirm();
    }
}

/// What the link said, each event cut to 200 characters (a frame may be megabytes).
fn summary(said: &[Said]) -> String {
    let lines: Vec<String> = said
        .iter()
        .map(|(at, event)| format!("at {at} ms: {}", describe(event)))
        .collect();
    format!("[{}]", lines.join("; "))
}

fn describe(event: &LinkEvent) -> String {
    format!("{event:?}").chars().take(200).collect()
}

/// A command as a RESP array of blob strings.
fn encoded(command: &[&[u8]]) -> Vec<u8> {
    let frame = OwnedFrame::Array {
        data: command.iter().map(|arg| blob_bytes(arg)).collect(),
        attributes: None,
    };
    let mut bytes = vec![0; frame.encode_len(false)];
    let len = encode(&mut bytes, &frame, false).expect("encode");
    assert_eq!(len, bytes.len());
    bytes
}

fn blob(text: &str) -> OwnedFrame {
    blob_bytes(text.as_bytes())
}

fn blob_bytes(bytes: &[u8]) -> OwnedFrame {
    OwnedFrame::BlobString {
        data: bytes.to_vec(),
        attributes: None,
    }
}

fn simple(text: &str) -> OwnedFrame {
    OwnedFrame::SimpleString {
        data: text.as_bytes().to_vec(),
        attributes: None,
    }
}

fn number(n: i64) -> OwnedFrame {
    OwnedFrame::Number {
        data: n,
        attributes: None,
    }
}

fn push(items: Vec<OwnedFrame>) -> OwnedFrame {
    OwnedFrame::Push {
        data: items,
        attributes: None,
    }
}

fn has(said: &[Said], what: fn(&LinkEvent) -> bool) -> bool {
    said.iter().any(|(_, e)| what(e))
}

fn connected(e: &LinkEvent) -> bool {
    matches!(e, LinkEvent::Connected(_))
}

fn disconnected(e: &LinkEvent) -> bool {
    matches!(e, LinkEvent::Disconnected { .. })
}

#[test]
fn hello_3_then_pipelined_commands_answer_in_order() {
    let redis = RedisServer::start();
    let mut reactor = Reactor::new(&redis);
    reactor.hello();
    // Three commands in one write: three replies, in order.
    let mut pipeline = encoded(&[b"PING"]);
    pipeline.extend(encoded(&[b"ECHO", b"kai"]));
    pipeline.extend(encoded(&[b"INCR", b"kc:test"]));
    let now = reactor.now();
    reactor.link.send(&pipeline, reactor.poll.registry(), now);
    assert_eq!(reactor.frames(3), [simple("PONG"), blob("kai"), number(1)]);
}

#[test]
fn a_publish_from_another_connection_arrives_as_a_push() {
    let redis = RedisServer::start();
    let mut reactor = Reactor::new(&redis);
    reactor.hello();
    reactor.send(&[b"SUBSCRIBE", b"kc:{general}:live"]);
    assert_eq!(
        reactor.reply(),
        push(vec![
            blob("subscribe"),
            blob("kc:{general}:live"),
            number(1)
        ])
    );
    assert_eq!(
        redis
            .command(&["PUBLISH", "kc:{general}:live", "7 hello"])
            .as_deref(),
        Some(":1"),
        "one subscriber: the link"
    );
    assert_eq!(
        reactor.reply(),
        push(vec![
            blob("message"),
            blob("kc:{general}:live"),
            blob("7 hello")
        ])
    );
}

#[test]
fn a_lost_redis_is_reported_and_found_again_after_backoff() {
    let mut redis = RedisServer::start();
    let mut reactor = Reactor::new(&redis);
    reactor.hello();

    redis.stop();
    let said = reactor.until("disconnection", |s| has(s, disconnected));
    let [(at, LinkEvent::Disconnected { error, retry_at })] = said.as_slice() else {
        panic!("{}", summary(&said));
    };
    assert!(
        matches!(error, LinkError::Closed | LinkError::Io(_)),
        "{error:?}"
    );
    // The first attempt after a lost connection waits the shortest backoff.
    assert_eq!(*retry_at, at + MIN_BACKOFF_MS);
    assert!(!reactor.link.is_up());

    // While Redis is away, each failed attempt waits twice as long as the one before.
    let said = reactor.until("two failed attempts", |s| s.len() >= 2);
    let waits: Vec<u64> = said
        .iter()
        .map(|(at, event)| match event {
            LinkEvent::Unreachable { retry_at, .. } => retry_at - at,
            other => panic!("Redis is down, yet the link said {}", describe(other)),
        })
        .collect();
    assert_eq!(waits, [200, 400]);

    redis.restart();
    reactor.hello();
    reactor.send(&[b"PING"]);
    assert_eq!(reactor.reply(), simple("PONG"));
}

#[test]
fn a_write_larger_than_the_socket_buffers_completes() {
    let redis = RedisServer::start();
    let mut reactor = Reactor::new(&redis);
    reactor.hello();
    let value: Vec<u8> = (0..16 << 20).map(|i: u32| b'a' + (i % 26) as u8).collect();
    reactor.send(&[b"SET", b"kc:big", &value]);
    reactor.send(&[b"STRLEN", b"kc:big"]);
    assert_eq!(reactor.frames(2), [simple("OK"), number(16 << 20)]);
    assert_eq!(reactor.link.unsent(), 0);
    // And the other way: a 16 MiB reply read over many turns.
    reactor.send(&[b"GET", b"kc:big"]);
    assert!(
        reactor.reply() == blob_bytes(&value),
        "GET gave back other bytes"
    );
}

#[test]
fn a_reply_over_the_bound_ends_the_connection_with_a_clear_error() {
    let redis = RedisServer::start();
    let mut reactor = Reactor::new(&redis);
    reactor.hello();
    let offset = BUFFER_LIMIT.to_string();
    reactor.send(&[b"SETRANGE", b"kc:huge", offset.as_bytes(), b"x"]);
    assert_eq!(reactor.reply(), number(BUFFER_LIMIT as i64 + 1));
    reactor.send(&[b"GET", b"kc:huge"]);
    let said = reactor.until("disconnection", |s| has(s, disconnected));
    let [(_, LinkEvent::Disconnected { error, .. })] = said.as_slice() else {
        panic!("{}", summary(&said));
    };
    assert!(matches!(error, LinkError::InputLimit), "{error:?}");
    assert_eq!(error.to_string(), "a reply from Redis exceeds 64 MiB");
    // The link comes back by itself.
    reactor.hello();
}

/// A redis-server that speaks TLS only, with the development certificates (`certs/`, good
/// for 127.0.0.1), killed when dropped.
struct TlsRedis {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl TlsRedis {
    fn start() -> TlsRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("kaichat-redis-tls-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the redis-server directory");
        let certs = common::manifest().join("certs");
        let child = std::process::Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(certs.join("server.pem"))
            .arg("--tls-key-file")
            .arg(certs.join("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(certs.join("ca.pem"))
            .args(["--tls-auth-clients", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian: apt-get install redis-server; .ci/run installs it)");
        let give_up = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < give_up, "redis-server (TLS) not listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsRedis { child, port, dir }
    }

    fn url(&self) -> RedisUrl {
        RedisUrl::parse(&format!("rediss://127.0.0.1:{}/0", self.port)).expect("a URL")
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn rediss_talks_through_rustls() {
    let redis = TlsRedis::start();
    let link = Link::new(&redis.url(), REDIS, Some(common::tls_config())).expect("a link");
    let mut reactor = Reactor::with(link);
    reactor.hello();
    // More than rustls buffers at once, both ways.
    let value: Vec<u8> = (0..4 << 20).map(|i: u32| b'a' + (i % 26) as u8).collect();
    reactor.send(&[b"SET", b"kc:big", &value]);
    reactor.send(&[b"GET", b"kc:big"]);
    let frames = reactor.frames(2);
    assert_eq!(frames[0], simple("OK"));
    assert!(frames[1] == blob_bytes(&value), "GET gave back other bytes");
}

#[test]
fn a_certificate_not_trusted_is_an_attempt_that_failed() {
    let redis = TlsRedis::start();
    let untrusting = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let link =
        Link::new(&redis.url(), REDIS, Some(std::sync::Arc::new(untrusting))).expect("a link");
    let mut reactor = Reactor::with(link);
    let said = reactor.until("a failed attempt", |s| !s.is_empty());
    assert!(
        matches!(
            said[..],
            [(
                _,
                LinkEvent::Unreachable {
                    error: LinkError::Tls(rustls::Error::InvalidCertificate(_)),
                    ..
                }
            )]
        ),
        "{}",
        summary(&said)
    );
    assert!(!reactor.link.is_up());
}
