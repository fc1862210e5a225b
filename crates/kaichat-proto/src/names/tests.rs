//! Unit tests of the name rules: what is accepted, how names compare, and the text of
//! every refusal.

use super::*;

fn problem<T>(checked: Result<T, NameError>) -> Option<Problem> {
    checked.err().map(|e| e.problem())
}

#[test]
fn usernames() {
    assert!(Username::new(b"a").is_ok());
    assert!(Username::new(b"abcdefghij").is_ok());
    assert!(Username::new(b"!~x").is_ok());
    assert_eq!(problem(Username::new(b"")), Some(Problem::Empty));
    assert_eq!(
        problem(Username::new(b"abcdefghijk")),
        Some(Problem::TooLong)
    );
    assert_eq!(problem(Username::new(b"a b")), Some(Problem::Space));
    assert_eq!(
        problem(Username::new(b"caf\xc3\xa9")),
        Some(Problem::NotPrintable(0xc3))
    );
    assert_eq!(
        problem(Username::new(b"a\x7f")),
        Some(Problem::NotPrintable(0x7f))
    );
    assert_eq!(problem(Username::new(b"sErVeR")), Some(Problem::Reserved));
    assert!(Username::new(b"SERVERS").is_ok());
    assert_eq!(Username::new(b"").unwrap_err().kind(), NameKind::Username);
}

#[test]
fn usernames_compare_ignoring_case() {
    let a = Username::new(b"Alice").unwrap();
    let b = Username::new(b"aLICE").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.as_bytes(), b"Alice");
    let mut set = std::collections::HashSet::new();
    set.insert(a);
    assert!(set.contains(&b));
    assert!(a.matches(b"ALICE"));
}

#[test]
fn channel_names() {
    let check = |name: &[u8]| ChannelName::new(name).map(|c| c.as_bytes().to_vec());
    assert_eq!(check(b"@r"), Ok(b"@r".to_vec()));
    assert_eq!(check(&[b'@'; 50]), Ok(vec![b'@'; 50]));
    assert_eq!(problem(check(&[b'@'; 51])), Some(Problem::TooLong));
    assert_eq!(problem(check(b"@")), Some(Problem::TooShort));
    assert_eq!(problem(check(b"")), Some(Problem::Empty));
    assert_eq!(problem(check(b"rust")), Some(Problem::NoAt));
    assert_eq!(problem(check(b"@a b")), Some(Problem::Space));
    assert_eq!(problem(check(b"@a\tb")), Some(Problem::NotPrintable(b'\t')));
    // Length first, as on the wire: a long name without @ is too long.
    assert_eq!(problem(check(&[b'x'; 51])), Some(Problem::TooLong));
    assert_eq!(ChannelName::new(b"").unwrap_err().kind(), NameKind::Channel);
}

#[test]
fn errors_say_which_name_what_is_wrong_and_the_rule() {
    let user = |name: &[u8]| Username::new(name).unwrap_err().to_string();
    let channel = |name: &[u8]| ChannelName::new(name).unwrap_err().to_string();
    let user_rule = "1 to 10 printable ASCII characters, no spaces";
    let channel_rule = "2 to 50 printable ASCII characters, no spaces, starting with @";
    assert_eq!(user(b""), format!("username is empty: {user_rule}"));
    assert_eq!(
        user(b"abcdefghijk"),
        format!("username 'abcdefghijk' is too long: {user_rule}")
    );
    assert_eq!(
        user(b"x y"),
        format!("username 'x y' contains a space: {user_rule}")
    );
    assert_eq!(
        user(b"a\x7f"),
        format!("username 'a\\x7f' contains byte 0x7f, which is not printable ASCII: {user_rule}")
    );
    assert_eq!(
        user(b"server"),
        "username 'server' is reserved: SERVER, in any letter case, is the server's name"
    );
    assert_eq!(
        channel(b"@"),
        format!("channel name '@' is too short: {channel_rule}")
    );
    assert_eq!(
        channel(b""),
        format!("channel name is empty: {channel_rule}")
    );
    assert_eq!(
        channel(b"#rust"),
        format!("channel name '#rust' does not start with @: {channel_rule}")
    );
    assert_eq!(
        channel(b"@a b"),
        format!("channel name '@a b' contains a space: {channel_rule}")
    );
    assert_eq!(
        channel("@café".as_bytes()),
        format!(
            "channel name '@caf\\xc3\\xa9' contains byte 0xc3, which is not printable \
             ASCII: {channel_rule}"
        )
    );
    // The name is quoted with quotes and backslashes escaped, so it reads unambiguously.
    assert_eq!(
        channel(b"it's"),
        format!("channel name 'it\\'s' does not start with @: {channel_rule}")
    );
    // A long name is shown by its first 50 bytes.
    let long = [&b"@"[..], &[b'x'; 99]].concat();
    assert_eq!(
        channel(&long),
        format!(
            "channel name starting '{}' is too long: {channel_rule}",
            String::from_utf8_lossy(&long[..50])
        )
    );
    // The longest text, a 50-byte name of bytes shown as \xNN, fits a notice's params
    // (2000 bytes) after `error: ` with room to spare.
    let worst = [&b"@"[..], &[0xff; 49]].concat();
    assert!(channel(&worst).len() < 400, "{}", channel(&worst));
}

#[test]
fn channel_names_compare_byte_for_byte() {
    let rust = ChannelName::new(b"@rust").unwrap();
    assert_eq!(rust, ChannelName::new(b"@rust").unwrap());
    assert_ne!(rust, ChannelName::new(b"@Rust").unwrap());
    assert_ne!(rust, ChannelName::new(b"@rus").unwrap());
    assert_eq!(rust.to_string(), "@rust");
}
