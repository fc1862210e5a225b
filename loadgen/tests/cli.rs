//! The command lines of `loadgen` and `loadgen-report`, run as a user runs them: errors
//! that name their flag, `--version`, and `--out` checked before any load.

use std::path::PathBuf;
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
    let version = env!("CARGO_PKG_VERSION");
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
