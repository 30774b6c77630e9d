//! The push work waiting for a policy's next run. Pure.
//!
//! Work is only *peeked* when a run is planned and *committed* once the run that covered it
//! has finished; a run that was refused or failed before it could cover the work *requeues*
//! it, and a reconcile that ends early (an API error while dereferencing) leaves it in place,
//! so nothing a notification named is lost while the operator runs. Work that arrives while
//! a run is going on is newer than the peeked batch and stays for the next run, even when it
//! names the same tag (the tag may have moved since the run looked it up).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::engine::scope::Named;

/// Items one policy keeps at most; beyond, the queue overflows and the next run is a full
/// sync (which covers whatever was dropped).
pub const MAX_ITEMS: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    /// When the item first arrived (kept when it arrives again, for the lag).
    arrived: Instant,
    /// Sequence number of its latest arrival.
    seq: u64,
    /// Runs that were meant to cover it and did not.
    attempts: u32,
}

/// The pending push work of one policy.
#[derive(Clone, Debug)]
pub struct PendingQueue {
    entries: BTreeMap<Named, Entry>,
    /// Sequence number of the latest arrival.
    seq: u64,
    /// Sequence number at which an item was dropped because the queue was full.
    overflowed: Option<(u64, Instant)>,
    /// Sequence number up to which work has been requeued (an overflow before it is old).
    requeued_upto: u64,
    limit: usize,
}

impl Default for PendingQueue {
    fn default() -> Self {
        Self::with_limit(MAX_ITEMS)
    }
}

/// What one run is meant to cover: a snapshot of the queue, committed or requeued after the
/// run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The items with their first arrival.
    pub items: Vec<(Named, Instant)>,
    /// The queue overflowed before this batch: the run must be a full sync.
    pub overflowed: bool,
    /// The most runs any of these items has already missed.
    pub attempts: u32,
    /// Some item has missed no run yet (a push that arrived since the last run).
    pub fresh: bool,
    upto: u64,
    oldest: Instant,
}

impl Batch {
    /// Arrival of the oldest item (or of the overflow), for the push lag.
    pub fn oldest(&self) -> Instant {
        self.oldest
    }

    /// The items named (without their arrival times).
    pub fn named(&self) -> Vec<Named> {
        self.items.iter().map(|(n, _)| n.clone()).collect()
    }
}

impl PendingQueue {
    /// A queue keeping at most `limit` items.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            seq: 0,
            overflowed: None,
            requeued_upto: 0,
            limit: limit.max(1),
        }
    }

    /// Adds `item`, arrived at `now`. The same item already waiting keeps its first arrival
    /// but counts as new (a run already under way does not commit it).
    pub fn push(&mut self, item: Named, now: Instant) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.entries.get_mut(&item) {
            e.seq = seq;
            return;
        }
        if self.entries.len() >= self.limit {
            let since = self.overflowed.map_or(now, |(_, at)| at);
            self.overflowed = Some((seq, since));
            return;
        }
        self.entries.insert(
            item,
            Entry {
                arrived: now,
                seq,
                attempts: 0,
            },
        );
    }

    /// Work was lost (more than a status could keep, or not readable): the next run is a
    /// full sync, which covers it.
    pub fn overflow(&mut self, now: Instant) {
        self.seq += 1;
        let since = self.overflowed.map_or(now, |(_, at)| at);
        self.overflowed = Some((self.seq, since));
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.overflowed.is_none()
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// What a run started now would cover, without taking it (`None`: nothing waits).
    pub fn peek(&self) -> Option<Batch> {
        if self.is_empty() {
            return None;
        }
        let items: Vec<(Named, Instant)> = self
            .entries
            .iter()
            .map(|(n, e)| (n.clone(), e.arrived))
            .collect();
        let oldest = items
            .iter()
            .map(|(_, at)| *at)
            .chain(self.overflowed.map(|(_, at)| at))
            .min()?;
        Some(Batch {
            items,
            overflowed: self.overflowed.is_some(),
            attempts: self.entries.values().map(|e| e.attempts).max().unwrap_or(0),
            fresh: self.entries.values().any(|e| e.attempts == 0)
                || self
                    .overflowed
                    .is_some_and(|(seq, _)| seq > self.requeued_upto),
            upto: self.seq,
            oldest,
        })
    }

    /// The run covering `batch` finished: its items are done, except those that arrived again
    /// since the batch was peeked.
    pub fn commit(&mut self, batch: &Batch) {
        for (item, _) in &batch.items {
            if self.entries.get(item).is_some_and(|e| e.seq <= batch.upto) {
                self.entries.remove(item);
            }
        }
        if batch.overflowed && self.overflowed.is_some_and(|(seq, _)| seq <= batch.upto) {
            self.overflowed = None;
        }
    }

    /// The run meant to cover `batch` did not (refused, or failed before it copied anything):
    /// its items stay, counting the missed run.
    pub fn requeue(&mut self, batch: Batch) {
        self.requeued_upto = self.requeued_upto.max(batch.upto);
        for (item, _) in batch.items {
            if let Some(e) = self.entries.get_mut(&item) {
                e.attempts = e.attempts.saturating_add(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn push(tag: &str) -> Named {
        Named::Pushed {
            repository: "apps/web".into(),
            tag: tag.into(),
        }
    }

    #[test]
    fn work_is_kept_until_the_run_covering_it_is_committed() {
        let t0 = Instant::now();
        let mut q = PendingQueue::default();
        assert!(q.peek().is_none());
        q.push(push("v1"), t0);
        q.push(push("v2"), t0 + Duration::from_millis(5));
        let batch = q.peek().expect("work");
        assert_eq!(batch.named(), [push("v1"), push("v2")]);
        assert_eq!(batch.oldest(), t0);
        // Peeking takes nothing: a reconcile that ends early (dereference failed) leaves it.
        assert_eq!(q.peek().expect("still there"), batch);
        q.commit(&batch);
        assert!(q.is_empty() && q.peek().is_none());
    }

    #[test]
    fn a_refused_or_failed_run_requeues_its_work() {
        let t0 = Instant::now();
        let mut q = PendingQueue::default();
        q.push(push("v1"), t0);
        let batch = q.peek().expect("work");
        q.requeue(batch);
        let again = q.peek().expect("kept");
        assert_eq!(again.named(), [push("v1")]);
        assert_eq!(again.attempts, 1);
        assert!(!again.fresh, "it waits for the policy's retry");
        assert_eq!(again.oldest(), t0, "the lag counts from the first arrival");
        q.push(push("v2"), t0);
        assert!(q.peek().is_some_and(|b| b.fresh), "a new push runs at once");
    }

    #[test]
    fn work_arriving_during_a_run_stays_for_the_next() {
        let t0 = Instant::now();
        let mut q = PendingQueue::default();
        q.push(push("v1"), t0);
        let batch = q.peek().expect("work");
        // During the run: v1 is pushed again (it may point elsewhere now) and v2 arrives.
        q.push(push("v1"), t0 + Duration::from_secs(1));
        q.push(push("v2"), t0 + Duration::from_secs(1));
        q.commit(&batch);
        let next = q.peek().expect("newer work");
        assert_eq!(next.named(), [push("v1"), push("v2")]);
        assert_eq!(next.oldest(), t0, "v1 has waited since its first arrival");
        q.commit(&next);
        assert!(q.is_empty());
    }

    #[test]
    fn an_overflowing_queue_asks_for_a_full_sync() {
        let t0 = Instant::now();
        let mut q = PendingQueue::with_limit(2);
        for t in ["a", "b", "c", "d"] {
            q.push(push(t), t0);
        }
        assert_eq!(q.len(), 2);
        let batch = q.peek().expect("work");
        assert!(batch.overflowed);
        q.commit(&batch);
        assert!(q.is_empty(), "the full sync covered what was dropped");
        // An overflow after the peek is not cleared by the earlier batch.
        q.push(push("a"), t0);
        q.push(push("b"), t0);
        let batch = q.peek().expect("work");
        q.push(push("c"), t0);
        q.commit(&batch);
        assert!(q.peek().is_some_and(|b| b.overflowed && b.items.is_empty()));
    }
}
