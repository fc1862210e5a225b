//! Connection set-up (contract sections 3 and 4) against the real server over TLS: every
//! step and its answers, byte orders, ignored PDUs, QUIT in every phase, version and
//! CLIENT_INFO rules.

mod common;

use common::*;

const LE: ByteOrder = ByteOrder::Little;
const BE: ByteOrder = ByteOrder::Big;

#[test]
fn each_setup_step_is_answered_exactly() {
    let server = Server::start(&[]);
    let mut c = server.client();

    c.send(&Pdu::ping(LE));
    let pong = c.recv();
    assert_eq!(pong.command_bytes(), [7, 0, 0, 0], "PONG: {pong:?}");
    assert!(pong.prefix().iter().all(|&b| b == 0));
    assert!(pong.params().iter().all(|&b| b == 0));

    let version = c.recv();
    assert_eq!(
        version.command_bytes(),
        [1, 0, 0, 0],
        "server version: {version:?}"
    );
    assert_eq!(&version.prefix()[..6], b"SERVER");
    assert!(
        version.prefix()[6..].iter().all(|&b| b == 0),
        "prefix is NUL-padded"
    );
    assert_eq!(&version.params()[..2], &[0, 2], "version 2, u16 big-endian");
    assert!(version.params()[2..].iter().all(|&b| b == 0));

    c.send(&Pdu::client_version(LE, 1));
    c.send(&Pdu::client_info(LE, b"alice"));
    let ack = c.recv();
    assert_eq!(
        ack.command_bytes(),
        [2, 0, 0, 0],
        "CLIENT_INFO ack: {ack:?}"
    );
    assert_eq!(&ack.prefix()[..6], b"SERVER");
    assert!(ack.prefix()[6..].iter().all(|&b| b == 0));
    assert_eq!(&ack.params()[..5], b"alice");
    assert!(ack.params()[5..].iter().all(|&b| b == 0));
    c.name = b"alice".to_vec();

    // Established: PING is answered with PONG.
    c.assert_alive();
    c.quit();
    c.expect_clean_close();
}

#[test]
fn big_endian_client_gets_every_pdu_big_endian() {
    let server = Server::start(&[]);
    let mut peer = server.member("peer", "@be");
    let mut c = server.client().big_endian();

    c.send(&Pdu::ping(BE));
    let pong = c.recv_raw();
    assert_eq!(
        pong.command_bytes(),
        [0, 0, 0, 7],
        "PONG in the PING's order"
    );
    let version = c.recv_raw();
    assert_eq!(
        version.command_bytes(),
        [0, 0, 0, 1],
        "server version in BE"
    );
    assert_eq!(&version.params()[..2], &[0, 2]);
    assert_eq!(version.username(), b"SERVER");

    c.send(&Pdu::client_version(BE, 1));
    c.send(&Pdu::client_info(BE, b"bigend"));
    let ack = c.recv_raw();
    assert_eq!(ack.command_bytes(), [0, 0, 0, 2], "ack in BE: {ack:?}");
    assert_eq!(ack.client_info_name(), b"bigend");
    c.name = b"bigend".to_vec();

    c.send(&join_pdu(BE, b"bigend", b"@be"));
    let join = c.recv_raw();
    assert_eq!(join.command_bytes(), [0, 0, 0, 3], "JOIN ack in BE");
    assert_eq!(join.channel(), b"@be");
    c.channel = b"@be".to_vec();

    peer.say("to big");
    peer.assert_alive(); // the message is stored once PONG comes back
    c.send(&Pdu::query(BE));
    let mut answer = Vec::new();
    loop {
        let pdu = c.recv_raw();
        assert_eq!(pdu.command_bytes(), [0, 0, 0, 5], "RECEIVE in BE: {pdu:?}");
        if pdu.up_to_date() {
            break;
        }
        answer.push(entry(&pdu));
    }
    assert!(
        answer.contains(&("peer".into(), "to big".into())),
        "{answer:?}"
    );

    c.say("from big");
    let got = peer.query_entries();
    assert!(
        got.contains(&("bigend".into(), "from big".into())),
        "{got:?}"
    );

    // An error notice is big-endian too.
    c.send(&Pdu::send_message(BE, b""));
    let notice = c.recv_raw();
    assert_eq!(notice.command_bytes(), [0, 0, 0, 5]);
    assert!(notice.params_text().starts_with(b"error: "), "{notice:?}");

    // The little-endian form is an unknown command now: error notice, connection stays.
    c.send(&Pdu::ping(LE));
    let notice = c.recv();
    assert_error_notice(c.command_of(&notice), &notice);

    c.send(&Pdu::ping(BE));
    assert_eq!(c.recv_raw().command_bytes(), [0, 0, 0, 7], "PONG in BE");

    c.send(&Pdu::leave(BE));
    let leave = c.recv_raw();
    assert_eq!(leave.command_bytes(), [0, 0, 0, 6], "LEAVE ack in BE");
    assert_eq!(leave.channel(), b"@be");
    c.quit();
    c.expect_clean_close();
}

#[test]
fn little_endian_client_big_endian_form_is_unknown() {
    let server = Server::start(&[]);
    let mut c = server.member("little", "@le");
    c.send(&Pdu::query(BE));
    let notice = c.recv();
    assert_error_notice(c.command_of(&notice), &notice);
    c.send(&join_pdu(BE, b"little", b"@other"));
    c.expect_error();
    // Still in @le, still working.
    assert_eq!(c.query_entries(), entries(&[("SERVER", "little joined")]));
}

#[test]
fn ping_order_answers_until_the_version_fixes_the_order() {
    let server = Server::start(&[]);
    let mut c = server.client().big_endian();
    c.ping_version();
    // The client selects little-endian with its version.
    c.order = LE;
    c.send(&Pdu::client_version(LE, 1));
    c.client_info("mixed");
    c.join("@mixed");
    let got = c.query_entries();
    assert_eq!(got, entries(&[("SERVER", "mixed joined")]));
    c.send(&Pdu::ping(BE));
    c.expect_error();
}

#[test]
fn unexpected_pdus_before_establishment_are_ignored() {
    let server = Server::start(&[]);
    let mut c = server.client();
    let mut unknown = Pdu::ping(LE);
    unknown.bytes_mut()[256..260].copy_from_slice(&[9, 0, 0, 0]);
    let mut mangled = Pdu::ping(LE);
    mangled.bytes_mut()[256..260].copy_from_slice(&[1, 2, 3, 4]);

    // AwaitPing: everything but PING (and QUIT) is ignored.
    for pdu in [
        Pdu::client_version(LE, 1),
        Pdu::client_info(LE, b"early"),
        join_pdu(LE, b"early", b"@x"),
        Pdu::send_message(LE, b"hello"),
        Pdu::query(LE),
        Pdu::leave(LE),
        Pdu::receive(LE, b"x", Some(&channel_name("@x")), b"y"),
        unknown.clone(),
        mangled.clone(),
    ] {
        c.send(&pdu);
    }
    c.ping_version(); // PONG is the very first PDU the server sends

    // AwaitVersion: a second PING and the rest are ignored.
    for pdu in [
        Pdu::ping(LE),
        Pdu::client_info(LE, b"early"),
        join_pdu(LE, b"early", b"@x"),
        Pdu::query(LE),
        unknown.clone(),
    ] {
        c.send(&pdu);
    }
    c.send(&Pdu::client_version(LE, 1));

    // AwaitClientInfo: PING, VERSION again, JOIN, QUERY are ignored.
    for pdu in [
        Pdu::ping(LE),
        Pdu::client_version(LE, 1),
        join_pdu(LE, b"early", b"@x"),
        Pdu::query(LE),
        Pdu::send_message(LE, b"hi"),
        unknown,
        mangled,
    ] {
        c.send(&pdu);
    }
    c.client_info("early"); // the acknowledgement is the next PDU
    c.assert_alive();
    c.join("@x");
    assert_eq!(c.query_entries(), entries(&[("SERVER", "early joined")]));
}

#[test]
fn quit_closes_in_every_phase() {
    let server = Server::start(&[]);

    // Right after the TLS handshake (AwaitPing), in both orders.
    for order in [LE, BE] {
        let mut c = server.client();
        c.send(&Pdu::quit(order));
        c.expect_clean_close();
    }
    // AwaitVersion.
    let mut c = server.client();
    c.ping_version();
    c.quit();
    c.expect_clean_close();
    // AwaitClientInfo, after a rejected name.
    let mut c = server.client();
    c.ping_version();
    c.send(&Pdu::client_version(LE, 1));
    c.send(&Pdu::client_info(LE, b"SERVER"));
    c.expect_error();
    c.quit();
    c.expect_clean_close();
    // Connected.
    let mut c = server.login("quitter");
    c.quit();
    c.expect_clean_close();
    // The name is free again.
    let mut c = server.login("quitter");
    // In a channel: the others see `<user> left`.
    let mut other = server.member("other", "@q");
    c.join("@q");
    c.quit();
    c.expect_clean_close();
    assert_eq!(
        other.query_entries(),
        entries(&[
            ("SERVER", "other joined"),
            ("SERVER", "quitter joined"),
            ("SERVER", "quitter left"),
        ])
    );
    // A big-endian established client quits with the same all-zero command.
    let mut c = server.client().big_endian();
    c.handshake("bequit");
    c.quit();
    c.expect_clean_close();
}

#[test]
fn unsupported_version_gets_an_error_notice_and_close() {
    let server = Server::start(&[]);
    for (order, version) in [(LE, 0u16), (LE, 3), (BE, 3), (LE, 0xFFFF)] {
        let mut c = server.client();
        c.order = order;
        c.ping_version();
        c.send(&Pdu::client_version(order, version));
        c.expect_error();
        c.expect_closed();
    }
    // The reference implementation's 4-byte native integer reads as version 256.
    let mut c = server.client();
    c.ping_version();
    let mut v = Pdu::client_version(LE, 0);
    v.bytes_mut()[260..264].copy_from_slice(&1u32.to_le_bytes());
    c.send(&v);
    c.expect_error();
    c.expect_closed();
}

/// A CLIENT_INFO whose params start with `raw` (the rest zero).
fn raw_client_info(raw: &[u8]) -> Pdu {
    let mut pdu = Pdu::client_info(LE, b"");
    pdu.bytes_mut()[260..260 + raw.len()].copy_from_slice(raw);
    pdu
}

#[test]
fn bad_names_are_rejected_and_can_be_retried_on_the_same_connection() {
    let server = Server::start(&[]);
    let mut c = server.client();
    c.ping_version();
    c.send(&Pdu::client_version(LE, 1));
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("11 bytes", b"abcdefghijk".to_vec()),
        (
            "10 bytes then a non-NUL non-space",
            b"abcdefghij\x01".to_vec(),
        ),
        ("inner space", b"a b".to_vec()),
        ("leading space", b" ab".to_vec()),
        ("control byte", b"a\x01b".to_vec()),
        ("DEL", b"ab\x7f".to_vec()),
        ("non-ASCII", b"caf\xc3\xa9".to_vec()),
        ("SERVER", b"SERVER".to_vec()),
        ("server", b"server".to_vec()),
        ("SeRvEr", b"SeRvEr".to_vec()),
    ];
    for (why, raw) in &bad {
        c.send(&raw_client_info(raw));
        let pdu = c.recv();
        assert_ne!(
            c.command_of(&pdu),
            Command::ClientInfo,
            "name rejected ({why}) but got an ack: {pdu:?}"
        );
        assert_error_notice(c.command_of(&pdu), &pdu);
    }
    // Still in AwaitClientInfo: a good 10-byte name is accepted now.
    c.client_info("abcdefghij");
    c.assert_alive();
}

#[test]
fn hostname_after_the_name_is_ignored() {
    let server = Server::start(&[]);
    // A 10-byte name, then a space and a hostname.
    let mut c = server.client();
    c.ping_version();
    c.send(&Pdu::client_version(LE, 1));
    c.send(&raw_client_info(b"tenbytesXY host.example"));
    c.expect_client_info_ack("tenbytesXY");
    // A short name, NUL padding, a space at params[10] and a hostname.
    let mut d = server.client();
    d.ping_version();
    d.send(&Pdu::client_version(LE, 1));
    d.send(&raw_client_info(b"bob\0\0\0\0\0\0\0 myhost"));
    d.expect_client_info_ack("bob");
    // Garbage after the first NUL of the name field is ignored too.
    let mut e = server.client();
    e.ping_version();
    e.send(&Pdu::client_version(LE, 1));
    e.send(&raw_client_info(b"eve\0junk!!"));
    e.expect_client_info_ack("eve");
    // The acknowledged names are the names used in the channel.
    c.join("@h");
    d.join("@h");
    d.say("hi");
    c.assert_alive();
    d.assert_alive();
    let got = c.query_entries();
    assert!(got.contains(&("bob".into(), "hi".into())), "{got:?}");
}

#[test]
fn a_taken_name_is_refused_ignoring_case_until_freed() {
    let server = Server::start(&[]);
    let mut alice = server.login("Alice");
    let mut c = server.client();
    c.ping_version();
    c.send(&Pdu::client_version(LE, 1));
    for name in ["Alice", "aLICE", "ALICE"] {
        c.send(&Pdu::client_info(LE, name.as_bytes()));
        let text = c.expect_error();
        let lower = text.to_lowercase();
        assert!(
            lower.contains("taken") || lower.contains("in use"),
            "a taken name's error should say so: {text:?}"
        );
    }
    // Another name on the same connection works.
    c.client_info("alice2");
    // Once Alice quits, her name (in any case) is free.
    alice.quit();
    alice.expect_clean_close();
    let mut d = server.login("aLiCe");
    d.assert_alive();
    c.assert_alive();
}

#[test]
fn plaintext_mode_serves_a_whole_session() {
    let server = Server::start_plaintext(&[]);
    let mut a = server.member("pa", "@plain");
    let mut b = server.member("pb", "@plain");
    a.say("hello over tcp");
    a.assert_alive();
    assert_eq!(
        b.query_entries(),
        entries(&[
            ("SERVER", "pa joined"),
            ("SERVER", "pb joined"),
            ("pa", "hello over tcp"),
        ])
    );
    b.leave();
    b.quit();
    b.expect_clean_close();
    a.quit();
    a.expect_clean_close();
}

#[test]
fn a_tls_1_2_only_client_is_accepted() {
    let server = Server::start(&[]);
    let config = rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_root_certificates(dev_roots())
        .with_no_client_auth();
    let mut c = TestClient::connect_tls_with(server.addr, std::sync::Arc::new(config));
    c.handshake("old-tls");
    assert_eq!(
        c.tls().protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    c.join("@tls12");
    assert_eq!(c.query_entries(), entries(&[("SERVER", "old-tls joined")]));
    c.quit();
    c.expect_clean_close();
}

#[test]
fn tls_1_3_is_preferred_and_sessions_resume() {
    let server = Server::start(&[]);
    // A configuration of our own, so its resumption cache holds only this server.
    let config = std::sync::Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(dev_roots())
            .with_no_client_auth(),
    );
    let mut first = TestClient::connect_tls_with(server.addr, config.clone());
    first.handshake("resume1"); // reading answers also reads the session tickets
    assert_eq!(
        first.tls().protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let mut second = TestClient::connect_tls_with(server.addr, config);
    second.handshake("resume2");
    assert_eq!(
        second.tls().handshake_kind(),
        Some(rustls::HandshakeKind::Resumed),
        "the second connection resumes the first one's session"
    );
}

#[test]
fn an_ipv6_listener_serves() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    }
    let server = Server::start(&["--listen", "[::1]:0"]);
    assert!(server.addr.is_ipv6(), "{}", server.addr);
    let mut c = server.member("six", "@v6");
    assert_eq!(c.query_entries(), entries(&[("SERVER", "six joined")]));
}

#[test]
fn the_certificate_is_valid_for_the_loopback_ip_and_keys_can_be_updated() {
    let server = Server::start(&[]);
    let ip = rustls::pki_types::ServerName::IpAddress(server.addr.ip().into());
    let mut c = TestClient::connect_tls_named(server.addr, tls_config(), ip);
    c.handshake("byip");
    // A TLS 1.3 KeyUpdate mid-session changes nothing for the protocol.
    if let Transport::Tls(s) = &mut c.transport {
        s.conn.refresh_traffic_keys().expect("key update");
    }
    c.assert_alive();
    c.join("@ip");
    assert_eq!(c.query_entries(), entries(&[("SERVER", "byip joined")]));
}
