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
    assert_eq!(c.server, "127.0.0.1:29201".parse().unwrap());
    let c = run(&["--server", ":29201"]).unwrap();
    assert_eq!(c.server, "127.0.0.1:29201".parse().unwrap());
    assert_eq!(c.server_name, "localhost");
    let c = run(&["--server", "127.0.0.7:1234"]).unwrap();
    assert_eq!(c.server, "127.0.0.7:1234".parse().unwrap());
    let c = run(&["--server", "localhost"]).unwrap();
    assert_eq!(c.server.port(), DEFAULT_PORT);
    assert_eq!(run(&[]).unwrap().server, "127.0.0.1:29200".parse().unwrap());
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
