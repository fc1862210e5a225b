//! The SQLite store (`--store PATH`): history that survives a restart (docs/STORE.md has
//! the schema and the durability policy).
//!
//! It is a backend of the hub, never a second owner of chat state: at start-up
//! [`Opened::load`] reads the retained history for the hub to restore, and while serving the
//! reactor hands it each entry the hub journaled ([`Store::append`]). SQLite has no
//! non-blocking interface, so one writer thread owns the database outright; the loop talks
//! to it through a bounded channel with `try_send` and never waits for the disk. When the
//! channel is full, entries wait in a bounded overflow queue in the loop; past that they
//! are counted as not persisted, and said so. The writer commits whatever has queued up in
//! one transaction (group commit), trims each channel it touched to the history bound, and
//! under the `always` policy tells the loop what is committed, through a channel and a mio
//! `Waker`. On a write error (a full disk) it keeps the batch and retries every second.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kaichat_proto::hub::{Entry, Kind};
use kaichat_proto::names::{ChannelName, Username};
use rusqlite::{Connection, ErrorCode, OptionalExtension};

/// The schema this server writes. A store of a newer version is refused.
pub const SCHEMA_VERSION: u32 = 2;

/// `MIGRATIONS[v]` takes a store from version `v` to `v + 1`, in one transaction. Version 0
/// is an empty database (a new file).
const MIGRATIONS: [&str; 2] = [
    // 0 -> 1. Names are printable ASCII, so TEXT; message text is any bytes but NUL, so a
    // BLOB. Times are milliseconds since the Unix epoch. The ban tables are for protocol v2
    // (KICK/BAN/UNBAN); this server creates them and does not use them yet.
    "CREATE TABLE kaichat_schema (version INTEGER NOT NULL);
     INSERT INTO kaichat_schema (version) VALUES (0);
     CREATE TABLE channels (
         id INTEGER PRIMARY KEY,
         name TEXT NOT NULL UNIQUE
     );
     CREATE TABLE entries (
         channel INTEGER NOT NULL REFERENCES channels (id),
         seq INTEGER NOT NULL,
         time_ms INTEGER NOT NULL,
         sender TEXT,
         text BLOB NOT NULL,
         PRIMARY KEY (channel, seq)
     ) WITHOUT ROWID;
     CREATE TABLE channel_bans (
         channel INTEGER NOT NULL REFERENCES channels (id),
         mask TEXT NOT NULL,
         set_by TEXT,
         reason BLOB,
         time_ms INTEGER NOT NULL,
         PRIMARY KEY (channel, mask)
     );
     CREATE TABLE server_bans (
         mask TEXT PRIMARY KEY,
         set_by TEXT,
         reason BLOB,
         time_ms INTEGER NOT NULL
     );",
    // 1 -> 2. Protocol v2 entry kinds (hub::Kind codes): 0 chat, 1 joined/left, 2 a
    // removal by KICK or BAN, 3 `is now an operator`. Version-1 readers are sent the last
    // two differently, so the kind must survive a restart. Older rows are chat or notices.
    "ALTER TABLE entries ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
     UPDATE entries SET kind = 1 WHERE sender IS NULL;",
];

/// Entries in flight between the loop and the writer.
const CHANNEL_BOUND: usize = 16 * 1024;
/// Entries the loop keeps while the channel is full; past this, entries are not persisted.
const OVERFLOW_BOUND: usize = 64 * 1024;
/// Entries committed in one transaction at most.
const MAX_BATCH: usize = 4096;
/// Under `batch` and `off`, how long the writer keeps gathering entries after the first
/// one before it commits them: one transaction per window instead of one per entry (each
/// costs a WAL append and its locking), well within the ~100 ms of entries that the `batch`
/// policy allows a crash to lose. Under `always` every entry is committed at once.
const GATHER: Duration = Duration::from_millis(50);
/// Between retries of a batch that failed (a full disk), and between warnings.
const RETRY: Duration = Duration::from_secs(1);
/// At a clean stop with a failing disk, retries before the writer gives up.
const RETRIES_AT_STOP: u32 = 3;

/// The durability policy (`--sync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// An entry is committed with `synchronous=FULL` before anyone is sent it.
    Always,
    /// Entries are committed as they come (`synchronous=NORMAL`, WAL): a crash of the
    /// process loses what was still queued for the writer; a power loss may lose the last
    /// commits too.
    Batch,
    /// As `batch`, but SQLite never syncs (`synchronous=OFF`).
    Off,
}

impl SyncPolicy {
    pub fn parse(text: &str) -> Option<SyncPolicy> {
        match text {
            "always" => Some(SyncPolicy::Always),
            "batch" => Some(SyncPolicy::Batch),
            "off" => Some(SyncPolicy::Off),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SyncPolicy::Always => "always",
            SyncPolicy::Batch => "batch",
            SyncPolicy::Off => "off",
        }
    }

    fn pragma(self) -> &'static str {
        match self {
            SyncPolicy::Always => "FULL",
            SyncPolicy::Batch => "NORMAL",
            SyncPolicy::Off => "OFF",
        }
    }
}

/// Why a store cannot be used: one line, naming the file.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A channel's retained history, as loaded: its entries before `end_seq`, oldest first.
pub struct LoadedChannel {
    pub name: ChannelName,
    pub end_seq: u64,
    pub entries: Vec<Entry>,
}

/// A change for the writer: what the hub journaled.
pub enum Record {
    /// A history entry (its time stamp is the append's).
    Entry {
        channel: ChannelName,
        seq: u64,
        entry: Entry,
    },
    /// A name put on (`banned`) or taken off a channel's ban list (v2 section 5).
    Ban {
        channel: ChannelName,
        name: Username,
        banned: bool,
    },
    /// A server ban of an address put on or lifted.
    ServerBan { address: IpAddr, banned: bool },
}

/// The ban lists and server bans, as loaded.
#[derive(Debug, Default)]
pub struct LoadedBans {
    pub channels: Vec<(ChannelName, Vec<Username>)>,
    pub addresses: Vec<IpAddr>,
}

/// The database and its lock, checked and migrated, before the writer starts.
pub struct Opened {
    // Declared first, dropped first: SQLite's own locks go before the flock.
    conn: Connection,
    _lock: File,
    path: PathBuf,
    history: usize,
    sync: SyncPolicy,
}

impl Opened {
    /// Opens (creating if missing) the store at `path`, takes its lock, checks that it is
    /// a KaiChat store this server can read, and migrates it to [`SCHEMA_VERSION`].
    pub fn open(path: &Path, history: usize, sync: SyncPolicy) -> Result<Opened, StoreError> {
        let shown = path.display();
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StoreError(format!("store {shown}: {what}: {e}"))
        };
        let conn = Connection::open(path).map_err(|e| fail("cannot open", &e))?;
        // SQLite's own locks are per process and released by any close of the file, so
        // the lock against a second server is a flock on the database file, held as long
        // as the store is open.
        let lock = File::open(path).map_err(|e| fail("cannot open", &e))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                StoreError(format!(
                    "store {shown}: in use by another running kaichat-server (locked)"
                ))
            } else {
                fail("cannot lock", &e)
            });
        }
        conn.busy_timeout(Duration::ZERO)
            .map_err(|e| fail("cannot open", &e))?;
        let version = schema_version(&conn).map_err(|e| match e {
            Refused::NotOurs(why) => {
                StoreError(format!("store {shown}: not a KaiChat store ({why})"))
            }
            Refused::Sql(e) => fail("cannot read", &e),
        })?;
        if version > SCHEMA_VERSION {
            return Err(StoreError(format!(
                "store {shown}: schema version {version} is newer than this server's \
                 ({SCHEMA_VERSION}): use a newer kaichat-server"
            )));
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| fail("cannot use", &e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError(format!(
                "store {shown}: cannot use write-ahead logging (journal mode {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", sync.pragma())
            .map_err(|e| fail("cannot use", &e))?;
        let mut opened = Opened {
            conn,
            _lock: lock,
            path: path.to_owned(),
            history: history.max(1),
            sync,
        };
        opened
            .migrate(version)
            .map_err(|e| fail("cannot migrate the schema", &e))?;
        Ok(opened)
    }

    /// Runs the migrations from `from` to [`SCHEMA_VERSION`]; none when it is current.
    fn migrate(&mut self, from: u32) -> rusqlite::Result<()> {
        for (version, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.execute(
                "UPDATE kaichat_schema SET version = ?1",
                [i64::try_from(version + 1).unwrap_or(i64::MAX)],
            )?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The schema version now in the file.
    pub fn version(&self) -> rusqlite::Result<u32> {
        self.conn
            .query_row("SELECT version FROM kaichat_schema", [], |row| row.get(0))
    }

    /// Every channel's retained history: its last `history` entries.
    pub fn load(&self) -> Result<Vec<LoadedChannel>, StoreError> {
        let fail = |e: &dyn std::fmt::Display| {
            StoreError(format!("store {}: cannot load: {e}", self.path.display()))
        };
        let mut channels: Vec<LoadedChannel> = Vec::new();
        let mut tail: VecDeque<Entry> = VecDeque::new();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT c.name, e.seq, e.sender, e.text, e.time_ms, e.kind FROM entries e \
                 JOIN channels c ON c.id = e.channel ORDER BY e.channel, e.seq",
            )
            .map_err(|e| fail(&e))?;
        let mut rows = stmt.query([]).map_err(|e| fail(&e))?;
        let mut current: Option<(ChannelName, u64)> = None;
        while let Some(row) = rows.next().map_err(|e| fail(&e))? {
            let name = row.get_ref(0).and_then(|v| Ok(v.as_bytes()?.to_vec()));
            let name = name.map_err(|e| fail(&e))?;
            let name = ChannelName::new(&name).map_err(|e| {
                fail(&format!(
                    "channel {:?}: {e}",
                    String::from_utf8_lossy(&name)
                ))
            })?;
            let seq: i64 = row.get(1).map_err(|e| fail(&e))?;
            let sender = match row.get_ref(2).map_err(|e| fail(&e))? {
                rusqlite::types::ValueRef::Null => None,
                v => {
                    let bytes = v.as_bytes().map_err(|e| fail(&e))?;
                    Some(Username::new(bytes).map_err(|e| fail(&e))?)
                }
            };
            let text = row.get_ref(3).and_then(|v| Ok(v.as_bytes()?.into()));
            let text: Box<[u8]> = text.map_err(|e| fail(&e))?;
            if current.is_some_and(|(c, _)| c != name) {
                let (name, end_seq) = current.take().unwrap_or((name, 0));
                channels.push(LoadedChannel {
                    name,
                    end_seq,
                    entries: std::mem::take(&mut tail).into(),
                });
            }
            current = Some((name, u64::try_from(seq).unwrap_or(0) + 1));
            if tail.len() == self.history {
                tail.pop_front();
            }
            let time_ms: i64 = row.get(4).map_err(|e| fail(&e))?;
            let kind: i64 = row.get(5).map_err(|e| fail(&e))?;
            let kind = u8::try_from(kind)
                .ok()
                .and_then(Kind::from_code)
                .ok_or_else(|| fail(&format!("entry {seq}: unknown kind {kind}")))?;
            tail.push_back(Entry {
                sender,
                kind,
                time_ms: u64::try_from(time_ms).unwrap_or(0),
                text,
            });
        }
        if let Some((name, end_seq)) = current {
            channels.push(LoadedChannel {
                name,
                end_seq,
                entries: tail.into(),
            });
        }
        Ok(channels)
    }

    /// Every channel's ban list and the server bans. A row this server cannot read (a
    /// name or address that is not valid) is an error naming it: the file was not written
    /// by this server.
    pub fn load_bans(&self) -> Result<LoadedBans, StoreError> {
        let fail = |e: &dyn std::fmt::Display| {
            StoreError(format!(
                "store {}: cannot load the bans: {e}",
                self.path.display()
            ))
        };
        let mut bans = LoadedBans::default();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT c.name, b.mask FROM channel_bans b \
                 JOIN channels c ON c.id = b.channel ORDER BY c.name, b.time_ms",
            )
            .map_err(|e| fail(&e))?;
        let mut rows = stmt.query([]).map_err(|e| fail(&e))?;
        while let Some(row) = rows.next().map_err(|e| fail(&e))? {
            let channel: String = row.get(0).map_err(|e| fail(&e))?;
            let name: String = row.get(1).map_err(|e| fail(&e))?;
            let channel = ChannelName::new(channel.as_bytes()).map_err(|e| fail(&e))?;
            let name = Username::new(name.as_bytes()).map_err(|e| fail(&e))?;
            match bans.channels.last_mut() {
                Some((c, names)) if *c == channel => names.push(name),
                _ => bans.channels.push((channel, vec![name])),
            }
        }
        let mut stmt = self
            .conn
            .prepare("SELECT mask FROM server_bans ORDER BY time_ms")
            .map_err(|e| fail(&e))?;
        let mut rows = stmt.query([]).map_err(|e| fail(&e))?;
        while let Some(row) = rows.next().map_err(|e| fail(&e))? {
            let mask: String = row.get(0).map_err(|e| fail(&e))?;
            let address = mask
                .parse()
                .map_err(|_| fail(&format!("server ban {mask:?} is not an IP address")))?;
            bans.addresses.push(address);
        }
        Ok(bans)
    }

    /// Starts the writer thread, which owns the database from now on. With `confirm`, it
    /// reports each commit (channel, end of what is committed) and wakes the loop.
    pub fn start(self, confirm: Option<Arc<mio::Waker>>) -> std::io::Result<Store> {
        let (tx, rx) = mpsc::sync_channel(CHANNEL_BOUND);
        let (confirmed_tx, confirmed) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let writer_shared = Arc::clone(&shared);
        let confirm = confirm.map(|waker| (confirmed_tx, waker));
        let writer = std::thread::Builder::new()
            .name("store-writer".to_string())
            .spawn(move || {
                Writer {
                    store: self,
                    ids: HashMap::new(),
                    shared: writer_shared,
                    confirm,
                }
                .run(rx)
            })?;
        Ok(Store {
            tx: Some(tx),
            overflow: VecDeque::new(),
            shared,
            confirmed,
            writer: Some(writer),
            sent: 0,
            not_persisted: 0,
            warned_at: None,
            warned_not_persisted: 0,
        })
    }

    pub fn sync(&self) -> SyncPolicy {
        self.sync
    }
}

enum Refused {
    NotOurs(String),
    Sql(rusqlite::Error),
}

/// The schema version of an open database: 0 for an empty one.
fn schema_version(conn: &Connection) -> Result<u32, Refused> {
    let tables = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        });
    let tables = match tables {
        Ok(tables) => tables,
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
            return Err(Refused::NotOurs("not an SQLite database".to_string()))
        }
        Err(e) => return Err(Refused::Sql(e)),
    };
    if tables.is_empty() {
        return Ok(0);
    }
    if !tables.iter().any(|t| t == "kaichat_schema") {
        return Err(Refused::NotOurs(
            "an SQLite database without a kaichat_schema table".to_string(),
        ));
    }
    let version: Option<i64> = conn
        .query_row("SELECT max(version) FROM kaichat_schema", [], |row| {
            row.get(0)
        })
        .optional()
        .map_err(Refused::Sql)?
        .flatten();
    match version.map(u32::try_from) {
        Some(Ok(v)) => Ok(v),
        _ => Err(Refused::NotOurs("no valid schema version".to_string())),
    }
}

/// Where the writer stands, in entries since start (see [`Store::progress`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreProgress {
    /// Committed to the database.
    pub committed: u64,
    /// Handed over or queued, not yet committed.
    pub lag: u64,
    /// Dropped after the overflow queue was full: not in the database.
    pub not_persisted: u64,
    /// The last write failed and is being retried.
    pub failing: bool,
}

/// What the writer tells the loop without a message.
#[derive(Default)]
struct Shared {
    /// Entries committed since start.
    committed: AtomicU64,
    /// The last write error, while writes fail.
    failing: Mutex<Option<String>>,
    /// Set by [`Store::finish`]: a failing writer stops retrying after a few tries.
    stopping: AtomicBool,
}

/// How the writer confirms commits under `always`: (channel, end of what is committed),
/// then a wake of the loop.
type Confirm = (mpsc::Sender<(ChannelName, u64)>, Arc<mio::Waker>);

/// The writer thread's state.
struct Writer {
    store: Opened,
    /// Channel names to row ids, as committed.
    ids: HashMap<ChannelName, i64>,
    shared: Arc<Shared>,
    confirm: Option<Confirm>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Record>) {
        let mut batch: Vec<Record> = Vec::new();
        let mut failures_at_stop = 0;
        loop {
            if batch.is_empty() {
                match rx.recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => return, // the loop is done and everything is committed
                }
                if self.store.sync() != SyncPolicy::Always {
                    let until = Instant::now() + GATHER;
                    while batch.len() < MAX_BATCH {
                        let left = until.saturating_duration_since(Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(record) => batch.push(record),
                            // At a clean stop the loop has hung up: commit at once.
                            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                                break
                            }
                        }
                    }
                }
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            match self.commit(&batch) {
                Ok(ends) => {
                    self.shared
                        .committed
                        .fetch_add(batch.len() as u64, Ordering::Release);
                    batch.clear();
                    *lock(&self.shared.failing) = None;
                    if let Some((tx, waker)) = &self.confirm {
                        for end in ends {
                            let _ = tx.send(end);
                        }
                        let _ = waker.wake();
                    }
                }
                Err(e) => {
                    // Ids inserted by the rolled-back transaction are gone.
                    self.ids.clear();
                    *lock(&self.shared.failing) = Some(e.to_string());
                    if self.shared.stopping.load(Ordering::Acquire) {
                        failures_at_stop += 1;
                        if failures_at_stop > RETRIES_AT_STOP {
                            return; // Store::finish counts what was not committed
                        }
                    }
                    std::thread::sleep(RETRY);
                }
            }
        }
    }

    /// Inserts `batch` and trims the channels it touched, in one transaction. Returns each
    /// touched channel with the end of its committed entries.
    fn commit(&mut self, batch: &[Record]) -> rusqlite::Result<Vec<(ChannelName, u64)>> {
        let tx = self.store.conn.transaction()?;
        let mut ends: HashMap<ChannelName, (i64, u64)> = HashMap::new();
        let ids = &mut self.ids;
        let mut channel_id = |channel: &ChannelName| -> rusqlite::Result<i64> {
            if let Some(&id) = ids.get(channel) {
                return Ok(id);
            }
            let name = channel.to_string();
            tx.execute("INSERT OR IGNORE INTO channels (name) VALUES (?1)", [&name])?;
            let id = tx.query_row("SELECT id FROM channels WHERE name = ?1", [&name], |r| {
                r.get(0)
            })?;
            ids.insert(*channel, id);
            Ok(id)
        };
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO entries (channel, seq, time_ms, sender, text, kind) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for record in batch {
                let now_ms = || {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                };
                let (channel, seq, entry) = match record {
                    Record::Entry {
                        channel,
                        seq,
                        entry,
                    } => (channel, *seq, entry),
                    Record::Ban {
                        channel,
                        name,
                        banned,
                    } => {
                        let id = channel_id(channel)?;
                        // Names compare ignoring case: one row per name, in lower case.
                        let mask = name.to_string().to_ascii_lowercase();
                        if *banned {
                            tx.execute(
                                "INSERT OR IGNORE INTO channel_bans (channel, mask, time_ms) \
                                 VALUES (?1, ?2, ?3)",
                                (id, mask, now_ms()),
                            )?;
                        } else {
                            tx.execute(
                                "DELETE FROM channel_bans WHERE channel = ?1 AND mask = ?2",
                                (id, mask),
                            )?;
                        }
                        continue;
                    }
                    Record::ServerBan { address, banned } => {
                        let mask = address.to_string();
                        if *banned {
                            tx.execute(
                                "INSERT OR IGNORE INTO server_bans (mask, time_ms) VALUES (?1, ?2)",
                                (mask, now_ms()),
                            )?;
                        } else {
                            tx.execute("DELETE FROM server_bans WHERE mask = ?1", [mask])?;
                        }
                        continue;
                    }
                };
                let id = channel_id(channel)?;
                insert.execute((
                    id,
                    i64::try_from(seq).unwrap_or(i64::MAX),
                    i64::try_from(entry.time_ms).unwrap_or(i64::MAX),
                    entry.sender.map(|s| s.to_string()),
                    &entry.text[..],
                    entry.kind.code(),
                ))?;
                let end = ends.entry(*channel).or_insert((id, 0));
                end.1 = end.1.max(seq + 1);
            }
            // The file stays bounded: a channel keeps its last `history` entries.
            let mut trim =
                tx.prepare_cached("DELETE FROM entries WHERE channel = ?1 AND seq < ?2")?;
            for &(id, end) in ends.values() {
                if let Some(first) = end.checked_sub(self.store.history as u64) {
                    trim.execute((id, i64::try_from(first).unwrap_or(i64::MAX)))?;
                }
            }
        }
        tx.commit()?;
        Ok(ends
            .into_iter()
            .map(|(name, (_, end))| (name, end))
            .collect())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The loop's side of a running store. Never blocks, except in [`Store::finish`].
pub struct Store {
    tx: Option<SyncSender<Record>>,
    /// Entries the full channel could not take yet, oldest first.
    overflow: VecDeque<Record>,
    shared: Arc<Shared>,
    confirmed: Receiver<(ChannelName, u64)>,
    writer: Option<JoinHandle<()>>,
    /// Entries handed to the writer.
    sent: u64,
    /// Entries dropped because the overflow queue was full (or the writer was gone).
    not_persisted: u64,
    warned_at: Option<u64>,
    warned_not_persisted: u64,
}

impl Store {
    /// Hands an entry to the writer, or queues it while the writer is behind.
    pub fn append(&mut self, record: Record) {
        if !self.overflow.is_empty() {
            self.pump();
        }
        if self.overflow.is_empty() {
            let Some(tx) = &self.tx else { return };
            match tx.try_send(record) {
                Ok(()) => self.sent += 1,
                Err(TrySendError::Full(record)) => self.overflow.push_back(record),
                Err(TrySendError::Disconnected(_)) => self.not_persisted += 1,
            }
        } else if self.overflow.len() < OVERFLOW_BOUND {
            self.overflow.push_back(record);
        } else {
            self.not_persisted += 1;
        }
    }

    /// Moves queued entries to the writer while its channel has room.
    pub fn pump(&mut self) {
        let Some(tx) = &self.tx else { return };
        while let Some(record) = self.overflow.pop_front() {
            match tx.try_send(record) {
                Ok(()) => self.sent += 1,
                Err(TrySendError::Full(record)) => {
                    self.overflow.push_front(record);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => self.not_persisted += 1,
            }
        }
    }

    /// Whether entries wait in the loop for room in the writer's channel.
    pub fn behind(&self) -> bool {
        !self.overflow.is_empty()
    }

    /// The commits the writer confirmed since the last call (under `always`).
    pub fn confirmed(&mut self, mut f: impl FnMut(&ChannelName, u64)) {
        while let Ok((name, end)) = self.confirmed.try_recv() {
            f(&name, end);
        }
    }

    /// Entries not yet committed: in the channel, in the writer's batch, in the overflow.
    pub fn lag(&self) -> u64 {
        let committed = self.shared.committed.load(Ordering::Acquire);
        self.sent.saturating_sub(committed) + self.overflow.len() as u64
    }

    /// The writer's progress, for the metrics endpoint.
    pub fn progress(&self) -> StoreProgress {
        StoreProgress {
            committed: self.shared.committed.load(Ordering::Acquire),
            lag: self.lag(),
            not_persisted: self.not_persisted,
            failing: lock(&self.shared.failing).is_some(),
        }
    }

    /// For the statistics line.
    pub fn status(&self) -> String {
        let failing = if lock(&self.shared.failing).is_some() {
            " store_failing=1"
        } else {
            ""
        };
        format!(
            "store_committed={} store_lag={} store_not_persisted={}{failing}",
            self.shared.committed.load(Ordering::Acquire),
            self.lag(),
            self.not_persisted
        )
    }

    /// A warning for stderr when writes fail, when the writer's channel is full, or when
    /// entries were not persisted; at most one a minute (`now` in ms).
    pub fn warning(&mut self, now: u64) -> Option<String> {
        let failing = lock(&self.shared.failing).clone();
        let dropped = self.not_persisted > self.warned_not_persisted;
        if failing.is_none() && self.overflow.is_empty() && !dropped {
            return None;
        }
        if self.warned_at.is_some_and(|at| now < at + 60_000) {
            return None;
        }
        self.warned_at = Some(now);
        self.warned_not_persisted = self.not_persisted;
        let cause = match failing {
            Some(e) => format!("cannot write ({e}); serving from memory, retrying every second"),
            None => "the writer is behind".to_string(),
        };
        Some(format!(
            "store: {cause}: {} entries wait to be written, {} were not persisted",
            self.lag(),
            self.not_persisted
        ))
    }

    /// At a clean stop: hands every queued entry to the writer, waits for it to commit
    /// them and stop, and says what happened.
    pub fn finish(mut self) -> String {
        self.shared.stopping.store(true, Ordering::Release);
        if let Some(tx) = self.tx.take() {
            for record in self.overflow.drain(..) {
                if tx.send(record).is_ok() {
                    self.sent += 1;
                } else {
                    self.not_persisted += 1;
                }
            }
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        let committed = self.shared.committed.load(Ordering::Acquire);
        self.not_persisted += self.sent.saturating_sub(committed);
        format!(
            "store_committed={committed} store_not_persisted={}",
            self.not_persisted
        )
    }
}

#[cfg(test)]
mod tests;
