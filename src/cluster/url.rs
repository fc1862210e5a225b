//! The `--redis` argument: `redis://[[user]:password@]host[:port][/db]`, or `rediss://`
//! for TLS to Redis. Parsing only: nothing here resolves a name or opens a socket.
//!
//! A small parser of our own rather than the `url` crate: `redis` is not one of the URL
//! standard's special schemes, so `url` would keep the host opaque (no IPv6 check, no port
//! default) and still leave the credentials' shape, the database number and the refusal
//! of queries to us, while bringing in IDNA tables a Redis host name never needs.

use std::fmt;

/// Redis's port when the URL gives none.
pub const DEFAULT_PORT: u16 = 6379;

/// The shape every error message repeats.
const SHAPE: &str = "expected redis://[[user]:password@]host[:port][/db] or rediss://...";

/// Where Redis is and how to log in, as the URL says.
///
/// `Debug` and `Display` never show the password (it would end up in logs).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// `rediss://`: TLS (rustls) to Redis.
    pub tls: bool,
    /// A host name, or an IP address (an IPv6 one without its brackets).
    pub host: String,
    pub port: u16,
    /// For `AUTH user password` (Redis 6 ACL users); None: `AUTH password`, the default user.
    pub username: Option<String>,
    /// Percent-decoded.
    pub password: Option<String>,
    /// The database for `SELECT` (0 to the server's `databases` - 1).
    pub db: u32,
}

/// What is wrong with a `--redis` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlError {
    /// Not `redis://` or `rediss://`.
    Scheme,
    /// Nothing between the `//` (or the `@`) and the port or path.
    NoHost,
    /// An IPv6 host whose `[` is not closed, or that is not an IPv6 address.
    BadIpv6(String),
    /// Not a number from 1 to 65535.
    BadPort(String),
    /// Not a number after the `/`.
    BadDb(String),
    /// Credentials without a `:` (user or password? the URL does not say).
    Credentials,
    /// A `%` not followed by two hexadecimal digits, or decoded bytes that are not UTF-8.
    BadEscape,
    /// A `?query` or `#fragment`: no option is understood.
    Query,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Scheme => write!(f, "the scheme must be redis:// or rediss:// (TLS)"),
            UrlError::NoHost => write!(f, "no host"),
            UrlError::BadIpv6(host) => {
                write!(f, "bad IPv6 host {host:?} (write it in brackets: [::1])")
            }
            UrlError::BadPort(port) => write!(f, "bad port {port:?} (a number from 1 to 65535)"),
            UrlError::BadDb(db) => write!(f, "bad database {db:?} (a number, like /0)"),
            UrlError::Credentials => write!(
                f,
                "credentials need a ':' before the password (:password@ or user:password@)"
            ),
            UrlError::BadEscape => write!(
                f,
                "bad %-escape in the credentials (% must be followed by two hex digits, \
                 and the decoded text must be UTF-8)"
            ),
            UrlError::Query => write!(f, "a ?query or #fragment is not understood"),
        }?;
        write!(f, "; {SHAPE}")
    }
}

impl std::error::Error for UrlError {}

impl RedisUrl {
    /// Parses a URL. The scheme is case-insensitive; the host is kept as written.
    pub fn parse(text: &str) -> Result<RedisUrl, UrlError> {
        let (scheme, rest) = text.split_once("://").ok_or(UrlError::Scheme)?;
        let tls = if scheme.eq_ignore_ascii_case("redis") {
            false
        } else if scheme.eq_ignore_ascii_case("rediss") {
            true
        } else {
            return Err(UrlError::Scheme);
        };
        if rest.contains(['?', '#']) {
            return Err(UrlError::Query);
        }
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], Some(&rest[slash + 1..])),
            None => (rest, None),
        };
        // The password may hold an '@' only escaped, but the last '@' is the separator
        // whatever the user wrote, as in browsers.
        let (credentials, address) = match authority.rsplit_once('@') {
            Some((credentials, address)) => (Some(credentials), address),
            None => (None, authority),
        };
        let (username, password) = match credentials {
            None => (None, None),
            Some(credentials) => {
                let (user, password) = credentials.split_once(':').ok_or(UrlError::Credentials)?;
                let user = (!user.is_empty())
                    .then(|| percent_decode(user))
                    .transpose()?;
                (user, Some(percent_decode(password)?))
            }
        };
        let (host, port) = host_and_port(address)?;
        let db = match path {
            None | Some("") => 0,
            Some(db) if db.bytes().all(|b| b.is_ascii_digit()) => {
                db.parse().map_err(|_| UrlError::BadDb(db.to_string()))?
            }
            Some(db) => return Err(UrlError::BadDb(db.to_string())),
        };
        Ok(RedisUrl {
            tls,
            host,
            port,
            username,
            password,
            db,
        })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn host_and_port(address: &str) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(bracketed) = address.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| UrlError::BadIpv6(address.to_string()))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UrlError::BadIpv6(address.to_string()));
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(UrlError::BadIpv6(address.to_string())),
            },
        }
    } else {
        match address.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    let port = match port {
        None => DEFAULT_PORT,
        // u16's parser takes a leading '+': digits only.
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port != 0 && text.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => return Err(UrlError::BadPort(text.to_string())),
        },
    };
    Ok((host.to_string(), port))
}

/// Decodes `%XX` escapes (RFC 3986); the result must be UTF-8.
fn percent_decode(text: &str) -> Result<String, UrlError> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = tail.get(..2).ok_or(UrlError::BadEscape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| UrlError::BadEscape)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(UrlError::BadEscape);
            }
            bytes.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::BadEscape)?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).map_err(|_| UrlError::BadEscape)
}

/// The URL without its password: `rediss://user:***@host:6379/0`, for logs.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        write!(f, "{scheme}://")?;
        if let Some(user) = &self.username {
            write!(f, "{user}")?;
        }
        if self.password.is_some() {
            write!(f, ":***@")?;
        } else if self.username.is_some() {
            write!(f, "@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        write!(f, ":{}/{}", self.port, self.db)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("tls", &self.tls)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .finish()
    }
}

#[cfg(test)]
mod tests;
