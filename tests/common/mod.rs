//! Test harness for black-box tests of the real `kaichat-server` binary: a [`Server`] guard
//! that starts the binary on 127.0.0.1 port 0 and kills it on drop, and a blocking
//! [`TestClient`] speaking the wire contract (`shared/spec/kaichat-v1.md`) over real TLS
//! (or plaintext with `--plaintext`).
//!
//! Every read and write has a timeout, so no test can hang: a server that says nothing
//! makes a test fail with a message, not stall the suite.

#![allow(dead_code)]

pub mod redis;
pub mod v2;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command as Process, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

pub use kaichat_proto::names::ChannelName;
pub use kaichat_proto::pdu::{ByteOrder, Command, Decoded, Pdu, PDU_LEN};
#[allow(unused_imports)] // not every test file uses the version-2 steps
pub use v2::*;

/// A channel name the test knows to be valid.
pub fn channel_name(name: &str) -> ChannelName {
    ChannelName::new(name.as_bytes()).expect("a valid channel name")
}

/// JOIN_CHANNEL with any bytes (at most 50) in the channel field, valid or not:
/// `Pdu::join` only takes checked names, and these tests also send invalid ones.
pub fn join_pdu(order: ByteOrder, user: &[u8], channel: &[u8]) -> Pdu {
    let mut pdu = Pdu::new(Command::JoinChannel, order);
    pdu.set_username(user);
    let bytes = pdu.bytes_mut();
    bytes[10] = b' ';
    bytes[11..11 + channel.len()].copy_from_slice(channel);
    pdu
}

/// How long a test waits for an answer that must come.
pub const ANSWER: Duration = Duration::from_secs(10);
/// How long a test waits to conclude that nothing comes.
pub const QUIET: Duration = Duration::from_millis(400);

/// The repository root.
pub fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of the server binary under test.
pub fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kaichat-server"))
}

fn path_arg(relative: &str) -> String {
    manifest().join(relative).display().to_string()
}

/// Raises this process's soft fd limit to the hard limit (tests with many clients).
pub fn raise_fd_limit() {
    let _ = kaichat::fd_limit::raise();
}

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

/// A running `kaichat-server`, killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// The address the server reported on its first stderr line.
    pub addr: SocketAddr,
    /// Whether it runs with `--plaintext`.
    pub plaintext: bool,
    log: Arc<Mutex<String>>,
    log_reader: Option<JoinHandle<()>>,
}

/// How a terminated server ended.
#[derive(Debug)]
pub struct Termination {
    /// `None` if it did not exit within the timeout (it was then killed).
    pub status: Option<ExitStatus>,
    /// Time from the signal to the exit.
    pub elapsed: Duration,
    /// Everything it wrote on stderr.
    pub stderr: String,
}

impl Server {
    /// Starts the server with TLS and the development certificates, on 127.0.0.1:0, with
    /// `extra` arguments.
    pub fn start(extra: &[&str]) -> Server {
        Server::spawn(extra, false, None)
    }

    /// Starts the server with `--plaintext`.
    pub fn start_plaintext(extra: &[&str]) -> Server {
        Server::spawn(extra, true, None)
    }

    /// Starts the server (TLS) with its open-file limit, soft and hard, set to `nofile`.
    pub fn start_with_fd_limit(extra: &[&str], nofile: u64) -> Server {
        Server::spawn(extra, false, Some((libc::RLIMIT_NOFILE, nofile, nofile)))
    }

    /// Starts the server (TLS) unable to write a file past `bytes` (the soft RLIMIT_FSIZE;
    /// the hard limit stays unlimited so that [`Server::lift_file_size_limit`] can raise
    /// it): a full disk, as far as its writes can tell.
    pub fn start_with_file_size_limit(extra: &[&str], bytes: u64) -> Server {
        let unlimited = libc::RLIM_INFINITY;
        Server::spawn(extra, false, Some((libc::RLIMIT_FSIZE, bytes, unlimited)))
    }

    /// Raises the running server's soft RLIMIT_FSIZE to its hard limit: the disk has room
    /// again.
    pub fn lift_file_size_limit(&self) {
        let unlimited = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: prlimit on our own child's pid, with a valid limit and no old-limit output.
        let raised = unsafe {
            libc::prlimit(
                self.pid(),
                libc::RLIMIT_FSIZE,
                &unlimited,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(raised, 0, "prlimit: {}", io::Error::last_os_error());
    }

    fn spawn(
        extra: &[&str],
        plaintext: bool,
        limit: Option<(libc::__rlimit_resource_t, u64, u64)>,
    ) -> Server {
        let mut args: Vec<String> = Vec::new();
        if !extra.contains(&"--listen") {
            args.extend(["--listen".into(), "127.0.0.1:0".into()]);
        }
        args.extend([
            "--cert".into(),
            path_arg("certs/server.pem"),
            "--key".into(),
            path_arg("certs/server.key"),
        ]);
        if plaintext {
            args.push("--plaintext".into());
        }
        // Tests send bursts of messages to fill histories and sockets: the rate limit
        // (v2 section 6) is off unless a test turns it on to test it.
        if !extra.contains(&"--rate-limit") {
            args.extend(["--rate-limit".into(), "0".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut command = Process::new(server_bin());
        command
            .args(&args)
            // The first line must be the info line with the address, whatever the
            // environment of the test run says about logging.
            .env_remove("RUST_LOG")
            .current_dir(manifest())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((resource, soft, hard)) = limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
            unsafe {
                command.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: soft as libc::rlim_t,
                        rlim_max: hard as libc::rlim_t,
                    };
                    if libc::setrlimit(resource, &lim) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().expect("cannot start kaichat-server");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (first_tx, first_rx) = mpsc::channel::<String>();
        let log_in = Arc::clone(&log);
        let log_reader = thread::spawn(move || {
            let mut first = Some(first_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log_in.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(tx) = first.take() {
                    let _ = tx.send(line);
                }
            }
        });
        let first = match first_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "kaichat-server {args:?} printed no first line (exit: {status:?}); stderr: {:?}",
                    log.lock().unwrap()
                );
            }
        };
        let addr = first
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "cannot parse the address from the first stderr line {first:?}; stderr: {:?}",
                log.lock().unwrap()
            );
        };
        Server {
            child: Some(child),
            addr,
            plaintext,
            log,
            log_reader: Some(log_reader),
        }
    }

    /// The stderr text so far.
    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("server process").id() as i32
    }

    /// CPU time (user + system) the server has used so far, from /proc.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/PID/stat");
        // The fields after the command name in parentheses; utime and stime are the
        // 14th and 15th fields of the whole line.
        let rest = &stat[stat.rfind(')').expect("stat format") + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// The server's CPU use over `window`, as a fraction of one core.
    pub fn cpu_share_over(&self, window: Duration) -> f64 {
        let before = self.cpu_time();
        thread::sleep(window);
        (self.cpu_time() - before).as_secs_f64() / window.as_secs_f64()
    }

    /// The server's resident set size in KiB, from /proc/PID/status.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// The value of `name=` in the last statistics line on stderr (`--stats-interval` or the
    /// final line), if there is one.
    pub fn last_stat(&self, name: &str) -> Option<u64> {
        stat_in(
            self.stderr()
                .lines()
                .rev()
                .find(|l| l.contains(" stats: ") || l.contains(" shut down: "))?,
            name,
        )
    }

    /// Panics if the process has exited (crashed).
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("server process");
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "kaichat-server exited unexpectedly ({status}); stderr:\n{}",
                self.stderr()
            );
        }
    }

    /// Sends `signal` and waits up to `timeout` for the exit (killing it after that).
    pub fn signal_and_wait(mut self, signal: i32, timeout: Duration) -> Termination {
        let mut child = self.child.take().expect("server process");
        let start = Instant::now();
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        let mut status = None;
        while start.elapsed() < timeout {
            if let Some(s) = child.try_wait().expect("try_wait") {
                status = Some(s);
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        let elapsed = start.elapsed();
        if status.is_none() {
            let _ = child.kill();
        }
        // Reaps the child (returns at once when try_wait already saw the exit).
        let _ = child.wait();
        if let Some(reader) = self.log_reader.take() {
            let _ = reader.join();
        }
        Termination {
            status,
            elapsed,
            stderr: self.stderr(),
        }
    }

    /// SIGTERM, then wait up to `timeout`.
    pub fn terminate(self, timeout: Duration) -> Termination {
        self.signal_and_wait(libc::SIGTERM, timeout)
    }

    /// A connected client (TLS unless the server is plaintext), nothing sent yet.
    pub fn client(&self) -> TestClient {
        if self.plaintext {
            TestClient::connect_plain(self.addr)
        } else {
            TestClient::connect_tls(self.addr)
        }
    }

    /// A client established under `name` (little-endian).
    pub fn login(&self, name: &str) -> TestClient {
        let mut c = self.client();
        c.handshake(name);
        c
    }

    /// A client established under `name` and in `channel`.
    pub fn member(&self, name: &str, channel: &str) -> TestClient {
        let mut c = self.login(name);
        c.join(channel);
        c
    }

    /// A client established under `name` with protocol version 2 (little-endian).
    pub fn login_v2(&self, name: &str) -> TestClient {
        let mut c = self.client();
        c.handshake_v2(name);
        c
    }

    /// A version-2 client established under `name` and in `channel`; what the server
    /// pushes after the JOIN acknowledgement (the replay, the `joined` notice) is unread.
    pub fn member_v2(&self, name: &str, channel: &str) -> TestClient {
        let mut c = self.login_v2(name);
        c.join(channel);
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a run of the server binary that ends by itself gave.
pub struct Exit {
    /// `None` when killed by a signal or at the timeout.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Still running at the timeout, and killed.
    pub timed_out: bool,
}

/// Runs the server binary with `args` (nothing added) from the repository root and waits
/// up to `timeout` for it to exit; one still running then is killed.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> Exit {
    let mut child = Process::new(server_bin())
        .args(args)
        .current_dir(manifest())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start kaichat-server");
    let mut stderr = child.stderr.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        thread::sleep(Duration::from_millis(10));
    };
    Exit {
        code: status.code(),
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
        timed_out,
    }
}

/// Runs the server binary with `args` from the repository root; fails the test if it is
/// still running after `timeout`.
pub fn run_finished(args: &[&str], timeout: Duration) -> Exit {
    let exit = run_to_exit(args, timeout);
    assert!(
        !exit.timed_out,
        "{args:?}: still running after {timeout:?}; stderr: {:?}",
        exit.stderr
    );
    exit
}

/// Runs `args` as [`run_finished`] does, expects what a command-line mistake gives (exit
/// status 2, nothing on stdout, exactly one line on stderr) and returns that line.
pub fn refusal_within(args: &[&str], timeout: Duration) -> String {
    let exit = run_finished(args, timeout);
    assert_eq!(
        exit.code,
        Some(2),
        "{args:?}: exit status; stderr {:?}",
        exit.stderr
    );
    assert_eq!(exit.stdout, "", "{args:?}");
    let lines: Vec<&str> = exit.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: one line on stderr, got {:?}",
        exit.stderr
    );
    assert!(
        !lines[0].trim().is_empty(),
        "{args:?}: a blank line on stderr"
    );
    lines[0].to_string()
}

/// The value of `name=` in a statistics line (`accepted=12` gives 12 for `accepted`).
pub fn stat_in(line: &str, name: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| {
            value
                .trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
}

// ---------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------

/// The root store with the development CA.
pub fn dev_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in kaichat::tls::load_certs(&manifest().join("certs/ca.pem")).unwrap() {
        roots.add(cert).unwrap();
    }
    roots
}

/// The shared client configuration (trusting `certs/ca.pem`; one resumption cache).
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            kaichat::tls::client_config(&kaichat::tls::Trust {
                ca: Some(manifest().join("certs/ca.pem")),
                roots: Vec::new(),
            })
            .expect("client TLS config from certs/ca.pem")
        })
        .clone()
}

/// The byte stream under a client.
pub enum Transport {
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Plain(TcpStream),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Tls(s) => &s.sock,
            Transport::Plain(s) => s,
        }
    }
}

/// Why no PDU was received.
#[derive(Debug)]
pub enum RecvError {
    /// A clean end: TLS close_notify (or, in plaintext, TCP EOF).
    Closed { partial: usize },
    /// Nothing (whole) arrived in time.
    TimedOut { partial: usize },
    /// Any other end: reset, TCP EOF without close_notify, TLS error.
    Io(io::Error),
}

/// A blocking KaiChat client for tests.
pub struct TestClient {
    pub transport: Transport,
    buf: Vec<u8>,
    /// The byte order this client writes and expects from the server.
    pub order: ByteOrder,
    /// The username once established.
    pub name: Vec<u8>,
    /// The channel the client believes it is in (empty when none).
    pub channel: Vec<u8>,
}

impl TestClient {
    /// TCP + TLS (the handshake happens on the first read or write).
    pub fn connect_tls(addr: SocketAddr) -> TestClient {
        TestClient::connect_tls_with(addr, tls_config())
    }

    /// TCP + TLS with a given client configuration.
    pub fn connect_tls_with(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> TestClient {
        let name = ServerName::try_from("localhost").unwrap();
        TestClient::connect_tls_named(addr, config, name)
    }

    /// TCP + TLS with a given configuration and server name to verify.
    pub fn connect_tls_named(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
    ) -> TestClient {
        let tcp = connect_tcp(addr);
        let conn = ClientConnection::new(config, name).expect("client connection");
        TestClient::with(Transport::Tls(Box::new(StreamOwned::new(conn, tcp))))
    }

    /// TCP from the local address `source` (say 127.0.0.2, to look like another host to
    /// the server's per-address limits) + TLS.
    pub fn connect_tls_from(source: std::net::IpAddr, addr: SocketAddr) -> TestClient {
        let tcp = connect_tcp_from(source, addr)
            .unwrap_or_else(|e| panic!("connect from {source} to {addr}: {e}"));
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(tls_config(), name).expect("client connection");
        TestClient::with(Transport::Tls(Box::new(StreamOwned::new(conn, tcp))))
    }

    /// The TLS connection (panics in plaintext).
    pub fn tls(&self) -> &ClientConnection {
        match &self.transport {
            Transport::Tls(s) => &s.conn,
            Transport::Plain(_) => panic!("not a TLS client"),
        }
    }

    /// The raw TCP socket under the client.
    pub fn tcp(&self) -> &TcpStream {
        self.transport.tcp()
    }

    /// Plain TCP, for `--plaintext`.
    pub fn connect_plain(addr: SocketAddr) -> TestClient {
        TestClient::with(Transport::Plain(connect_tcp(addr)))
    }

    fn with(transport: Transport) -> TestClient {
        TestClient {
            transport,
            buf: Vec::new(),
            order: ByteOrder::Little,
            name: Vec::new(),
            channel: Vec::new(),
        }
    }

    /// Sets the byte order (builder style).
    pub fn big_endian(mut self) -> TestClient {
        self.order = ByteOrder::Big;
        self
    }

    /// Completes the TLS handshake within `timeout` without sending application data.
    pub fn try_finish_tls(&mut self, timeout: Duration) -> io::Result<()> {
        let Transport::Tls(stream) = &mut self.transport else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        while stream.conn.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            stream.sock.set_read_timeout(Some(left))?;
            stream.conn.complete_io(&mut stream.sock)?;
        }
        // Flush what the handshake left to write (the client Finished).
        while stream.conn.wants_write() {
            stream.conn.write_tls(&mut stream.sock)?;
        }
        Ok(())
    }

    /// Completes the TLS handshake or panics.
    pub fn finish_tls(&mut self) {
        self.try_finish_tls(ANSWER).expect("TLS handshake");
    }

    // --- bytes out ---

    /// Writes raw bytes (application data) and flushes.
    pub fn try_write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.transport
            .tcp()
            .set_write_timeout(Some(Duration::from_secs(10)))?;
        match &mut self.transport {
            Transport::Tls(s) => {
                s.sock.set_read_timeout(Some(ANSWER))?;
                s.write_all(bytes)?;
                s.flush()
            }
            Transport::Plain(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
        }
    }

    /// Writes raw bytes or panics.
    pub fn write(&mut self, bytes: &[u8]) {
        self.try_write(bytes)
            .unwrap_or_else(|e| panic!("write of {} bytes failed: {e}", bytes.len()));
    }

    /// Sends one PDU.
    pub fn send(&mut self, pdu: &Pdu) {
        self.write(pdu.as_bytes());
    }

    // --- bytes in ---

    fn read_some(&mut self, deadline: Instant) -> Result<(), RecvError> {
        let partial = self.buf.len();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RecvError::TimedOut { partial });
        }
        self.transport
            .tcp()
            .set_read_timeout(Some(left))
            .map_err(RecvError::Io)?;
        let mut tmp = [0u8; 16 * 1024];
        let result = match &mut self.transport {
            Transport::Tls(s) => s.read(&mut tmp),
            Transport::Plain(s) => s.read(&mut tmp),
        };
        match result {
            Ok(0) => Err(RecvError::Closed { partial }),
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(RecvError::TimedOut { partial })
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(RecvError::Io(e)),
        }
    }

    /// The next PDU within `timeout`, in whatever byte order.
    pub fn try_recv_within(&mut self, timeout: Duration) -> Result<Pdu, RecvError> {
        let deadline = Instant::now() + timeout;
        while self.buf.len() < PDU_LEN {
            self.read_some(deadline)?;
        }
        let pdu = Pdu::from_slice(&self.buf[..PDU_LEN]).unwrap();
        self.buf.drain(..PDU_LEN);
        Ok(pdu)
    }

    /// The next PDU, whatever its byte order; panics if none comes in time.
    pub fn recv_raw(&mut self) -> Pdu {
        match self.try_recv_within(ANSWER) {
            Ok(pdu) => pdu,
            Err(e) => panic!(
                "{}: expected a PDU, got {e:?}",
                String::from_utf8_lossy(&self.name)
            ),
        }
    }

    /// The next PDU; panics if its command is not readable in this client's byte order.
    pub fn recv(&mut self) -> Pdu {
        let pdu = self.recv_raw();
        self.command_of(&pdu);
        pdu
    }

    /// The command of a received PDU, read in this client's order (the server must write
    /// every PDU in it).
    pub fn command_of(&self, pdu: &Pdu) -> Command {
        match pdu.decode_command(Some(self.order)) {
            Decoded::Known { command, .. } => command,
            Decoded::Unknown(raw) => panic!(
                "server PDU has command bytes {raw:?}, not a command in {:?} order: {pdu:?}",
                self.order
            ),
        }
    }

    /// The next PDU, which must carry `command`.
    pub fn expect(&mut self, command: Command) -> Pdu {
        let pdu = self.recv();
        let got = self.command_of(&pdu);
        assert_eq!(got, command, "unexpected PDU: {pdu:?}");
        pdu
    }

    /// Asserts nothing arrives within `quiet`.
    pub fn expect_silence(&mut self, quiet: Duration) {
        match self.try_recv_within(quiet) {
            Err(RecvError::TimedOut { .. }) => {}
            Ok(pdu) => panic!("expected silence, got {pdu:?}"),
            Err(e) => panic!("expected silence, the connection ended: {e:?}"),
        }
    }

    /// Waits up to `timeout` for the connection to end (cleanly or not); panics on a PDU
    /// or on the timeout. Returns how it ended.
    pub fn expect_closed_within(&mut self, timeout: Duration) -> RecvError {
        match self.try_recv_within(timeout) {
            Ok(pdu) => panic!("expected the connection to close, got {pdu:?}"),
            Err(RecvError::TimedOut { partial }) => panic!(
                "expected the connection to close within {timeout:?}, it is still open ({partial} bytes pending)"
            ),
            Err(e) => e,
        }
    }

    /// The connection ends (any way) soon.
    pub fn expect_closed(&mut self) -> RecvError {
        self.expect_closed_within(ANSWER)
    }

    /// The connection ends with TLS close_notify (plaintext: EOF) and no partial PDU.
    pub fn expect_clean_close(&mut self) {
        match self.expect_closed() {
            RecvError::Closed { partial: 0 } => {}
            other => panic!("expected a clean close (close_notify), got {other:?}"),
        }
    }

    // --- protocol steps ---

    /// Sends PING; expects PONG and the server's VERSION_NEGOTIATION (both checked), and
    /// returns the server's highest version (1 or 2).
    pub fn ping_version(&mut self) -> u16 {
        self.send(&Pdu::ping(self.order));
        self.expect_pong();
        let version = self.expect(Command::VersionNegotiation);
        assert_eq!(version.username(), b"SERVER", "server version prefix");
        let highest = version.version();
        assert!(
            matches!(highest, 1 | 2),
            "server's highest version: {highest}"
        );
        assert_eq!(
            &version.params()[..2],
            &[0, highest as u8],
            "version is u16 big-endian"
        );
        highest
    }

    /// The next PDU is a PONG: command 7, everything else zero.
    pub fn expect_pong(&mut self) {
        let pong = self.expect(Command::PingPong);
        assert!(
            pong.prefix().iter().all(|&b| b == 0) && pong.params().iter().all(|&b| b == 0),
            "PONG must be all zero but the command: {pong:?}"
        );
    }

    /// Sends CLIENT_INFO; expects the acknowledgement.
    pub fn client_info(&mut self, name: &str) {
        self.send(&Pdu::client_info(self.order, name.as_bytes()));
        self.expect_client_info_ack(name);
    }

    /// The next PDU acknowledges CLIENT_INFO for `name`.
    pub fn expect_client_info_ack(&mut self, name: &str) {
        let ack = self.recv();
        assert_eq!(
            self.command_of(&ack),
            Command::ClientInfo,
            "CLIENT_INFO {name:?} not acknowledged: {ack:?}"
        );
        assert_eq!(ack.username(), b"SERVER");
        assert_eq!(ack.client_info_name(), name.as_bytes());
        self.name = name.as_bytes().to_vec();
    }

    /// PING → PONG + version → version 1 → CLIENT_INFO → acknowledgement.
    pub fn handshake(&mut self, name: &str) {
        self.ping_version();
        self.send(&Pdu::client_version(self.order, 1));
        self.client_info(name);
    }

    /// PING → PONG + version (which must be 2) → version 2 → CLIENT_INFO →
    /// acknowledgement (v2 contract section 1).
    pub fn handshake_v2(&mut self, name: &str) {
        let highest = self.ping_version();
        assert_eq!(highest, 2, "the server must offer version 2");
        self.send(&Pdu::client_version(self.order, 2));
        self.client_info(name);
    }

    /// JOIN_CHANNEL; expects the acknowledgement.
    pub fn join(&mut self, channel: &str) {
        let name = self.name.clone();
        self.send(&join_pdu(self.order, &name, channel.as_bytes()));
        let ack = self.expect(Command::JoinChannel);
        assert_eq!(ack.username(), b"SERVER", "JOIN ack: {ack:?}");
        assert_eq!(ack.as_bytes()[10], b' ', "JOIN ack separator");
        assert_eq!(ack.channel(), channel.as_bytes(), "JOIN ack channel");
        self.channel = channel.as_bytes().to_vec();
    }

    /// LEAVE_CHANNEL; expects the acknowledgement naming the channel left.
    pub fn leave(&mut self) {
        self.send(&Pdu::leave(self.order));
        let ack = self.expect(Command::LeaveChannel);
        assert_eq!(ack.username(), b"SERVER", "LEAVE ack: {ack:?}");
        assert_eq!(ack.channel(), &self.channel[..], "LEAVE ack channel");
        self.channel.clear();
    }

    /// SEND_MESSAGE (no answer expected).
    pub fn say(&mut self, text: &str) {
        self.send(&Pdu::send_message(self.order, text.as_bytes()));
    }

    /// QUIT.
    pub fn quit(&mut self) {
        self.send(&Pdu::quit(self.order));
    }

    /// Sends QUERY and returns the message PDUs of the answer (not the final up-to-date
    /// PDU, which is checked: SERVER, flag 1, the client's channel, params zero).
    pub fn query(&mut self) -> Vec<Pdu> {
        self.send(&Pdu::query(self.order));
        self.read_answer()
    }

    /// Reads one QUERY answer.
    pub fn read_answer(&mut self) -> Vec<Pdu> {
        let mut out = Vec::new();
        loop {
            let pdu = self.expect(Command::ReceiveMessage);
            if pdu.up_to_date() {
                assert_eq!(pdu.username(), b"SERVER", "up-to-date sender: {pdu:?}");
                assert_eq!(
                    pdu.channel(),
                    &self.channel[..],
                    "up-to-date PDU must name the client's channel: {pdu:?}"
                );
                assert!(
                    pdu.params().iter().all(|&b| b == 0),
                    "up-to-date params must be zero"
                );
                return out;
            }
            assert_eq!(pdu.as_bytes()[61], 0, "a message PDU has flag 0: {pdu:?}");
            assert!(out.len() < 1_000_000, "endless QUERY answer");
            out.push(pdu);
        }
    }

    /// QUERY, as (sender, text) pairs.
    pub fn query_entries(&mut self) -> Vec<(String, String)> {
        self.query().iter().map(entry).collect()
    }

    /// The next PDU is an error notice; returns its text.
    pub fn expect_error(&mut self) -> String {
        let pdu = self.recv();
        assert_error_notice(self.command_of(&pdu), &pdu);
        String::from_utf8_lossy(pdu.params_text()).into_owned()
    }

    /// PING → PONG on an established connection: proves it is alive and in order.
    pub fn assert_alive(&mut self) {
        self.send(&Pdu::ping(self.order));
        self.expect_pong();
    }
}

fn connect_tcp(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect_timeout(&addr, ANSWER)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(ANSWER)).unwrap();
    tcp.set_write_timeout(Some(ANSWER)).unwrap();
    tcp
}

/// A TCP connection from the local address `source` (port chosen by the system), with the
/// same options and timeouts as [`TestClient`]'s.
pub fn connect_tcp_from(source: std::net::IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&addr.into(), ANSWER)?;
    let tcp: TcpStream = socket.into();
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(ANSWER))?;
    tcp.set_write_timeout(Some(ANSWER))?;
    Ok(tcp)
}

/// A member "filler" of `channel` that posts `n` messages of 2000 bytes, each starting
/// with its number in five digits, written in batches of 100 PDUs: a backlog larger than
/// the socket buffers.
pub fn fill_channel(server: &Server, channel: &str, n: usize) -> TestClient {
    let mut filler = server.member("filler", channel);
    let mut batch = Vec::new();
    for i in 0..n {
        let mut text = vec![b'm'; 2000];
        text[..5].copy_from_slice(format!("{i:05}").as_bytes());
        batch.extend_from_slice(Pdu::send_message(ByteOrder::Little, &text).as_bytes());
        if batch.len() >= 100 * PDU_LEN {
            filler.write(&batch);
            batch.clear();
        }
    }
    filler.write(&batch);
    filler.assert_alive();
    filler
}

/// (sender, text) of a RECEIVE_MESSAGE.
pub fn entry(pdu: &Pdu) -> (String, String) {
    (
        String::from_utf8_lossy(pdu.username()).into_owned(),
        String::from_utf8_lossy(pdu.params_text()).into_owned(),
    )
}

/// Shorthand for expected entries.
pub fn entries(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Asserts the shape of an error notice (contract section 6).
pub fn assert_error_notice(command: Command, pdu: &Pdu) {
    assert_eq!(
        command,
        Command::ReceiveMessage,
        "expected an error notice: {pdu:?}"
    );
    assert_eq!(pdu.username(), b"SERVER", "error notice sender: {pdu:?}");
    assert_eq!(pdu.as_bytes()[10], b' ', "error notice separator: {pdu:?}");
    assert_eq!(pdu.as_bytes()[61], 0, "error notice flag: {pdu:?}");
    assert!(
        pdu.params_text().starts_with(b"error: "),
        "notice text must start with `error: `: {pdu:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Small tools
// ---------------------------------------------------------------------------------------

/// A deterministic xorshift generator (no dependency, reproducible failures).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

/// A barrier with a deadline: a thread that fails cannot leave the others waiting forever.
pub struct Gate {
    state: Mutex<(usize, bool)>,
    cond: Condvar,
    parties: usize,
}

impl Gate {
    pub fn new(parties: usize) -> Gate {
        Gate {
            state: Mutex::new((0, false)),
            cond: Condvar::new(),
            parties,
        }
    }

    /// Arrives and waits for all parties until `deadline`. False on timeout or failure.
    pub fn wait(&self, deadline: Instant) -> bool {
        let mut state = self.state.lock().unwrap();
        state.0 += 1;
        if state.0 >= self.parties {
            self.cond.notify_all();
        }
        while state.0 < self.parties && !state.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self.cond.wait_timeout(state, left).unwrap().0;
        }
        !state.1
    }

    /// Releases everyone with failure.
    pub fn fail(&self) {
        self.state.lock().unwrap().1 = true;
        self.cond.notify_all();
    }
}

/// A file holding the argon2id PHC string of `password` (cheap parameters: the server
/// verifies with the parameters the string names), removed on drop.
pub struct OperFile(PathBuf);

impl OperFile {
    pub fn new(test: &str, password: &str) -> OperFile {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(&[7; 16]).expect("a salt");
        let params = argon2::Params::new(1024, 1, 1, None).expect("argon2 parameters");
        let hasher =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let phc = hasher
            .hash_password(password.as_bytes(), &salt)
            .expect("hash")
            .to_string();
        OperFile::with_text(test, &format!("{phc}\n"))
    }

    pub fn with_text(test: &str, text: &str) -> OperFile {
        let path = std::env::temp_dir().join(format!(
            "kaichat-server-v2-{}-{test}.phc",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write the operator password file");
        OperFile(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for OperFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A temporary directory of a test's own (`kaichat-server-<name>-<pid>`), removed when
/// dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("kaichat-server-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        TempDir(dir)
    }

    /// The path of a store's database file in it (`--store`).
    pub fn db(&self) -> String {
        self.0.join("history.db").to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
