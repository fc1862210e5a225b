//! Usernames and channel names (contract sections 4 and 5): what is valid, how names
//! compare, and what a refusal says. A name is checked once, when a [`Username`] or
//! [`ChannelName`] is made; the session, the hub and the client keep only those. Both sides
//! use it: the server to accept or refuse a name and to word its error notice, clients to
//! check a name before sending it.

use std::fmt;

use crate::pdu::{MAX_CHANNEL, MAX_USERNAME, SERVER_NAME};

/// A valid username: 1–10 bytes of printable ASCII without space, not `SERVER` in any case.
/// Equality and hashing ignore ASCII case, as the contract compares names.
#[derive(Clone, Copy)]
pub struct Username {
    len: u8,
    bytes: [u8; MAX_USERNAME],
}

/// Which kind of name a [`NameError`] is about; each kind has its own rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    Username,
    Channel,
}

/// What was wrong with a refused name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    Empty,
    /// A channel name of one byte: `@` alone.
    TooShort,
    TooLong,
    /// A space (0x20) in the name.
    Space,
    /// A byte that is neither printable ASCII (0x21 to 0x7E) nor a space: the first one.
    NotPrintable(u8),
    /// A username that is `SERVER` in some letter case.
    Reserved,
    /// A channel name whose first byte is not `@`.
    NoAt,
}

/// The most of a refused name an error keeps, to quote it: as much as a channel name holds.
const SHOWN: usize = MAX_CHANNEL;

const USERNAME_RULE: &str = "1 to 10 printable ASCII characters, no spaces";
const CHANNEL_RULE: &str = "2 to 50 printable ASCII characters, no spaces, starting with @";

/// Why a name was refused: which kind of name, what was wrong with it, and the name itself
/// (its first 50 bytes), so that the text can quote it. The text ([`fmt::Display`]) is what
/// the server sends after `error: `, and what a client shows before sending the name: it
/// says what was wrong and states the rule. Kept inline, like the names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NameError {
    kind: NameKind,
    problem: Problem,
    /// The name had more bytes than `shown` holds (only ever for [`Problem::TooLong`]).
    cut: bool,
    len: u8,
    shown: [u8; SHOWN],
}

impl NameError {
    fn new(kind: NameKind, problem: Problem, name: &[u8]) -> NameError {
        let len = name.len().min(SHOWN);
        let mut shown = [0u8; SHOWN];
        shown[..len].copy_from_slice(&name[..len]);
        NameError {
            kind,
            problem,
            cut: name.len() > SHOWN,
            len: len as u8,
            shown,
        }
    }

    /// A name that fills its field and goes on past it: `start` is all the field holds.
    pub(crate) fn overflows(kind: NameKind, start: &[u8]) -> NameError {
        NameError {
            cut: true,
            ..NameError::new(kind, Problem::TooLong, start)
        }
    }

    /// The kind of name refused.
    pub fn kind(&self) -> NameKind {
        self.kind
    }

    /// What was wrong with it.
    pub fn problem(&self) -> Problem {
        self.problem
    }

    fn shown(&self) -> &[u8] {
        &self.shown[..usize::from(self.len)]
    }
}

impl fmt::Debug for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NameError")
            .field("kind", &self.kind)
            .field("problem", &self.problem)
            .field("name", &format_args!("'{}'", self.shown().escape_ascii()))
            .field("cut", &self.cut)
            .finish()
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, rule) = match self.kind {
            NameKind::Username => ("username", USERNAME_RULE),
            NameKind::Channel => ("channel name", CHANNEL_RULE),
        };
        // Escaped (\xNN, \', \\), so that what the peer sent is shown exactly and safely.
        let name = self.shown().escape_ascii();
        match self.problem {
            Problem::Empty => write!(f, "{what} is empty")?,
            Problem::TooShort => write!(f, "{what} '{name}' is too short")?,
            Problem::TooLong if self.cut => write!(f, "{what} starting '{name}' is too long")?,
            Problem::TooLong => write!(f, "{what} '{name}' is too long")?,
            Problem::Space => write!(f, "{what} '{name}' contains a space")?,
            Problem::NotPrintable(byte) => write!(
                f,
                "{what} '{name}' contains byte 0x{byte:02x}, which is not printable ASCII"
            )?,
            Problem::NoAt => write!(f, "{what} '{name}' does not start with @")?,
            Problem::Reserved => {
                return write!(
                    f,
                    "{what} '{name}' is reserved: SERVER, in any letter case, is the \
                     server's name"
                )
            }
        }
        write!(f, ": {rule}")
    }
}

impl std::error::Error for NameError {}

/// The first byte that is not printable ASCII without space, as the problem it is.
fn unprintable(name: &[u8]) -> Option<Problem> {
    let byte = *name.iter().find(|b| !(0x21..=0x7e).contains(*b))?;
    Some(if byte == b' ' {
        Problem::Space
    } else {
        Problem::NotPrintable(byte)
    })
}

impl Username {
    /// Checks and builds a username.
    pub fn new(name: &[u8]) -> Result<Username, NameError> {
        let refuse = |problem| Err(NameError::new(NameKind::Username, problem, name));
        if name.is_empty() {
            return refuse(Problem::Empty);
        }
        if name.len() > MAX_USERNAME {
            return refuse(Problem::TooLong);
        }
        if let Some(problem) = unprintable(name) {
            return refuse(problem);
        }
        if name.eq_ignore_ascii_case(SERVER_NAME) {
            return refuse(Problem::Reserved);
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
        let problem = match name {
            [] => Some(Problem::Empty),
            // Length first, as on the wire, where a name too long is known by its field.
            _ if name.len() > MAX_CHANNEL => Some(Problem::TooLong),
            [first, ..] if *first != b'@' => Some(Problem::NoAt),
            [_] => Some(Problem::TooShort),
            _ => unprintable(name),
        };
        if let Some(problem) = problem {
            return Err(NameError::new(NameKind::Channel, problem, name));
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

/// Ascending byte order of the names, the order of a channel listing (v2 section 3).
impl Ord for ChannelName {
    fn cmp(&self, other: &ChannelName) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl PartialOrd for ChannelName {
    fn partial_cmp(&self, other: &ChannelName) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
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
mod tests;
