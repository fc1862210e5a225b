//! The workspace's declared `rust-version` is a promise: every package the lock file brings
//! in must build with it. This fails when one of them declares a newer minimum than the
//! workspace does, or when the README's prerequisites state another version.
//!
//! What it cannot see: a package that needs a newer compiler without declaring a
//! `rust-version` (rustyline declares none; its policy is "the latest stable at release").
//! `scripts/check-msrv.sh` builds with the declared toolchain itself, which catches those.

use std::process::Command;

use serde_json::Value;

/// `cargo metadata` for the whole lock file, every platform's packages included.
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cannot run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed (it needs every locked package's manifest, so the network \
         or a filled cargo cache):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata printed no JSON")
}

fn name(package: &Value) -> String {
    format!(
        "{} {}",
        package["name"].as_str().unwrap_or("?"),
        package["version"].as_str().unwrap_or("?")
    )
}

fn rust_version(package: &Value) -> Option<&str> {
    package["rust_version"].as_str()
}

/// `"1.88"` or `"1.88.0"` as comparable numbers.
fn parse_version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|part| {
        part.parse::<u64>()
            .unwrap_or_else(|_| panic!("not a Rust version: {text:?}"))
    });
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    (major, minor, patch)
}

/// The workspace's own packages, and everything else the lock file holds.
fn split_members(metadata: &Value) -> (Vec<&Value>, Vec<&Value>) {
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(|id| id.as_str())
        .collect();
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .partition(|p| members.contains(&p["id"].as_str().unwrap_or("")))
}

/// The rust-version the workspace members declare (each inherits the workspace's).
fn declared(members: &[&Value]) -> String {
    let mut declared = None;
    for package in members {
        let version = rust_version(package).unwrap_or_else(|| {
            panic!(
                "workspace member {} declares no rust-version",
                name(package)
            )
        });
        match declared {
            None => declared = Some(version),
            Some(first) => assert_eq!(
                version,
                first,
                "workspace members declare different rust-versions ({})",
                name(package)
            ),
        }
    }
    declared.expect("no workspace member found").to_string()
}

#[test]
fn no_dependency_needs_a_newer_rust_than_the_workspace_declares() {
    let metadata = metadata();
    let (members, dependencies) = split_members(&metadata);
    let declared = declared(&members);
    let mut too_new: Vec<String> = dependencies
        .iter()
        .filter_map(|p| {
            let needs = rust_version(p)?;
            (parse_version(needs) > parse_version(&declared))
                .then(|| format!("{} needs Rust {needs}", name(p)))
        })
        .collect();
    too_new.sort();
    assert!(
        too_new.is_empty(),
        "the workspace declares rust-version {declared} (Cargo.toml, and the README), but \
         the lock file brings in packages that need a newer Rust:\n  {}\nRaise rust-version \
         and the README's prerequisite, or pin older versions of these packages.",
        too_new.join("\n  ")
    );
}

#[test]
fn the_readme_states_the_declared_version() {
    let metadata = metadata();
    let declared = declared(&split_members(&metadata).0);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let wanted = format!("**Rust** {declared} or newer");
    assert!(
        readme.contains(&wanted),
        "README.md's prerequisites must say \"{wanted}\", as the workspace's rust-version does"
    );
}

#[test]
fn versions_compare_as_numbers() {
    assert!(parse_version("1.88") > parse_version("1.80"));
    assert!(parse_version("1.100") > parse_version("1.99.9"));
    assert_eq!(parse_version("1.88"), parse_version("1.88.0"));
}
