//! Sets `KAICHAT_VERSION` for `kaichat::version()`: the package version, followed by the
//! git commit when the crate is built from a git checkout ("0.1.0 (abc1234)"), so that a
//! running server says exactly which source it came from. Built from a tarball, or without
//! git, it is the package version alone.
//!
//! Cargo reruns this script when HEAD moves (a checkout) or the branch it points to moves
//! (a commit), and not on every source change.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    let full = match git_commit() {
        Some(commit) => format!("{version} ({commit})"),
        None => version,
    };
    println!("cargo:rustc-env=KAICHAT_VERSION={full}");
}

/// The short commit hash of HEAD, when this package is itself a git checkout (its own
/// `.git`, a directory or a worktree's file: an unpacked tarball inside someone else's
/// repository must not borrow that repository's commit) and git works.
fn git_commit() -> Option<String> {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    if !root.join(".git").exists() {
        return None;
    }
    // Where HEAD and the branch live: in a worktree, HEAD is under .git/worktrees/NAME and
    // the branch in the main repository, so ask git rather than guess.
    watch(&root, git(&root, &["rev-parse", "--git-path", "HEAD"]));
    if let Some(branch) = git(&root, &["symbolic-ref", "-q", "HEAD"]) {
        watch(&root, git(&root, &["rev-parse", "--git-path", &branch]));
        // A branch that `git gc` packed has no file of its own.
        watch(
            &root,
            git(&root, &["rev-parse", "--git-path", "packed-refs"]),
        );
    }
    git(&root, &["rev-parse", "--short", "HEAD"])
}

/// Reruns this script when `path` (relative to `root`, as git prints it) changes. Only for
/// files that exist: Cargo reruns a script on every build while a watched file is missing.
fn watch(root: &Path, path: Option<String>) {
    if let Some(path) = path {
        let path = root.join(path);
        if path.is_file() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// Git's trimmed standard output, or None when git is missing or fails.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}
