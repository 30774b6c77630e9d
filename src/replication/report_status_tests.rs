//! Tests of the run report → status mapping (`super`).

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
        (last.result.name(), last.copied, last.bytes),
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
        st.last_sync.as_ref().map(|r| r.result.name()),
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
        st.last_sync.as_ref().map(|r| r.result.name()),
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
        partial.last_sync.as_ref().map(|r| r.result.name()),
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
        st.last_sync.as_ref().map(|r| r.result.name()),
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
