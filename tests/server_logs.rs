//! The server's log, against the real binary: one line per connection event (accepted
//! with its address, set up with its name, closed with its reason and duration), warnings
//! for TLS errors, UTC timestamps, levels from `--log` or RUST_LOG, and never what a client
//! says.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Waits until the server's stderr has a line containing `wanted`; returns that line.
fn wait_for_line(stderr: impl Fn() -> String, wanted: &str) -> String {
    let deadline = Instant::now() + ANSWER;
    loop {
        let log = stderr();
        if let Some(line) = log.lines().find(|l| l.contains(wanted)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {wanted:?} in:\n{log}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// `2026-01-31T23:59:59.123Z LEVEL message`: an RFC 3339 UTC time to the millisecond.
fn assert_stamped(line: &str) {
    let (time, rest) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
    let b = time.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b[i].is_ascii_digit());
    assert!(
        b.len() == 24
            && digits(0..4)
            && b[4] == b'-'
            && digits(5..7)
            && b[7] == b'-'
            && digits(8..10)
            && b[10] == b'T'
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)
            && b[16] == b':'
            && digits(17..19)
            && b[19] == b'.'
            && digits(20..23)
            && b[23] == b'Z',
        "not an RFC 3339 UTC time: {line:?}"
    );
    let level = rest.split_whitespace().next().unwrap_or_default();
    assert!(
        ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
        "no level in {line:?}"
    );
}

#[test]
fn each_connection_event_is_one_line_and_no_message_text_is_logged() {
    // At debug, the most the server says: still no message text.
    let server = Server::start(&["--log", "debug"]);
    let secret = "a-private-message-7f3c9e";
    let mut c = server.member("loggy", "@logs");
    c.say(secret);
    let mut other = server.member("other", "@logs");
    assert!(other.query_entries().iter().any(|(_, text)| text == secret));
    c.quit();
    c.expect_clean_close();

    let accepted = wait_for_line(|| server.stderr(), " accepted from 127.0.0.1:");
    let id = accepted
        .split("connection ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a connection id");
    wait_for_line(
        || server.stderr(),
        &format!("connection {id} set up as loggy"),
    );
    let closed = wait_for_line(
        || server.stderr(),
        &format!("connection {id} closed: quit, loggy, after "),
    );
    assert!(closed.ends_with(" s"), "a duration in seconds: {closed:?}");
    let log = server.stderr();
    assert!(!log.contains(secret), "a message text was logged:\n{log}");
    for line in log.lines() {
        assert_stamped(line);
    }
    // One line per event, not per PDU: two clients, a handful of lines each.
    let info = log.lines().filter(|l| l.contains(" INFO ")).count();
    assert!(info <= 8, "too many info lines for two clients:\n{log}");
}

#[test]
fn a_tls_error_is_a_warning_with_the_connection() {
    let server = Server::start(&[]);
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap(); // not TLS
    let line = wait_for_line(|| server.stderr(), ": TLS error: ");
    assert!(line.contains(" WARN "), "{line}");
    assert!(line.contains("connection "), "{line}");
    wait_for_line(|| server.stderr(), "closed: tls, after ");
}

/// A server started by hand, for levels the harness cannot read its address from.
struct Quiet {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Quiet {
    fn start(args: &[&str], rust_log: Option<&str>) -> Quiet {
        // A free port, found by binding it and letting it go.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut command = Process::new(server_bin());
        command
            .args(["--listen", &addr.to_string()])
            .args(args)
            .current_dir(manifest())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let mut child = command.spawn().expect("cannot start kaichat-server");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let log_in = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log_in.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let deadline = Instant::now() + ANSWER;
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the server does not listen");
            thread::sleep(Duration::from_millis(20));
        }
        Quiet { child, addr, log }
    }

    fn stderr(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client set up and gone, then a TLS error: what `level` lets through is logged.
fn client_then_error(server: &Quiet) {
    let mut c = TestClient::connect_tls(server.addr);
    c.handshake("lev");
    c.quit();
    c.expect_clean_close();
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.write_all(b"not tls\r\n\r\n").unwrap();
    wait_for_line(|| server.stderr(), ": TLS error: ");
}

#[test]
fn log_warn_keeps_warnings_and_drops_connection_events() {
    let server = Quiet::start(&["--log", "warn"], None);
    client_then_error(&server);
    let log = server.stderr();
    assert!(!log.contains(" INFO "), "{log}");
    assert!(!log.contains("set up as"), "{log}");
}

#[test]
fn rust_log_is_read_when_log_is_not_given_and_log_wins_over_it() {
    let server = Quiet::start(&[], Some("warn"));
    client_then_error(&server);
    let log = server.stderr();
    assert!(!log.contains(" INFO "), "RUST_LOG=warn: {log}");

    let server = Quiet::start(&["--log", "info"], Some("error"));
    client_then_error(&server);
    wait_for_line(|| server.stderr(), "set up as lev");
}

#[test]
fn a_bad_level_is_one_line_and_exit_status_2() {
    let Exit { code, stderr, .. } = run_to_exit(
        &["--listen", "127.0.0.1:0", "--log", "loud"],
        Duration::from_secs(5),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr,
        "kaichat-server: --log: 'loud' is not a level (error, warn, info or debug) (see --help)\n"
    );
}

#[test]
fn help_describes_the_new_flags_with_their_defaults() {
    let out = Process::new(server_bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for wanted in [
        "  --metrics-listen HOST:PORT",
        "[default: off]",
        "  --log LEVEL",
        "[default: info, or what RUST_LOG says when --log is not given]",
        "No message a client sends is ever logged",
    ] {
        assert!(help.contains(wanted), "{wanted:?} not in:\n{help}");
    }
}
