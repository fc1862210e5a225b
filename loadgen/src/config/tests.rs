use super::*;

fn config() -> Config {
    Config::example()
}

#[test]
fn seconds() {
    assert_eq!(parse_seconds("3").unwrap(), Duration::from_secs(3));
    assert_eq!(parse_seconds("0.25").unwrap(), Duration::from_millis(250));
    assert_eq!(parse_seconds("0").unwrap(), Duration::ZERO);
    assert!(parse_seconds("-1").is_err());
    assert!(parse_seconds("abc").is_err());
    assert!(parse_seconds("inf").is_err());
    assert!(parse_seconds("NaN").is_err());
    assert_eq!(parse_rate("2500").unwrap(), 2500.0);
    assert!(parse_rate("-3").is_err());
}

#[test]
fn names_and_channels() {
    let c = config();
    assert_eq!(c.username(42), "lg42");
    assert_eq!(c.channel(0), "@load0");
    assert_eq!(c.channel(15), "@load1");
    assert!(c.validate().is_ok());
}

#[test]
fn invalid_runs() {
    let mut c = config();
    c.user_prefix = "toolongname".into();
    assert!(c.validate().unwrap_err().contains("--user-prefix"));
    let mut c = config();
    c.clients = 0;
    assert!(c.validate().is_err());
    let mut c = config();
    c.channels = 0;
    assert!(c.validate().is_err());
    let mut c = config();
    c.user_prefix = "a b".into();
    assert!(c.validate().is_err());
}
