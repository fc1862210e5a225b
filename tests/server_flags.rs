//! The server's command line, against the real binary: every flag's error names the flag,
//! `--listen` takes host names and a bare `:PORT`, certificate and key problems are said in
//! words that name the file, `--version`, and `--help` showing the defaults the server uses.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use kaichat::server::{DEFAULT_HISTORY, DEFAULT_REPLAY};
use kaichat_proto::session::Deadlines;

/// How long a run that should end by itself may take.
const WITHIN: Duration = Duration::from_secs(5);

fn run(args: &[&str]) -> Exit {
    run_finished(args, WITHIN)
}

fn refusal(args: &[&str]) -> String {
    refusal_within(args, WITHIN)
}

#[test]
fn every_flag_error_names_the_flag_and_says_what_was_expected() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--idle-timeout", "-5"],
            "--idle-timeout: '-5' is not a number of seconds",
        ),
        (
            &["--handshake-timeout", "abc"],
            "--handshake-timeout: 'abc' is not a number of seconds",
        ),
        (
            &["--stats-interval", "1.5"],
            "--stats-interval: '1.5' is not a number of seconds",
        ),
        // Longer than any deadline makes sense, and than the server's clock can add.
        (
            &["--idle-timeout", "18446744073709551615"],
            "--idle-timeout: ",
        ),
        (
            &["--handshake-timeout", "18446744073709551615"],
            "--handshake-timeout: ",
        ),
        (
            &["--history", "many"],
            "--history: 'many' is not a number of entries",
        ),
        (&["--history", "0"], "--history: "),
        (
            &["--replay", "-1"],
            "--replay: '-1' is not a number of entries",
        ),
        (
            &["--max-clients", "lots"],
            "--max-clients: 'lots' is not a number of clients",
        ),
        (&["--max-clients", "0"], "--max-clients: "),
        (&["--listen", "not-an-address"], "--listen: "),
        (&["--listen", "127.0.0.1:99999"], "--listen: "),
        (&["--listen", ":port"], "--listen: "),
        // A flag given last, without its value.
        (&["--replay"], "--replay: "),
        (&["--idle-timeout"], "--idle-timeout: "),
        (&["--listen"], "--listen: "),
        (&["--cert"], "--cert: "),
        (&["--key"], "--key: "),
        // A flag given twice.
        (&["--history", "5", "--history", "6"], "--history: "),
        // The value glued on with '='.
        (&["--idle-timeout=5"], "--idle-timeout: "),
        // Cluster mode's three flags.
        (&["--redis", "http://localhost"], "--redis: "),
        (&["--redis", "redis://host:notaport"], "--redis: "),
        (
            &["--node-id", "two words"],
            "--node-id: 'two words' holds ' '",
        ),
        (
            &["--node-id", ""],
            "--node-id: '' is 0 bytes long, not 1 to 64",
        ),
        (&["--lease-ms", "50"], "--lease-ms: must be at least 300"),
        (
            &["--redis", "redis://127.0.0.1:1/0", "--store", "/tmp/x.db"],
            "--store and --redis cannot be used together",
        ),
    ];
    for (args, expected) in cases {
        let line = refusal(args);
        assert!(
            line.starts_with(&format!("kaichat-server: {expected}")),
            "{args:?}: expected a line starting with 'kaichat-server: {expected}', got {line:?}"
        );
    }
    let line = refusal(&["--bogus"]);
    assert!(line.contains("'--bogus'"), "{line:?}");
}

#[test]
fn listen_accepts_a_host_name() {
    let server = Server::start(&["--listen", "localhost:0"]);
    assert!(server.addr.ip().is_loopback(), "bound {}", server.addr);
    let mut c = server.member("named", "@host");
    c.assert_alive();
}

#[test]
fn listen_accepts_a_bare_port_for_all_interfaces() {
    let server = Server::start(&["--listen", ":0"]);
    assert!(server.addr.ip().is_unspecified(), "bound {}", server.addr);
    // Reachable over IPv4 (an IPv6 wildcard takes IPv4 too where the system allows).
    let v4 = SocketAddr::from(([127, 0, 0, 1], server.addr.port()));
    let mut c = TestClient::connect_tls(v4);
    c.handshake("bare");
    c.assert_alive();
}

#[test]
fn a_key_that_is_not_the_certificates_says_so_naming_both_files() {
    let line = refusal(&[
        "--listen",
        "127.0.0.1:0",
        "--cert",
        "certs/server.pem",
        "--key",
        "certs/ca.key",
    ]);
    assert_eq!(
        line,
        "kaichat-server: certs/server.pem and certs/ca.key do not match: \
         the key is not the certificate's private key"
    );
}

#[test]
fn an_unusable_certificate_or_key_file_says_which_file_and_what() {
    let cases: &[(&str, &str, &[&str])] = &[
        // (cert, key, what the line must contain)
        (
            "/nonexistent/cert.pem",
            "certs/server.key",
            &["/nonexistent/cert.pem", "certificate", "No such file"],
        ),
        (
            "certs/server.pem",
            "/nonexistent/key.pem",
            &["/nonexistent/key.pem", "private key", "No such file"],
        ),
        (
            "certs",
            "certs/server.key",
            &["certs: ", "certificate", "directory"],
        ),
        (
            "Cargo.toml",
            "certs/server.key",
            &["Cargo.toml: ", "no certificate", "PEM"],
        ),
        (
            "certs/server.pem",
            "Cargo.toml",
            &["Cargo.toml: ", "no private key", "PEM"],
        ),
        // Swapped: each file holds the other kind.
        (
            "certs/server.key",
            "certs/server.pem",
            &[
                "certs/server.key: ",
                "holds a private key, not a certificate",
            ],
        ),
        (
            "certs/server.pem",
            "certs/ca.pem",
            &["certs/ca.pem: ", "holds a certificate, not a private key"],
        ),
    ];
    for (cert, key, wanted) in cases {
        let line = refusal(&["--listen", "127.0.0.1:0", "--cert", cert, "--key", key]);
        for w in *wanted {
            assert!(
                line.contains(w),
                "--cert {cert} --key {key}: expected {w:?} in {line:?}"
            );
        }
    }
}

#[test]
fn version_prints_the_name_and_version_and_exits_0() {
    for flag in ["--version", "-V"] {
        let exit = run(&[flag]);
        assert_eq!(exit.code, Some(0), "{flag}: stderr {:?}", exit.stderr);
        assert_eq!(
            exit.stdout,
            format!("kaichat-server {}\n", kaichat::version())
        );
        assert_eq!(exit.stderr, "");
    }
}

#[test]
fn help_states_the_defaults_the_server_uses() {
    let exit = run(&["--help"]);
    assert_eq!(exit.code, Some(0), "stderr {:?}", exit.stderr);
    let d = Deadlines::default();
    let option = |flag: &str| -> String {
        let start = exit
            .stdout
            .find(&format!("  {flag} "))
            .unwrap_or_else(|| panic!("{flag} is not in --help:\n{}", exit.stdout));
        let rest = &exit.stdout[start + 2..];
        // An option's description runs until the next line that starts an option.
        let end = rest[1..].find("\n  -").map_or(rest.len(), |i| i + 1);
        rest[..end].to_string()
    };
    for (flag, default) in [
        ("--handshake-timeout", d.handshake.to_string()),
        ("--idle-timeout", d.idle.to_string()),
        ("--history", DEFAULT_HISTORY.to_string()),
        ("--replay", DEFAULT_REPLAY.to_string()),
        (
            "--listen",
            format!("all interfaces, port {}", kaichat::DEFAULT_PORT),
        ),
    ] {
        let text = option(flag);
        assert!(
            text.contains(&format!("[default: {default}")),
            "{flag}: expected [default: {default}...] in {text:?}"
        );
    }
}
