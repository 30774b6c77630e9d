//! Reading a policy through a cache that has not yet seen the operator's own last status
//! write. Pure.
//!
//! A reconcile reads the policy from the watch cache. Right after a run's status apply the
//! cache can still hold the status from before it (the watch event is on its way), and a
//! reconcile queued meanwhile would then see the request not yet handled, the spec change not
//! yet synced or the schedule already due, and run the same sync again. The operator is the
//! only writer of the status, so what it wrote last is authoritative while the cache is older.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::replication_policy::{ReplicationPolicyStatus, SyncRecord};

/// What a run's status apply said about when to sync next.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    completed: Time,
    last_sync: SyncRecord,
    synced_generation: Option<i64>,
    handled_sync_request: Option<String>,
    last_full_sync_time: Option<Time>,
    consecutive_failures: i64,
}

/// What `status` (just applied after a run) says about when to sync next; `None` without a
/// finished run.
pub fn written(status: &ReplicationPolicyStatus) -> Option<Written> {
    let last_sync = status.last_sync.clone()?;
    Some(Written {
        completed: last_sync.completion_time.clone()?,
        last_sync,
        synced_generation: status.synced_generation,
        handled_sync_request: status.handled_sync_request.clone(),
        last_full_sync_time: status.last_full_sync_time.clone(),
        consecutive_failures: status.consecutive_failures,
    })
}

/// Brings `status` (as read from the cache) up to `w` when it predates that write; `true`
/// when it did.
pub fn freshen(status: &mut ReplicationPolicyStatus, w: &Written) -> bool {
    let read = status
        .last_sync
        .as_ref()
        .and_then(|s| s.completion_time.as_ref());
    if read.is_some_and(|t| *t >= w.completed) {
        return false;
    }
    status.last_sync = Some(w.last_sync.clone());
    status.synced_generation = w.synced_generation;
    status.handled_sync_request = w.handled_sync_request.clone();
    status.last_full_sync_time = w.last_full_sync_time.clone();
    status.consecutive_failures = w.consecutive_failures;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Time {
        Time(s.parse().expect("time"))
    }

    fn after_run(ended: &str, generation: i64, request: &str) -> ReplicationPolicyStatus {
        ReplicationPolicyStatus {
            last_sync: Some(SyncRecord {
                completion_time: Some(at(ended)),
                ..Default::default()
            }),
            synced_generation: Some(generation),
            handled_sync_request: Some(request.into()),
            last_full_sync_time: Some(at(ended)),
            ..Default::default()
        }
    }

    #[test]
    fn a_cache_older_than_the_last_write_reads_as_that_write() {
        let new = after_run("2026-12-01T10:00:05Z", 2, "r2");
        let w = written(&new).expect("written");
        let mut stale = after_run("2026-12-01T09:00:00Z", 1, "r1");
        assert!(freshen(&mut stale, &w));
        assert_eq!(stale.synced_generation, Some(2));
        assert_eq!(stale.handled_sync_request.as_deref(), Some("r2"));
        assert_eq!(stale.last_full_sync_time, new.last_full_sync_time);
        assert_eq!(stale.last_sync, new.last_sync);

        let mut never = ReplicationPolicyStatus::default();
        assert!(freshen(&mut never, &w), "a cache from before the first run");
        assert_eq!(never.handled_sync_request.as_deref(), Some("r2"));
    }

    #[test]
    fn a_cache_that_caught_up_or_moved_on_is_left_alone() {
        let w = written(&after_run("2026-12-01T10:00:05Z", 2, "r2")).expect("written");
        for ended in ["2026-12-01T10:00:05Z", "2026-12-01T11:00:00Z"] {
            let mut read = after_run(ended, 3, "r3");
            let before = read.clone();
            assert!(!freshen(&mut read, &w), "{ended}");
            assert_eq!(read, before);
        }
        assert_eq!(written(&ReplicationPolicyStatus::default()), None);
    }
}
