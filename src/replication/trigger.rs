//! When a full sync of a policy is due. Pure: the reconciler passes in what it read and the
//! time, and requeues for the returned wake-up time.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use super::validate::parse_schedule;
use crate::api::SYNC_REQUESTED_ANNOTATION;
use crate::api::replication_policy::{ReplicationPolicySpec, ReplicationPolicyStatus};

/// Why a sync runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The spec changed (or the policy is new).
    SpecChange,
    /// The `flotilla.dev/sync-requested` annotation has a new value.
    Request(String),
    /// The cron schedule fired.
    Schedule,
    /// Push events from the source.
    Push,
    /// The last sync failed somewhere: a full sync again, after a backoff.
    Retry,
}

impl Trigger {
    /// The name recorded in `status.lastSync.trigger`.
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::SpecChange => "SpecChange",
            Trigger::Request(_) => "Request",
            Trigger::Schedule => "Schedule",
            Trigger::Push => "Push",
            Trigger::Retry => "Retry",
        }
    }
}

/// The full sync due now, if any, and when to look again for the next scheduled one.
pub fn due(
    spec: &ReplicationPolicySpec,
    status: &ReplicationPolicyStatus,
    generation: Option<i64>,
    annotations: &BTreeMap<String, String>,
    now: Timestamp,
) -> (Option<Trigger>, Option<Timestamp>) {
    if spec.suspend {
        return (None, None);
    }
    let retry = retry_at(status);
    let next = match (next_scheduled(spec, status), retry) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let trigger = if status.synced_generation != generation {
        Some(Trigger::SpecChange)
    } else if let Some(v) = annotations.get(SYNC_REQUESTED_ANNOTATION)
        && status.handled_sync_request.as_ref() != Some(v)
    {
        Some(Trigger::Request(v.clone()))
    } else if retry.is_some_and(|t| t <= now) {
        Some(Trigger::Retry)
    } else if next.is_some_and(|t| t <= now) {
        Some(Trigger::Schedule)
    } else {
        None
    };
    (trigger, next)
}

/// First retry after a failure; doubled per further failure in a row.
const RETRY_BASE_SECONDS: i64 = 10;
/// Longest wait between retries.
const RETRY_MAX_SECONDS: i64 = 300;

/// When a policy whose last sync failed is retried: the end of that sync plus 10 s × 2^(n-1)
/// for n failures in a row, at most 5 minutes. `None` when the last sync succeeded.
pub fn retry_at(status: &ReplicationPolicyStatus) -> Option<Timestamp> {
    let n = status.consecutive_failures;
    if n <= 0 {
        return None;
    }
    let ended: Timestamp = status.last_sync.as_ref()?.completion_time.as_ref()?.0;
    let exponent = u32::try_from(n - 1).unwrap_or(u32::MAX).min(16);
    let wait = RETRY_BASE_SECONDS
        .saturating_mul(1 << exponent)
        .min(RETRY_MAX_SECONDS);
    ended
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(wait))
        .ok()
}

/// The first firing of the schedule after the last full sync started (`None`: no schedule,
/// or no full sync yet, which the spec-change trigger covers).
pub fn next_scheduled(
    spec: &ReplicationPolicySpec,
    status: &ReplicationPolicyStatus,
) -> Option<Timestamp> {
    let schedule = parse_schedule(spec.trigger.schedule.as_deref()?).ok()?;
    let last: Timestamp = status.last_full_sync_time.as_ref()?.0;
    let after = chrono::DateTime::<chrono::Utc>::from_timestamp(last.as_second(), 0)?;
    let next = schedule.after(&after).next()?;
    Timestamp::from_second(next.timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn spec(schedule: Option<&str>) -> ReplicationPolicySpec {
        let mut s: ReplicationPolicySpec = serde_json::from_value(serde_json::json!({
            "source": {"url": "https://hq.example.com"},
            "destinations": [{"name": "a", "url": "https://a.example.com"}],
        }))
        .expect("valid spec");
        s.trigger.schedule = schedule.map(str::to_string);
        s
    }

    fn t(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn synced(generation: i64, at: &str) -> ReplicationPolicyStatus {
        ReplicationPolicyStatus {
            synced_generation: Some(generation),
            last_full_sync_time: Some(Time(at.parse().expect("time"))),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_or_changed_policy_syncs() {
        let none = BTreeMap::new();
        let (trigger, _) = due(
            &spec(None),
            &ReplicationPolicyStatus::default(),
            Some(1),
            &none,
            t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(trigger, Some(Trigger::SpecChange));
        let (trigger, _) = due(
            &spec(None),
            &synced(1, "2026-01-01T00:00:00Z"),
            Some(2),
            &none,
            t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(trigger, Some(Trigger::SpecChange));
    }

    #[test]
    fn a_new_annotation_value_requests_a_sync_once() {
        let mut a = BTreeMap::new();
        a.insert(SYNC_REQUESTED_ANNOTATION.to_string(), "now-1".to_string());
        let mut st = synced(1, "2026-01-01T00:00:00Z");
        let (trigger, _) = due(&spec(None), &st, Some(1), &a, t("2026-01-01T00:00:01Z"));
        assert_eq!(trigger, Some(Trigger::Request("now-1".into())));
        st.handled_sync_request = Some("now-1".into());
        assert_eq!(
            due(&spec(None), &st, Some(1), &a, t("2026-01-01T00:00:01Z")).0,
            None
        );
    }

    fn failed(n: i64, ended: &str) -> ReplicationPolicyStatus {
        ReplicationPolicyStatus {
            consecutive_failures: n,
            last_sync: Some(crate::api::replication_policy::SyncRecord {
                completion_time: Some(Time(ended.parse().expect("time"))),
                result: crate::api::replication_policy::SyncResult::Failed,
                ..Default::default()
            }),
            ..synced(1, "2026-01-01T00:00:00Z")
        }
    }

    #[test]
    fn a_failed_sync_is_retried_with_a_doubling_backoff() {
        let none = BTreeMap::new();
        let s = spec(Some("0 * * * *"));
        let st = failed(1, "2026-01-01T00:00:05Z");
        let (trigger, next) = due(&s, &st, Some(1), &none, t("2026-01-01T00:00:14Z"));
        assert_eq!(trigger, None);
        assert_eq!(next, Some(t("2026-01-01T00:00:15Z")), "wakes for the retry");
        assert_eq!(
            due(&s, &st, Some(1), &none, t("2026-01-01T00:00:15Z")).0,
            Some(Trigger::Retry)
        );
        assert_eq!(
            retry_at(&failed(3, "2026-01-01T00:00:05Z")),
            Some(t("2026-01-01T00:00:45Z"))
        );
        assert_eq!(
            retry_at(&failed(40, "2026-01-01T00:00:05Z")),
            Some(t("2026-01-01T00:05:05Z")),
            "capped at 5 minutes"
        );
        assert_eq!(retry_at(&failed(0, "2026-01-01T00:00:05Z")), None);
    }

    #[test]
    fn the_schedule_fires_after_the_last_full_sync() {
        let none = BTreeMap::new();
        let st = synced(1, "2026-01-01T00:10:30Z");
        let s = spec(Some("*/15 * * * *"));
        let (trigger, next) = due(&s, &st, Some(1), &none, t("2026-01-01T00:14:00Z"));
        assert_eq!(trigger, None);
        assert_eq!(next, Some(t("2026-01-01T00:15:00Z")));
        assert_eq!(
            due(&s, &st, Some(1), &none, t("2026-01-01T00:15:00Z")).0,
            Some(Trigger::Schedule)
        );
    }

    #[test]
    fn suspend_stops_everything() {
        let mut s = spec(Some("* * * * *"));
        s.suspend = true;
        let (trigger, next) = due(
            &s,
            &ReplicationPolicyStatus::default(),
            Some(1),
            &BTreeMap::new(),
            t("2026-01-01T00:00:00Z"),
        );
        assert_eq!((trigger, next), (None, None));
    }
}
