//! The command lines of `loadgen` and `loadgen-report`, run as a user runs them: errors
//! that name their flag, and `--version`.

use std::path::PathBuf;
use std::process::{Command, Output};

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
