//! Closing without losing what was sent (issue 7.2): the server closes the way robust
//! servers do (a lingering close). It writes out what it owes, then close_notify, shuts
//! down its write side, and reads and discards what the client still sends until the
//! client's EOF, for a bounded time. A client that reads gets every PDU owed, then a clean
//! end of stream, never a reset, on every path that closes after answering: QUIT, a
//! rejected version, a deadline, a shutdown. A client that never reads or never closes
//! cannot hold its slot past the bound.
//!
//! The answers here are larger than the socket buffers (the client's receive buffer is
//! shrunk), so they are still queued in the server when it decides to close.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use socket2::{Domain, SockRef, Socket, Type};

const LE: ByteOrder = ByteOrder::Little;
/// The client's receive buffer for long answers: far smaller than they are. (Shrunk after
/// the connection is up, a much smaller one makes loopback TCP crawl.)
const SMALL_BUFFER: usize = 64 * 1024;
/// A receive buffer set before connecting, so the server is never offered a larger
/// window: two PDUs do not fit.
const TINY_BUFFER: usize = 4096;

/// Shrinks the client's receive buffer to `bytes`, so that what the server sends backs up
/// into the server's buffers while the client does not read.
fn shrink_receive_buffer(c: &TestClient, bytes: usize) {
    SockRef::from(c.tcp())
        .set_recv_buffer_size(bytes)
        .expect("SO_RCVBUF");
}

/// Checks that a whole answer to a member of a channel filled by `fill_channel` with `n`
/// messages was read: it holds the last message posted (the joiner's own notice follows).
fn assert_whole_answer(answer: &[Pdu], n: usize) {
    let last = format!("{:05}", n - 1);
    assert!(
        answer
            .iter()
            .map(entry)
            .any(|(sender, text)| sender == "filler" && text.starts_with(&last)),
        "the answer ({} PDUs) lacks message {last}",
        answer.len(),
    );
}

/// QUERY and QUIT in one write (QUIT is read once the whole answer is produced), then,
/// while the answer backs up, one more PDU that the server will never read.
fn query_and_quit_then_an_unread_ping(c: &mut TestClient) {
    let mut both = Pdu::query(LE).as_bytes().to_vec();
    both.extend_from_slice(Pdu::quit(LE).as_bytes());
    c.write(&both);
    thread::sleep(Duration::from_millis(300));
    c.send(&Pdu::ping(LE));
}

/// After the TLS close_notify, the TCP stream itself ends with EOF: the server shut down
/// its write side and did not reset the connection.
fn assert_eof_not_reset(c: &TestClient) {
    let mut tcp = c.tcp();
    tcp.set_read_timeout(Some(ANSWER)).unwrap();
    let mut buf = [0u8; 512];
    match tcp.read(&mut buf) {
        Ok(0) => {}
        other => panic!("expected EOF after close_notify, got {other:?}"),
    }
}

#[test]
fn quit_after_a_long_answer_delivers_all_of_it_then_close_notify() {
    let server = Server::start(&["--history", "1000", "--replay", "1000"]);
    let _filler = fill_channel(&server, "@busy", 1000);
    let mut c = server.member("reader", "@busy");
    shrink_receive_buffer(&c, SMALL_BUFFER);
    query_and_quit_then_an_unread_ping(&mut c);
    let started = Instant::now();
    let answer = c.read_answer();
    assert_whole_answer(&answer, 1000);
    c.expect_clean_close();
    assert_eof_not_reset(&c);
    eprintln!(
        "{} PDUs read in {:?} through a small receive buffer",
        answer.len(),
        started.elapsed()
    );
}

/// A TLS client whose receive buffer is set before it connects: unlike shrinking it later,
/// the server never sees a larger window, so what does not fit stays queued in the server.
struct SmallWindowClient {
    tls: StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl SmallWindowClient {
    fn connect(addr: SocketAddr, receive_buffer: usize) -> SmallWindowClient {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(receive_buffer).unwrap();
        socket.connect_timeout(&addr.into(), ANSWER).unwrap();
        let tcp: TcpStream = socket.into();
        tcp.set_nodelay(true).unwrap();
        tcp.set_read_timeout(Some(ANSWER)).unwrap();
        tcp.set_write_timeout(Some(ANSWER)).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(tls_config(), name).unwrap();
        SmallWindowClient {
            tls: StreamOwned::new(conn, tcp),
            buf: Vec::new(),
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).unwrap();
        self.tls.flush().unwrap();
    }

    /// The next PDU; `Ok(None)` at a clean end (close_notify).
    fn recv(&mut self) -> io::Result<Option<Pdu>> {
        let mut chunk = [0u8; 4096];
        while self.buf.len() < PDU_LEN {
            match self.tls.read(&mut chunk)? {
                0 if self.buf.is_empty() => return Ok(None),
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        let pdu = Pdu::from_slice(&self.buf[..PDU_LEN]).unwrap();
        self.buf.drain(..PDU_LEN);
        Ok(Some(pdu))
    }

    fn expect(&mut self, command: Command) -> Pdu {
        let pdu = match self.recv() {
            Ok(Some(pdu)) => pdu,
            other => panic!("expected {command:?}, got {other:?}"),
        };
        let got = match pdu.decode_command(Some(LE)) {
            Decoded::Known { command, .. } => command,
            Decoded::Unknown(raw) => panic!("unknown command {raw:?}"),
        };
        assert_eq!(got, command, "{pdu:?}");
        pdu
    }
}

#[test]
fn a_rejected_version_is_delivered_with_its_notice_then_close_notify() {
    let server = Server::start(&[]);
    let mut c = SmallWindowClient::connect(server.addr, TINY_BUFFER);
    let mut first = Pdu::ping(LE).as_bytes().to_vec();
    first.extend_from_slice(Pdu::client_version(LE, 3).as_bytes());
    c.write(&first);
    // After the server decided to close: a PDU it will never read.
    thread::sleep(Duration::from_millis(300));
    c.write(Pdu::ping(LE).as_bytes());
    thread::sleep(Duration::from_millis(300));
    c.expect(Command::PingPong);
    c.expect(Command::VersionNegotiation);
    let notice = c.expect(Command::ReceiveMessage);
    assert_error_notice(Command::ReceiveMessage, &notice);
    match c.recv() {
        Ok(None) => {}
        other => panic!("expected close_notify, got {other:?}"),
    }
    let mut tcp = c.tls.sock;
    let mut rest = [0u8; 64];
    match tcp.read(&mut rest) {
        Ok(0) => {}
        other => panic!("expected EOF after close_notify, got {other:?}"),
    }
}

/// Messages in a channel whose whole answer (about 6.8 MB) is more than every buffer on
/// the way can hold (the server's send buffer grows to 4 MiB on Linux): the server is
/// still producing it, under backpressure, long after the QUERY.
const BACKED_UP: usize = 3000;

/// Reads PDUs until the connection ends; returns them and how it ended.
fn read_to_end(c: &mut TestClient) -> (Vec<Pdu>, RecvError) {
    let mut pdus = Vec::new();
    loop {
        match c.try_recv_within(ANSWER) {
            Ok(pdu) => pdus.push(pdu),
            Err(end) => return (pdus, end),
        }
    }
}

/// Polls `watcher`'s channel (a member that posted nothing since) until it shows
/// `<name> left`.
fn wait_for_left(watcher: &mut TestClient, name: &str) {
    let want = ("SERVER".to_string(), format!("{name} left"));
    let deadline = Instant::now() + ANSWER;
    while !watcher.query_entries().contains(&want) {
        assert!(Instant::now() < deadline, "no `{name} left` in time");
        thread::sleep(Duration::from_millis(100));
    }
}

/// A backed-up channel and a member of it, with a shrunk receive buffer, that has sent a
/// QUERY and not read the answer, then one more PDU that the server does not read while
/// it is answering. Returns (filler, member).
fn backed_up_reader(server: &Server, channel: &str) -> (TestClient, TestClient) {
    let filler = fill_channel(server, channel, BACKED_UP);
    let mut c = server.member("reader", channel);
    shrink_receive_buffer(&c, SMALL_BUFFER);
    c.send(&Pdu::query(LE));
    thread::sleep(Duration::from_millis(300));
    c.send(&Pdu::ping(LE));
    (filler, c)
}

#[test]
fn a_deadline_delivers_what_was_sent_then_close_notify() {
    let history = BACKED_UP.to_string();
    let server = Server::start(&[
        "--idle-timeout",
        "2",
        "--history",
        &history,
        "--replay",
        &history,
    ]);
    let (mut filler, mut c) = backed_up_reader(&server, "@idle");
    // The idle deadline passes with output queued and input unread. It frees the name and
    // the channel at once; from then, the client has the time the server gives a close to
    // take what was produced.
    wait_for_left(&mut filler, "reader");
    let (pdus, end) = read_to_end(&mut c);
    assert!(!pdus.is_empty(), "nothing of the answer arrived");
    for pdu in &pdus {
        assert_eq!(c.command_of(pdu), Command::ReceiveMessage, "{pdu:?}");
    }
    assert!(
        matches!(end, RecvError::Closed { partial: 0 }),
        "after {} PDUs: expected close_notify, got {end:?}",
        pdus.len()
    );
    assert_eof_not_reset(&c);
}

#[test]
fn a_shutdown_finishes_the_answer_in_flight_then_close_notify() {
    let history = BACKED_UP.to_string();
    let server = Server::start(&["--history", &history, "--replay", &history]);
    let (_filler, mut c) = backed_up_reader(&server, "@bye");
    // SAFETY: kill(2) on the pid of the test's own child, not reaped yet.
    unsafe {
        libc::kill(server.pid(), libc::SIGTERM);
    }
    let answer = c.read_answer();
    assert_whole_answer(&answer, BACKED_UP);
    // The PING after the QUERY was never read: close_notify comes next.
    c.expect_clean_close();
    assert_eof_not_reset(&c);
    let end = server.terminate(Duration::from_secs(5));
    assert_eq!(end.status.and_then(|s| s.code()), Some(0), "{}", end.stderr);
}

/// With `--max-clients 2` (a filler and `closing`, which the server is closing but which
/// does not take part in its own close), a third client is served once `closing`'s slot is
/// freed: not at once, since the server lingers, but within the bound (about 2 s).
fn slot_is_freed_within_the_bound(server: &Server, closing: TestClient) {
    let mut next = server.client();
    let early = next.try_finish_tls(Duration::from_millis(300));
    assert!(early.is_err(), "the slot was freed at once: no lingering");
    next.try_finish_tls(Duration::from_secs(6))
        .expect("the slot was not freed after the bound");
    next.handshake("next");
    drop(closing);
}

#[test]
fn a_client_that_never_reads_is_let_go_after_the_bound() {
    let history = BACKED_UP.to_string();
    let server = Server::start(&[
        "--max-clients",
        "2",
        "--idle-timeout",
        "2",
        "--history",
        &history,
        "--replay",
        &history,
    ]);
    let (mut filler, c) = backed_up_reader(&server, "@stuck");
    // The idle deadline closes it; its output can never be written, since it never reads.
    wait_for_left(&mut filler, "reader");
    slot_is_freed_within_the_bound(&server, c);
}

#[test]
fn a_client_that_never_closes_gets_everything_and_is_let_go_after_the_bound() {
    let server = Server::start(&[
        "--max-clients",
        "2",
        "--history",
        "1000",
        "--replay",
        "1000",
    ]);
    let _filler = fill_channel(&server, "@open", 1000);
    let mut c = server.member("open", "@open");
    shrink_receive_buffer(&c, SMALL_BUFFER);
    query_and_quit_then_an_unread_ping(&mut c);
    let answer = c.read_answer();
    assert_whole_answer(&answer, 1000);
    c.expect_clean_close();
    // The client read everything, and keeps its socket open.
    slot_is_freed_within_the_bound(&server, c);
}

#[test]
fn a_rejected_version_is_counted_as_such_not_as_a_quit() {
    let server = Server::start(&[]);
    let mut c = server.client();
    c.ping_version();
    c.send(&Pdu::client_version(LE, 3));
    c.expect_error();
    c.expect_clean_close();
    drop(c);
    let end = server.terminate(Duration::from_secs(5));
    let last = end.stderr.lines().last().unwrap_or("");
    assert!(
        last.contains(" quit=0 ") && last.contains(" version=1 "),
        "final statistics: {last}"
    );
}

/// The shutdown's bound with sockets full at SIGTERM: a client whose socket is full (an
/// answer backed up in every buffer on the way) and that reads from then on gets the
/// whole answer and close_notify within the shutdown's grace (1 s); one whose socket is
/// just as full and that never reads does not hold the server past it (nor past the
/// bound of its own close, 1 to 2 s, which would also let it go).
/// (`a_shutdown_finishes_the_answer_in_flight_then_close_notify` checks the reader's
/// answer alone, without a bound on the time or a client that never reads.)
#[test]
fn a_sigterm_with_full_sockets_ends_within_the_grace_with_close_notify_for_a_reader() {
    let history = BACKED_UP.to_string();
    let server = Server::start(&["--history", &history, "--replay", &history]);
    let (_filler, mut reader) = backed_up_reader(&server, "@full");
    // The same channel's answer, to a member that never reads it.
    let mut stuck = server.member("stuck", "@full");
    shrink_receive_buffer(&stuck, SMALL_BUFFER);
    stuck.send(&Pdu::query(LE));
    thread::sleep(Duration::from_millis(300));
    stuck.send(&Pdu::ping(LE));

    let (go, start) = std::sync::mpsc::channel::<Instant>();
    let reading = thread::spawn(move || {
        let sigterm = start.recv().unwrap();
        let answer = reader.read_answer();
        let end = reader.expect_closed();
        (answer, end, sigterm.elapsed(), reader)
    });
    let sigterm = Instant::now();
    // SAFETY: kill(2) on the pid of the test's own child, not reaped yet.
    unsafe {
        libc::kill(server.pid(), libc::SIGTERM);
    }
    go.send(sigterm).unwrap();
    let end = server.terminate(Duration::from_secs(10));
    let exited_after = sigterm.elapsed();
    let (answer, reader_end, close_notify_after, reader) = reading.join().unwrap();

    assert_eq!(end.status.and_then(|s| s.code()), Some(0), "{}", end.stderr);
    assert!(
        exited_after < Duration::from_millis(2500),
        "the server took {exited_after:?} to exit after SIGTERM: a client that never reads held it"
    );
    assert_whole_answer(&answer, BACKED_UP);
    assert!(
        matches!(reader_end, RecvError::Closed { partial: 0 }),
        "after the whole answer: expected close_notify, got {reader_end:?}"
    );
    assert!(
        close_notify_after < Duration::from_millis(2500),
        "close_notify came {close_notify_after:?} after SIGTERM"
    );
    assert_eof_not_reset(&reader);
    eprintln!(
        "close_notify {close_notify_after:?} after SIGTERM, server exited after {exited_after:?}"
    );
    // The one that never read: its connection is gone with the server.
    let (_, stuck_end) = read_to_end(&mut stuck);
    assert!(
        !matches!(stuck_end, RecvError::TimedOut { .. }),
        "{stuck_end:?}"
    );
}
