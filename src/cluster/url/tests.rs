use super::*;

fn url(
    tls: bool,
    host: &str,
    port: u16,
    user: Option<&str>,
    pass: Option<&str>,
    db: u32,
) -> RedisUrl {
    RedisUrl {
        tls,
        host: host.to_string(),
        port,
        username: user.map(str::to_string),
        password: pass.map(str::to_string),
        db,
    }
}

#[test]
fn host_alone_takes_the_defaults() {
    assert_eq!(
        RedisUrl::parse("redis://localhost"),
        Ok(url(false, "localhost", 6379, None, None, 0))
    );
    assert_eq!(
        RedisUrl::parse("redis://localhost/"),
        Ok(url(false, "localhost", 6379, None, None, 0))
    );
}

#[test]
fn every_part_is_read() {
    assert_eq!(
        RedisUrl::parse("rediss://kai:s3cret@redis.example.org:6380/7"),
        Ok(url(
            true,
            "redis.example.org",
            6380,
            Some("kai"),
            Some("s3cret"),
            7
        ))
    );
    assert_eq!(
        RedisUrl::parse("redis://127.0.0.1:7000/0"),
        Ok(url(false, "127.0.0.1", 7000, None, None, 0))
    );
}

#[test]
fn the_scheme_is_case_insensitive() {
    assert!(RedisUrl::parse("REDISS://h").is_ok_and(|u| u.tls));
    assert!(RedisUrl::parse("Redis://h").is_ok_and(|u| !u.tls));
}

#[test]
fn a_password_without_a_user_is_for_the_default_user() {
    assert_eq!(
        RedisUrl::parse("redis://:pw@h:1"),
        Ok(url(false, "h", 1, None, Some("pw"), 0))
    );
    // An empty password is still a password (AUTH with it fails unless it is the one).
    assert_eq!(
        RedisUrl::parse("redis://:@h"),
        Ok(url(false, "h", 6379, None, Some(""), 0))
    );
}

#[test]
fn the_password_is_percent_decoded() {
    let parsed = RedisUrl::parse("redis://u%40x:p%40ss%3Aw%2Fo%25rd%C3%A9@h/2").unwrap();
    assert_eq!(parsed.username.as_deref(), Some("u@x"));
    assert_eq!(parsed.password.as_deref(), Some("p@ss:w/o%rdé"));
    assert_eq!(parsed.db, 2);
}

#[test]
fn the_last_at_sign_ends_the_credentials() {
    let parsed = RedisUrl::parse("redis://:p@ss@h").unwrap();
    assert_eq!(parsed.password.as_deref(), Some("p@ss"));
    assert_eq!(parsed.host, "h");
}

#[test]
fn ipv6_hosts_go_in_brackets() {
    assert_eq!(
        RedisUrl::parse("redis://[::1]:6380/1"),
        Ok(url(false, "::1", 6380, None, None, 1))
    );
    assert_eq!(
        RedisUrl::parse("redis://[fe80::1]"),
        Ok(url(false, "fe80::1", 6379, None, None, 0))
    );
    assert!(matches!(
        RedisUrl::parse("redis://[::1"),
        Err(UrlError::BadIpv6(_))
    ));
    assert!(matches!(
        RedisUrl::parse("redis://[nope]:1"),
        Err(UrlError::BadIpv6(_))
    ));
    assert!(matches!(
        RedisUrl::parse("redis://[::1]x"),
        Err(UrlError::BadIpv6(_))
    ));
    // Unbracketed, the first ':' starts the port.
    assert!(matches!(
        RedisUrl::parse("redis://::1"),
        Err(UrlError::NoHost)
    ));
}

#[test]
fn mistakes_are_named() {
    let cases: &[(&str, UrlError)] = &[
        ("http://h", UrlError::Scheme),
        ("localhost:6379", UrlError::Scheme),
        ("redis://", UrlError::NoHost),
        ("redis://:pw@", UrlError::NoHost),
        ("redis://:6379", UrlError::NoHost),
        ("redis://h:0", UrlError::BadPort("0".into())),
        ("redis://h:65536", UrlError::BadPort("65536".into())),
        ("redis://h:+80", UrlError::BadPort("+80".into())),
        ("redis://h:", UrlError::BadPort("".into())),
        ("redis://h/x", UrlError::BadDb("x".into())),
        ("redis://h/-1", UrlError::BadDb("-1".into())),
        ("redis://h/1/2", UrlError::BadDb("1/2".into())),
        (
            "redis://h/99999999999",
            UrlError::BadDb("99999999999".into()),
        ),
        ("redis://secret@h", UrlError::Credentials),
        ("redis://:pw%4@h", UrlError::BadEscape),
        ("redis://:pw%zz@h", UrlError::BadEscape),
        ("redis://:pw%ff@h", UrlError::BadEscape),
        ("redis://h/0?protocol=resp3", UrlError::Query),
        ("redis://h#x", UrlError::Query),
    ];
    for (text, error) in cases {
        assert_eq!(RedisUrl::parse(text).as_ref(), Err(error), "{text}");
    }
}

#[test]
fn error_messages_say_what_and_the_shape() {
    let message = RedisUrl::parse("redis://h:99999").unwrap_err().to_string();
    assert!(message.starts_with("bad port \"99999\""), "{message}");
    assert!(
        message.ends_with("expected redis://[[user]:password@]host[:port][/db] or rediss://..."),
        "{message}"
    );
}

#[test]
fn the_password_is_never_shown() {
    let parsed = RedisUrl::parse("rediss://kai:hunter2@[::1]:6380/3").unwrap();
    assert_eq!(parsed.to_string(), "rediss://kai:***@[::1]:6380/3");
    assert!(!format!("{parsed:?}").contains("hunter2"));
    let parsed = RedisUrl::parse("redis://h").unwrap();
    assert_eq!(parsed.to_string(), "redis://h:6379/0");
}
