//! Integration tests of the `kaichat` binary (issue 3): the real client, driven through
//! pipes in its plain line mode, against the real server over TLS on loopback.
//!
//! The line format they read is documented at the top of `src/terminal/mod.rs`.

mod common_client;
// Shared with the server tests, which use all of it.
#[allow(dead_code)]
#[path = "common/redis.rs"]
mod redis;

use std::net::TcpListener;

use common_client::{temp_path, ChatServer, Kaichat};
use redis::RedisServer;

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
    // Version 2: each is shown its own messages, from the server's echo.
    amy.expect_message("amy", "@room", "hello bob, ça va?");
    bob.expect_message("amy", "@room", "hello bob, ça va?");
    bob.send("hi amy");
    bob.send("second line");
    amy.expect_message("bob", "@room", "hi amy");
    amy.expect_message("bob", "@room", "second line");

    bob.expect_message("bob", "@room", "second line");

    assert_clean_exit("amy", &amy.finish());
    // Pushed by itself: the departure happens when the server frees amy's connection,
    // with no request of bob's to give the loop a turn.
    bob.expect_notice("@room", "amy left");
    assert_clean_exit("bob", &bob.finish());
}

/// Every `message` line of `lines` whose text is `text`, as (time, sender).
fn messages_with_text<'a>(lines: &'a [String], text: &str) -> Vec<(&'a str, &'a str)> {
    lines
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(5, ' ').collect();
            (f.len() == 5 && f[0] == "message" && f[4] == text).then(|| (f[1], f[2]))
        })
        .collect()
}

#[test]
fn version_2_pushes_without_polling_and_replays_with_the_time_said() {
    let server = ChatServer::start();
    // A query interval no test waits for: on version 2 nothing depends on it.
    let ca = common_client::path_arg("certs/ca.pem");
    let start = |user: &str| {
        Kaichat::start_raw(
            user,
            &[
                "--server",
                &server.addr,
                "--ca",
                &ca,
                "--query-interval",
                "600",
                "--user",
                user,
                "--channel",
                "@push",
            ],
        )
    };
    let mut amy = start("amy");
    amy.expect("joined @push");
    let mut bob = start("bob");
    bob.expect("joined @push");
    amy.expect_notice("@push", "bob joined");
    bob.send("pushed to you");
    let seen_by_amy = amy.expect_message("bob", "@push", "pushed to you");
    // The echo: bob's own message, as the server stored it.
    let echoed = bob.expect_message("bob", "@push", "pushed to you");
    let time = |line: &str| line.split(' ').nth(1).unwrap_or_default().to_string();
    assert_eq!(
        time(&seen_by_amy),
        time(&echoed),
        "one entry, one time stamp"
    );

    // Past the next second: a line shown at the time it arrives would show another time.
    let later = std::time::SystemTime::now() + std::time::Duration::from_millis(1100);
    while std::time::SystemTime::now() < later {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A client that comes later gets the replay, each line with the time it was said.
    let mut cy = start("cy");
    cy.expect("joined @push");
    let replayed = cy.expect_message("bob", "@push", "pushed to you");
    assert_eq!(time(&replayed), time(&seen_by_amy), "{replayed}");
    cy.expect_notice("@push", "cy joined");

    // Rejoining shows the whole conversation, own messages included.
    bob.send("!leave");
    bob.expect("left @push");
    bob.send("!join @push");
    bob.expect("joined @push");
    bob.expect_notice("@push", "bob joined");
    let bob_end = bob.finish();
    assert_clean_exit("bob", &bob_end);
    let own = messages_with_text(&bob_end.stdout, "pushed to you");
    assert!(own.len() >= 2, "echo and replay: {:#?}", bob_end.stdout);
    assert!(own
        .iter()
        .all(|(t, sender)| *t == time(&echoed) && *sender == "bob"));
    assert_clean_exit("amy", &amy.finish());
    assert_clean_exit("cy", &cy.finish());
}

#[test]
fn version_1_against_a_v1_server_and_when_forced() {
    // A version-1 server: kaichat falls back to version 1 and polls.
    let server = ChatServer::start_with(&["--max-version", "1"]);
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy", "--channel", "@old"]);
    amy.expect("joined @old");
    let mut bob = Kaichat::start(&server, "bob", &["--user", "bob", "--channel", "@old"]);
    bob.expect("joined @old");
    amy.expect_notice("@old", "bob joined");
    amy.send("polled");
    bob.expect_message("amy", "@old", "polled");
    bob.send("polled back");
    amy.expect_message("bob", "@old", "polled back");
    // Version-2 commands are not sent, and say why.
    amy.send("!list");
    let info = amy.expect("info not sent: ");
    assert!(info.contains("version 2"), "{info}");
    amy.send("!kick bob");
    amy.expect("info not sent: ");
    // A script's line after !oper is the password even here: never sent as a message.
    amy.send("!oper");
    amy.send("password");
    amy.expect("info not sent: ");
    let amy_end = amy.finish();
    assert_clean_exit("amy", &amy_end);
    // bob's last QUERY fetches everything amy sent before she quit.
    let bob_end = bob.finish();
    assert_clean_exit("bob", &bob_end);
    assert!(
        messages_with_text(&bob_end.stdout, "password").is_empty(),
        "{:#?}",
        bob_end.stdout
    );
    // Version 1 never shows a client its own messages.
    assert!(
        messages_with_text(&amy_end.stdout, "polled").is_empty(),
        "{:#?}",
        amy_end.stdout
    );

    // --protocol 1 with a version-2 server: version 1 all the same.
    let server = ChatServer::start();
    // new opens @mix: the operator.
    let mut new = Kaichat::start(&server, "new", &["--user", "new", "--channel", "@mix"]);
    new.expect("joined @mix");
    let mut old = Kaichat::start(
        &server,
        "old",
        &["--protocol", "1", "--user", "old", "--channel", "@mix"],
    );
    old.expect("joined @mix");
    new.expect_notice("@mix", "old joined");
    old.send("from v1");
    new.expect_message("old", "@mix", "from v1");
    new.send("from v2");
    old.expect_message("new", "@mix", "from v2");
    new.expect_message("new", "@mix", "from v2");
    // A version-1 target of a KICK: the LEAVE_CHANNEL, then the one notice v1 has for
    // it, an error notice (which refuses nothing of its own).
    new.send("!kick old bye");
    new.expect("done kick @mix old");
    old.expect("removed @mix");
    let told = old.expect("error ");
    assert!(
        told.ends_with(" you were kicked from @mix by new: bye"),
        "{told}"
    );
    old.send("!join @mix");
    old.expect("joined @mix");
    let old_end = old.finish();
    assert_clean_exit("old", &old_end);
    assert!(
        messages_with_text(&old_end.stdout, "from v1").is_empty(),
        "{:#?}",
        old_end.stdout
    );
    assert_clean_exit("new", &new.finish());
}

#[test]
fn list_names_kick_ban_unban() {
    let server = ChatServer::start();
    // amy opens @room: she is its operator.
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy", "--channel", "@room"]);
    amy.expect("joined @room");
    let mut bob = Kaichat::start(&server, "bob", &["--user", "bob", "--channel", "@room"]);
    bob.expect("joined @room");
    let mut cy = Kaichat::start(&server, "cy", &["--user", "cy", "--channel", "@other"]);
    cy.expect("joined @other");
    amy.expect_notice("@room", "bob joined");

    amy.send("!list");
    let other = amy.expect("channel @other ");
    assert_eq!(other.split(' ').nth(2), Some("1"), "{other}");
    let room = amy.expect("channel @room ");
    assert_eq!(room.split(' ').nth(2), Some("2"), "{room}");
    amy.expect("channels 2");

    amy.send("!names");
    amy.expect("names @room 2 @amy bob");
    bob.send("!names other");
    bob.expect("names @other 1 @cy");
    bob.send("!names @nowhere");
    let refused = bob.expect("refused names ");
    assert!(refused.contains("@nowhere"), "{refused}");

    // bob is no operator of @room.
    bob.send("!kick amy");
    bob.expect("refused kick you are not an operator of @room");

    amy.send("!kick bob enough spam");
    amy.expect("done kick @room bob");
    bob.expect("removed @room");
    bob.expect_notice("@room", "you were kicked from @room by amy: enough spam");
    amy.expect_notice("@room", "bob was kicked by amy: enough spam");
    // Removed: bob is in no channel, so a line names a channel to join.
    bob.send("room");
    bob.expect("joined @room");
    amy.expect_notice("@room", "bob joined");

    amy.send("!ban bob");
    amy.expect("done ban @room bob");
    bob.expect("removed @room");
    bob.expect_notice("@room", "you were banned from @room by amy");
    bob.send("!join @room");
    bob.expect("refused join you are banned from @room");
    amy.send("!unban bob");
    amy.expect("done unban @room bob");
    bob.send("!join @room");
    bob.expect("joined @room");

    for (name, who) in [("amy", amy), ("bob", bob), ("cy", cy)] {
        assert_clean_exit(name, &who.finish());
    }
}

#[test]
fn oper_with_the_wrong_and_the_right_password() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(&[7u8; 16]).expect("salt");
    let hash = argon2::Argon2::default()
        .hash_password(b"open sesame", &salt)
        .expect("hash")
        .to_string();
    let path = temp_path("oper.hash");
    std::fs::write(&path, format!("{hash}\n")).expect("write hash");
    let path_arg = path.display().to_string();
    let server = ChatServer::start_with(&["--oper-password-file", &path_arg]);

    let mut bob = Kaichat::start(&server, "bob", &["--user", "bob", "--channel", "@bobs"]);
    bob.expect("joined @bobs");
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy", "--channel", "@bobs"]);
    amy.expect("joined @bobs");
    amy.send("!kick bob");
    amy.expect("refused kick you are not an operator of @bobs");
    // In plain mode the password is the next input line.
    amy.send("!oper");
    amy.send("sesame");
    amy.expect("refused oper not an operator password");
    amy.send("!oper secret");
    amy.expect("info usage: !oper");
    amy.send("!oper");
    amy.send("open sesame");
    amy.expect("operator");
    // A server operator has the powers of a channel operator everywhere.
    amy.send("!kick bob");
    amy.expect("done kick @bobs bob");
    bob.expect("removed @bobs");
    let _ = std::fs::remove_file(&path);
    let amy_end = amy.finish();
    assert_clean_exit("amy", &amy_end);
    assert!(
        !amy_end.stdout.iter().any(|l| l.contains("sesame")),
        "the password is never shown: {:#?}",
        amy_end.stdout
    );
    assert_clean_exit("bob", &bob.finish());
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
    amy.send("!join @");
    amy.expect("info cannot join: channel name '@' is too short");

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
    other.expect("name-rejected username 'not valid' contains a space");
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
        &["--channel", "@"],
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

/// Item 7: started from another directory, the client finds the development CA as the
/// server finds its certificate.
#[test]
fn the_development_ca_is_found_from_another_directory() {
    let server = ChatServer::start();
    let elsewhere = std::env::temp_dir();
    let mut amy = Kaichat::start_in(
        &elsewhere,
        "amy",
        &["--server", &server.addr, "--user", "amy"],
    );
    amy.expect("established amy");
    assert_clean_exit("amy", &amy.finish());
}

/// Writes a CA and a server certificate for `names` only (not 127.0.0.1, not localhost);
/// returns the paths of the CA, the chain and the key.
fn certificate_for(names: &[&str]) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let leaf = rcgen::CertificateParams::new(names)
        .expect("params")
        .signed_by(&key, &ca)
        .expect("leaf");
    let paths = (
        temp_path("ca.pem"),
        temp_path("server.pem"),
        temp_path("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write CA");
    std::fs::write(&paths.1, leaf.pem()).expect("write chain");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write key");
    paths
}

/// Item 7: a certificate that does not cover the host name says so, and does not send the
/// person looking for another CA.
#[test]
fn a_certificate_for_another_host_name_says_so() {
    let (ca, cert, key) = certificate_for(&["chat.example"]);
    let (ca_arg, cert_arg, key_arg) = (
        ca.display().to_string(),
        cert.display().to_string(),
        key.display().to_string(),
    );
    let server = ChatServer::start_with(&["--cert", &cert_arg, "--key", &key_arg]);
    let ended = Kaichat::start_raw(
        "eve",
        &["--server", &server.addr, "--ca", &ca_arg, "--user", "eve"],
    )
    .finish();
    for path in [&ca, &cert, &key] {
        let _ = std::fs::remove_file(path);
    }
    assert_eq!(ended.status.code(), Some(1), "{ended:#?}");
    let stderr: Vec<&String> = ended.stderr.iter().filter(|l| !l.is_empty()).collect();
    assert_eq!(stderr.len(), 1, "one clear line: {ended:#?}");
    assert!(
        stderr[0].contains("not valid for '127.0.0.1'"),
        "{ended:#?}"
    );
    assert!(stderr[0].contains("chat.example"), "{ended:#?}");
    assert!(!stderr[0].contains("--ca"), "{ended:#?}");
}

/// Item 4: the server's set-up deadline is not restarted by a refused name (contract 7),
/// so a person who takes longer than it to type another is reconnected, not thrown out.
#[test]
fn a_name_typed_after_the_set_up_deadline_is_still_accepted() {
    let server = ChatServer::start_with(&["--handshake-timeout", "1"]);
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy"]);
    amy.expect("established amy");
    let mut slow = Kaichat::start(&server, "slow", &["--user", "amy", "--channel", "@late"]);
    slow.expect("name-rejected ");
    // Past the server's 1-s deadline (its 1-s wheel may add up to a second), with a
    // second to spare.
    std::thread::sleep(std::time::Duration::from_millis(3000));
    slow.send("amy2");
    slow.expect("established amy2");
    slow.expect("joined @late");
    let ended = slow.finish();
    assert_clean_exit("slow", &ended);
    assert_eq!(ended.stderr, Vec::<String>::new());
    assert_clean_exit("amy", &amy.finish());
}

/// Items 4 and 9: the first name is asked once connected; typing it slowly is fine too.
#[test]
fn a_first_name_typed_after_the_set_up_deadline_is_accepted() {
    let server = ChatServer::start_with(&["--handshake-timeout", "1"]);
    let mut carl = Kaichat::start(&server, "carl", &[]);
    std::thread::sleep(std::time::Duration::from_millis(3000));
    carl.send("carl");
    carl.expect("established carl");
    let ended = carl.finish();
    assert_clean_exit("carl", &ended);
    assert_eq!(ended.stderr, Vec::<String>::new());
}

/// Item 5: a server restart is survived: the reason is shown, the client reconnects with
/// backoff, rejoins its channel, and what was typed meanwhile is sent afterwards.
#[test]
fn a_restarted_server_is_reconnected_and_the_channel_rejoined() {
    let server = ChatServer::start();
    let addr = server.addr.clone();
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy", "--channel", "@room"]);
    amy.expect("joined @room");
    server.stop();
    let lost = amy.expect("disconnected ");
    assert!(lost.contains("closed the connection"), "{lost}");
    amy.send("typed while away");
    amy.expect("info not connected");

    let server = ChatServer::start_at(&addr, &[]);
    amy.expect("reconnected amy");
    amy.expect("joined @room");
    let mut bob = Kaichat::start(&server, "bob", &["--user", "bob", "--channel", "@room"]);
    bob.expect("joined @room");
    bob.expect_message("amy", "@room", "typed while away");
    amy.expect_notice("@room", "bob joined");
    bob.send("welcome back");
    amy.expect_message("bob", "@room", "welcome back");
    let ended = amy.finish();
    assert_clean_exit("amy", &ended);
    assert_eq!(ended.stderr, Vec::<String>::new());
    assert_clean_exit("bob", &bob.finish());
}

/// Item 9: with no server, the client says so before asking for a name.
#[test]
fn no_server_is_reported_before_a_name_is_asked() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let server = addr.to_string();
    // Input stays open: the client must not wait for a name.
    let ended = Kaichat::start_raw("x", &["--server", &server]).wait_exit();
    assert_eq!(ended.status.code(), Some(1), "{ended:#?}");
    let stderr: Vec<&String> = ended.stderr.iter().filter(|l| !l.is_empty()).collect();
    assert_eq!(stderr.len(), 1, "{ended:#?}");
    assert!(
        stderr[0].starts_with(&format!("kaichat: cannot reach the server at {server}")),
        "{ended:#?}"
    );
}

/// Item 8: a query interval longer than the server's idle deadline does not get the client
/// dropped: it sends PING when it has sent nothing for the keep-alive interval.
#[test]
fn a_long_query_interval_keeps_the_connection_alive() {
    let server = ChatServer::start_with(&["--idle-timeout", "2"]);
    let mut amy = Kaichat::start_raw(
        "amy",
        &[
            "--server",
            &server.addr,
            "--ca",
            &common_client::path_arg("certs/ca.pem"),
            "--query-interval",
            "60",
            "--keepalive",
            "0.5",
            "--user",
            "amy",
            "--channel",
            "@k",
        ],
    );
    amy.expect("joined @k");
    // Well past the idle deadline (2 s, and up to a second of the server's wheel).
    std::thread::sleep(std::time::Duration::from_millis(4000));
    amy.send("!leave");
    amy.expect("left @k");
    let ended = amy.finish();
    assert_clean_exit("amy", &ended);
    assert_eq!(ended.stderr, Vec::<String>::new());
    // Reconnecting would hide a drop: there must have been none.
    assert!(
        !ended.stdout.iter().any(|l| l.starts_with("disconnected")),
        "{:#?}",
        ended.stdout
    );
}

/// Item 6: `!!` sends a literal `!`; `!join` takes a name without `@` and explains a bad
/// one.
#[test]
fn lines_that_start_with_an_exclamation_mark() {
    let server = ChatServer::start();
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy", "--channel", "@bang"]);
    amy.expect("joined @bang");
    let mut bob = Kaichat::start(&server, "bob", &["--user", "bob", "--channel", "@bang"]);
    bob.expect("joined @bang");

    amy.send("!important: lunch at 12");
    let line = amy.expect("info unknown command !important:");
    assert!(line.contains("!!"), "says how to send it: {line}");
    amy.send("!!important: lunch at 12");
    bob.expect_message("amy", "@bang", "!important: lunch at 12");

    amy.send("!join @");
    let line = amy.expect("info cannot join: channel name '@' is too short");
    assert!(line.contains("2 to 50"), "says what a name is: {line}");
    amy.send("!join my channel");
    amy.expect("info cannot join: channel name '@my channel' contains a space");
    let long = "x".repeat(50);
    amy.send(&format!("!join {long}"));
    let line = amy.expect("info cannot join: channel name starting '@");
    assert!(line.contains("is too long"), "{line}");

    amy.send("!join rust");
    amy.expect("joined @rust");
    assert_clean_exit("amy", &amy.finish());
    assert_clean_exit("bob", &bob.finish());
}

/// Item 10: a wrong value names its flag; `--server :PORT` means localhost; `--version`.
#[test]
fn flags_name_themselves_in_errors_and_accept_a_bare_port() {
    for (args, wanted) in [
        (
            &["--query-interval", "-5"][..],
            "kaichat: --query-interval: '-5' is not a number of seconds",
        ),
        (
            &["--query-interval", "soon"],
            "kaichat: --query-interval: 'soon' is not a number of seconds",
        ),
        (
            &["--server", "host:notaport"],
            "kaichat: --server: 'host:notaport' has a bad port",
        ),
        (
            &["--ca", "/nonexistent/ca.pem"],
            "kaichat: --ca: /nonexistent/ca.pem: ",
        ),
        (&["--channel", "a b"], "kaichat: --channel: "),
        (&["--user", "much_too_long"], "kaichat: --user: "),
        (&["--server"], "kaichat: --server: "),
    ] {
        let ended = Kaichat::start_raw("bad", args).finish();
        assert_eq!(ended.status.code(), Some(2), "{args:?}: {ended:#?}");
        assert_eq!(ended.stderr.len(), 1, "{args:?}: {ended:#?}");
        assert!(ended.stderr[0].starts_with(wanted), "{args:?}: {ended:#?}");
    }

    let version = Kaichat::start_raw("version", &["--version"]).finish();
    assert!(version.status.success(), "{version:#?}");
    assert_eq!(version.stdout, [format!("kaichat {}", kaichat::version())]);

    let server = ChatServer::start();
    let port = server.addr.rsplit(':').next().expect("port");
    let mut amy = Kaichat::start_raw("amy", &["--server", &format!(":{port}"), "--user", "amy"]);
    amy.expect("established amy");
    assert_clean_exit("amy", &amy.finish());
}

/// The chat on a real terminal (a pseudo-terminal): line editing with echo, and `!oper`'s
/// password read with the echo off, so it never appears on the screen.
#[test]
fn on_a_terminal_the_oper_password_is_not_shown() {
    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(&[9u8; 16]).expect("salt");
    let hash = argon2::Argon2::default()
        .hash_password(b"open sesame", &salt)
        .expect("hash")
        .to_string();
    let path = temp_path("tty-oper.hash");
    std::fs::write(&path, format!("{hash}\n")).expect("write hash");
    let path_arg = path.display().to_string();
    let server = ChatServer::start_with(&["--oper-password-file", &path_arg]);

    let (mut master, slave) = {
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors it opened; we own them from here on.
        let done = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(done, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both are open descriptors that nothing else owns.
        unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
    };
    let ca = common_client::path_arg("certs/ca.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kaichat"))
        .args(["--server", &server.addr, "--ca", &ca])
        .args(["--user", "amy", "--channel", "@tty"])
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("start kaichat");
    let screen = Arc::new(Mutex::new(Vec::new()));
    let mut reader = master.try_clone().expect("dup master");
    let shown = Arc::clone(&screen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            shown
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&buf[..n]);
        }
    });
    let text =
        || String::from_utf8_lossy(&screen.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    let wait_for = |what: &str, child: &mut std::process::Child| {
        let until = Instant::now() + common_client::WAIT;
        while !text().contains(what) {
            if Instant::now() > until {
                let _ = child.kill();
                panic!("the terminal never showed {what:?}:\n{}", text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("joined @tty", &mut child);
    master.write_all(b"!oper\r").expect("type");
    wait_for("operator password: ", &mut child);
    master.write_all(b"open sesame\r").expect("type");
    wait_for("you are now a server operator", &mut child);
    master.write_all(b"!quit\r").expect("type");
    wait_for("-- bye", &mut child);
    let until = Instant::now() + common_client::WAIT;
    while child.try_wait().ok().flatten().is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = std::fs::remove_file(&path);
    let seen = text();
    // What is typed at the chat prompt is echoed; the password is not.
    assert!(seen.contains("!oper"), "{seen}");
    assert!(!seen.contains("sesame"), "the password was shown:\n{seen}");
}

/// A pasted or piped block of lines is paced under the server's default rate limit (10 a
/// second after 20 at once) instead of losing every line past the burst.
#[test]
fn a_pasted_block_is_paced_not_refused() {
    let server = ChatServer::start();
    let mut bob = Kaichat::start(&server, "bob", &["--user", "bob", "--channel", "@paste"]);
    bob.expect("joined @paste");
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy", "--channel", "@paste"]);
    amy.expect("joined @paste");
    for i in 1..=40 {
        amy.send(&format!("line {i}"));
    }
    amy.close_stdin();
    for i in 1..=40 {
        bob.expect_message("amy", "@paste", &format!("line {i}"));
    }
    let ended = amy.finish();
    assert_clean_exit("amy", &ended);
    assert!(
        !ended.stdout.iter().any(|l| l.contains("slow down")),
        "a line was refused: {:#?}",
        ended.stdout
    );
    assert_clean_exit("bob", &bob.finish());
}

#[test]
fn a_name_refused_only_because_the_network_is_unavailable_is_offered_again() {
    // A node of a network (cluster mode) whose Redis is down refuses every name with
    // `error: network unavailable, try again`: not the name's fault, so kaichat offers
    // the same name again by itself instead of asking for another.
    let mut redis = RedisServer::start();
    let url = redis.url();
    let server =
        ChatServer::start_with(&["--redis", &url, "--node-id", "cli", "--lease-ms", "1000"]);
    redis.stop();
    let mut amy = Kaichat::start(&server, "amy", &["--user", "amy", "--channel", "@net"]);
    let line = amy.expect("info ");
    assert!(
        line.contains("network unavailable") && line.contains("offered again"),
        "{line}"
    );
    redis.restart();
    amy.expect("established amy");
    amy.expect("joined @net");
    let ended = amy.finish();
    assert_clean_exit("amy", &ended);
    assert!(
        !ended.stdout.iter().any(|l| l.starts_with("name-rejected")),
        "{:#?}",
        ended.stdout
    );
}

#[test]
fn a_name_another_node_took_while_ours_was_cut_off_ends_kaichat_with_the_reason() {
    // Two nodes of a network; carol's node is stopped (SIGSTOP) for longer than its lease,
    // another client takes "carol" through the other node, and the first node comes back:
    // it closes its carol saying why, and kaichat stops there rather than reconnecting to
    // fight the name's new owner.
    let redis = RedisServer::start();
    let url = redis.url();
    let node = |id: &str| {
        ChatServer::start_with(&["--redis", &url, "--node-id", id, "--lease-ms", "1000"])
    };
    let (n0, n1) = (node("n0"), node("n1"));
    let mut old = Kaichat::start(&n1, "carol", &["--user", "carol", "--channel", "@p"]);
    old.expect("joined @p");
    let signal = |sig| unsafe {
        // SAFETY: kill(2) on the pid of the test's own child.
        libc::kill(n1.pid(), sig);
    };
    signal(libc::SIGSTOP);
    let mut new = Kaichat::start(&n0, "new", &["--user", "carol"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let line = new.expect_line("established or refused", |l| {
            l.starts_with("established") || l.starts_with("name-rejected")
        });
        if line.starts_with("established carol") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "carol never came free"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        new.send("carol");
    }
    signal(libc::SIGCONT);
    let ended = old.wait_exit();
    assert_eq!(ended.status.code(), Some(1), "{ended:#?}");
    assert!(
        ended
            .stderr
            .iter()
            .any(|l| l.contains("is another client's now")),
        "{ended:#?}"
    );
    assert!(
        !ended.stdout.iter().any(|l| l.contains("reconnect")),
        "{ended:#?}"
    );
    assert_clean_exit("new", &new.finish());
}
