//! Usernames and channel names (contract sections 4 and 5): what is valid and how names
//! compare. Both sides use it: the server to accept or reject, clients to check a name
//! before sending it.

use std::fmt;

use crate::pdu::{MAX_CHANNEL, MAX_USERNAME, SERVER_NAME};

/// A valid username: 1–10 bytes of printable ASCII without space, not `SERVER` in any case.
/// Equality and hashing ignore ASCII case, as the contract compares names.
#[derive(Clone, Copy)]
pub struct Username {
    len: u8,
    bytes: [u8; MAX_USERNAME],
}

/// Why a name was refused. The texts are what the server sends after `error: `.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    NotPrintable,
    Reserved,
    NoAt,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::Empty => "name is empty",
            NameError::TooLong => "name is too long",
            NameError::NotPrintable => {
                "name must be printable ASCII without spaces (bytes 0x21 to 0x7E)"
            }
            NameError::Reserved => "SERVER is a reserved name",
            NameError::NoAt => "channel name must start with @",
        })
    }
}

impl std::error::Error for NameError {}

fn printable(name: &[u8]) -> bool {
    name.iter().all(|&b| (0x21..=0x7e).contains(&b))
}

impl Username {
    /// Checks and builds a username.
    pub fn new(name: &[u8]) -> Result<Username, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_USERNAME {
            return Err(NameError::TooLong);
        }
        if !printable(name) {
            return Err(NameError::NotPrintable);
        }
        if name.eq_ignore_ascii_case(SERVER_NAME) {
            return Err(NameError::Reserved);
        }
        let mut bytes = [0u8; MAX_USERNAME];
        bytes[..name.len()].copy_from_slice(name);
        Ok(Username {
            len: name.len() as u8,
            bytes,
        })
    }

    /// The name as the client spelled it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether `other` names the same user, ignoring ASCII case.
    pub fn matches(&self, other: &[u8]) -> bool {
        self.as_bytes().eq_ignore_ascii_case(other)
    }
}

impl PartialEq for Username {
    fn eq(&self, other: &Username) -> bool {
        self.matches(other.as_bytes())
    }
}

impl Eq for Username {}

impl std::hash::Hash for Username {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for b in self.as_bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({})", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Printable ASCII by construction.
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A valid channel name: 2–50 bytes of printable ASCII without space, starting with `@`.
/// Kept inline (no allocation): it is copied into PDUs, hub keys and the client's state.
/// Equality and hashing are byte for byte, as the contract compares channel names (the
/// derived impls see the bytes past `len` too, which are always zero).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelName {
    len: u8,
    bytes: [u8; MAX_CHANNEL],
}

impl ChannelName {
    /// Checks and builds a channel name.
    pub fn new(name: &[u8]) -> Result<ChannelName, NameError> {
        match name {
            [] => return Err(NameError::Empty),
            [first, ..] if *first != b'@' => return Err(NameError::NoAt),
            [_] => return Err(NameError::Empty),
            _ if name.len() > MAX_CHANNEL => return Err(NameError::TooLong),
            _ if !printable(name) => return Err(NameError::NotPrintable),
            _ => {}
        }
        let mut bytes = [0u8; MAX_CHANNEL];
        bytes[..name.len()].copy_from_slice(name);
        Ok(ChannelName {
            len: name.len() as u8,
            bytes,
        })
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelName({self})")
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Printable ASCII by construction.
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::new(b"a").is_ok());
        assert!(Username::new(b"abcdefghij").is_ok());
        assert!(Username::new(b"!~x").is_ok());
        assert_eq!(Username::new(b"").err(), Some(NameError::Empty));
        assert_eq!(
            Username::new(b"abcdefghijk").err(),
            Some(NameError::TooLong)
        );
        assert_eq!(Username::new(b"a b").err(), Some(NameError::NotPrintable));
        assert_eq!(
            Username::new(b"caf\xc3\xa9").err(),
            Some(NameError::NotPrintable)
        );
        assert_eq!(Username::new(b"a\x7f").err(), Some(NameError::NotPrintable));
        assert_eq!(Username::new(b"sErVeR").err(), Some(NameError::Reserved));
        assert!(Username::new(b"SERVERS").is_ok());
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
        assert_eq!(check(&[b'@'; 51]), Err(NameError::TooLong));
        assert_eq!(check(b"@"), Err(NameError::Empty));
        assert_eq!(check(b""), Err(NameError::Empty));
        assert_eq!(check(b"rust"), Err(NameError::NoAt));
        assert_eq!(check(b"@a b"), Err(NameError::NotPrintable));
    }

    #[test]
    fn channel_names_compare_byte_for_byte() {
        let rust = ChannelName::new(b"@rust").unwrap();
        assert_eq!(rust, ChannelName::new(b"@rust").unwrap());
        assert_ne!(rust, ChannelName::new(b"@Rust").unwrap());
        assert_ne!(rust, ChannelName::new(b"@rus").unwrap());
        assert_eq!(rust.to_string(), "@rust");
    }
}
