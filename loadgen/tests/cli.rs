//! The command lines of `loadgen`, `loadgen-report` and the load-test scripts, run as a
//! user runs them: errors that name their flag, `--version`, help texts written for
//! users, `--out` checked before any load, and no half-made report folder left behind.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .current_dir(repo())
        .args(args)
        .output()
        .expect("run loadgen")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_bad_value_is_one_line_that_names_its_flag() {
    let out = loadgen(&["--clients", "-5"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "loadgen: --clients: '-5' is not a number (see --help)\n"
    );
    for args in [
        &["--interval", "soon"][..],
        &["--ramp", "-1"],
        &["--sources", "nowhere"],
        &["--duration"],
    ] {
        let out = loadgen(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with(&format!("loadgen: {}: ", args[0])),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn versions() {
    let version = kaichat::version();
    let out = loadgen(&["--version"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), format!("loadgen {version}\n"));
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen-report"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("loadgen-report {version}\n"));
}

/// Help is for users: no issue numbers, source files or notes to developers.
fn assert_for_users(what: &str, help: &str) {
    assert!(help.len() > 100, "{what}: {help}");
    for internal in [
        "issue",
        "Issue",
        ".rs",
        "notes/",
        "TODO",
        "XXX",
        "BENCHMARKS",
        "reactor",
    ] {
        assert!(
            !help.contains(internal),
            "{what} --help mentions {internal:?}:\n{help}"
        );
    }
}

#[test]
fn help_texts_have_no_internal_notes() {
    let out = loadgen(&["--help"]);
    assert!(out.status.success());
    assert_for_users("loadgen", &text(&out.stdout));
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen-report"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_for_users("loadgen-report", &text(&out.stdout));
    for script in ["scripts/loadtest.sh", "scripts/ab.sh"] {
        let out = Command::new("bash")
            .arg(repo().join(script))
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {}", text(&out.stderr));
        assert_for_users(script, &text(&out.stdout));
    }
}

#[test]
fn an_unwritable_out_is_refused_before_the_load_starts() {
    let dir = scratch("out");
    // A regular file where a folder should be: refused whoever runs the test (even root).
    let file = dir.join("file");
    std::fs::write(&file, "").unwrap();
    let started = Instant::now();
    // Nothing listens on port 1: a run would fail every connection, then report.
    let out = loadgen(&[
        "--server",
        "127.0.0.1:1",
        "--clients",
        "5",
        "--quiet",
        "--out",
        file.join("run").to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("loadgen: --out "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        out.stdout.is_empty(),
        "no run, no summary: {}",
        text(&out.stdout)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
}

fn stub(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `scripts/loadtest.sh smoke` with stand-in binaries; returns its output and
/// what it left in the reports folder.
fn loadtest_with(server: &str, loadgen: &str, name: &str) -> (Output, Vec<PathBuf>) {
    let dir = scratch(name);
    let bin = dir.join("bin");
    let reports = dir.join("reports");
    std::fs::create_dir_all(&bin).unwrap();
    stub(&bin, "kaichat-server", server);
    stub(&bin, "loadgen", loadgen);
    stub(&bin, "loadgen-report", "exit 0");
    let out = Command::new("bash")
        .arg(repo().join("scripts/loadtest.sh"))
        .arg("smoke")
        .env("BIN_DIR", &bin)
        .env("REPORTS", &reports)
        .env("PORT", "29499")
        .output()
        .unwrap();
    let left = std::fs::read_dir(&reports)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (out, left)
}

#[test]
fn a_failed_load_test_removes_its_half_made_report_folder() {
    // The server does not start.
    let (out, left) = loadtest_with("echo 'cannot bind' >&2; exit 1", "exit 0", "noserver");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot bind"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(left, Vec::<PathBuf>::new(), "{}", text(&out.stderr));
    // The server starts, loadgen fails.
    let server = "echo 'listening on 127.0.0.1:29499' >&2; exec sleep 30";
    let (out, left) = loadtest_with(server, "echo 'loadgen: boom' >&2; exit 1", "noload");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("boom"));
    assert_eq!(left, Vec::<PathBuf>::new(), "{}", text(&out.stderr));
}

#[test]
fn a_load_test_that_succeeds_keeps_its_report_folder() {
    let server = "echo 'listening on 127.0.0.1:29499' >&2; exec sleep 30";
    // A stand-in loadgen that writes what the script checks for.
    let loadgen = r#"while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done
echo '{}' > "$out/summary.json""#;
    let (out, left) = loadtest_with(server, loadgen, "ok");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(left.len(), 1, "{left:?}");
}
