//! kaichat-server as a systemd service: the readiness protocol against the real binary and a
//! real datagram socket (`READY=1` once it listens, `STOPPING=1` on SIGTERM, through a path
//! or an abstract `@name` in `NOTIFY_SOCKET`; a socket that is not there changes nothing
//! but a line on stderr), and `contrib/kaichat-server.service` as systemd reads it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// A name no other test run uses at the same time.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A server started with `NOTIFY_SOCKET` set to `notify_socket`.
struct Notified {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    /// Reads stderr until the process closes it.
    reader: Option<thread::JoinHandle<()>>,
}

impl Notified {
    fn start(notify_socket: &str) -> Notified {
        let manifest = manifest();
        let mut child = Process::new(server_bin())
            .args(["--listen", "127.0.0.1:0", "--cert", "certs/server.pem"])
            .args(["--key", "certs/server.key"])
            .env("NOTIFY_SOCKET", notify_socket)
            .current_dir(&manifest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start kaichat-server");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (first_tx, first_rx) = mpsc::channel();
        let log = Arc::clone(&stderr);
        let pipe = child.stderr.take().unwrap();
        let reader = thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = first_tx.send(line);
            }
        });
        let first: String = first_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server's first line");
        let addr = first
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        Notified {
            child,
            addr,
            stderr,
            reader: Some(reader),
        }
    }

    /// Proves the server serves: a TLS client gets through the set-up.
    fn assert_serving(&self) {
        let mut client = TestClient::connect_tls(self.addr);
        client.handshake("notified");
        client.assert_alive();
    }

    /// SIGTERM, then the exit status within 10 s.
    fn terminate(mut self) -> (Option<i32>, String) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code();
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(10));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let stderr = self.stderr.lock().unwrap().clone();
        (status, stderr)
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next datagram, as text; fails the test after 10 s.
fn receive(socket: &UnixDatagram) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification within 10 s");
    String::from_utf8(buf[..n].to_vec()).expect("UTF-8")
}

/// The server says READY=1 once it serves and STOPPING=1 on SIGTERM, through `socket`,
/// which `NOTIFY_SOCKET=name` names.
fn ready_then_stopping(socket: UnixDatagram, name: &str) {
    let server = Notified::start(name);
    let ready = receive(&socket);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(
        ready.contains(&format!("STATUS=listening on {}", server.addr)),
        "{ready:?}"
    );
    server.assert_serving();
    let (status, stderr) = server.terminate();
    assert_eq!(receive(&socket), "STOPPING=1", "after SIGTERM");
    assert_eq!(status, Some(0), "exit status; stderr:\n{stderr}");
    assert!(!stderr.contains("systemd"), "stderr:\n{stderr}");
}

#[test]
fn ready_and_stopping_go_to_a_socket_path() {
    let dir = std::env::temp_dir().join(unique("kaichat-notify"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    ready_then_stopping(socket, path.to_str().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ready_and_stopping_go_to_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = unique("kaichat-notify");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    ready_then_stopping(socket, &format!("@{name}"));
}

#[test]
fn a_notify_socket_that_is_not_there_is_said_and_the_server_serves() {
    let missing = std::env::temp_dir()
        .join(unique("kaichat-no-such-dir"))
        .join("notify");
    let server = Notified::start(missing.to_str().unwrap());
    server.assert_serving();
    let (status, stderr) = server.terminate();
    assert_eq!(status, Some(0), "stderr:\n{stderr}");
    for state in ["READY=1", "STOPPING=1"] {
        let said = format!(
            "kaichat-server: cannot tell systemd {state} through NOTIFY_SOCKET={}: ",
            missing.display()
        );
        assert!(stderr.contains(&said), "expected {said:?} in:\n{stderr}");
    }
}

#[test]
fn a_notify_socket_of_a_kind_not_supported_is_said_and_the_server_serves() {
    let server = Notified::start("vsock:2:1234");
    server.assert_serving();
    let (status, stderr) = server.terminate();
    assert_eq!(status, Some(0), "stderr:\n{stderr}");
    assert!(
        stderr.contains("kaichat-server: NOTIFY_SOCKET=vsock:2:1234: "),
        "stderr:\n{stderr}"
    );
}

/// The unit file, the example configuration and the README agree on where things are: the
/// binary, the configuration file, and the certificate and key systemd hands over.
#[test]
fn the_unit_and_the_example_configuration_agree() {
    let unit = std::fs::read_to_string(manifest().join("contrib/kaichat-server.service")).unwrap();
    let config = std::fs::read_to_string(manifest().join("contrib/kaichat.toml")).unwrap();
    let readme = std::fs::read_to_string(manifest().join("README.md")).unwrap();
    let exec = "ExecStart=/usr/local/bin/kaichat-server --config /etc/kaichat/kaichat.toml";
    assert!(unit.lines().any(|l| l == exec), "the unit lacks {exec:?}");
    for needed in ["/usr/local/bin/kaichat-server", "/etc/kaichat/kaichat.toml"] {
        assert!(readme.contains(needed), "README.md never says {needed}");
    }
    // Each credential the unit loads is a file the configuration names, and back.
    let loaded: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("LoadCredential="))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert_eq!(loaded.len(), 2, "the certificate and the key: {loaded:?}");
    for (key, name) in ["cert", "key"].into_iter().zip(&loaded) {
        let line = format!("# {key} = \"/run/credentials/kaichat-server.service/{name}\"");
        assert!(
            config.lines().any(|l| l == line),
            "contrib/kaichat.toml lacks {line:?}"
        );
    }
    assert!(unit.lines().any(|l| l == "Type=notify"));
}

/// `systemd-analyze verify` accepts `contrib/kaichat-server.service`: every key known, every
/// value valid. It checks that ExecStart's binary exists, so it reads a copy whose ExecStart
/// is the binary under test.
///
/// Skipped, saying so, where `systemd-analyze` is not installed: CI containers often have no
/// systemd. This is the only test allowed to skip.
#[test]
fn systemd_analyze_verifies_the_unit() {
    if Process::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: systemd-analyze is not installed (no systemd on this machine)");
        return;
    }
    let unit = std::fs::read_to_string(manifest().join("contrib/kaichat-server.service")).unwrap();
    let installed = "ExecStart=/usr/local/bin/kaichat-server ";
    assert!(unit.contains(installed));
    let unit = unit.replace(installed, &format!("ExecStart={} ", server_bin().display()));
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("systemd"));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("kaichat-server.service");
    std::fs::write(&copy, unit).unwrap();
    let out = Process::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Other units on the machine may draw warnings too; only this one's count.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("kaichat-server"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify {}: {}\n{stderr}",
        copy.display(),
        out.status
    );
    let _ = std::fs::remove_dir_all(&dir);
}
