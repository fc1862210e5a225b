//! The stages of a run and what moves it from one to the next.
//!
//! Ramp (connect everyone at `--ramp`) → Steady (`--duration` seconds of QUERY and
//! messages after `--warmup`: the window the numbers describe) → the end steps, Fence then
//! Drain (only when messages were sent: prove every SEND was processed, then read
//! everything owed) → Quit (QUIT everywhere, wait for the server to close) → Done. Every
//! stage has a bound, so a run always ends by itself. This file decides *when* each
//! client changes stage; what the client then does is `clients`' business.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Reactor;
use crate::conn::{EndStep, Stage};
use crate::schedule::{phase_us, Periodic, STREAM_MESSAGE};

/// How long each end step (fence, drain) may take.
const END_STEP_LIMIT: Duration = Duration::from_secs(15);
/// How long to wait for the server to close connections after QUIT.
const QUIT_LIMIT: Duration = Duration::from_secs(5);

/// The stage of the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStage {
    Ramp,
    Steady,
    /// Every client sends the step's QUERY; the stage waits for all answers.
    End(EndStep),
    Quit,
    Done,
}

impl RunStage {
    /// The name in progress lines.
    pub fn name(self) -> &'static str {
        match self {
            RunStage::Ramp => "ramp",
            RunStage::Steady => "steady",
            RunStage::End(EndStep::Fence) => "fence",
            RunStage::End(EndStep::Drain) => "drain",
            RunStage::Quit => "quit",
            RunStage::Done => "done",
        }
    }

    /// The name in `timeline.csv`.
    pub fn label(self) -> &'static str {
        match self {
            RunStage::Ramp => "Ramp",
            RunStage::Steady => "Steady",
            RunStage::End(EndStep::Fence) => "Fence",
            RunStage::End(EndStep::Drain) => "Drain",
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
    pub deadline: Option<u64>,
    /// The steady window, once the ramp is over (`steady_start_us` 0 before).
    pub steady_start_us: u64,
    pub steady_end_us: u64,
    pub steady_start_unix: f64,
    pub steady_end_unix: f64,
    /// Clients that completed the end of the run.
    pub finished: u64,
}

impl Run {
    pub fn new() -> Run {
        Run {
            stage: RunStage::Ramp,
            deadline: None,
            steady_start_us: 0,
            steady_end_us: u64::MAX,
            steady_start_unix: 0.0,
            steady_end_unix: 0.0,
            finished: 0,
        }
    }

    /// Where `due` falls with respect to the steady window.
    pub fn phase(&self, due: u64) -> Phase {
        if self.steady_start_us == 0 || due < self.steady_start_us {
            Phase::Before
        } else if due < self.steady_end_us {
            Phase::Steady
        } else {
            Phase::After
        }
    }

    /// The earliest stage change to wake up for.
    pub fn next_deadline(&self) -> Option<u64> {
        let steady_end = (self.stage == RunStage::Steady).then_some(self.steady_end_us);
        [steady_end, self.deadline].into_iter().flatten().min()
    }

    /// Client `id`'s message schedule: none without `--msg-every`, else from its phase
    /// in the steady window (or from `now`, for a client that joins later).
    pub fn message_schedule(&self, msg_every: Duration, seed: u64, id: u32, now: u64) -> Periodic {
        let every = us(msg_every);
        if every == 0 {
            return Periodic::never();
        }
        let phase = phase_us(seed, u64::from(id), STREAM_MESSAGE, every);
        Periodic::new(self.steady_start_us.max(now) + phase, every)
    }
}

pub(super) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub(super) fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

impl Reactor<'_> {
    /// Moves the run on as far as it can go at `now` (a stage may end at once).
    pub(super) fn advance(&mut self, now: u64) {
        loop {
            let stage = self.run.stage;
            self.advance_stage(now);
            if self.run.stage == stage {
                break;
            }
        }
    }

    fn advance_stage(&mut self, now: u64) {
        match self.run.stage {
            RunStage::Ramp => {
                if self.next_client == self.cfg.clients && self.setting_up == 0 {
                    self.begin_steady(now);
                }
            }
            RunStage::Steady => {
                // Every client gone (none connected, or all disconnected): nothing left to
                // measure, so the run ends now.
                if self.conns.is_empty() {
                    self.run.steady_end_us = now;
                }
                if now >= self.run.steady_end_us {
                    self.run.steady_end_unix = unix_now();
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
                        EndStep::Fence => self.begin_end_step(EndStep::Drain, now),
                        EndStep::Drain => self.enter_quit(now),
                    }
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
    fn begin_steady(&mut self, now: u64) {
        let cfg = self.cfg;
        self.run.stage = RunStage::Steady;
        let warmup = us(cfg.warmup);
        self.run.steady_start_us = (now + warmup).max(1);
        self.run.steady_start_unix = unix_now() + cfg.warmup.as_secs_f64();
        self.run.steady_end_us = now + warmup + us(cfg.duration);
        for key in self.keys() {
            let conn = &self.conns[key];
            if conn.stage == Stage::Active {
                let (id, joined) = (conn.id, conn.joined_us);
                let messages =
                    self.run
                        .message_schedule(cfg.msg_every, cfg.seed, id, joined.max(now));
                self.conns[key].messages = messages;
                self.rearm(key);
            }
        }
    }

    /// Starts an end step: every client that completed the previous one (or, for the
    /// fence, every client in its channel) stops its schedules and sends the step's QUERY
    /// once its outstanding one is answered.
    fn begin_end_step(&mut self, step: EndStep, now: u64) {
        self.run.stage = RunStage::End(step);
        self.run.deadline = Some(now + us(END_STEP_LIMIT));
        let ready = match step {
            EndStep::Fence => Stage::Active,
            EndStep::Drain => Stage::Ended(EndStep::Fence),
        };
        for key in self.keys() {
            let conn = &mut self.conns[key];
            if conn.stage == ready {
                conn.queries.stop();
                conn.messages.stop();
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
    fn enter_quit(&mut self, now: u64) {
        if self.run.steady_end_unix == 0.0 {
            self.run.steady_end_unix = unix_now();
        }
        self.run.stage = RunStage::Quit;
        self.run.deadline = Some(now + us(QUIT_LIMIT));
        let done = if self.cfg.msg_every.is_zero() {
            Stage::Active
        } else {
            Stage::Ended(EndStep::Drain)
        };
        let at = self.clock.instant(now);
        for key in self.keys() {
            let conn = &mut self.conns[key];
            if conn.stage == done {
                self.run.finished += 1;
                conn.finished = true;
            }
            if conn.setting_up() {
                self.setting_up -= 1;
            } else {
                self.members_now -= 1;
            }
            conn.queries.stop();
            conn.messages.stop();
            conn.client.quit(at, &mut conn.transport);
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
