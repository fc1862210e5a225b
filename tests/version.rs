//! `--version` says which source a binary came from: the package version and, built from a
//! git checkout, the commit (`build.rs` puts it in `kaichat::VERSION`).

mod common;

use std::process::Command;

use common::{manifest, server_bin};

/// What `git rev-parse --short HEAD` says about this checkout, if it is one and git works.
fn checkout_commit() -> Option<String> {
    if !manifest().join(".git").exists() {
        return None;
    }
    let output = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(manifest())
        .output()
        .ok()?;
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !commit.is_empty()).then_some(commit)
}

#[test]
fn the_version_names_the_commit_when_built_from_a_checkout() {
    let package = env!("CARGO_PKG_VERSION");
    let expected = match checkout_commit() {
        Some(commit) => format!("{package} ({commit})"),
        None => {
            println!("not a git checkout, or no git: expecting the package version alone");
            package.to_string()
        }
    };
    assert_eq!(kaichat::version(), expected);
    assert_eq!(kaichat::VERSION, expected);
}

#[test]
fn kaichat_server_version_prints_its_name_and_the_build_version() {
    for flag in ["--version", "-V"] {
        let out = Command::new(server_bin()).arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{flag}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("kaichat-server {}\n", kaichat::version()),
            "{flag}"
        );
        assert!(out.stderr.is_empty(), "{flag}: stderr {out:?}");
    }
}
