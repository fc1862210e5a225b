//! Integration tests of the `kaichat` binary (issue 3): the real client, driven through
//! pipes in its plain line mode, against the real server over TLS on loopback.
//!
//! The line format they read is documented at the top of `src/bin/kaichat.rs`.

mod common_client;

use std::net::TcpListener;

use common_client::{temp_path, ChatServer, Kaichat};

fn assert_clean_exit(name: &str, ended: &common_client::Ended) {
    assert!(
        ended.status.success(),
        "{name} exited with {:?}\nstdout: {:#?}\nstderr: {:#?}",
        ended.status,
        ended.stdout,
        ended.stderr
    );
    assert_eq!(
        ended.stdout.last().map(String::as_str),
        Some("bye"),
        "{name}: {:#?}",
        ended.stdout
    );
}

#[test]
fn two_clients_exchange_messages_in_a_channel() {
    let server = ChatServer::start();
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy", "--channel", "@room"]);
    amy.expect("established amy");
    amy.expect("joined @room");
    let mut bob = Kaichat::start(&server, "bob", &["--user", "bob", "--channel", "@room"]);
    bob.expect("established bob");
    bob.expect("joined @room");
    // The joiner's first QUERY replays the channel's recent history.
    bob.expect_notice("@room", "amy joined");
    amy.expect_notice("@room", "bob joined");

    amy.send("hello bob, ça va?");
    bob.expect_message("amy", "@room", "hello bob, ça va?");
    bob.send("hi amy");
    bob.send("second line");
    amy.expect_message("bob", "@room", "hi amy");
    amy.expect_message("bob", "@room", "second line");

    let amy_end = amy.finish();
    assert_clean_exit("amy", &amy_end);
    bob.expect_notice("@room", "amy left");
    let bob_end = bob.finish();
    assert_clean_exit("bob", &bob_end);
    // Nobody is shown their own messages.
    for (name, ended) in [("amy", &amy_end), ("bob", &bob_end)] {
        let own = format!(" {name} @room ");
        assert!(
            !ended
                .stdout
                .iter()
                .any(|l| l.starts_with("message") && l.contains(&own)),
            "{name} saw its own message: {:#?}",
            ended.stdout
        );
    }
}

#[test]
fn leave_and_join_other_channels() {
    let server = ChatServer::start();
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy", "--channel", "@one"]);
    amy.expect("joined @one");
    let mut bob = Kaichat::start(&server, "bob", &["--user", "bob", "--channel", "@one"]);
    bob.expect("joined @one");
    amy.expect_notice("@one", "bob joined");

    amy.send("!leave");
    amy.expect("left @one");
    bob.expect_notice("@one", "amy left");
    // Out of a channel, a line that is not a command names the channel to join.
    amy.send("!leave");
    amy.expect("info not in a channel");
    amy.send("!join @two");
    amy.expect("joined @two");
    amy.send("only in two");

    bob.send("still in one");
    bob.send("!join @two");
    bob.expect("joined @two");
    // Joining replays @two's history: amy's message from before bob came.
    bob.expect_message("amy", "@two", "only in two");
    bob.send("hello two");
    amy.expect_message("bob", "@two", "hello two");

    // Commands that are not commands are explained, not sent.
    amy.send("!dance");
    amy.expect("info unknown command !dance");
    amy.send("!help");
    amy.expect("info   !join @name");
    amy.send("!join nochannel");
    amy.expect("info cannot join nochannel");

    // A channel name typed at the channel prompt, '@' added.
    bob.send("!leave");
    bob.expect("left @two");
    bob.send("three");
    bob.expect("joined @three");

    let amy_end = amy.finish();
    assert_clean_exit("amy", &amy_end);
    assert!(
        !amy_end.stdout.iter().any(|l| l.contains("still in one")),
        "amy saw a message of a channel she had left: {:#?}",
        amy_end.stdout
    );
    assert_clean_exit("bob", &bob.finish());
}

#[test]
fn a_taken_name_is_asked_again_on_the_same_connection() {
    let server = ChatServer::start();
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy"]);
    amy.expect("established amy");

    let mut other = Kaichat::start(&server, "other", &["--user", "amy"]);
    let line = other.expect("name-rejected ");
    assert!(line.contains("taken"), "{line}");
    // Names compare ignoring case.
    other.send("AMY");
    let line = other.expect("name-rejected ");
    assert!(line.contains("taken"), "{line}");
    // Checked locally before it is sent.
    other.send("not valid");
    other.expect("name-rejected not valid:");
    other.send("amy2");
    other.expect("established amy2");
    // No --channel: the next line names the channel.
    other.send("@after");
    other.expect("joined @after");
    let ended = other.finish();
    assert_clean_exit("other", &ended);
    assert_eq!(
        ended
            .stdout
            .iter()
            .filter(|l| l.starts_with("established"))
            .count(),
        1,
        "{:#?}",
        ended.stdout
    );
    assert_clean_exit("amy", &amy.finish());
}

#[test]
fn input_that_ends_before_a_name_is_accepted_is_an_error() {
    let server = ChatServer::start();
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy"]);
    amy.expect("established amy");
    let mut other = Kaichat::start(&server, "other", &["--user", "amy"]);
    other.expect("name-rejected ");
    let ended = other.finish();
    assert_eq!(ended.status.code(), Some(1), "{ended:#?}");
    assert!(
        ended
            .stderr
            .iter()
            .any(|l| l.contains("no username accepted")),
        "{ended:#?}"
    );
    assert_clean_exit("amy", &amy.finish());
}

#[test]
fn the_name_is_read_from_input_without_user() {
    let server = ChatServer::start();
    let mut carl = Kaichat::start(&server, "carl", &[]);
    carl.send("carl");
    carl.expect("established carl");
    assert_clean_exit("carl", &carl.finish());
}

#[test]
fn end_of_input_fetches_once_more_then_quits() {
    let server = ChatServer::start();
    let mut bob = Kaichat::start(&server, "bob", &["--user", "bob", "--channel", "@eof"]);
    bob.expect("joined @eof");
    bob.send("before you came");
    // Joining the channel one is in is acknowledged again: once it is, the server has
    // taken the message before it.
    bob.send("!join @eof");
    bob.expect("joined @eof");

    // All of amy's input is over before she is even connected.
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy", "--channel", "@eof"]);
    amy.close_stdin();
    let ended = amy.finish();
    assert_clean_exit("amy", &ended);
    let lines = &ended.stdout;
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {lines:#?}"))
    };
    assert!(at("established amy") < at("joined @eof"));
    assert!(at("joined @eof") < at("message "));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("message ") && l.ends_with(" bob @eof before you came")),
        "{lines:#?}"
    );
    assert_eq!(ended.stderr, Vec::<String>::new());

    // QUIT freed the name: it can be taken again at once.
    let mut again = Kaichat::start(&server, "amy again", &["--user", "amy"]);
    again.expect("established amy");
    assert_clean_exit("amy again", &again.finish());
    bob.expect_notice("@eof", "amy left");
    assert_clean_exit("bob", &bob.finish());
}

#[test]
fn long_messages_are_cut_on_a_character_boundary() {
    let server = ChatServer::start();
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy", "--channel", "@long"]);
    amy.expect("joined @long");
    let mut bob = Kaichat::start(&server, "bob", &["--user", "bob", "--channel", "@long"]);
    bob.expect("joined @long");
    // 1 + 1500 × 2 bytes: byte 2000 falls inside an 'é'.
    let long = format!("x{}", "é".repeat(1500));
    amy.send(&long);
    let info = amy.expect("info message too long");
    assert!(info.contains("1999"), "{info}");
    let cut = format!("x{}", "é".repeat(999));
    assert_eq!(cut.len(), 1999);
    bob.expect_message("amy", "@long", &cut);
    assert_clean_exit("amy", &amy.finish());
    assert_clean_exit("bob", &bob.finish());
}

#[test]
fn a_certificate_from_another_ca_fails_with_a_clear_message() {
    let server = ChatServer::start();
    // A throwaway CA that did not sign the server's certificate.
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Some other CA");
    let ca = params.self_signed(&key).expect("self-signed CA");
    let path = temp_path("other-ca.pem");
    std::fs::write(&path, ca.pem()).expect("write CA");
    let ca_arg = path.display().to_string();

    let eve = Kaichat::start_raw(
        "eve",
        &["--server", &server.addr, "--ca", &ca_arg, "--user", "eve"],
    );
    let ended = eve.finish();
    let _ = std::fs::remove_file(&path);
    assert_eq!(ended.status.code(), Some(1), "{ended:#?}");
    assert!(ended.stdout.is_empty(), "{ended:#?}");
    let stderr: Vec<&String> = ended.stderr.iter().filter(|l| !l.is_empty()).collect();
    assert_eq!(stderr.len(), 1, "one clear line: {ended:#?}");
    assert!(stderr[0].starts_with("kaichat: "), "{ended:#?}");
    assert!(stderr[0].contains("not trusted"), "{ended:#?}");
    assert!(stderr[0].contains("--ca"), "says how to fix it: {ended:#?}");
}

#[test]
fn the_development_ca_is_trusted_by_default() {
    let server = ChatServer::start();
    // Run from the repository root, where certs/ca.pem is.
    let mut amy = Kaichat::start_raw("amy", &["--server", &server.addr, "--user", "amy"]);
    amy.expect("established amy");
    assert_clean_exit("amy", &amy.finish());
}

#[test]
fn an_unreachable_server_is_reported() {
    // A port that nobody listens on (bound, then released).
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let server = addr.to_string();
    let ended = Kaichat::start_raw("x", &["--server", &server, "--user", "x"]).finish();
    assert_eq!(ended.status.code(), Some(1), "{ended:#?}");
    let stderr: Vec<&String> = ended.stderr.iter().filter(|l| !l.is_empty()).collect();
    assert_eq!(stderr.len(), 1, "{ended:#?}");
    assert!(
        stderr[0].starts_with(&format!("kaichat: cannot reach the server at {server}")),
        "{ended:#?}"
    );
}

#[test]
fn command_line_mistakes_exit_2_with_one_line() {
    for args in [
        &["--bogus"][..],
        &["--server"],
        &["--server", "host:notaport"],
        &["--query-interval", "soon"],
        &["--query-interval", "0"],
        &["--channel", "nochannel"],
        &["--user", "much_too_long"],
        &["--ca", "/nonexistent/ca.pem"],
        &["extra"],
    ] {
        let ended = Kaichat::start_raw("bad", args).finish();
        assert_eq!(ended.status.code(), Some(2), "{args:?}: {ended:#?}");
        assert_eq!(ended.stderr.len(), 1, "{args:?}: {ended:#?}");
        assert!(ended.stderr[0].starts_with("kaichat: "), "{ended:#?}");
        assert!(ended.stdout.is_empty(), "{args:?}: {ended:#?}");
    }
    let help = Kaichat::start_raw("help", &["--help"]).finish();
    assert!(help.status.success());
    assert!(help
        .stdout
        .iter()
        .any(|l| l.contains("--server HOST[:PORT]")));
}

#[test]
fn plaintext_mode_against_a_plaintext_server() {
    let server = ChatServer::start_with(&["--plaintext"]);
    let args = [
        "--server",
        &server.addr,
        "--plaintext",
        "--query-interval",
        "0.2",
    ];
    let mut amy = Kaichat::start_raw(
        "amy",
        &[&args[..], &["--user", "amy", "--channel", "@p"]].concat(),
    );
    amy.expect("joined @p");
    let mut bob = Kaichat::start_raw(
        "bob",
        &[&args[..], &["--user", "bob", "--channel", "@p"]].concat(),
    );
    bob.expect("joined @p");
    bob.send("in the clear");
    amy.expect_message("bob", "@p", "in the clear");
    assert_clean_exit("amy", &amy.finish());
    assert_clean_exit("bob", &bob.finish());
}

/// The sans-IO client that `kaichat` and `loadgen` share, driven over real TLS in
/// big-endian order: every server PDU must come back in that order and decode to the
/// expected events (no `Unexpected`).
#[test]
fn the_client_state_machine_speaks_big_endian_to_the_real_server() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use kaichat_proto::client::{Client, Event, Settings};
    use kaichat_proto::names::{ChannelName, Username};
    use kaichat_proto::pdu::{ByteOrder, Pdu, PDU_LEN};
    use rustls::pki_types::ServerName;

    let server = ChatServer::start();
    let trust = kaichat::tls::Trust {
        ca: Some(common_client::manifest().join("certs/ca.pem")),
        roots: Vec::new(),
    };
    let config = kaichat::tls::client_config(&trust).expect("client config");
    let sock = TcpStream::connect(&server.addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(config, name).expect("tls");
    let mut tls = rustls::StreamOwned::new(conn, sock);

    let mut client = Client::new(Settings {
        order: ByteOrder::Big,
        query_interval: None,
        keepalive_interval: None,
        ..Settings::default()
    });
    let mut out: Vec<u8> = Vec::new();
    let now = Instant::now();
    let user = Username::new(b"bigend").expect("name");
    client.offer_name(user, now, &mut out).expect("offer");
    client.start(now, &mut out);

    /// Sends what is queued, then reads PDUs until `wanted` matches an event (described as
    /// a string so that it outlives the PDU).
    fn until(
        tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
        client: &mut Client,
        out: &mut Vec<u8>,
        wanted: &str,
    ) -> Vec<String> {
        tls.write_all(out).expect("send");
        out.clear();
        let mut seen = Vec::new();
        for _ in 0..100 {
            let mut bytes = [0u8; PDU_LEN];
            tls.read_exact(&mut bytes).expect("a PDU from the server");
            let pdu = Pdu::from_bytes(bytes);
            assert_eq!(pdu.command_bytes()[..3], [0, 0, 0], "big-endian: {pdu:?}");
            let event = client
                .handle(&pdu, Instant::now(), out)
                .expect("no fatal error");
            let text = format!("{event:?}");
            assert!(!text.contains("Unexpected"), "{text}");
            tls.write_all(out).expect("send");
            out.clear();
            let described = match event {
                Some(Event::Message { sender, text, .. }) => format!(
                    "message {} {}",
                    String::from_utf8_lossy(sender),
                    String::from_utf8_lossy(text)
                ),
                Some(Event::Notice { text, .. }) => {
                    format!("notice {}", String::from_utf8_lossy(text))
                }
                other => format!("{other:?}"),
            };
            let done = described.starts_with(wanted);
            seen.push(described);
            if done {
                return seen;
            }
        }
        panic!("no {wanted:?} in {seen:#?}");
    }

    until(&mut tls, &mut client, &mut out, "Some(Established");
    assert!(client.is_established());
    let endian = ChannelName::new(b"@endian").expect("channel name");
    client.join(&endian, now, &mut out).expect("join");
    until(&mut tls, &mut client, &mut out, "Some(Joined");
    assert_eq!(client.channel(), Some(&endian));
    client
        .send_message(b"from big", now, &mut out)
        .expect("say");
    tls.write_all(&out).expect("send");
    out.clear();

    // A little-endian peer: the real kaichat binary.
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy", "--channel", "@endian"]);
    amy.expect("joined @endian");
    amy.expect_message("bigend", "@endian", "from big");
    amy.send("from little");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        client.query(Instant::now(), &mut out).expect("query");
        let seen = until(&mut tls, &mut client, &mut out, "Some(UpToDate");
        if seen.iter().any(|s| s == "message amy from little") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "amy's message never came: {seen:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    client.ping(Instant::now(), &mut out).expect("ping");
    until(&mut tls, &mut client, &mut out, "Some(Pong");
    client.leave(Instant::now(), &mut out).expect("leave");
    until(&mut tls, &mut client, &mut out, "Some(Left");
    client.quit(Instant::now(), &mut out);
    tls.write_all(&out).expect("quit");
    assert_clean_exit("amy", &amy.finish());
}
