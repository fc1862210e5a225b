use super::*;

#[test]
fn single_range_and_list() {
    let v = parse_sources("127.0.0.1-127.0.0.40").unwrap();
    assert_eq!(v.len(), 40);
    assert_eq!(v[0], Ipv4Addr::new(127, 0, 0, 1));
    assert_eq!(v[39], Ipv4Addr::new(127, 0, 0, 40));
    let v = parse_sources("127.0.0.1, 127.0.0.5-127.0.0.6").unwrap();
    assert_eq!(
        v,
        vec![
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(127, 0, 0, 5),
            Ipv4Addr::new(127, 0, 0, 6)
        ]
    );
    assert_eq!(parse_sources("127.0.0.9").unwrap().len(), 1);
    // A range may cross an octet.
    assert_eq!(parse_sources("127.0.0.250-127.0.1.5").unwrap().len(), 12);
}

#[test]
fn bad_lists() {
    assert!(parse_sources("").is_err());
    assert!(parse_sources("127.0.0.1,").is_err());
    assert!(parse_sources("localhost").is_err());
    assert!(parse_sources("127.0.0.5-127.0.0.1").is_err());
    assert!(parse_sources("127.0.0.1,127.0.0.1").is_err());
    assert!(parse_sources("127.0.0.0-127.255.255.255").is_err());
    assert!(parse_sources("::1").is_err());
}

#[test]
fn port_range() {
    assert_eq!(parse_port_range("32768\t60999\n"), Some(28232));
    assert_eq!(parse_port_range("1024 1024"), Some(1));
    assert_eq!(parse_port_range("9 1"), None);
    assert_eq!(parse_port_range("x"), None);
}
