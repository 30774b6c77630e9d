//! The status a finished sync gives a policy. Pure.

use k8s_openapi::jiff::Timestamp;

use super::trigger::Trigger;
use crate::api::replication_policy::{
    DestinationStatus, ReplicationPolicySpec, ReplicationPolicyStatus, SyncRecord,
};
use crate::conditions::{self, Desired, READY};
use crate::engine::Report;

/// Condition type: a sync is running.
pub const SYNCING: &str = "Syncing";
/// Condition type: the last sync failed somewhere.
pub const DEGRADED: &str = "Degraded";

/// How a run ended.
pub enum Outcome<'a> {
    /// The engine ran; per-artifact failures are in the report.
    Ran(&'a Report),
    /// The run could not start (source unreachable, bad credentials, ...).
    Failed(&'a str),
}

/// The most characters of one destination's `lastError` (the start says what failed).
pub const MAX_ERROR_CHARS: usize = 512;
/// Conflicts listed per destination; the rest are counted in a last entry.
pub const MAX_CONFLICTS_LISTED: usize = 10;
/// Failed destinations named in the `Degraded` message and in Events per run; the rest are
/// counted (each one's error is in `status.destinations[].lastError`).
pub const MAX_FAILURES_NAMED: usize = 5;

/// `s` cut to `max` characters, marked when cut.
fn clip(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s,
    }
}

/// The first `max` of `items`, and `… and N more` when there were more.
fn bounded(mut items: Vec<String>, max: usize) -> Vec<String> {
    if items.len() > max {
        let more = items.len() - max;
        items.truncate(max);
        items.push(format!("… and {more} more"));
    }
    items
}

/// The `Degraded` message: the first failed destinations with their errors, the rest counted.
fn degraded_text(failed: &[(String, String)]) -> String {
    let named: Vec<String> = failed
        .iter()
        .take(MAX_FAILURES_NAMED)
        .map(|(d, e)| format!("{d}: {}", clip(e.clone(), MAX_ERROR_CHARS)))
        .collect();
    let mut text = named.join("; ");
    if failed.len() > MAX_FAILURES_NAMED {
        text.push_str(&format!(
            "; and {} more destinations failed (status.destinations[].lastError)",
            failed.len() - MAX_FAILURES_NAMED
        ));
    }
    text
}

/// The Event notes of a run's failed destinations: one per destination up to
/// [`MAX_FAILURES_NAMED`], then one counting the rest (no storm of Events from a large tree).
pub fn failure_notes(status: &ReplicationPolicyStatus) -> Vec<String> {
    bounded(
        status
            .destinations
            .iter()
            .filter_map(|d| {
                d.last_error
                    .as_ref()
                    .map(|e| format!("destination {}: {e}", d.name))
            })
            .collect(),
        MAX_FAILURES_NAMED,
    )
}

/// The Event notes of a run's tag conflicts (`overwrite: false`), bounded as
/// [`failure_notes`].
pub fn conflict_notes(status: &ReplicationPolicyStatus) -> Vec<String> {
    bounded(
        status
            .destinations
            .iter()
            .flat_map(|d| {
                d.conflicts.iter().map(move |c| {
                    format!(
                        "destination {}: {c}; left alone because overwrite is false",
                        d.name
                    )
                })
            })
            .collect(),
        MAX_FAILURES_NAMED,
    )
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Marks a run as started.
pub fn started(
    status: &mut ReplicationPolicyStatus,
    trigger: &Trigger,
    generation: Option<i64>,
    now: Timestamp,
) {
    let message = format!("{} sync started at {now}", trigger.name());
    conditions::upsert(
        &mut status.conditions,
        &Desired {
            type_: SYNCING,
            status: true,
            reason: trigger.name(),
            message: &message,
        },
        generation,
        now,
    );
}

/// Records `lag` (from the arrival of the oldest push a run covered to its end) at every
/// destination that run reached without an error.
pub fn record_push_lag(status: &mut ReplicationPolicyStatus, lag: std::time::Duration) {
    let millis = i64::try_from(lag.as_millis()).unwrap_or(i64::MAX);
    for d in status
        .destinations
        .iter_mut()
        .filter(|d| d.last_error.is_none())
    {
        d.last_push_lag_millis = Some(millis);
    }
}

/// Applies the outcome of a run that started at `start` to `status`.
pub fn finished(
    status: &mut ReplicationPolicyStatus,
    spec: &ReplicationPolicySpec,
    trigger: &Trigger,
    outcome: &Outcome<'_>,
    generation: Option<i64>,
    start: Timestamp,
    now: Timestamp,
) {
    let full = *trigger != Trigger::Push;
    let end = now.to_string();
    let (record, failed_destinations): (SyncRecord, Vec<(String, String)>) = match outcome {
        Outcome::Ran(report) => {
            let mut failed: Vec<(String, String)> = Vec::new();
            for f in &report.failures {
                let dest = if f.destination.is_empty() {
                    "<source>".to_string()
                } else {
                    f.destination.clone()
                };
                if !failed.iter().any(|(d, _)| *d == dest) {
                    failed.push((dest, format!("{}: {}", f.artifact, f.error)));
                }
            }
            let result = if report.success() {
                "Succeeded"
            } else if report.copied + report.skipped > 0
                // An artifact that reached 100 of 110 destinations failed somewhere, but the
                // run did not fail.
                || report.destinations.iter().any(|d| d.copied + d.skipped > 0)
            {
                "PartiallyFailed"
            } else {
                "Failed"
            };
            let record = SyncRecord {
                trigger: trigger.name().into(),
                start_time: Some(start.to_string()),
                completion_time: Some(end.clone()),
                result: result.into(),
                copied: as_i64(report.copied),
                skipped: as_i64(report.skipped),
                failed: as_i64(report.failed),
                conflicts: as_i64(report.conflicts),
                deleted: as_i64(report.deleted),
                unverified: as_i64(report.unverified),
                bytes: as_i64(report.bytes_read_from_source),
            };
            (record, failed)
        }
        Outcome::Failed(error) => {
            let record = SyncRecord {
                trigger: trigger.name().into(),
                start_time: Some(start.to_string()),
                completion_time: Some(end.clone()),
                result: "Failed".into(),
                ..Default::default()
            };
            (record, vec![("<source>".to_string(), error.to_string())])
        }
    };
    status.consecutive_failures = if record.result == "Succeeded" {
        0
    } else {
        status.consecutive_failures.saturating_add(1)
    };
    let source_failed = failed_destinations.iter().any(|(d, _)| d == "<source>");
    let mut destinations = Vec::new();
    for d in &spec.destinations {
        let old = status
            .destinations
            .iter()
            .find(|s| s.name == d.name)
            .cloned()
            .unwrap_or_default();
        let error = failed_destinations
            .iter()
            .find(|(n, _)| *n == d.name)
            .map(|(_, e)| e.clone());
        let counts = match outcome {
            Outcome::Ran(r) => r.destinations.iter().find(|x| x.name == d.name).cloned(),
            Outcome::Failed(_) => None,
        }
        .unwrap_or_default();
        let conflicts = match outcome {
            Outcome::Ran(r) => r
                .conflict_details
                .iter()
                .filter(|c| c.destination == d.name)
                .map(|c| {
                    format!(
                        "{} points at {}, the source at {}",
                        c.artifact, c.destination_digest, c.source_digest
                    )
                })
                .collect(),
            Outcome::Failed(_) => Vec::new(),
        };
        let conflicts = bounded(conflicts, MAX_CONFLICTS_LISTED);
        let ok = error.is_none() && !source_failed;
        destinations.push(DestinationStatus {
            name: d.name.clone(),
            // A push-triggered run covers one artifact: it can break but not establish sync.
            in_sync: if full { ok } else { old.in_sync && ok },
            last_sync_time: Some(end.clone()),
            last_error: error
                .or_else(|| source_failed.then(|| "the sync could not read the source".into()))
                .map(|e| clip(e, MAX_ERROR_CHARS)),
            copied: as_i64(counts.copied),
            failed: as_i64(counts.failed),
            conflicts,
            bytes_written: as_i64(counts.bytes_written),
            last_push_lag_millis: old.last_push_lag_millis,
        });
    }
    let in_sync = destinations.iter().filter(|d| d.in_sync).count();
    status.destinations_in_sync = Some(format!("{in_sync}/{}", destinations.len()));
    status.destinations = destinations;
    status.last_sync = Some(record);

    let idle = format!("last {} sync ended at {end}", trigger.name());
    conditions::upsert(
        &mut status.conditions,
        &Desired {
            type_: SYNCING,
            status: false,
            reason: "Idle",
            message: &idle,
        },
        generation,
        now,
    );
    let degraded_message = degraded_text(&failed_destinations);
    let degraded = if degraded_message.is_empty() {
        Desired {
            type_: DEGRADED,
            status: false,
            reason: "AsExpected",
            message: "the last sync reached every destination",
        }
    } else {
        let reason = if source_failed {
            "SourceUnavailable"
        } else {
            "DestinationFailed"
        };
        Desired {
            type_: DEGRADED,
            status: true,
            reason,
            message: &degraded_message,
        }
    };
    conditions::upsert(&mut status.conditions, &degraded, generation, now);
    let all = status.destinations.len();
    let ready_message = format!("{in_sync} of {all} destinations in sync");
    let ready = if in_sync == all {
        Desired {
            type_: READY,
            status: true,
            reason: "InSync",
            message: &ready_message,
        }
    } else {
        Desired {
            type_: READY,
            status: false,
            reason: "OutOfSync",
            message: &ready_message,
        }
    };
    conditions::upsert(&mut status.conditions, &ready, generation, now);
}

/// The Event text for the artifacts a run held back (`spec.verify`), naming the first few
/// and why; `None` when none was. Digests and reasons only: no key material.
pub fn held_back_note(report: &crate::engine::Report) -> Option<String> {
    const NAMED: usize = 5;
    if report.unverified == 0 {
        return None;
    }
    let named: Vec<String> = report
        .unverified_details
        .iter()
        .take(NAMED)
        .map(|h| format!("{} ({})", h.artifact, h.reason))
        .collect();
    let more = report.unverified_details.len().saturating_sub(NAMED);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Some(format!(
        "{} artifacts not copied: their signatures do not verify against spec.verify.keys: {}{tail}",
        report.unverified,
        named.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn held_back_artifacts_are_named_in_the_event() {
        let mut r = crate::engine::Report::default();
        assert_eq!(held_back_note(&r), None);
        let d = crate::engine::digest::Digest::of(b"x");
        r.record_unverified(
            (0..7)
                .map(|i| crate::engine::gate::Unverified {
                    artifact: format!("app:v{i}"),
                    digest: d.clone(),
                    refusal: crate::engine::verify::Refusal::Unsigned,
                })
                .collect(),
        );
        let note = held_back_note(&r).expect("note");
        assert!(note.starts_with("7 artifacts not copied"), "{note}");
        assert!(
            note.contains("app:v0 (unsigned)") && note.ends_with("and 2 more"),
            "{note}"
        );
    }

    use super::*;
    use crate::engine::report::{DestinationReport, Failure};

    fn spec() -> ReplicationPolicySpec {
        serde_json::from_value(serde_json::json!({
            "source": {"url": "https://hq.example.com"},
            "destinations": [{"name": "a", "url": "https://a.example.com"}, {"name": "b", "url": "https://b.example.com"}],
        }))
        .expect("valid spec")
    }

    /// A run in which destination `b` refused `apps/web:v1`.
    fn b_refused() -> Report {
        Report {
            failures: vec![Failure {
                artifact: "apps/web:v1".into(),
                destination: "b".into(),
                error: "connection refused".into(),
            }],
            ..Default::default()
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn cond<'a>(s: &'a ReplicationPolicyStatus, t: &str) -> (&'a str, &'a str) {
        let c = conditions::find(&s.conditions, t).expect("condition");
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn a_clean_full_sync_puts_every_destination_in_sync() {
        let report = Report {
            copied: 3,
            bytes_read_from_source: 100,
            destinations: vec![DestinationReport {
                name: "a".into(),
                copied: 3,
                bytes_written: 100,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut st = ReplicationPolicyStatus::default();
        started(
            &mut st,
            &Trigger::SpecChange,
            Some(1),
            t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(cond(&st, SYNCING), ("True", "SpecChange"));
        finished(
            &mut st,
            &spec(),
            &Trigger::SpecChange,
            &Outcome::Ran(&report),
            Some(1),
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:00:05Z"),
        );
        assert_eq!(cond(&st, SYNCING), ("False", "Idle"));
        assert_eq!(cond(&st, READY), ("True", "InSync"));
        assert_eq!(cond(&st, DEGRADED), ("False", "AsExpected"));
        assert_eq!(st.destinations_in_sync.as_deref(), Some("2/2"));
        let last = st.last_sync.as_ref().expect("record");
        assert_eq!(
            (last.result.as_str(), last.copied, last.bytes),
            ("Succeeded", 3, 100)
        );
        assert_eq!(st.destinations[0].bytes_written, 100);
    }

    #[test]
    fn a_failed_destination_is_degraded_and_the_others_stay_in_sync() {
        let report = Report {
            copied: 1,
            failed: 1,
            ..b_refused()
        };
        let mut st = ReplicationPolicyStatus::default();
        finished(
            &mut st,
            &spec(),
            &Trigger::Schedule,
            &Outcome::Ran(&report),
            Some(1),
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:00:05Z"),
        );
        assert_eq!(cond(&st, DEGRADED), ("True", "DestinationFailed"));
        assert_eq!(cond(&st, READY), ("False", "OutOfSync"));
        assert!(st.destinations[0].in_sync && !st.destinations[1].in_sync);
        assert!(
            st.destinations[1]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("connection refused"))
        );
        assert_eq!(
            st.last_sync.as_ref().map(|r| r.result.as_str()),
            Some("PartiallyFailed")
        );
    }

    #[test]
    fn push_lag_is_recorded_where_the_run_arrived_and_kept_across_runs() {
        let report = b_refused();
        let mut st = ReplicationPolicyStatus::default();
        let run = |st: &mut ReplicationPolicyStatus, report: &Report| {
            finished(
                st,
                &spec(),
                &Trigger::Push,
                &Outcome::Ran(report),
                Some(1),
                t("2026-01-01T00:00:00Z"),
                t("2026-01-01T00:00:01Z"),
            )
        };
        run(&mut st, &report);
        record_push_lag(&mut st, std::time::Duration::from_millis(420));
        assert_eq!(st.destinations[0].last_push_lag_millis, Some(420));
        assert_eq!(
            st.destinations[1].last_push_lag_millis, None,
            "b was not reached"
        );
        run(&mut st, &Report::default());
        assert_eq!(
            st.destinations[0].last_push_lag_millis,
            Some(420),
            "a later run without a new lag keeps the last one"
        );
    }

    #[test]
    fn a_large_tree_keeps_its_status_and_events_bounded() {
        let names: Vec<String> = (0..110).map(|i| format!("site-{i:03}")).collect();
        let spec: ReplicationPolicySpec = serde_json::from_value(serde_json::json!({
            "source": {"url": "https://hq.example.com"},
            "destinations": names.iter().map(|n| serde_json::json!({"name": n, "url": format!("https://{n}.example.com")})).collect::<Vec<_>>(),
        }))
        .expect("valid spec");
        let long = "x".repeat(5000);
        let mut report = Report {
            failed: 1,
            ..Default::default()
        };
        for n in &names {
            report.failures.push(Failure {
                artifact: "apps/web:v1".into(),
                destination: n.clone(),
                error: long.clone(),
            });
            for tag in 0..30 {
                report.conflicts += 1;
                report
                    .conflict_details
                    .push(crate::engine::report::Conflict {
                        artifact: format!("apps/web:t{tag}"),
                        destination: n.clone(),
                        source_digest: "sha256:a".into(),
                        destination_digest: "sha256:b".into(),
                    });
            }
        }
        let mut st = ReplicationPolicyStatus::default();
        finished(
            &mut st,
            &spec,
            &Trigger::Schedule,
            &Outcome::Ran(&report),
            Some(1),
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:00:05Z"),
        );
        assert_eq!(st.destinations_in_sync.as_deref(), Some("0/110"));
        assert_eq!(
            st.last_sync.as_ref().map(|r| r.result.as_str()),
            Some("Failed"),
            "no destination got anything"
        );
        report.destinations = vec![DestinationReport {
            name: "site-000".into(),
            copied: 1,
            ..Default::default()
        }];
        let mut partial = ReplicationPolicyStatus::default();
        finished(
            &mut partial,
            &spec,
            &Trigger::Push,
            &Outcome::Ran(&report),
            Some(1),
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:00:05Z"),
        );
        assert_eq!(
            partial.last_sync.as_ref().map(|r| r.result.as_str()),
            Some("PartiallyFailed"),
            "the artifact failed at some destinations and reached others"
        );
        let d = &st.destinations[0];
        assert_eq!(d.conflicts.len(), MAX_CONFLICTS_LISTED + 1);
        assert_eq!(
            d.conflicts.last().map(String::as_str),
            Some("… and 20 more")
        );
        let err = d.last_error.as_deref().expect("error");
        assert_eq!(err.chars().count(), MAX_ERROR_CHARS + 1, "{err}");
        assert!(err.starts_with("apps/web:v1: xxx") && err.ends_with('…'));
        let degraded = conditions::find(&st.conditions, DEGRADED).expect("Degraded");
        assert!(
            degraded
                .message
                .ends_with("; and 105 more destinations failed (status.destinations[].lastError)"),
            "{}",
            degraded.message
        );
        assert!(
            degraded.message.len() < 4 * 1024,
            "{}",
            degraded.message.len()
        );
        let notes = failure_notes(&st);
        assert_eq!(notes.len(), MAX_FAILURES_NAMED + 1);
        assert_eq!(notes.last().map(String::as_str), Some("… and 105 more"));
        let notes = conflict_notes(&st);
        assert_eq!(notes.len(), MAX_FAILURES_NAMED + 1);
        assert!(notes[0].starts_with("destination site-000: apps/web:t0 points at sha256:b"));
        let bytes = serde_json::to_vec(&st).expect("json").len();
        assert!(
            bytes < 256 * 1024,
            "status of 110 failed destinations: {bytes} bytes"
        );
    }

    #[test]
    fn a_push_run_cannot_establish_sync_on_its_own() {
        let mut st = ReplicationPolicyStatus::default();
        finished(
            &mut st,
            &spec(),
            &Trigger::Push,
            &Outcome::Ran(&Report::default()),
            Some(1),
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:00:01Z"),
        );
        assert_eq!(st.destinations_in_sync.as_deref(), Some("0/2"));
    }

    #[test]
    fn a_run_that_cannot_start_marks_the_source() {
        let mut st = ReplicationPolicyStatus::default();
        finished(
            &mut st,
            &spec(),
            &Trigger::Schedule,
            &Outcome::Failed("source: connection refused"),
            Some(1),
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:00:01Z"),
        );
        assert_eq!(cond(&st, DEGRADED), ("True", "SourceUnavailable"));
        assert_eq!(
            st.last_sync.as_ref().map(|r| r.result.as_str()),
            Some("Failed")
        );
        assert_eq!(st.consecutive_failures, 1);
        finished(
            &mut st,
            &spec(),
            &Trigger::Retry,
            &Outcome::Failed("source: connection refused"),
            Some(1),
            t("2026-01-01T00:00:11Z"),
            t("2026-01-01T00:00:12Z"),
        );
        assert_eq!(st.consecutive_failures, 2, "failures in a row are counted");
        finished(
            &mut st,
            &spec(),
            &Trigger::Retry,
            &Outcome::Ran(&Report::default()),
            Some(1),
            t("2026-01-01T00:00:32Z"),
            t("2026-01-01T00:00:33Z"),
        );
        assert_eq!(st.consecutive_failures, 0, "a clean sync resets the count");
        assert_eq!(st.destinations_in_sync.as_deref(), Some("2/2"));
    }
}
