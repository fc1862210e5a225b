use super::*;

fn run(args: &[&str]) -> Result<Config, String> {
    match parse(args.iter().map(OsString::from).collect())? {
        Command::Run(config) => Ok(*config),
        other => panic!("{other:?}"),
    }
}

fn error(args: &[&str]) -> String {
    run(args).unwrap_err()
}

#[test]
fn every_value_error_names_its_flag() {
    assert_eq!(
        error(&["--clients", "-5"]),
        "--clients: '-5' is not a number"
    );
    assert_eq!(error(&["--clients"]), "--clients: a value is required");
    for (flag, value) in [
        ("--channels", "x"),
        ("--max-setup", "1.5"),
        ("--seed", "-1"),
        ("--first-id", "many"),
        ("--server-pid", "server"),
        ("--interval", "-1"),
        ("--warmup", "soon"),
        ("--duration", "NaN"),
        ("--msg-every", "-3"),
        ("--timeout", "x"),
        ("--ramp", "fast"),
        ("--sources", "localhost"),
        ("--server", "127.0.0.1:http"),
    ] {
        let e = error(&[flag, value]);
        assert!(e.starts_with(&format!("{flag}: ")), "{flag} {value}: {e}");
        assert!(!e.contains("failed to parse"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
    assert_eq!(
        error(&["--interval", "-1"]),
        "--interval: '-1' is not a number of seconds"
    );
    assert_eq!(error(&["--bogus"]), "unexpected argument --bogus");
}

#[test]
fn server_accepts_host_names_and_a_bare_port() {
    let c = run(&["--server", "localhost:29201"]).unwrap();
    assert_eq!(c.servers, ["127.0.0.1:29201".parse().unwrap()]);
    let c = run(&["--server", ":29201"]).unwrap();
    assert_eq!(c.servers, ["127.0.0.1:29201".parse().unwrap()]);
    assert_eq!(c.server_name, "localhost");
    let c = run(&["--server", "127.0.0.7:1234"]).unwrap();
    assert_eq!(c.servers, ["127.0.0.7:1234".parse().unwrap()]);
    let c = run(&["--server", "localhost"]).unwrap();
    assert_eq!(c.servers[0].port(), DEFAULT_PORT);
    assert_eq!(
        run(&[]).unwrap().servers,
        ["127.0.0.1:29200".parse().unwrap()]
    );
    // One server: no settling pause between fence and drain.
    assert_eq!(run(&[]).unwrap().settle, Duration::ZERO);
}

#[test]
fn server_takes_a_comma_list_of_nodes() {
    let c = run(&["--server", "127.0.0.1:29200, :29201,localhost:29202"]).unwrap();
    let expected: Vec<std::net::SocketAddr> =
        ["127.0.0.1:29200", "127.0.0.1:29201", "127.0.0.1:29202"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
    assert_eq!(c.servers, expected);
    // The first host given by name names the certificate.
    assert_eq!(c.server_name, "localhost");
    // Several servers: a second for the network to settle before the drain.
    assert_eq!(c.settle, Duration::from_secs(1));
    let c = run(&["--server", ":1,:2", "--settle", "0.5"]).unwrap();
    assert_eq!(c.settle, Duration::from_millis(500));
    assert_eq!(
        error(&["--server", ":1,,:2"]),
        "--server: ':1,,:2' has an empty server in its list"
    );
    assert!(error(&["--server", ":1,:0"]).starts_with("--server: '0' is not a port"));
}

#[test]
fn a_server_host_name_is_the_default_certificate_name() {
    let s = parse_server("localhost:1").unwrap();
    assert_eq!(s.name.as_deref(), Some("localhost"));
    assert_eq!(parse_server("127.0.0.1:1").unwrap().name, None);
    let c = run(&["--server", "localhost:1", "--server-name", "chat.example"]).unwrap();
    assert_eq!(c.server_name, "chat.example");
}

#[test]
fn bad_servers() {
    for bad in [
        ":0",
        ":70000",
        "[::1]:29200",
        "::1",
        "29201",
        "no-such-host.invalid:1",
    ] {
        let e = parse_server(bad).unwrap_err();
        assert!(!e.is_empty(), "{bad}");
    }
    assert!(parse_server("29201").unwrap_err().contains(":29201"));
}

#[test]
fn help_and_version() {
    assert!(matches!(
        parse(vec!["--version".into()]).unwrap(),
        Command::Version
    ));
    assert!(matches!(
        parse(vec!["-V".into()]).unwrap(),
        Command::Version
    ));
    assert!(matches!(
        parse(vec!["--clients".into(), "x".into(), "-h".into()]).unwrap(),
        Command::Help
    ));
}

#[test]
fn protocol_flags() {
    let c = run(&[]).unwrap();
    assert_eq!(c.protocol, Protocol::V1);
    assert_eq!(c.keepalive, Duration::from_secs(30));
    assert_eq!(run(&["--protocol", "2"]).unwrap().protocol, Protocol::V2);
    let c = run(&["--protocol", "mixed", "--keepalive", "10"]).unwrap();
    assert_eq!(c.protocol, Protocol::Mixed { v2_percent: 50 });
    assert_eq!(c.keepalive, Duration::from_secs(10));
    let c = run(&["--v2-share", "25", "--protocol", "mixed"]).unwrap();
    assert_eq!(c.protocol, Protocol::Mixed { v2_percent: 25 });
    assert_eq!(
        error(&["--protocol", "3"]),
        "--protocol: '3' is not 1, 2 or mixed"
    );
    assert_eq!(
        error(&["--protocol", "2", "--v2-share", "50"]),
        "--v2-share: only with --protocol mixed"
    );
    assert_eq!(
        error(&["--v2-share", "50"]),
        "--v2-share: only with --protocol mixed"
    );
    assert!(error(&["--protocol", "mixed", "--v2-share", "100"]).starts_with("--v2-share: "));
    assert!(error(&["--keepalive", "-1"]).starts_with("--keepalive: "));
    // The help text documents every choice.
    for word in [
        "--protocol 1|2|mixed",
        "--v2-share PERCENT",
        "--keepalive SECS",
        "echo",
    ] {
        assert!(HELP.contains(word), "{word}");
    }
}
