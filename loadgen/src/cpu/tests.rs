use super::*;

#[test]
fn parses_the_proc_files() {
    assert_eq!(
        parse_schedstat("123456789 5000 42\n"),
        Some(Duration::from_nanos(123_456_789))
    );
    assert_eq!(parse_schedstat(""), None);
    let stat = "4242 (kaichat (x) y) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0 1 0";
    assert_eq!(parse_stat(stat, 100.0), Some(Duration::from_secs(2)));
    assert_eq!(parse_stat("4242 (x) S 1", 100.0), None);
    let proc_stat = "cpu  100 10 50 9000 40 5 5 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
    // 100 + 10 + 50 + 5 + 5 + 0 ticks.
    assert_eq!(
        parse_machine(proc_stat, 100.0),
        Some(Duration::from_millis(1700))
    );
}

#[test]
fn reads_this_process_and_the_machine() {
    let probe = CpuProbe::new(Some(std::process::id()));
    let main_thread = || {
        let text = std::fs::read_to_string("/proc/self/schedstat").unwrap();
        parse_schedstat(&text).unwrap()
    };
    let (a, main_a) = (probe.read(), main_thread());
    // Work on another thread, still alive when read: a process's CPU time is all its
    // threads'.
    let (done, worked) = std::sync::mpsc::channel();
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        let own = || {
            let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
            parse_schedstat(&text).unwrap()
        };
        let start = own();
        let mut x = 0u64;
        while own() < start + Duration::from_millis(30) {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        done.send(()).unwrap();
        let _ = wait.recv();
    });
    worked.recv().unwrap();
    let (b, main_b) = (probe.read(), main_thread());
    release.send(()).unwrap();
    worker.join().unwrap();
    let used = b.since(&a);
    let main = main_b - main_a;
    let server = used.server.unwrap();
    assert!(
        server >= main + Duration::from_millis(20),
        "{used:?}, main {main:?}"
    );
    assert!(used.loadgen.is_some_and(|d| d > Duration::ZERO), "{used:?}");
    assert!(used.machine.is_some(), "{used:?}");
    assert_eq!(CpuProbe::new(None).read().server, None);
}

#[test]
fn a_window_needs_both_edges() {
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    let times = |ms| CpuTimes {
        server: Some(Duration::from_millis(ms)),
        loadgen: None,
        machine: Some(Duration::from_millis(2 * ms)),
    };
    let mut e = Edges::default();
    assert_eq!(e.used(), None);
    e.open(at(0), times(10));
    assert!(e.is_open());
    e.open(at(5), times(99)); // only the first opening counts
    assert_eq!(e.used(), None);
    e.close(at(330), times(80));
    assert!(!e.is_open());
    let w = e.used().unwrap();
    assert_eq!(w.window, Duration::from_millis(330));
    assert_eq!(w.used.server, Some(Duration::from_millis(70)));
    assert_eq!(w.used.loadgen, None);
    assert_eq!(w.used.machine, Some(Duration::from_millis(140)));
}
