//! Harness for black-box tests of the real `kaichat` binary against the real
//! `kaichat-server` over TLS on loopback: a [`ChatServer`] guard and a [`Kaichat`] guard
//! driven through pipes, reading the plain output format documented at the top of
//! `src/terminal/mod.rs`.
//!
//! Every wait is bounded and both guards kill their process on drop, so a failing test
//! ends with a message that shows what was printed, never a hang.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a test waits for a line or an exit that must come.
pub const WAIT: Duration = Duration::from_secs(15);
/// The query interval the clients use in tests, so that messages arrive quickly.
pub const QUERY_INTERVAL: &str = "0.2";

/// The repository root.
pub fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn path_arg(relative: &str) -> String {
    manifest().join(relative).display().to_string()
}

/// A unique path in the temporary directory.
pub fn temp_path(name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "kaichat-client-test-{}-{nanos}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Collects a child's output lines on a thread: lines arrive on a channel, and all of them
/// are kept for failure messages.
struct Lines {
    rx: Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn spawn(stream: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                match line {
                    Ok(line) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line, or `None` at timeout or end of stream.
    fn next(&mut self, until: Instant) -> Option<String> {
        let left = until.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Everything until the stream ends (or the deadline).
    fn drain(&mut self, until: Instant) {
        while self.next(until).is_some() {}
    }
}

/// The server binary, on 127.0.0.1 port 0 with the development certificate.
pub struct ChatServer {
    child: Child,
    pub addr: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl ChatServer {
    pub fn start() -> ChatServer {
        ChatServer::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> ChatServer {
        ChatServer::start_at("127.0.0.1:0", extra)
    }

    /// A server on `listen` (for a restart on the same port); `extra` may replace the
    /// development certificate with `--cert` and `--key`.
    pub fn start_at(listen: &str, extra: &[&str]) -> ChatServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kaichat-server"));
        command.args(["--listen", listen]);
        if !extra.contains(&"--cert") {
            command
                .args(["--cert", &path_arg("certs/server.pem")])
                .args(["--key", &path_arg("certs/server.key")]);
        }
        let mut child = command
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kaichat-server");
        let stderr = child.stderr.take().expect("server stderr");
        let (tx, rx) = mpsc::channel();
        let kept = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&kept);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                keep.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let first = rx.recv_timeout(WAIT);
        let addr = first.as_ref().ok().and_then(|line| {
            let rest = line.split("listening on ").nth(1)?;
            Some(rest.split(' ').next()?.to_string())
        });
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kaichat-server did not say where it listens: {first:?}");
        };
        ChatServer {
            child,
            addr,
            stderr: kept,
        }
    }

    /// Stops the server as an operator would (SIGTERM: every client gets a TLS
    /// close_notify) and waits for it to exit.
    pub fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let until = Instant::now() + WAIT;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("kaichat-server did not stop on SIGTERM");
    }

    /// The server's process id (to stop it with SIGSTOP, as a cut-off node).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What the server wrote on stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How `kaichat` ended.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    /// Every stdout line, from the start.
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

/// One `kaichat` process, driven through pipes (plain mode).
pub struct Kaichat {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines,
    stderr: Lines,
}

impl Kaichat {
    /// `kaichat --server ADDR --ca certs/ca.pem --query-interval 0.2 ARGS...`
    pub fn start(server: &ChatServer, name: &str, args: &[&str]) -> Kaichat {
        let ca = path_arg("certs/ca.pem");
        let mut all = vec![
            "--server",
            &server.addr,
            "--ca",
            &ca,
            "--query-interval",
            QUERY_INTERVAL,
        ];
        all.extend_from_slice(args);
        Kaichat::start_raw(name, &all)
    }

    /// `kaichat ARGS...`, nothing added, run from the repository root.
    pub fn start_raw(name: &str, args: &[&str]) -> Kaichat {
        Kaichat::start_in(&manifest(), name, args)
    }

    /// `kaichat ARGS...` run from `dir`.
    pub fn start_in(dir: &Path, name: &str, args: &[&str]) -> Kaichat {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kaichat"))
            .args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kaichat");
        let stdin = child.stdin.take();
        let stdout = Lines::spawn(child.stdout.take().expect("kaichat stdout"));
        let stderr = Lines::spawn(child.stderr.take().expect("kaichat stderr"));
        Kaichat {
            name: name.to_string(),
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Types one line.
    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let Some(stdin) = self.stdin.as_mut() else {
            panic!("{}: stdin already closed", self.name);
        };
        if let Err(e) = stdin.write_all(bytes).and_then(|()| stdin.flush()) {
            self.fail(&format!("cannot write to kaichat: {e}"));
        }
    }

    /// Ends the input (as at the end of a script).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a stdout line for which `wanted` holds; returns it.
    pub fn expect_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + WAIT;
        while let Some(line) = self.stdout.next(until) {
            if wanted(&line) {
                return line;
            }
        }
        self.fail(&format!("no line {what}"))
    }

    /// Waits for a line that starts with `prefix`.
    pub fn expect(&mut self, prefix: &str) -> String {
        self.expect_line(&format!("starting with {prefix:?}"), |l| {
            l.starts_with(prefix)
        })
    }

    /// Waits for `message TIME SENDER CHANNEL TEXT`; checks the time's shape.
    pub fn expect_message(&mut self, sender: &str, channel: &str, text: &str) -> String {
        let line = self.expect_line(
            &format!("message from {sender} in {channel}: {text:?}"),
            |l| {
                let f: Vec<&str> = l.splitn(5, ' ').collect();
                f.len() == 5
                    && f[0] == "message"
                    && f[2] == sender
                    && f[3] == channel
                    && f[4] == text
            },
        );
        let time = line.split(' ').nth(1).unwrap_or_default();
        assert!(is_clock(time), "{}: bad time in {line:?}", self.name);
        line
    }

    /// Waits for `notice TIME CHANNEL TEXT`.
    pub fn expect_notice(&mut self, channel: &str, text: &str) -> String {
        self.expect_line(&format!("notice in {channel}: {text:?}"), |l| {
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            f.len() == 4 && f[0] == "notice" && f[2] == channel && f[3] == text
        })
    }

    /// Every stdout line read so far.
    pub fn seen(&self) -> &[String] {
        &self.stdout.seen
    }

    /// Closes stdin if open and waits for the process to end.
    pub fn finish(mut self) -> Ended {
        self.close_stdin();
        self.wait_exit()
    }

    /// Waits for the process to end by itself, its input still open.
    pub fn wait_exit(mut self) -> Ended {
        let until = Instant::now() + WAIT;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < until => thread::sleep(Duration::from_millis(20)),
                _ => self.fail("did not exit in time"),
            }
        };
        self.stdout.drain(Instant::now() + Duration::from_secs(2));
        self.stderr.drain(Instant::now() + Duration::from_secs(2));
        Ended {
            status,
            stdout: std::mem::take(&mut self.stdout.seen),
            stderr: std::mem::take(&mut self.stderr.seen),
        }
    }

    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdout
            .drain(Instant::now() + Duration::from_millis(500));
        self.stderr
            .drain(Instant::now() + Duration::from_millis(500));
        panic!(
            "{}: {why}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.name,
            self.stdout.seen.join("\n"),
            self.stderr.seen.join("\n")
        );
    }
}

impl Drop for Kaichat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `HH:MM:SS`.
pub fn is_clock(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 8
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
}
