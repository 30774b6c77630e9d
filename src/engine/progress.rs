//! Live progress of a run, for a terminal: the engine bumps lock-free counters (no callback
//! on the streaming path: bytes are counted where the copier already counts them), a
//! renderer polls [`Progress::snapshot`] and draws [`Line::render`].

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::report::human;

/// What a run is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Listing repositories and tags.
    Discovering = 0,
    /// Asking destinations what they hold.
    Planning = 1,
    /// Copying.
    Copying = 2,
    /// Deleting tags the source no longer has.
    Deleting = 3,
    /// Finished.
    Done = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Phase::Discovering,
            1 => Phase::Planning,
            2 => Phase::Copying,
            3 => Phase::Deleting,
            _ => Phase::Done,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Phase::Discovering => "discovering",
            Phase::Planning => "planning",
            Phase::Copying => "copying",
            Phase::Deleting => "deleting",
            Phase::Done => "done",
        }
    }
}

/// Counters of one run, shared between the engine (writer) and a renderer (reader).
#[derive(Debug, Default)]
pub struct Progress {
    phase: AtomicU8,
    total: AtomicU64,
    done: AtomicU64,
    copied: AtomicU64,
    failed: AtomicU64,
    /// Byte counters of the copier (bytes read from the source and from relays).
    bytes: Mutex<Vec<Arc<AtomicU64>>>,
}

/// One reading of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Phase.
    pub phase: Option<Phase>,
    /// Artifacts in scope.
    pub total: u64,
    /// Artifacts finished (copied, in sync, failed or conflicting).
    pub done: u64,
    /// Artifacts copied to one destination at least.
    pub copied: u64,
    /// Artifacts failed at one destination at least.
    pub failed: u64,
    /// Bytes transferred so far.
    pub bytes: u64,
}

impl Progress {
    /// Enters a phase.
    pub fn phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
    }

    /// The number of artifacts in scope.
    pub fn set_total(&self, n: u64) {
        self.total.store(n, Ordering::Relaxed);
    }

    /// One artifact finished.
    pub fn artifact_done(&self, copied: bool, failed: bool) {
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        } else if copied {
            self.copied.fetch_add(1, Ordering::Relaxed);
        }
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the bytes of `counter` as transferred.
    pub fn count_bytes(&self, counter: Arc<AtomicU64>) {
        if let Ok(mut b) = self.bytes.lock() {
            b.push(counter);
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let bytes = self
            .bytes
            .lock()
            .map(|b| b.iter().map(|c| c.load(Ordering::Relaxed)).sum())
            .unwrap_or(0);
        Snapshot {
            phase: Some(Phase::from_u8(self.phase.load(Ordering::Relaxed))),
            total: self.total.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Relaxed),
            copied: self.copied.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            bytes,
        }
    }
}

/// The transfer rate over a sliding window of snapshots.
#[derive(Debug)]
pub struct Rate {
    window: Duration,
    samples: std::collections::VecDeque<(Duration, u64)>,
}

impl Rate {
    /// A rate averaged over `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            samples: Default::default(),
        }
    }

    /// Adds `bytes` (a running total) seen at `at` (time since the start); returns bytes/s.
    pub fn add(&mut self, at: Duration, bytes: u64) -> f64 {
        self.samples.push_back((at, bytes));
        while let Some(&(t, _)) = self.samples.front() {
            if at.saturating_sub(t) > self.window && self.samples.len() > 2 {
                self.samples.pop_front();
            } else {
                break;
            }
        }
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, b0)), Some(&(t1, b1))) if t1 > t0 => {
                b1.saturating_sub(b0) as f64 / (t1 - t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// What the progress line shows.
#[derive(Clone, Copy, Debug)]
pub struct Line {
    /// Counters.
    pub snapshot: Snapshot,
    /// Bytes per second.
    pub rate: f64,
    /// Since the start.
    pub elapsed: Duration,
}

impl Line {
    /// `copying  12/40 artifacts (3 copied, 1 failed)  120.3 MiB  25.1 MiB/s  0:07`, cut to
    /// `width` characters.
    pub fn render(&self, width: usize) -> String {
        let s = &self.snapshot;
        let phase = s.phase.unwrap_or(Phase::Discovering).label();
        let mut out = format!("{phase:<11}");
        if s.total > 0 || s.done > 0 {
            out.push_str(&format!(" {}/{} artifacts", s.done, s.total));
            let mut extra = Vec::new();
            if s.copied > 0 {
                extra.push(format!("{} copied", s.copied));
            }
            if s.failed > 0 {
                extra.push(format!("{} failed", s.failed));
            }
            if !extra.is_empty() {
                out.push_str(&format!(" ({})", extra.join(", ")));
            }
        }
        out.push_str(&format!("  {}", human(s.bytes)));
        if self.rate >= 1.0 {
            out.push_str(&format!("  {}/s", human(self.rate as u64)));
        }
        let secs = self.elapsed.as_secs();
        out.push_str(&format!("  {}:{:02}", secs / 60, secs % 60));
        if out.chars().count() > width {
            out = out.chars().take(width.max(1)).collect();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_aggregate() {
        let p = Progress::default();
        let read = Arc::new(AtomicU64::new(0));
        let relay = Arc::new(AtomicU64::new(0));
        p.count_bytes(read.clone());
        p.count_bytes(relay.clone());
        p.phase(Phase::Copying);
        p.set_total(4);
        p.artifact_done(true, false);
        p.artifact_done(false, false);
        p.artifact_done(true, true);
        read.fetch_add(1000, Ordering::Relaxed);
        relay.fetch_add(24, Ordering::Relaxed);
        assert_eq!(
            p.snapshot(),
            Snapshot {
                phase: Some(Phase::Copying),
                total: 4,
                done: 3,
                copied: 1,
                failed: 1,
                bytes: 1024,
            }
        );
    }

    #[test]
    fn rate_over_a_window() {
        let mut r = Rate::new(Duration::from_secs(2));
        assert_eq!(r.add(Duration::ZERO, 0), 0.0);
        assert_eq!(r.add(Duration::from_secs(1), 1000), 1000.0);
        assert_eq!(r.add(Duration::from_secs(2), 3000), 1500.0);
        // The first sample leaves the window: (7000 - 1000) / 2 s.
        assert_eq!(r.add(Duration::from_secs(3), 7000), 3000.0);
        // Nothing moves: the rate decays to zero once the window holds only idle samples.
        r.add(Duration::from_secs(6), 7000);
        assert_eq!(r.add(Duration::from_secs(9), 7000), 0.0);
    }

    #[test]
    fn line_rendering() {
        let line = Line {
            snapshot: Snapshot {
                phase: Some(Phase::Copying),
                total: 40,
                done: 12,
                copied: 3,
                failed: 1,
                bytes: 120 * 1024 * 1024 + 300 * 1024,
            },
            rate: 25.0 * 1024.0 * 1024.0,
            elapsed: Duration::from_secs(67),
        };
        assert_eq!(
            line.render(200),
            "copying     12/40 artifacts (3 copied, 1 failed)  120.3 MiB  25.0 MiB/s  1:07"
        );
        assert_eq!(line.render(10).chars().count(), 10);
        let start = Line {
            snapshot: Snapshot::default(),
            rate: 0.0,
            elapsed: Duration::ZERO,
        };
        assert_eq!(start.render(80), "discovering  0 B  0:00");
    }
}
