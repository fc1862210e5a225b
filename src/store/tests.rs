//! Unit tests of the store against temporary databases.

use super::*;
use std::sync::atomic::AtomicUsize;

/// A fresh path in a temporary directory of its own, removed when dropped.
struct TempDb {
    dir: PathBuf,
}

impl TempDb {
    fn new() -> TempDb {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kaichat-store-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDb { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("history.db")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn channel(name: &str) -> ChannelName {
    ChannelName::new(name.as_bytes()).unwrap()
}

fn record(name: &str, seq: u64, text: &str) -> Record {
    let sender = (!seq.is_multiple_of(2)).then(|| Username::new(b"amy").unwrap());
    Record::Entry {
        channel: channel(name),
        seq,
        entry: Entry {
            sender,
            kind: if sender.is_some() {
                Kind::Chat
            } else {
                Kind::Notice
            },
            time_ms: 1_700_000_000_000 + seq,
            text: text.as_bytes().into(),
        },
    }
}

fn texts(loaded: &LoadedChannel) -> Vec<String> {
    loaded
        .entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.text).into_owned())
        .collect()
}

/// Appends through a running store and stops it cleanly.
fn write(path: &Path, history: usize, records: Vec<Record>) -> String {
    let mut store = Opened::open(path, history, SyncPolicy::Batch)
        .unwrap()
        .start(None)
        .unwrap();
    for r in records {
        store.append(r);
    }
    store.finish()
}

#[test]
fn appended_entries_load_back_per_channel_in_order_with_their_senders() {
    let db = TempDb::new();
    let summary = write(
        &db.path(),
        10,
        vec![
            record("@a", 0, "a0"),
            record("@b", 0, "b0"),
            record("@a", 1, "a1"),
            record("@a", 2, "a2 \u{e9}\u{1f600}"),
        ],
    );
    assert_eq!(summary, "store_committed=4 store_not_persisted=0");
    let opened = Opened::open(&db.path(), 10, SyncPolicy::Batch).unwrap();
    let loaded = opened.load().unwrap();
    assert_eq!(loaded.len(), 2);
    let a = loaded.iter().find(|c| c.name == channel("@a")).unwrap();
    assert_eq!(a.end_seq, 3);
    assert_eq!(texts(a), ["a0", "a1", "a2 \u{e9}\u{1f600}"]);
    assert_eq!(a.entries[0].sender, None);
    assert_eq!(a.entries[1].sender, Some(Username::new(b"amy").unwrap()));
    let b = loaded.iter().find(|c| c.name == channel("@b")).unwrap();
    assert_eq!((b.end_seq, texts(b)), (1, vec!["b0".to_string()]));
}

#[test]
fn the_writer_trims_each_channel_to_the_history_bound_on_disk() {
    let db = TempDb::new();
    let records = (0..50).map(|i| record("@a", i, &format!("m{i}"))).collect();
    write(&db.path(), 5, records);
    let conn = Connection::open(db.path()).unwrap();
    let (rows, min): (i64, i64) = conn
        .query_row("SELECT count(*), min(seq) FROM entries", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((rows, min), (5, 45));
    drop(conn);
    let loaded = Opened::open(&db.path(), 5, SyncPolicy::Batch)
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(loaded[0].end_seq, 50);
    assert_eq!(texts(&loaded[0]), ["m45", "m46", "m47", "m48", "m49"]);
}

#[test]
fn a_smaller_history_bound_loads_only_the_last_entries() {
    let db = TempDb::new();
    write(
        &db.path(),
        10,
        (0..10).map(|i| record("@a", i, &format!("m{i}"))).collect(),
    );
    let loaded = Opened::open(&db.path(), 3, SyncPolicy::Batch)
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(
        (loaded[0].end_seq, texts(&loaded[0])),
        (10, vec!["m7".into(), "m8".into(), "m9".into()])
    );
}

#[test]
fn a_new_file_is_migrated_to_the_current_schema_with_every_table() {
    let db = TempDb::new();
    let opened = Opened::open(&db.path(), 10, SyncPolicy::Always).unwrap();
    assert_eq!(opened.version().unwrap(), SCHEMA_VERSION);
    let mut stmt = opened
        .conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        [
            "channel_bans",
            "channels",
            "entries",
            "kaichat_schema",
            "server_bans"
        ]
    );
    let mode: String = opened
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = opened
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "FULL for always");
}

#[test]
fn migrating_the_current_version_to_itself_changes_nothing() {
    let db = TempDb::new();
    write(&db.path(), 10, vec![record("@a", 0, "kept")]);
    let mut opened = Opened::open(&db.path(), 10, SyncPolicy::Batch).unwrap();
    let schema = |o: &Opened| -> Vec<String> {
        let mut stmt = o
            .conn
            .prepare("SELECT sql FROM sqlite_master ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get::<_, Option<String>>(0))
            .unwrap()
            .map(|s| s.unwrap().unwrap_or_default())
            .collect()
    };
    let before = schema(&opened);
    opened.migrate(SCHEMA_VERSION).unwrap();
    assert_eq!(schema(&opened), before);
    assert_eq!(opened.version().unwrap(), SCHEMA_VERSION);
    let rows: i64 = opened
        .conn
        .query_row("SELECT count(*) FROM kaichat_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
    assert_eq!(texts(&opened.load().unwrap()[0]), ["kept"]);
}

fn refusal(path: &Path) -> String {
    match Opened::open(path, 10, SyncPolicy::Batch) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => {
            assert!(!e.0.contains('\n'), "one line: {e}");
            e.0
        }
    }
}

#[test]
fn a_store_in_use_by_another_server_is_refused() {
    let db = TempDb::new();
    let first = Opened::open(&db.path(), 10, SyncPolicy::Batch).unwrap();
    let e = refusal(&db.path());
    assert!(
        e.contains("in use by another running kaichat-server"),
        "{e}"
    );
    drop(first);
    Opened::open(&db.path(), 10, SyncPolicy::Batch).unwrap();
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let db = TempDb::new();
    let junk: Vec<u8> = (0..8192u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(db.path(), &junk).unwrap();
    let e = refusal(&db.path());
    assert!(
        e.contains("not a KaiChat store (not an SQLite database)"),
        "{e}"
    );
    assert_eq!(std::fs::read(db.path()).unwrap(), junk);
}

#[test]
fn a_corrupt_store_is_refused() {
    let db = TempDb::new();
    write(&db.path(), 10, vec![record("@a", 0, "x")]);
    // Overwrite the header's magic string: the file is no longer a database.
    let mut bytes = std::fs::read(db.path()).unwrap();
    bytes[..16].copy_from_slice(b"garbage garbage\0");
    std::fs::write(db.path(), &bytes).unwrap();
    let e = refusal(&db.path());
    assert!(e.contains("not a KaiChat store"), "{e}");
}

#[test]
fn another_programs_database_is_refused() {
    let db = TempDb::new();
    let conn = Connection::open(db.path()).unwrap();
    conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        .unwrap();
    drop(conn);
    let e = refusal(&db.path());
    assert!(e.contains("without a kaichat_schema table"), "{e}");
}

#[test]
fn a_store_from_a_newer_schema_is_refused() {
    let db = TempDb::new();
    drop(Opened::open(&db.path(), 10, SyncPolicy::Batch).unwrap());
    let conn = Connection::open(db.path()).unwrap();
    conn.execute("UPDATE kaichat_schema SET version = 3", [])
        .unwrap();
    drop(conn);
    let e = refusal(&db.path());
    assert!(
        e.contains("schema version 3 is newer than this server's (2)"),
        "{e}"
    );
}

/// A version-1 file (before protocol v2's entry kinds) keeps its entries, and its notices
/// become notices: a v1 reader is then sent them exactly as before.
#[test]
fn a_version_1_file_is_migrated_with_its_notices_as_notices() {
    let db = TempDb::new();
    {
        let conn = Connection::open(db.path()).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "UPDATE kaichat_schema SET version = 1;
             INSERT INTO channels (id, name) VALUES (1, '@a');
             INSERT INTO entries (channel, seq, time_ms, sender, text)
                 VALUES (1, 0, 5, NULL, X'616D79206A6F696E6564'), (1, 1, 6, 'amy', X'6869');",
        )
        .unwrap();
    }
    let opened = Opened::open(&db.path(), 10, SyncPolicy::Batch).unwrap();
    assert_eq!(opened.version().unwrap(), 2);
    let loaded = opened.load().unwrap();
    let kinds: Vec<(Kind, u64, Vec<u8>)> = loaded[0]
        .entries
        .iter()
        .map(|e| (e.kind, e.time_ms, e.text.to_vec()))
        .collect();
    assert_eq!(
        kinds,
        [
            (Kind::Notice, 5, b"amy joined".to_vec()),
            (Kind::Chat, 6, b"hi".to_vec())
        ]
    );
}

/// Kinds and time stamps survive a restart: a removal stays a removal.
#[test]
fn entry_kinds_and_times_are_kept() {
    let db = TempDb::new();
    let of_kind = |seq, text, kind| match record("@a", seq, text) {
        Record::Entry {
            channel,
            seq,
            mut entry,
        } => {
            entry.kind = kind;
            Record::Entry {
                channel,
                seq,
                entry,
            }
        }
        other => other,
    };
    let removal = of_kind(0, "bob was kicked by amy", Kind::Removal);
    let heir = of_kind(2, "cy is now an operator", Kind::Operator);
    write(&db.path(), 10, vec![removal, record("@a", 1, "hi"), heir]);
    let loaded = Opened::open(&db.path(), 10, SyncPolicy::Batch)
        .unwrap()
        .load()
        .unwrap();
    let kinds: Vec<(Kind, u64)> = loaded[0]
        .entries
        .iter()
        .map(|e| (e.kind, e.time_ms))
        .collect();
    assert_eq!(
        kinds,
        [
            (Kind::Removal, 1_700_000_000_000),
            (Kind::Chat, 1_700_000_000_001),
            (Kind::Operator, 1_700_000_000_002)
        ]
    );
}

#[test]
fn a_full_channel_queues_in_the_loop_and_loses_nothing_at_a_clean_stop() {
    let db = TempDb::new();
    let mut store = Opened::open(&db.path(), 100_000, SyncPolicy::Off)
        .unwrap()
        .start(None)
        .unwrap();
    // More than the channel holds, faster than the writer commits.
    let n = CHANNEL_BOUND as u64 + 5000;
    for i in 0..n {
        store.append(record("@a", i, "burst"));
    }
    let status = store.status();
    assert!(status.contains("store_not_persisted=0"), "{status}");
    assert_eq!(
        store.finish(),
        format!("store_committed={n} store_not_persisted=0")
    );
    let loaded = Opened::open(&db.path(), 100_000, SyncPolicy::Off)
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(loaded[0].entries.len() as u64, n);
}

#[test]
fn under_always_each_commit_is_confirmed_and_wakes_the_loop() {
    let db = TempDb::new();
    let mut poll = mio::Poll::new().unwrap();
    let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(7)).unwrap());
    let mut store = Opened::open(&db.path(), 10, SyncPolicy::Always)
        .unwrap()
        .start(Some(waker))
        .unwrap();
    store.append(record("@a", 0, "x"));
    store.append(record("@a", 1, "y"));
    let mut events = mio::Events::with_capacity(4);
    let mut durable = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while durable < 2 && std::time::Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        store.confirmed(|name, end| {
            assert_eq!(*name, channel("@a"));
            durable = durable.max(end);
        });
    }
    assert_eq!(durable, 2);
    store.finish();
}

/// Ban lists and server bans survive a restart (v2 section 8); a lifted one is gone.
#[test]
fn bans_are_kept_until_lifted() {
    let db = TempDb::new();
    let ban = |name: &str, banned| Record::Ban {
        channel: channel("@a"),
        name: Username::new(name.as_bytes()).unwrap(),
        banned,
    };
    let address = |text: &str, banned| Record::ServerBan {
        address: text.parse().unwrap(),
        banned,
    };
    write(
        &db.path(),
        10,
        vec![
            ban("Eve", true),
            ban("mallory", true),
            ban("EVE", true),
            ban("mallory", false),
            address("192.0.2.7", true),
            address("2001:db8::1", true),
            address("192.0.2.7", false),
        ],
    );
    let opened = Opened::open(&db.path(), 10, SyncPolicy::Batch).unwrap();
    let bans = opened.load_bans().unwrap();
    assert_eq!(bans.channels.len(), 1);
    assert_eq!(bans.channels[0].0, channel("@a"));
    assert_eq!(bans.channels[0].1, [Username::new(b"eve").unwrap()]);
    assert_eq!(
        bans.addresses,
        ["2001:db8::1".parse::<std::net::IpAddr>().unwrap()]
    );
}
