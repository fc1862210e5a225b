//! CPU time used so far by the server, by loadgen itself and by the whole machine, read
//! from /proc at the moments that open and close a window of the run.
//!
//! `scripts/loadtest.sh` samples the same counters once a second, which is too coarse
//! for a connect window of a fraction of a second: dividing the CPU of the one sample
//! interval that covers it by the window's length spreads the set-up cost over time when
//! nothing was happening. Readings taken by loadgen at the window's own edges measure
//! exactly the window. Reading the counters costs a few system calls, so the reactor
//! takes them only at the edges, never per event.

use std::time::{Duration, Instant};

/// What to read: the server's process (when its pid is known), this process, the machine.
#[derive(Clone, Copy, Debug)]
pub struct CpuProbe {
    server_pid: Option<u32>,
    /// Clock ticks per second of `/proc/*/stat` and `/proc/stat`.
    ticks_per_s: f64,
}

/// CPU time used so far (or, from [`CpuTimes::since`], within a window); `None` for a
/// counter that could not be read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTimes {
    pub server: Option<Duration>,
    pub loadgen: Option<Duration>,
    /// Every process of the machine, all cores together.
    pub machine: Option<Duration>,
}

impl CpuTimes {
    /// The CPU time used between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        let d = |a: Option<Duration>, b: Option<Duration>| a?.checked_sub(b?);
        CpuTimes {
            server: d(self.server, earlier.server),
            loadgen: d(self.loadgen, earlier.loadgen),
            machine: d(self.machine, earlier.machine),
        }
    }
}

/// Readings at a window's two edges.
#[derive(Clone, Copy, Debug, Default)]
pub struct Edges {
    open: Option<(Instant, CpuTimes)>,
    close: Option<(Instant, CpuTimes)>,
}

/// The CPU time used inside a window, measured at its edges.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowCpu {
    /// From the opening reading to the closing one.
    pub window: Duration,
    pub used: CpuTimes,
}

impl Edges {
    /// Records the opening reading (the first one only).
    pub fn open(&mut self, at: Instant, times: CpuTimes) {
        self.open.get_or_insert((at, times));
    }

    /// Records the closing reading (the first one only).
    pub fn close(&mut self, at: Instant, times: CpuTimes) {
        self.close.get_or_insert((at, times));
    }

    pub fn is_open(&self) -> bool {
        self.open.is_some() && self.close.is_none()
    }

    /// The CPU used between the two readings, once both were taken.
    pub fn used(&self) -> Option<WindowCpu> {
        let (opened, before) = self.open?;
        let (closed, after) = self.close?;
        Some(WindowCpu {
            window: closed.saturating_duration_since(opened),
            used: after.since(&before),
        })
    }
}

impl CpuProbe {
    /// A probe of this process and the machine, and of the server if `server_pid` is set.
    pub fn new(server_pid: Option<u32>) -> CpuProbe {
        // SAFETY: sysconf has no memory arguments.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        CpuProbe {
            server_pid,
            ticks_per_s: if ticks > 0 { ticks as f64 } else { 100.0 },
        }
    }

    /// Reads every counter now.
    pub fn read(&self) -> CpuTimes {
        CpuTimes {
            server: self
                .server_pid
                .and_then(|pid| self.process(&pid.to_string())),
            loadgen: self.process("self"),
            machine: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|text| parse_machine(&text, self.ticks_per_s)),
        }
    }

    /// A process's CPU time: nanoseconds on CPU from the `schedstat` of each of its
    /// threads when the kernel keeps them (`/proc/PID/schedstat` alone is the main
    /// thread's), else user + system clock ticks from `stat`. A thread that exits inside a
    /// window takes its time with it: loadgen is single-threaded, and the server's other
    /// threads (signals, the store's writer, jemalloc's background purger) live as long as
    /// it does.
    fn process(&self, pid: &str) -> Option<Duration> {
        let threads = || -> Option<Duration> {
            let mut sum = Duration::ZERO;
            for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
                let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
                sum += parse_schedstat(&text)?;
            }
            Some(sum)
        };
        threads().or_else(|| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            parse_stat(&text, self.ticks_per_s)
        })
    }
}

/// The first field of `/proc/PID/schedstat`: nanoseconds spent on a CPU.
pub fn parse_schedstat(text: &str) -> Option<Duration> {
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// utime + stime (fields 14 and 15) of `/proc/PID/stat`. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its closing parenthesis.
pub fn parse_stat(text: &str, ticks_per_s: f64) -> Option<Duration> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks_per_s,
    ))
}

/// Busy time of all CPUs from the `cpu` line of `/proc/stat`: user, nice, system, irq,
/// softirq and steal (idle and iowait are not busy).
pub fn parse_machine(text: &str, ticks_per_s: f64) -> Option<Duration> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| v.get(i).copied().unwrap_or(0))
        .sum::<u64>();
    Some(Duration::from_secs_f64(busy as f64 / ticks_per_s))
}

#[cfg(test)]
mod tests;
