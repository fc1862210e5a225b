//! The metrics endpoint (`--metrics-listen`), against the real binary: what real TLS
//! clients did shows in the counters of a scrape over plain HTTP; anything but
//! `GET /metrics` is refused with 404 or 405; an oversized, a never-finished or one
//! connection too many is closed, within its bound, while the chat goes on.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Starts the server with the metrics endpoint on a free loopback port.
fn start_with_metrics(extra: &[&str]) -> (Server, SocketAddr) {
    let mut args = vec!["--metrics-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let addr = metrics_addr(&server);
    (server, addr)
}

/// The address on the server's `metrics on http://ADDR/metrics` line.
fn metrics_addr(server: &Server) -> SocketAddr {
    let deadline = Instant::now() + ANSWER;
    loop {
        let log = server.stderr();
        let addr = log
            .lines()
            .find_map(|l| l.split("metrics on http://").nth(1))
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .and_then(|a| a.parse().ok());
        if let Some(addr) = addr {
            return addr;
        }
        assert!(Instant::now() < deadline, "no metrics line in:\n{log}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect_timeout(&addr, ANSWER).expect("connect to the metrics port");
    tcp.set_read_timeout(Some(ANSWER)).unwrap();
    tcp.set_write_timeout(Some(ANSWER)).unwrap();
    tcp
}

/// Sends `request` as is and reads the whole answer, to the server's close.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = connect(addr);
    tcp.write_all(request).unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer)
        .expect("the answer, then EOF (Connection: close)");
    String::from_utf8(answer).expect("a text answer")
}

/// GET /metrics; the body of a 200 answer.
fn scrape(addr: SocketAddr) -> String {
    let answer = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: kaichat\r\n\r\n");
    let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert!(
        head.contains(&format!("\r\nContent-Length: {}", body.len())),
        "{head}"
    );
    body.to_string()
}

/// The value of the sample `series` (name and labels, exactly as written).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[test]
fn a_scrape_counts_what_the_clients_did() {
    let (server, metrics) = start_with_metrics(&[]);
    let mut amy = server.member("amy", "@metrics");
    let mut bob = server.member("bob", "@metrics");
    let mut cat = server.member("cat", "@metrics");
    for text in ["one", "two", "three", "four", "five"] {
        amy.say(text);
    }
    amy.assert_alive(); // the five are handled: the PONG comes after them
    cat.quit();
    cat.expect_clean_close();
    drop(cat);
    let answer = bob.query_entries();
    assert_eq!(
        answer.len(),
        3 + 5 + 1,
        "joins, messages, `cat left`: {answer:?}"
    );

    let text = scrape(metrics);
    for (series, expected) in [
        ("kaichat_connections_accepted_total", 3.0),
        ("kaichat_setups_completed_total", 3.0),
        ("kaichat_connections{state=\"established\"}", 2.0),
        ("kaichat_pdus_received_total{command=\"SEND_MESSAGE\"}", 5.0),
        ("kaichat_pdus_received_total{command=\"JOIN_CHANNEL\"}", 3.0),
        ("kaichat_pdus_received_total{command=\"QUIT\"}", 1.0),
        ("kaichat_pdus_received_total{command=\"QUERY\"}", 1.0),
        // Three set-up PINGs and amy's.
        ("kaichat_pdus_received_total{command=\"PING_PONG\"}", 4.0),
        ("kaichat_pdus_received_total{command=\"unknown\"}", 0.0),
        // bob's answer and its up-to-date PDU.
        (
            "kaichat_pdus_sent_total{command=\"RECEIVE_MESSAGE\"}",
            answer.len() as f64 + 1.0,
        ),
        ("kaichat_pdus_sent_total{command=\"CLIENT_INFO\"}", 3.0),
        ("kaichat_connections_closed_total{reason=\"quit\"}", 1.0),
        ("kaichat_connections_closed_total{reason=\"timeout\"}", 0.0),
        ("kaichat_channels", 1.0),
        ("kaichat_history_entries", 9.0),
        ("kaichat_messages_posted_total", 5.0),
        ("kaichat_query_answer_duration_seconds_count", 1.0),
        (
            "kaichat_query_answer_duration_seconds_bucket{le=\"+Inf\"}",
            1.0,
        ),
        ("kaichat_deadline_expiries_total{kind=\"idle\"}", 0.0),
        ("kaichat_accept_pauses_total{cause=\"max_clients\"}", 0.0),
        ("kaichat_output_bound_pauses_total", 0.0),
    ] {
        assert_eq!(value(&text, series), expected, "{series} in:\n{text}");
    }
    // Each client sent at least its handshake and its PDUs, through TLS.
    let pdus_in = 5.0 + 3.0 + 1.0 + 1.0 + 4.0 + 3.0;
    assert!(value(&text, "kaichat_received_bytes_total") > pdus_in * 2260.0);
    assert!(value(&text, "kaichat_sent_bytes_total") > 13.0 * 2260.0);
    assert!(value(&text, "kaichat_query_answer_duration_seconds_sum") < 1.0);
    assert!(value(&text, "kaichat_resident_memory_bytes") > 1e6);
    assert!(value(&text, "kaichat_open_fds") >= 4.0);
    amy.assert_alive();
}

#[test]
fn deadlines_and_backpressure_are_counted_by_kind() {
    let (server, metrics) = start_with_metrics(&[
        "--handshake-timeout",
        "1",
        "--history",
        "3000",
        "--replay",
        "3000",
    ]);
    let mut silent = server.client();
    silent.finish_tls();
    // The set-up deadline (1 s) passes: closed, counted as a handshake expiry.
    silent.expect_closed_within(Duration::from_secs(5));
    let text = scrape(metrics);
    assert_eq!(
        value(&text, "kaichat_deadline_expiries_total{kind=\"handshake\"}"),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "kaichat_connections_closed_total{reason=\"timeout\"}"
        ),
        1.0
    );
    assert_eq!(value(&text, "kaichat_output_bound_pauses_total"), 0.0);

    // An answer (about 6.8 MB) larger than every buffer on the way, to a client that does
    // not read it: the server stops reading that client until its output drains.
    let mut filler = fill_channel(&server, "@full", 3000);
    let mut stuck = server.member("stuck", "@full");
    socket2::SockRef::from(stuck.tcp())
        .set_recv_buffer_size(64 * 1024)
        .unwrap();
    stuck.send(&Pdu::query(ByteOrder::Little));
    let deadline = Instant::now() + ANSWER;
    while value(&scrape(metrics), "kaichat_output_bound_pauses_total") < 1.0 {
        assert!(Instant::now() < deadline, "no output-bound pause counted");
        thread::sleep(Duration::from_millis(50));
    }
    filler.assert_alive();
}

#[test]
fn other_paths_and_methods_are_refused() {
    let (_server, metrics) = start_with_metrics(&[]);
    let answer = exchange(metrics, b"GET / HTTP/1.1\r\nHost: kaichat\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
    let answer = exchange(metrics, b"GET /metrics/x HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    for method in ["POST", "PUT", "DELETE", "HEAD"] {
        let request = format!("{method} /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        let answer = exchange(metrics, request.as_bytes());
        assert!(
            answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{method}: {answer}"
        );
        assert!(answer.contains("\r\nAllow: GET\r\n"), "{method}: {answer}");
    }
    let answer = exchange(metrics, b"NOT HTTP AT ALL\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    // A query string is still /metrics.
    let answer = exchange(metrics, b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}

#[test]
fn an_oversized_request_is_refused_and_closed() {
    let (server, metrics) = start_with_metrics(&[]);
    let mut request = b"GET /metrics HTTP/1.1\r\nX-Padding: ".to_vec();
    request.resize(20 * 1024, b'a'); // never ends its headers
    let answer = exchange(metrics, &request);
    assert!(
        answer.starts_with("HTTP/1.1 431 "),
        "an 8 KiB bound: {answer:?}"
    );
    server.login("still").assert_alive();
}

#[test]
fn a_request_never_finished_is_closed_after_the_bound_while_the_chat_goes_on() {
    let (server, metrics) = start_with_metrics(&[]);
    let mut chat = server.login("chatty");
    let mut slow = connect(metrics);
    slow.write_all(b"GET /metr").unwrap();
    let started = Instant::now();
    // Meanwhile the reactor serves clients as usual.
    chat.assert_alive();
    let mut rest = Vec::new();
    slow.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let end = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        end.is_ok() && rest.is_empty(),
        "expected the server to close the connection without an answer, got {end:?} {rest:?}"
    );
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(4),
        "closed after {waited:?}; the bound is 2 s"
    );
    chat.assert_alive();
}

#[test]
fn one_metrics_connection_too_many_is_closed_at_once() {
    let (server, metrics) = start_with_metrics(&[]);
    let idle: Vec<TcpStream> = (0..16).map(|_| connect(metrics)).collect();
    // The reactor has taken the sixteen before the next arrives: a scrape behind them
    // would otherwise wait in the backlog rather than be refused.
    thread::sleep(Duration::from_millis(300));
    let mut extra = connect(metrics);
    let started = Instant::now();
    let mut got = Vec::new();
    let end = extra.read_to_end(&mut got);
    assert!(
        got.is_empty() && started.elapsed() < Duration::from_secs(1),
        "the 17th connection: {end:?} {got:?} after {:?}",
        started.elapsed()
    );
    server.login("unbothered").assert_alive();
    // Once the sixteen go, scraping works again.
    drop(idle);
    thread::sleep(Duration::from_millis(200));
    let text = scrape(metrics);
    assert_eq!(value(&text, "kaichat_setups_completed_total"), 1.0);
}

#[test]
fn a_bad_metrics_address_is_one_line_and_exit_status_2() {
    for (args, wanted) in [
        (
            &["--metrics-listen", "nowhere"][..],
            "--metrics-listen: 'nowhere' has no port",
        ),
        (&["--metrics-listen"][..], "--metrics-listen: needs a value"),
        (
            &[
                "--metrics-listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ][..],
            "--metrics-listen: given more than once",
        ),
    ] {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let Exit { code, stderr, .. } = run_to_exit(&all, Duration::from_secs(5));
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
    }
    // A port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let Exit { code, stderr, .. } = run_to_exit(
        &["--listen", "127.0.0.1:0", "--metrics-listen", &port],
        Duration::from_secs(5),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.starts_with("kaichat-server: --metrics-listen: cannot listen on"),
        "{stderr}"
    );
}
