//! The server's command line, against the real binary: `--help` shows the defaults the
//! server uses.

mod common;

use std::io::Read;
use std::process::{Command as Process, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use kaichat::server::{DEFAULT_HISTORY, DEFAULT_REPLAY};
use kaichat_proto::session::Deadlines;

/// What a run of the binary that is expected to exit by itself gave.
struct Exit {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the server with `args` (from the repository root) and waits up to 5 s for it to
/// exit; a server still running then is killed and the test fails.
fn run(args: &[&str]) -> Exit {
    let mut child = Process::new(server_bin())
        .args(args)
        .current_dir(manifest())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start kaichat-server");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{args:?}: still running after 5 s; stderr: {:?}",
                err_reader.join().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    Exit {
        code: status.code(),
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

#[test]
fn help_states_the_defaults_the_server_uses() {
    let exit = run(&["--help"]);
    assert_eq!(exit.code, Some(0), "stderr {:?}", exit.stderr);
    let d = Deadlines::default();
    let option = |flag: &str| -> String {
        let start = exit
            .stdout
            .find(&format!("  {flag} "))
            .unwrap_or_else(|| panic!("{flag} is not in --help:\n{}", exit.stdout));
        let rest = &exit.stdout[start + 2..];
        // An option's description runs until the next line that starts an option.
        let end = rest[1..].find("\n  -").map_or(rest.len(), |i| i + 1);
        rest[..end].to_string()
    };
    for (flag, default) in [
        ("--handshake-timeout", d.handshake.to_string()),
        ("--idle-timeout", d.idle.to_string()),
        ("--history", DEFAULT_HISTORY.to_string()),
        ("--replay", DEFAULT_REPLAY.to_string()),
    ] {
        let text = option(flag);
        assert!(
            text.contains(&format!("[default: {default}")),
            "{flag}: expected [default: {default}...] in {text:?}"
        );
    }
}
