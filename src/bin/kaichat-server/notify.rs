//! systemd's readiness protocol (sd_notify(3)) for `Type=notify` units: one datagram per
//! change of state (`READY=1` once the listener is bound, `STOPPING=1` when shutting down)
//! to the socket named in `NOTIFY_SOCKET`, a path or an abstract name written `@name`.
//! Without the variable (not started by systemd, or not as `Type=notify`) there is nothing
//! to do. It must never stop or stall the server: sends do not block, and the caller says
//! what failed and goes on.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The variable systemd sets for a `Type=notify` service.
const VARIABLE: &str = "NOTIFY_SOCKET";

/// Where to send state changes.
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// The variable's value, for errors.
    name: String,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` asks for; `Ok(None)` when it is unset or empty.
    pub fn from_env() -> Result<Option<Notifier>, String> {
        let Some(value) = std::env::var_os(VARIABLE).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let name = value.to_string_lossy().into_owned();
        let fail = |why: String| format!("{VARIABLE}={name}: {why}");
        let addr = address(&value).map_err(fail)?;
        let socket = UnixDatagram::unbound()
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| fail(format!("cannot open a datagram socket: {e}")))?;
        Ok(Some(Notifier { socket, addr, name }))
    }

    /// Sends `state` (`KEY=value` lines, as sd_notify(3) says).
    pub fn send(&self, state: &str) -> Result<(), String> {
        match self.socket.send_to_addr(state.as_bytes(), &self.addr) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!(
                "cannot tell systemd {} through {VARIABLE}={}: {e}",
                state.lines().next().unwrap_or_default(),
                self.name
            )),
        }
    }
}

/// An absolute path, or `@` and an abstract name (Linux).
fn address(value: &OsStr) -> Result<SocketAddr, String> {
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(value).map_err(|e| e.to_string()),
        Some(b'@') => abstract_address(&bytes[1..]),
        _ => Err("neither a socket path nor an abstract name (@name); not supported".into()),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &[u8]) -> Result<SocketAddr, String> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name).map_err(|e| e.to_string())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_name: &[u8]) -> Result<SocketAddr, String> {
    Err("abstract socket names exist on Linux only".into())
}
