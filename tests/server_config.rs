//! `kaichat-server --config FILE` and `--print-config`, against the real binary: one TOML key
//! per flag with the flag's name, flags over the file, errors that name the file, the line
//! and the key, `--print-config` output that reads back to the same settings, and
//! `contrib/kaichat.toml` listing every key at its default.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// How long a run that should end by itself may take.
const WITHIN: Duration = Duration::from_secs(10);

fn run(args: &[&str]) -> Exit {
    run_finished(args, WITHIN)
}

/// `--print-config` with `args`: the TOML, without its first line (a comment naming the
/// version and where the settings came from).
fn print_config(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--print-config");
    let exit = run(&all);
    assert_eq!(exit.code, Some(0), "{all:?}: stderr {:?}", exit.stderr);
    assert_eq!(exit.stderr, "", "{all:?}");
    let (first, rest) = exit.stdout.split_once('\n').expect("lines");
    assert!(
        first.starts_with("# kaichat-server "),
        "{all:?}: first line {first:?}"
    );
    rest.to_string()
}

fn refusal(args: &[&str]) -> String {
    refusal_within(args, WITHIN)
}

/// A new file with `text` under cargo's scratch directory for tests.
fn file(text: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("server_config");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "{}-{}.toml",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// The keys a `--print-config` output lists: `key = value`, or `# key: not set: ...`.
fn printed_keys(toml: &str) -> BTreeSet<String> {
    toml.lines()
        .filter_map(|line| {
            let line = line.strip_prefix("# ").unwrap_or(line);
            let end = line.find([' ', ':'])?;
            let key = &line[..end];
            let rest = &line[end..];
            let is_key = !key.is_empty()
                && key.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                && (rest.starts_with(" = ") || rest.starts_with(": not set"));
            is_key.then(|| key.to_string())
        })
        .collect()
}

/// The flags `--help` lists, without their dashes.
fn help_flags() -> BTreeSet<String> {
    let exit = run(&["--help"]);
    assert_eq!(exit.code, Some(0));
    exit.stdout
        .lines()
        .filter_map(|line| {
            let line = line.strip_prefix("  ")?;
            let line = line
                .strip_prefix("-h, ")
                .or_else(|| line.strip_prefix("-V, "))
                .unwrap_or(line);
            let flag = line.strip_prefix("--")?.split_whitespace().next()?;
            Some(flag.to_string())
        })
        .collect()
}

/// Flags that are not settings.
const NOT_SETTINGS: [&str; 4] = ["help", "version", "config", "print-config"];

#[test]
fn every_flag_is_a_key_and_every_key_a_flag() {
    let flags: BTreeSet<String> = help_flags()
        .into_iter()
        .filter(|f| !NOT_SETTINGS.contains(&f.as_str()))
        .collect();
    for extra in NOT_SETTINGS {
        assert!(
            help_flags().contains(extra),
            "--help does not list --{extra}"
        );
    }
    let keys = printed_keys(&print_config(&[]));
    assert_eq!(
        flags, keys,
        "flags in --help (left) and keys of --print-config (right)"
    );
    // Each key is read from a file, named exactly as its flag.
    for key in &keys {
        let exit = run(&["--config", file(&format!("{key} = []\n")).to_str().unwrap()]);
        assert_eq!(exit.code, Some(2));
        assert!(
            exit.stderr.contains(&format!(":1: {key}: [] is not ")),
            "{key}: {:?}",
            exit.stderr
        );
    }
}

#[test]
fn the_example_file_lists_every_key_at_its_default() {
    let example = std::fs::read_to_string(manifest().join("contrib/kaichat.toml")).unwrap();
    // It parses, and changes nothing.
    assert_eq!(
        print_config(&["--config", "contrib/kaichat.toml"]),
        print_config(&[]),
        "contrib/kaichat.toml must set every key to its default"
    );
    // Every key is there, set or as a commented-out example, and nothing else is.
    let keys = printed_keys(&print_config(&[]));
    let listed: BTreeSet<String> = example
        .lines()
        .filter_map(|line| {
            let line = line.strip_prefix("# ").unwrap_or(line);
            let (key, _) = line.split_once(" = ")?;
            key.chars()
                .all(|c| c.is_ascii_lowercase() || c == '-')
                .then(|| key.to_string())
        })
        .collect();
    assert_eq!(
        listed, keys,
        "keys in contrib/kaichat.toml (left) and the server's"
    );
    // The commented-out examples are valid values.
    let examples: String = example
        .lines()
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| {
            line.split_once(" = ")
                .is_some_and(|(key, _)| keys.contains(key))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(!examples.is_empty());
    let path = file(&examples);
    print_config(&["--config", path.to_str().unwrap()]);
}

#[test]
fn the_readme_lists_every_key() {
    let readme = std::fs::read_to_string(manifest().join("README.md")).unwrap();
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("README.md has a Configuration section");
    let section = section.split("\n## ").next().unwrap();
    for key in printed_keys(&print_config(&[])) {
        assert!(
            section.contains(&format!("| `{key}` |")),
            "README.md's Configuration table lacks `{key}`"
        );
    }
}

#[test]
fn print_config_reads_back_to_the_same_settings() {
    // The defaults, and every key set away from its default (a file name TOML must escape).
    let all_set: &[&str] = &[
        "--listen",
        "127.0.0.1:4000",
        "--cert",
        "/tmp/a \"quoted\" back\\slash.pem",
        "--key",
        "/tmp/key.pem",
        "--handshake-timeout",
        "7",
        "--idle-timeout",
        "0",
        "--history",
        "3",
        "--replay",
        "0",
        "--max-clients",
        "9",
        "--plaintext",
        "--stats-interval",
        "60",
        "--metrics-listen",
        "127.0.0.1:9464",
        "--log",
        "warn",
        "--store",
        "/tmp/history.db",
        "--sync",
        "always",
        "--max-per-address",
        "0",
        "--accept-rate",
        "5",
        "--accept-burst",
        "7",
        "--limit-loopback",
        "--max-version",
        "1",
        "--oper-password-file",
        "/etc/kaichat/oper.hash",
        "--rate-limit",
        "0",
        "--rate-burst",
        "5",
        "--redis",
        "redis://:p%40ss@10.0.0.5:6380/2",
        "--node-id",
        "chat-a",
        "--lease-ms",
        "3000",
    ];
    for args in [&[][..], all_set] {
        let printed = print_config(args);
        let path = file(&printed);
        assert_eq!(
            print_config(&["--config", path.to_str().unwrap()]),
            printed,
            "{args:?}: --print-config, read back with --config"
        );
    }
    let printed = print_config(all_set);
    for line in [
        "listen = \"127.0.0.1:4000\"",
        "cert = \"/tmp/a \\\"quoted\\\" back\\\\slash.pem\"",
        "key = \"/tmp/key.pem\"",
        "handshake-timeout = 7",
        "idle-timeout = 0",
        "history = 3",
        "replay = 0",
        "max-clients = 9",
        "plaintext = true",
        "stats-interval = 60",
        "metrics-listen = \"127.0.0.1:9464\"",
        "log = \"warn\"",
        "store = \"/tmp/history.db\"",
        "sync = \"always\"",
        "max-per-address = 0",
        "accept-rate = 5",
        "accept-burst = 7",
        "limit-loopback = true",
        "max-version = 1",
        "oper-password-file = \"/etc/kaichat/oper.hash\"",
        "rate-limit = 0",
        "rate-burst = 5",
        "redis = \"redis://:p%40ss@10.0.0.5:6380/2\"",
        "node-id = \"chat-a\"",
        "lease-ms = 3000",
    ] {
        assert!(
            printed.lines().any(|l| l == line),
            "{line:?} not in {printed}"
        );
    }
    assert!(!printed.contains("not set"), "{printed}");
}

#[test]
fn flags_override_the_file() {
    let path = file("history = 5\nreplay = 3\nidle-timeout = 60\nlisten = \"127.0.0.1:4000\"\n");
    let printed = print_config(&[
        "--config",
        path.to_str().unwrap(),
        "--history",
        "7",
        "--listen",
        ":5000",
    ]);
    for line in [
        "history = 7",
        "replay = 3",
        "idle-timeout = 60",
        "listen = \":5000\"",
    ] {
        assert!(
            printed.lines().any(|l| l == line),
            "{line:?} not in {printed}"
        );
    }
    // A bad value in the file is refused even where a flag overrides it: the file is
    // checked whole.
    let bad = file("history = 0\n");
    let line = refusal(&["--config", bad.to_str().unwrap(), "--history", "7"]);
    assert!(line.contains(":1: history: must be at least 1"), "{line:?}");
}

#[test]
fn file_errors_name_the_file_the_line_and_the_key() {
    // The bad text starts on the third line, after a comment and a good key.
    let cases: &[(&str, &str)] = &[
        ("histroy = 5", "unknown key 'histroy'"),
        ("[server]\nhistory = 5", "unknown key 'server'"),
        (
            "history = \"many\"",
            "history: \"many\" is not a number of entries",
        ),
        ("history = 1.5", "history: 1.5 is not a number of entries"),
        ("replay = -1", "replay: -1 is not a number of entries"),
        ("history = 0", "history: must be at least 1"),
        ("max-clients = 0", "max-clients: must be at least 1"),
        (
            "max-clients = \"10\"",
            "max-clients: \"10\" is not a number of clients: write it without quotes",
        ),
        (
            "idle-timeout = true",
            "idle-timeout: true is not a number of seconds",
        ),
        (
            "handshake-timeout = 99999999999",
            "handshake-timeout: 99999999999 seconds is more than a year",
        ),
        (
            "stats-interval = \"5\"",
            "stats-interval: \"5\" is not a number of seconds",
        ),
        (
            "plaintext = \"yes\"",
            "plaintext: \"yes\" is not true or false",
        ),
        ("plaintext = 1", "plaintext: 1 is not true or false"),
        ("listen = 29200", "listen: 29200 is not an address"),
        ("listen = \"nowhere\"", "listen: 'nowhere' has no port"),
        (
            "listen = \"::1:29200\"",
            "listen: '::1:29200': an IPv6 address needs brackets",
        ),
        ("cert = 5", "cert: 5 is not a PEM certificate file"),
        (
            "key = [\"a\", \"b\"]",
            "key: [\"a\", \"b\"] is not a PEM private key file",
        ),
        (
            "history.limit = 5",
            "history: a table is not a number of entries",
        ),
        (
            "history = 5\nhistory = 6",
            "not valid TOML: duplicate key: history",
        ),
        ("history = ", "not valid TOML"),
        ("history = 5 6", "not valid TOML"),
    ];
    for (bad, expected) in cases {
        let good = if bad.starts_with("replay") {
            "stats-interval = 2"
        } else {
            "replay = 2"
        };
        let path = file(&format!("# kaichat\n{good}\n{bad}\n"));
        let name = path.display().to_string();
        let line = refusal(&["--config", &name]);
        // The error is on the bad text's last line: a duplicate is the second `history`.
        let at = 2 + bad.lines().count();
        let at = if bad.starts_with('[') { 3 } else { at };
        assert!(
            line.starts_with(&format!("kaichat-server: {name}:{at}: {expected}")),
            "{bad:?}: expected 'kaichat-server: {name}:{at}: {expected}...', got {line:?}"
        );
        // The same file makes --print-config refuse too.
        assert_eq!(refusal(&["--config", &name, "--print-config"]), line);
    }
}

#[test]
fn a_missing_unreadable_or_non_toml_file_is_named() {
    let dir = manifest().join("contrib").display().to_string();
    let binary = file("");
    std::fs::write(&binary, b"history = 5\nreplay = \"\xff\"\n").unwrap();
    let binary = binary.display().to_string();
    let cases: &[(&str, &str)] = &[
        (
            "/nonexistent/kaichat.toml",
            "/nonexistent/kaichat.toml: cannot read the configuration file: No such file",
        ),
        (&dir, "cannot read the configuration file: Is a directory"),
        (&binary, ":2: not UTF-8 text"),
        ("Cargo.lock", "Cargo.lock:"),
        // Markdown's first line, `# KaiChat`, is a TOML comment.
        ("README.md", "README.md:3: not valid TOML"),
    ];
    for (path, expected) in cases {
        let line = refusal(&["--config", path]);
        assert!(
            line.starts_with(&format!("kaichat-server: {path}")) && line.contains(expected),
            "--config {path}: expected {expected:?}, got {line:?}"
        );
    }
    // Cargo.lock is TOML, but of other keys.
    assert!(refusal(&["--config", "Cargo.lock"]).contains("unknown key 'version'"));
    for (args, expected) in [
        (&["--config"][..], "kaichat-server: --config: needs a value"),
        (
            &["--config", "a.toml", "--config", "b.toml"],
            "kaichat-server: --config: given more than once",
        ),
        (
            &["--config=a.toml"],
            "kaichat-server: --config: put the value after a space",
        ),
    ] {
        let line = refusal(args);
        assert!(line.starts_with(expected), "{args:?}: {line:?}");
    }
}

#[test]
fn the_files_settings_reach_the_server() {
    let path = file("# idle clients go at once, and stats come every second\nidle-timeout = 1\nstats-interval = 1\n");
    let server = Server::start(&["--config", path.to_str().unwrap()]);
    let mut client = server.member("sleepy", "@config");
    let start = Instant::now();
    client.expect_closed_within(Duration::from_secs(5));
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "closed too early"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.stderr().contains(" INFO  stats: ") {
        assert!(
            Instant::now() < deadline,
            "no statistics line: {}",
            server.stderr()
        );
        thread::sleep(Duration::from_millis(50));
    }
}
