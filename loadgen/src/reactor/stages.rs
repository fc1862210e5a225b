//! The stages of a run and what moves it from one to the next.
//!
//! Ramp (connect everyone at `--ramp`) → Warmup (`--warmup` seconds: the last joiners'
//! first QUERY answers carry their channel's replay, which is set-up work) → Steady
//! (`--duration` seconds of QUERY and messages: the window the numbers describe) → the
//! end steps, Fence then Drain (only when messages were sent: prove every SEND was
//! processed, then read everything owed; with `--settle`, a pause between the two in
//! which the servers of a network hand each other what their clients sent) → Quit (QUIT everywhere, wait for the server to
//! close) → Done. Every stage has a bound, so a run always ends by itself. This file
//! decides *when* each client changes stage, and takes the CPU readings at the edges of
//! the connect and steady windows; what a client then does is `clients`' business.

use std::time::{Duration, Instant};

use super::Reactor;
use crate::clock::Window;
use crate::conn::{EndStep, Stage};
use crate::cpu::Edges;
use crate::schedule::{phase, Periodic, STREAM_MESSAGE};

/// How long each end step (fence, drain) may take.
const END_STEP_LIMIT: Duration = Duration::from_secs(15);
/// How long to wait for the server to close connections after QUIT.
const QUIT_LIMIT: Duration = Duration::from_secs(5);

/// The stage of the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStage {
    Ramp,
    /// Everyone is in; the steady window has not opened yet.
    Warmup,
    Steady,
    /// Every client sends the step's QUERY; the stage waits for all answers.
    End(EndStep),
    /// Between fence and drain: `--settle` seconds for the network (several servers) to
    /// deliver to every server what each server's fence proved it took.
    Settle,
    Quit,
    Done,
}

impl RunStage {
    /// The name in progress lines.
    pub fn name(self) -> &'static str {
        match self {
            RunStage::Ramp => "ramp",
            RunStage::Warmup => "warmup",
            RunStage::Steady => "steady",
            RunStage::End(EndStep::Fence) => "fence",
            RunStage::End(EndStep::Drain) => "drain",
            RunStage::Settle => "settle",
            RunStage::Quit => "quit",
            RunStage::Done => "done",
        }
    }

    /// The name in `timeline.csv`.
    pub fn label(self) -> &'static str {
        match self {
            RunStage::Ramp => "Ramp",
            RunStage::Warmup => "Warmup",
            RunStage::Steady => "Steady",
            RunStage::End(EndStep::Fence) => "Fence",
            RunStage::End(EndStep::Drain) => "Drain",
            RunStage::Settle => "Settle",
            RunStage::Quit => "Quit",
            RunStage::Done => "Done",
        }
    }
}

/// Where a due time falls with respect to the steady window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before the steady window (ramp and warm-up), or no window yet.
    Before,
    Steady,
    After,
}

/// The run's stage and its windows.
#[derive(Debug)]
pub struct Run {
    pub stage: RunStage,
    /// When the current stage gives up waiting.
    pub deadline: Option<Instant>,
    /// When the ramp ended and the warm-up began.
    pub warmup_start: Option<Instant>,
    /// The steady window, set when the ramp ends: it opens after the warm-up, and closes
    /// early if every client is gone.
    pub steady: Option<Window>,
    /// CPU readings at the connect window's edges: the first TCP connect, and the moment
    /// the last connection's handshake ended (in the normal case, the last CLIENT_INFO
    /// acknowledgement).
    pub connect_cpu: Edges,
    /// CPU readings at the steady window's edges.
    pub steady_cpu: Edges,
    /// Clients that completed the end of the run.
    pub finished: u64,
}

impl Run {
    pub fn new() -> Run {
        Run {
            stage: RunStage::Ramp,
            deadline: None,
            warmup_start: None,
            steady: None,
            connect_cpu: Edges::default(),
            steady_cpu: Edges::default(),
            finished: 0,
        }
    }

    /// Where `due` falls with respect to the steady window.
    pub fn phase(&self, due: Instant) -> Phase {
        match self.steady {
            Some(w) if due >= w.start => {
                if due < w.end {
                    Phase::Steady
                } else {
                    Phase::After
                }
            }
            _ => Phase::Before,
        }
    }

    /// The earliest stage change to wake up for.
    pub fn next_deadline(&self) -> Option<Instant> {
        let edge = self.steady.and_then(|w| match self.stage {
            RunStage::Warmup => Some(w.start),
            RunStage::Steady => Some(w.end),
            _ => None,
        });
        [edge, self.deadline].into_iter().flatten().min()
    }

    /// Client `id`'s message schedule: none without `--msg-every`, else from its phase
    /// in the steady window (or from `now`, for a client that joins later).
    pub fn message_schedule(
        &self,
        msg_every: Duration,
        seed: u64,
        id: u32,
        now: Instant,
    ) -> Periodic {
        if msg_every.is_zero() {
            return Periodic::never();
        }
        let start = self.steady.map_or(now, |w| w.start.max(now));
        let phase = phase(seed, u64::from(id), STREAM_MESSAGE, msg_every);
        Periodic::new(start + phase, msg_every)
    }
}

impl Reactor<'_> {
    /// Moves the run on as far as it can go at `now` (a stage may end at once).
    pub(super) fn advance(&mut self, now: Instant) {
        loop {
            let stage = self.run.stage;
            self.advance_stage(now);
            if self.run.stage == stage {
                break;
            }
        }
    }

    fn advance_stage(&mut self, now: Instant) {
        match self.run.stage {
            RunStage::Ramp => {
                if self.next_client == self.cfg.clients && self.setting_up == 0 {
                    self.begin_warmup(now);
                }
            }
            RunStage::Warmup | RunStage::Steady => {
                let Some(steady) = &mut self.run.steady else {
                    return;
                };
                // Every client gone (none connected, or all disconnected): nothing left to
                // measure, so the window closes now.
                if self.conns.is_empty() {
                    steady.end = now;
                }
                let end = steady.end;
                if self.run.stage == RunStage::Warmup && now >= steady.start && now < end {
                    self.run.stage = RunStage::Steady;
                    self.run.steady_cpu.open(now, self.cpu.read());
                } else if now >= end {
                    if self.run.steady_cpu.is_open() {
                        self.run.steady_cpu.close(now, self.cpu.read());
                    }
                    if self.cfg.msg_every.is_zero() {
                        self.enter_quit(now);
                    } else {
                        self.begin_end_step(EndStep::Fence, now);
                    }
                }
            }
            RunStage::End(step) => {
                let waiting = self.conns.iter().any(|(_, c)| c.is_ending(step));
                let late = self.run.deadline.is_some_and(|d| now >= d);
                if !waiting || late {
                    if late {
                        self.count_stragglers(step);
                    }
                    match step {
                        EndStep::Fence if !self.cfg.settle.is_zero() => {
                            self.run.stage = RunStage::Settle;
                            self.run.deadline = Some(now + self.cfg.settle);
                        }
                        EndStep::Fence => self.begin_end_step(EndStep::Drain, now),
                        EndStep::Drain => self.enter_quit(now),
                    }
                }
            }
            RunStage::Settle => {
                // Pushes keep arriving meanwhile and are counted as usual.
                if self.run.deadline.is_some_and(|d| now >= d) {
                    self.begin_end_step(EndStep::Drain, now);
                }
            }
            RunStage::Quit => {
                let late = self.run.deadline.is_some_and(|d| now >= d);
                if self.conns.is_empty() || late {
                    for key in self.keys() {
                        // The server did not close in time after our QUIT: not an error of
                        // the run, but worth a count.
                        self.record.disconnects.add("no close after QUIT");
                        self.close(key, None);
                    }
                    self.run.stage = RunStage::Done;
                }
            }
            RunStage::Done => {}
        }
    }

    /// Everyone is in: the steady window starts after the warm-up, and with it the
    /// clients' messages.
    fn begin_warmup(&mut self, now: Instant) {
        let cfg = self.cfg;
        self.run.stage = RunStage::Warmup;
        self.run.warmup_start = Some(now);
        let start = now + cfg.warmup;
        self.run.steady = Some(Window {
            start,
            end: start + cfg.duration,
        });
        for key in self.keys() {
            let conn = &self.conns[key];
            if conn.stage == Stage::Active {
                let id = conn.id;
                let from = conn.joined.map_or(now, |j| j.max(now));
                let messages = self.run.message_schedule(cfg.msg_every, cfg.seed, id, from);
                self.conns[key].messages = messages;
                self.rearm(key);
            }
        }
    }

    /// Starts an end step: every client that completed the previous one (or, for the
    /// fence, every client in its channel) stops its schedules and sends the step's QUERY
    /// once its outstanding one is answered.
    fn begin_end_step(&mut self, step: EndStep, now: Instant) {
        self.run.stage = RunStage::End(step);
        self.run.deadline = Some(now + END_STEP_LIMIT);
        let ready = match step {
            EndStep::Fence => Stage::Active,
            EndStep::Drain => Stage::Ended(EndStep::Fence),
        };
        for key in self.keys() {
            let conn = &mut self.conns[key];
            if conn.stage == ready {
                conn.queries.stop();
                conn.messages.stop();
                conn.pings.stop();
                conn.stage = Stage::Ending { step, sent: false };
            }
            self.act(key, now);
        }
    }

    /// Clients still waiting for the step's answer at its deadline are errors.
    fn count_stragglers(&mut self, step: EndStep) {
        let cause = match step {
            EndStep::Fence => "fence timeout",
            EndStep::Drain => "drain timeout",
        };
        let n = self.conns.iter().filter(|(_, c)| c.is_ending(step)).count();
        for _ in 0..n {
            self.record.errors.add(cause);
        }
    }

    /// QUIT everywhere; the clients that completed the run are counted as finished.
    fn enter_quit(&mut self, now: Instant) {
        self.run.stage = RunStage::Quit;
        self.run.deadline = Some(now + QUIT_LIMIT);
        let done = if self.cfg.msg_every.is_zero() {
            Stage::Active
        } else {
            Stage::Ended(EndStep::Drain)
        };
        for key in self.keys() {
            let conn = &mut self.conns[key];
            if conn.stage == done {
                self.run.finished += 1;
                conn.finished = true;
                self.record.finished(conn.server);
            }
            if conn.setting_up() {
                self.setting_up -= 1;
            } else {
                self.members_now -= 1;
            }
            conn.queries.stop();
            conn.messages.stop();
            conn.pings.stop();
            conn.client.quit(now, &mut conn.transport);
            conn.stage = Stage::Quitting;
            self.record.counters.quits += 1;
            match conn.transport.flush(&mut conn.sock) {
                Ok(all) => conn.writable = all,
                Err(_) => {
                    // The QUIT could not be written; the connection is over either way.
                    self.close(key, None);
                    continue;
                }
            }
            self.rearm(key);
        }
    }

    fn keys(&self) -> Vec<usize> {
        self.conns.iter().map(|(k, _)| k).collect()
    }
}
