//! Measures the protocol-v2 targets that loadgen does not drive (BENCHMARKS.md, "v2
//! listings and slow readers"), against a release `kaichat-server` it starts itself on
//! loopback with TLS:
//!
//! - `list`: N clients each in a channel of its own (N open channels), a few hundred v1
//!   clients querying once a second in their own channels; then a v2 client streams
//!   LIST_CHANNELS over and over (pausing 200 ms before reading each one, so that a server
//!   that built the listing eagerly would have to hold it). Prints the server's RSS before,
//!   at its highest while the listings stream (sampled every 10 ms) and after, and the
//!   queriers' QUERY latency (due time to up-to-date PDU) without and with the listings.
//! - `names`: the same with N members in one channel and NAMES of that channel.
//! - `slow`: R v2 readers and K v2 members that never read in one busy channel, a v1 sender
//!   posting 2000-byte messages at a fixed rate; prints the readers' push latency (send to
//!   arrival) and the server's RSS over the run. Run with K = 0 and K > 0 to compare.
//!
//! Usage (from the repository root, after `cargo build --release --bin kaichat-server`):
//! `cargo run --release --example v2_bench -- list 10000`, `... names 19000`,
//! `... slow 50 1`. Every run stops by itself (the server is killed at the end); the
//! server binary is `target/release/kaichat-server` unless `KAICHAT_SERVER` names another.
//! Clients connect from 127.0.0.2 to 127.0.0.9 (each address has its own ports). With
//! `LISTER_RATE=BYTES_PER_SEC` in the environment, the listing client reads no faster than
//! that (a client on a slower link); with `ALTERNATE=P`, `list` and `names` alternate P
//! windows without and P with listings, each a P-th of the 10 s of each kind.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kaichat_proto::pdu::{ByteOrder, Command, Decoded, Pdu, PDU_LEN};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

const ORDER: ByteOrder = ByteOrder::Little;
/// Messages posted before a `slow` measurement: the server's default `--history`.
const PREFILL: usize = 1000;
/// Where the queriers' and listers' answers must have come within, or the run fails.
const ANSWER: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// A blocking client
// ---------------------------------------------------------------------------------------

struct Client {
    stream: StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl Client {
    /// TCP from `source` + TLS, set up under `name` with `version`.
    fn connect(
        server: SocketAddr,
        source: IpAddr,
        tls: &Arc<ClientConfig>,
        name: &str,
        version: u16,
    ) -> io::Result<Client> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&SocketAddr::new(source, 0).into())?;
        socket.connect(&server.into())?;
        let tcp: TcpStream = socket.into();
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(ANSWER))?;
        let conn =
            ClientConnection::new(Arc::clone(tls), ServerName::try_from("localhost").unwrap())
                .map_err(io::Error::other)?;
        let mut c = Client {
            stream: StreamOwned::new(conn, tcp),
            buf: Vec::new(),
        };
        c.send(&Pdu::ping(ORDER))?;
        c.expect(Command::PingPong)?;
        c.expect(Command::VersionNegotiation)?;
        c.send(&Pdu::client_version(ORDER, version))?;
        c.send(&Pdu::client_info(ORDER, name.as_bytes()))?;
        c.expect(Command::ClientInfo)?;
        Ok(c)
    }

    fn send(&mut self, pdu: &Pdu) -> io::Result<()> {
        self.stream.write_all(pdu.as_bytes())?;
        self.stream.flush()
    }

    fn recv(&mut self) -> io::Result<Pdu> {
        let mut tmp = [0u8; 16 * 1024];
        while self.buf.len() < PDU_LEN {
            let n = self.stream.read(&mut tmp)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
        let pdu = Pdu::from_slice(&self.buf[..PDU_LEN]).expect("PDU_LEN bytes");
        self.buf.drain(..PDU_LEN);
        Ok(pdu)
    }

    fn command(pdu: &Pdu) -> Option<Command> {
        match pdu.decode_command(Some(ORDER)) {
            Decoded::Known { command, .. } => Some(command),
            Decoded::Unknown(_) => None,
        }
    }

    fn expect(&mut self, command: Command) -> io::Result<Pdu> {
        let pdu = self.recv()?;
        if Client::command(&pdu) != Some(command) {
            return Err(io::Error::other(format!(
                "expected {}, got {pdu:?}",
                command.name()
            )));
        }
        Ok(pdu)
    }

    /// JOIN; a v1 client then has nothing to read, a v2 client its replay and pushes.
    fn join(&mut self, channel: &str) -> io::Result<()> {
        let mut pdu = Pdu::new(Command::JoinChannel, ORDER);
        pdu.set_channel_field(channel.as_bytes());
        self.send(&pdu)?;
        self.expect(Command::JoinChannel).map(drop)
    }

    /// QUERY and its answer, up to the up-to-date PDU.
    fn query(&mut self) -> io::Result<()> {
        self.send(&Pdu::query(ORDER))?;
        loop {
            let pdu = self.expect(Command::ReceiveMessage)?;
            if pdu.up_to_date() {
                return Ok(());
            }
        }
    }
}

fn tls_config() -> Arc<ClientConfig> {
    kaichat::tls::client_config(&kaichat::tls::Trust {
        ca: Some("certs/ca.pem".into()),
        roots: Vec::new(),
    })
    .expect("client TLS config from certs/ca.pem (run from the repository root)")
}

/// The i-th source address: 127.0.0.2 to 127.0.0.9.
fn source(i: usize) -> IpAddr {
    IpAddr::from([127, 0, 0, 2 + (i % 8) as u8])
}

/// `n` v1 clients `{prefix}{i}`, in the channel `channel(i)`, connected by 4 threads.
fn connect_many(
    server: SocketAddr,
    n: usize,
    prefix: &str,
    channel: impl Fn(usize) -> String + Sync,
) -> Vec<Client> {
    let tls = tls_config();
    let threads = 4;
    let out = Mutex::new(Vec::with_capacity(n));
    thread::scope(|s| {
        for t in 0..threads {
            let (tls, out, channel) = (&tls, &out, &channel);
            s.spawn(move || {
                let mut mine = Vec::new();
                for i in (t..n).step_by(threads) {
                    let mut c = Client::connect(server, source(i), tls, &format!("{prefix}{i}"), 1)
                        .unwrap_or_else(|e| panic!("client {prefix}{i}: {e}"));
                    c.join(&channel(i))
                        .unwrap_or_else(|e| panic!("client {prefix}{i} join: {e}"));
                    mine.push(c);
                }
                out.lock().unwrap().extend(mine);
            });
        }
    });
    out.into_inner().unwrap()
}

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(port: u16, extra: &[&str]) -> Server {
        let bin = std::env::var("KAICHAT_SERVER").unwrap_or("target/release/kaichat-server".into());
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let listen = addr.to_string();
        let mut args = vec![
            "--listen",
            &listen,
            "--cert",
            "certs/server.pem",
            "--key",
            "certs/server.key",
            "--log",
            "error",
        ];
        args.extend_from_slice(extra);
        let child = Process::new(&bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(
                start.elapsed() < ANSWER,
                "the server does not listen on {addr}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        println!("server: {bin} {}", args.join(" "));
        Server { child, addr }
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of process `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / hz)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples the server's RSS every 10 ms while `run` is set; returns the highest.
fn rss_sampler(pid: u32, run: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut max = 0;
        while run.load(Ordering::Relaxed) {
            max = max.max(rss_kib(pid));
            thread::sleep(Duration::from_millis(10));
        }
        max
    })
}

// ---------------------------------------------------------------------------------------
// Latencies
// ---------------------------------------------------------------------------------------

/// p50, p99, max (ms) of latencies in µs.
fn summary(mut us: Vec<u64>) -> String {
    if us.is_empty() {
        return "no samples".into();
    }
    us.sort_unstable();
    let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    format!(
        "n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        us.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

/// Phases of a run: the queriers record which one a QUERY was due in.
const WARM: u8 = 0;
const QUIET: u8 = 1;
const LOADED: u8 = 2;
const STOP: u8 = 3;

/// Each querier sends QUERY once a `period` (its own phase), measured from its due time to
/// the up-to-date PDU (no coordinated omission: a late QUERY still counts from its due
/// time). Returns (phase, µs) samples.
fn run_queriers(
    clients: Vec<Client>,
    period: Duration,
    phase: Arc<AtomicU8>,
) -> Vec<thread::JoinHandle<Vec<(u8, u64)>>> {
    let n = clients.len();
    clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let phase = Arc::clone(&phase);
            thread::spawn(move || {
                let mut samples = Vec::new();
                let mut due = Instant::now() + period.mul_f64(i as f64 / n as f64);
                loop {
                    let now = Instant::now();
                    if due > now {
                        thread::sleep(due - now);
                    }
                    let at = phase.load(Ordering::Relaxed);
                    if at == STOP {
                        return samples;
                    }
                    c.query().expect("a querier's QUERY");
                    samples.push((at, due.elapsed().as_micros() as u64));
                    due += period;
                }
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// list / names
// ---------------------------------------------------------------------------------------

fn listings(names: bool, n: usize, queriers: usize, window: Duration) {
    let server = Server::start(29_431, &["--idle-timeout", "0", "--rate-limit", "0"]);
    let t0 = Instant::now();
    let _holders = if names {
        connect_many(server.addr, n, "m", |_| "@big".to_string())
    } else {
        connect_many(server.addr, n, "h", |i| format!("@ch{i:05}"))
    };
    println!(
        "{n} clients {} in {:.1} s",
        if names {
            "in @big"
        } else {
            "in a channel each"
        },
        t0.elapsed().as_secs_f64()
    );
    let q = connect_many(server.addr, queriers, "q", |i| format!("@q{i}"));
    let tls = tls_config();
    let mut lister = Client::connect(server.addr, source(0), &tls, "lister", 2).expect("lister");
    thread::sleep(Duration::from_secs(2));

    let phase = Arc::new(AtomicU8::new(WARM));
    let handles = run_queriers(q, Duration::from_secs(1), Arc::clone(&phase));
    thread::sleep(Duration::from_secs(2));
    // ALTERNATE=P: P quiet windows and P listing windows, alternating, each 1/P of the
    // whole (a stall of the machine then falls in either kind alike).
    let pairs: u32 = std::env::var("ALTERNATE")
        .ok()
        .map_or(1, |p| {
            p.parse().expect("ALTERNATE: a number of window pairs")
        })
        .max(1);
    let slice = window / pairs;
    let pid = server.child.id();
    let rss_quiet_start = server.rss_kib();
    let (mut cpu_quiet, mut cpu_loaded) = (Duration::ZERO, Duration::ZERO);
    let mut elapsed = Duration::ZERO;
    let mut rss_before = 0;
    let sampling = Arc::new(AtomicBool::new(true));
    let mut sampler = None;
    let (mut listings, mut pdus, mut streaming) = (0u64, 0u64, Duration::ZERO);
    let command = if names {
        Command::Names
    } else {
        Command::ListChannels
    };
    let lister_rate: Option<f64> = std::env::var("LISTER_RATE")
        .ok()
        .map(|r| r.parse().expect("LISTER_RATE: bytes a second"));
    for _ in 0..pairs {
        phase.store(QUIET, Ordering::Relaxed);
        let cpu = cpu_time(pid);
        thread::sleep(slice);
        cpu_quiet += cpu_time(pid) - cpu;
        if sampler.is_none() {
            rss_before = server.rss_kib();
            sampler = Some(rss_sampler(pid, Arc::clone(&sampling)));
        }
        let cpu = cpu_time(pid);
        phase.store(LOADED, Ordering::Relaxed);
        let start = Instant::now();
        while start.elapsed() < slice {
            let request = if names {
                Pdu::names(ORDER, b"@big")
            } else {
                Pdu::list_channels(ORDER)
            };
            lister.send(&request).expect("listing request");
            // Not read for a while: an eager server would now hold the whole listing.
            thread::sleep(Duration::from_millis(200));
            let began = Instant::now();
            let mut read = 0u64;
            loop {
                let pdu = lister.expect(command).expect("a listing PDU");
                pdus += 1;
                read += 1;
                if let Some(rate) = lister_rate {
                    // A reader on a link of `rate` bytes a second.
                    let due =
                        began + Duration::from_secs_f64((read * PDU_LEN as u64) as f64 / rate);
                    if read.is_multiple_of(8) && due > Instant::now() {
                        thread::sleep(due - Instant::now());
                    }
                }
                if pdu.up_to_date() {
                    // LIST also lists the queriers' channels.
                    let expected = if names { n } else { n + queriers };
                    assert_eq!(pdu.param_u32(0) as usize, expected, "the listing's count");
                    break;
                }
            }
            streaming += began.elapsed();
            listings += 1;
        }
        elapsed += start.elapsed();
        cpu_loaded += cpu_time(pid) - cpu;
    }
    phase.store(STOP, Ordering::Relaxed);
    sampling.store(false, Ordering::Relaxed);
    let rss_max = sampler.map_or(0, |s| s.join().unwrap());
    let rss_after = server.rss_kib();
    let (mut quiet, mut loaded) = (Vec::new(), Vec::new());
    for h in handles {
        for (at, us) in h.join().unwrap() {
            match at {
                QUIET => quiet.push(us),
                LOADED => loaded.push(us),
                _ => {}
            }
        }
    }
    println!(
        "{listings} {} listings of {} PDUs each, {:.0} ms reading each on average",
        command.name(),
        pdus / listings.max(1),
        streaming.as_secs_f64() * 1000.0 / listings.max(1) as f64
    );
    println!(
        "server RSS: {rss_quiet_start} KiB at the quiet window's start, {rss_before} KiB \
         before the listings, {rss_max} KiB at most while they streamed (+{} KiB), \
         {rss_after} KiB after",
        rss_max.saturating_sub(rss_before)
    );
    println!(
        "server CPU: {:.0} % of a core without listings, {:.0} % while listing",
        cpu_quiet.as_secs_f64() * 100.0 / window.as_secs_f64(),
        cpu_loaded.as_secs_f64() * 100.0 / elapsed.as_secs_f64()
    );
    println!("{queriers} queriers, QUERY once a second each:");
    println!("  without listings: {}", summary(quiet));
    println!("  while listing:    {}", summary(loaded));
}

// ---------------------------------------------------------------------------------------
// slow
// ---------------------------------------------------------------------------------------

fn slow_reader(readers: usize, slow: usize, rate: u64, secs: u64) {
    let server = Server::start(29_432, &["--idle-timeout", "0", "--rate-limit", "0"]);
    let tls = tls_config();
    let epoch = Instant::now();
    let phase = Arc::new(AtomicU8::new(WARM));
    let mut handles = Vec::new();
    for i in 0..readers {
        let mut c =
            Client::connect(server.addr, source(i), &tls, &format!("r{i}"), 2).expect("a reader");
        c.join("@busy").expect("a reader's JOIN");
        let phase = Arc::clone(&phase);
        handles.push(thread::spawn(move || {
            let mut samples = Vec::new();
            let mut received = 0u64;
            while let Ok(pdu) = c.recv() {
                if phase.load(Ordering::Relaxed) == STOP {
                    break;
                }
                // Only the messages sent once the ring is full count (not the prefill).
                if pdu.username() != b"sender" || pdu.params_text().first() == Some(&b'p') {
                    continue;
                }
                received += 1;
                let text = pdu.params_text();
                let sent: u64 = std::str::from_utf8(&text[..20])
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0);
                let now = epoch.elapsed().as_micros() as u64;
                samples.push(now.saturating_sub(sent));
            }
            (samples, received)
        }));
    }
    let mut stalled = Vec::new();
    for i in 0..slow {
        let mut c = Client::connect(server.addr, source(i), &tls, &format!("slow{i}"), 2)
            .expect("a slow reader");
        c.join("@busy").expect("a slow reader's JOIN");
        stalled.push(c); // and never read again
    }
    let mut sender = Client::connect(server.addr, source(0), &tls, "sender", 1).expect("sender");
    sender.join("@busy").expect("the sender's JOIN");
    // Fill the channel's history ring first (1000 entries by default), so that what the
    // ring holds is the same at the start and the end of the measurement.
    for _ in 0..PREFILL {
        sender
            .send(&Pdu::send_message(ORDER, &[b'p'; 2000]))
            .expect("the sender");
    }
    thread::sleep(Duration::from_secs(2));
    let rss_start = server.rss_kib();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = rss_sampler(server.child.id(), Arc::clone(&sampling));
    phase.store(LOADED, Ordering::Relaxed);
    // Messages of 2000 bytes, the send time (µs since `epoch`) in the first 20.
    let start = Instant::now();
    let total = rate * secs;
    for k in 0..total {
        let due = start + Duration::from_micros(k * 1_000_000 / rate);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let mut text = vec![b'x'; 2000];
        let stamp = format!("{:>20}", epoch.elapsed().as_micros());
        text[..20].copy_from_slice(stamp.as_bytes());
        sender
            .send(&Pdu::send_message(ORDER, &text))
            .expect("the sender");
    }
    // The last pushes arrive; then the readers stop at their next PDU (a PING answer).
    thread::sleep(Duration::from_secs(1));
    let rss_end = server.rss_kib();
    phase.store(STOP, Ordering::Relaxed);
    sampling.store(false, Ordering::Relaxed);
    let rss_max = sampler.join().unwrap();
    sender.send(&Pdu::quit(ORDER)).ok();
    drop(sender); // closing: `sender left` reaches every reader, which then sees STOP
    let mut all = Vec::new();
    let mut short = 0;
    for h in handles {
        let (samples, received) = h.join().unwrap();
        if received < total {
            short += 1;
        }
        all.extend(samples);
    }
    println!(
        "{readers} v2 readers, {slow} v2 members that never read, {rate} messages/s of 2000 \
         bytes for {secs} s ({total} messages)"
    );
    println!(
        "readers that missed messages: {short}; push latency (send to arrival): {}",
        summary(all)
    );
    println!(
        "server RSS: {rss_start} KiB at the start, {rss_max} KiB at most, {rss_end} KiB at the \
         end (+{} KiB at most)",
        rss_max.saturating_sub(rss_start)
    );
    drop(stalled);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: usize| -> usize {
        args.get(i)
            .map(|a| a.parse().expect("a number"))
            .unwrap_or(default)
    };
    let window = Duration::from_secs(10);
    match args.first().map(String::as_str) {
        Some("list") => listings(false, num(1, 10_000), num(2, 300), window),
        Some("names") => listings(true, num(1, 19_000), num(2, 300), window),
        Some("slow") => slow_reader(num(1, 50), num(2, 1), num(3, 200) as u64, num(4, 10) as u64),
        _ => {
            eprintln!(
                "usage: v2_bench list [CHANNELS] [QUERIERS] | names [MEMBERS] [QUERIERS] | \
                 slow [READERS] [NEVER_READING] [MSGS_PER_SEC] [SECS]"
            );
            std::process::exit(2);
        }
    }
}
