use super::*;

fn run(args: &[&str]) -> Result<Options, String> {
    match parse(args.iter().map(OsString::from).collect())? {
        Parsed::Run(o) => Ok(o),
        Parsed::Help => Err("help".into()),
        Parsed::Version => Err("version".into()),
    }
}

#[test]
fn defaults() {
    let o = run(&[]).unwrap();
    assert_eq!((o.host.as_str(), o.port), ("localhost", 29200));
    assert_eq!(o.query_interval, Duration::from_secs(3));
    assert!(!o.plaintext && o.user.is_none() && o.channel.is_none() && o.ca.is_none());
    // The help states the defaults the client uses.
    assert_eq!(o.port, DEFAULT_PORT);
    assert!(
        HELP.contains(&format!(
            "[default:\n                           localhost:{DEFAULT_PORT}]"
        )),
        "--server's default in the help: {HELP}"
    );
    assert!(HELP.contains("channel [default: 3]"));
    assert_eq!(o.protocol, 2);
    assert!(HELP.contains("[default: 2;"));
    assert_eq!(o.keepalive, None);
}

#[test]
fn protocol_version() {
    assert_eq!(run(&["--protocol", "1"]).unwrap().protocol, 1);
    assert_eq!(run(&["--protocol", "2"]).unwrap().protocol, 2);
    for bad in ["0", "3", "v2", ""] {
        assert_eq!(
            run(&["--protocol", bad]).unwrap_err(),
            format!("--protocol: '{bad}' is not a version (1 or 2)")
        );
    }
}

#[test]
fn every_chat_command_is_in_the_help() {
    for command in [
        "!join", "!leave", "!list", "!names", "!kick", "!ban", "!unban", "!oper", "!quit", "!help",
        "!!text",
    ] {
        assert!(HELP.contains(command), "{command} missing from --help");
    }
}

#[test]
fn all_flags() {
    let o = run(&[
        "--server",
        "example.org:4000",
        "--ca",
        "x.pem",
        "--user",
        "amy",
        "--channel",
        "@rust",
        "--query-interval",
        "0.2",
        "--keepalive",
        "10",
        "--plaintext",
    ])
    .unwrap();
    assert_eq!((o.host.as_str(), o.port), ("example.org", 4000));
    assert_eq!(o.ca, Some(PathBuf::from("x.pem")));
    assert_eq!(o.user.map(|u| u.to_string()), Some("amy".to_string()));
    assert_eq!(o.channel.map(|c| c.to_string()), Some("@rust".to_string()));
    assert_eq!(o.query_interval, Duration::from_millis(200));
    assert_eq!(o.keepalive, Some(Duration::from_secs(10)));
    assert!(o.plaintext);
}

#[test]
fn mistakes_name_their_flag() {
    let error = |args: &[&str]| run(args).unwrap_err();
    assert!(error(&["--bogus"]).contains("'--bogus'"));
    assert_eq!(
        error(&["--server"]),
        "--server: a value is needed (see --help)"
    );
    assert!(error(&["--server", "h:0"]).starts_with("--server: 'h:0' has a bad port '0'"));
    assert!(error(&["--server", "h:x"]).starts_with("--server: 'h:x' has a bad port 'x'"));
    assert!(error(&["--user", "abcdefghijk"]).starts_with("--user: username 'abcdefghijk' "));
    assert!(error(&["--user", "SERVER"]).starts_with("--user: username 'SERVER' "));
    assert!(
        error(&["--channel", "a b"]).starts_with("--channel: channel name '@a b' contains a space")
    );
    assert!(error(&["--channel", "@"]).starts_with("--channel: channel name '@' "));
    for bad in ["0", "-5", "nan", "soon", "inf"] {
        assert_eq!(
            error(&["--query-interval", bad]),
            format!("--query-interval: '{bad}' is not a number of seconds greater than 0")
        );
    }
    assert!(error(&["--keepalive", "0"]).starts_with("--keepalive: '0' "));
    assert_eq!(error(&["--help"]), "help");
    assert_eq!(error(&["--version"]), "version");
    assert_eq!(error(&["-V"]), "version");
}

#[test]
fn channels_get_an_at() {
    assert_eq!(
        run(&["--channel", "rust"])
            .unwrap()
            .channel
            .map(|c| c.to_string()),
        Some("@rust".to_string())
    );
}

#[test]
fn servers() {
    assert_eq!(split_server("h").unwrap(), ("h".into(), 29200));
    assert_eq!(split_server("h:1").unwrap(), ("h".into(), 1));
    assert_eq!(
        split_server("chat.example.org:4000").unwrap(),
        ("chat.example.org".into(), 4000)
    );
    assert_eq!(split_server(":5").unwrap(), ("localhost".into(), 5));
    assert_eq!(split_server("[::1]:7").unwrap(), ("::1".into(), 7));
    assert_eq!(split_server("[::1]").unwrap(), ("::1".into(), 29200));
    assert_eq!(split_server("::1").unwrap(), ("::1".into(), 29200));
    assert!(split_server("").is_err());
    assert!(split_server(":").is_err());
    assert!(split_server("h:").is_err());
    assert!(split_server("a b").is_err());
    assert!(split_server("[::1]x").is_err());
}
