//! The status, Events and next look a reconcile's outcome gives a policy. Pure: the
//! controller applies the status once and publishes the Events.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::reasons;
use super::report_status::{self, Outcome, SYNCING};
use super::trigger::Trigger;
use super::validate::Issue;
use crate::api::replication_policy::{ReplicationPolicySpec, ReplicationPolicyStatus, SyncResult};
use crate::conditions::{self, Desired, READY};

/// An Event to publish about the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Warning (else Normal).
    pub warning: bool,
    /// Its reason ([`reasons`]).
    pub reason: &'static str,
    /// `Validate` or `Sync`.
    pub action: &'static str,
    /// What happened.
    pub message: String,
}

impl Note {
    fn warning(reason: &'static str, action: &'static str, message: String) -> Self {
        Self {
            warning: true,
            reason,
            action,
            message,
        }
    }
}

/// What to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct After {
    /// The new status (applied when it differs from the old one).
    pub status: ReplicationPolicyStatus,
    /// Events to publish.
    pub notes: Vec<Note>,
    /// When to look again.
    pub requeue: Duration,
}

/// The status every outcome starts from: the old one, observed at `generation`, with the
/// source in short form.
pub fn base(
    old: &ReplicationPolicyStatus,
    source: String,
    generation: Option<i64>,
    destinations: usize,
) -> ReplicationPolicyStatus {
    let mut st = ReplicationPolicyStatus {
        observed_generation: generation,
        source: Some(source),
        ..old.clone()
    };
    if st.destinations_in_sync.is_none() {
        st.destinations_in_sync = Some(format!("0/{destinations}"));
    }
    st
}

/// The policy cannot run: Ready=False with the first issue's reason and every issue, and an
/// Event when that is news.
pub fn invalid(
    mut st: ReplicationPolicyStatus,
    issues: &[Issue],
    generation: Option<i64>,
    now: Timestamp,
    requeue: Duration,
) -> After {
    let reason = issues.first().map_or(reasons::INVALID_SPEC, |i| i.reason);
    let message = issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let old_ready =
        conditions::find(&st.conditions, READY).map(|c| (c.reason.clone(), c.message.clone()));
    let news = old_ready != Some((reason.to_string(), message.clone()));
    conditions::upsert(
        &mut st.conditions,
        &Desired {
            type_: READY,
            status: false,
            reason,
            message: &message,
        },
        generation,
        now,
    );
    let notes = if news {
        vec![Note::warning(reason, "Validate", message)]
    } else {
        Vec::new()
    };
    After {
        status: st,
        notes,
        requeue,
    }
}

/// The policy was invalid and is not any more: Ready=False/OutOfSync until a sync says
/// whether it is in sync.
pub fn valid(st: &mut ReplicationPolicyStatus, generation: Option<i64>, now: Timestamp) {
    if conditions::find(&st.conditions, READY)
        .is_some_and(|c| c.status == "False" && c.reason != reasons::OUT_OF_SYNC)
    {
        conditions::upsert(
            &mut st.conditions,
            &Desired {
                type_: READY,
                status: false,
                reason: reasons::OUT_OF_SYNC,
                message: "the policy is valid; syncing",
            },
            generation,
            now,
        );
    }
}

/// Waiting for destinations in their garbage-collection window (not a failure).
pub fn waiting(
    mut st: ReplicationPolicyStatus,
    destinations: &[String],
    generation: Option<i64>,
    now: Timestamp,
    requeue: Duration,
) -> After {
    let message = format!(
        "waiting: destination {} in its garbage-collection window (read-only)",
        destinations.join(", ")
    );
    conditions::upsert(
        &mut st.conditions,
        &Desired {
            type_: SYNCING,
            status: false,
            reason: reasons::MAINTENANCE_WINDOW,
            message: &message,
        },
        generation,
        now,
    );
    After {
        status: st,
        notes: Vec::new(),
        requeue,
    }
}

/// What a finished run gives.
pub struct Ran<'a> {
    /// The policy's spec.
    pub spec: &'a ReplicationPolicySpec,
    /// Why it ran.
    pub trigger: &'a Trigger,
    /// How it ended.
    pub outcome: Outcome<'a>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// When it started.
    pub start: Timestamp,
    /// When it ended.
    pub now: Timestamp,
    /// From the oldest push it covered to its end (`None`: it covered none).
    pub push_lag: Option<Duration>,
    /// Its wall time in seconds.
    pub elapsed: f64,
    /// When to look again after a success with nothing waiting.
    pub requeue: Duration,
    /// Push work arrived during the run.
    pub more_pending: bool,
    /// The soonest look again after a failure.
    pub retry: Duration,
}

/// The status and Events of a finished run.
pub fn ran(mut st: ReplicationPolicyStatus, r: &Ran<'_>) -> After {
    report_status::finished(
        &mut st,
        r.spec,
        r.trigger,
        &r.outcome,
        r.generation,
        r.start,
        r.now,
    );
    let report = match &r.outcome {
        Outcome::Ran(report) => Some(*report),
        Outcome::Failed(_) => None,
    };
    if let (Some(lag), Some(_)) = (r.push_lag, report) {
        report_status::record_push_lag(&mut st, lag);
    }
    if *r.trigger != Trigger::Push {
        st.synced_generation = r.generation;
        st.last_full_sync_time = Some(crate::api::common::status_time(r.start));
        if let Trigger::Request(v) = r.trigger {
            st.handled_sync_request = Some(v.clone());
        }
    }
    let record = st.last_sync.clone().unwrap_or_default();
    let warning = record.result != SyncResult::Succeeded;
    let mut notes = vec![Note {
        warning,
        reason: if warning {
            reasons::SYNC_FAILED
        } else {
            reasons::SYNCED
        },
        action: "Sync",
        message: format!(
            "{} sync {}: {} copied, {} skipped, {} failed, {} bytes read from the source in {:.1}s",
            r.trigger.name(),
            record.result,
            record.copied,
            record.skipped,
            record.failed,
            record.bytes,
            r.elapsed
        ),
    }];
    if let Some(msg) = report.and_then(report_status::held_back_note) {
        notes.push(Note::warning(reasons::ARTIFACTS_HELD_BACK, "Sync", msg));
    }
    if let Some(report) = report.filter(|rep| rep.deletions_withheld > 0) {
        let msg = format!(
            "deletion sync would delete {} tags, more than spec.maxDeletions ({}), so none was deleted; check the source, then raise spec.maxDeletions if they are meant to go",
            report.deletions_withheld, r.spec.max_deletions
        );
        notes.push(Note::warning(reasons::DELETIONS_WITHHELD, "Sync", msg));
    }
    // Bounded: a tree of 110 sites with 10 down makes a handful of Events, not 10.
    for msg in super::report_status::conflict_notes(&st) {
        notes.push(Note::warning(reasons::TAG_CONFLICT, "Sync", msg));
    }
    if warning {
        for msg in super::report_status::failure_notes(&st) {
            notes.push(Note::warning(reasons::DESTINATION_FAILED, "Sync", msg));
        }
    }
    // Whatever arrived meanwhile, or a failed destination, gets another look soon.
    let requeue = if warning || r.more_pending {
        Duration::from_secs(1).max(r.retry.min(r.requeue))
    } else {
        r.requeue
    };
    After {
        status: st,
        notes,
        requeue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::report::{DestinationReport, Report};

    fn spec() -> ReplicationPolicySpec {
        serde_json::from_value(serde_json::json!({
            "source": {"url": "https://hq.example.com"},
            "destinations": [{"name": "east", "url": "https://e.example.com"},
                             {"name": "west", "url": "https://w.example.com"}],
        }))
        .expect("spec")
    }

    fn t(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    fn ready(st: &ReplicationPolicyStatus) -> (String, String) {
        let c = conditions::find(&st.conditions, READY).expect("Ready");
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn an_invalid_policy_says_why_once() {
        let issues = [Issue {
            reason: reasons::REGISTRY_NOT_FOUND,
            field: "spec.source.registryRef".into(),
            message: "Registry \"hq\" not found".into(),
        }];
        let st = base(&ReplicationPolicyStatus::default(), "x".into(), Some(1), 2);
        assert_eq!(st.destinations_in_sync.as_deref(), Some("0/2"));
        let a = invalid(
            st,
            &issues,
            Some(1),
            t("2026-01-01T00:00:00Z"),
            Duration::from_secs(300),
        );
        assert_eq!(
            ready(&a.status),
            ("False".into(), "RegistryNotFound".into())
        );
        assert_eq!(a.notes.len(), 1);
        let again = invalid(
            a.status,
            &issues,
            Some(1),
            t("2026-01-01T00:01:00Z"),
            Duration::ZERO,
        );
        assert!(again.notes.is_empty(), "no Event when nothing changed");
        let mut st = again.status;
        valid(&mut st, Some(1), t("2026-01-01T00:02:00Z"));
        assert_eq!(ready(&st), ("False".into(), "OutOfSync".into()));
    }

    fn ran_with<'a>(
        spec: &'a ReplicationPolicySpec,
        trigger: &'a Trigger,
        outcome: Outcome<'a>,
    ) -> Ran<'a> {
        Ran {
            spec,
            trigger,
            outcome,
            generation: Some(3),
            start: t("2026-01-01T00:00:00Z"),
            now: t("2026-01-01T00:00:02Z"),
            push_lag: Some(Duration::from_millis(420)),
            elapsed: 2.0,
            requeue: Duration::from_secs(300),
            more_pending: false,
            retry: Duration::from_secs(5),
        }
    }

    /// A report of one artifact copied to each of `copied_to` (of east and west).
    fn copied_to(names: &[&str]) -> Report {
        let dest = |name: &str| DestinationReport {
            name: name.into(),
            copied: u64::from(names.contains(&name)),
            ..Default::default()
        };
        Report {
            copied: 1,
            destinations: vec![dest("east"), dest("west")],
            ..Default::default()
        }
    }

    #[test]
    fn a_push_run_records_its_lag_and_keeps_the_full_sync_marks() {
        let s = spec();
        let report = copied_to(&["east", "west"]);
        let a = ran(
            ReplicationPolicyStatus::default(),
            &ran_with(&s, &Trigger::Push, Outcome::Ran(&report)),
        );
        assert!(
            a.status
                .destinations
                .iter()
                .all(|d| d.last_push_lag_millis == Some(420))
        );
        assert_eq!(
            a.status.synced_generation, None,
            "a push run is no full sync"
        );
        assert_eq!(a.requeue, Duration::from_secs(300));
        assert_eq!((a.notes.len(), a.notes[0].reason), (1, reasons::SYNCED));
        let full = ran(
            ReplicationPolicyStatus::default(),
            &ran_with(&s, &Trigger::Request("now".into()), Outcome::Ran(&report)),
        );
        assert_eq!(full.status.synced_generation, Some(3));
        assert_eq!(full.status.handled_sync_request.as_deref(), Some("now"));
    }

    #[test]
    fn an_unreachable_destination_fails_alone_and_is_looked_at_again_soon() {
        let s = spec();
        let mut report = copied_to(&["east"]);
        report.record_unreachable("west", None, "connection refused".into());
        let a = ran(
            ReplicationPolicyStatus::default(),
            &ran_with(&s, &Trigger::Push, Outcome::Ran(&report)),
        );
        let west = a
            .status
            .destinations
            .iter()
            .find(|d| d.name == "west")
            .expect("west");
        assert!(
            west.last_error
                .as_deref()
                .is_some_and(|e| e.contains("connection refused"))
        );
        assert_eq!(west.last_push_lag_millis, None, "west did not get the push");
        let reasons: Vec<&str> = a.notes.iter().map(|n| n.reason).collect();
        assert_eq!(reasons, [reasons::SYNC_FAILED, reasons::DESTINATION_FAILED]);
        assert_eq!(a.requeue, Duration::from_secs(5));
        let failed = ran(
            ReplicationPolicyStatus::default(),
            &ran_with(&s, &Trigger::Push, Outcome::Failed("source down")),
        );
        assert_eq!(failed.status.consecutive_failures, 1);
        assert!(
            failed
                .status
                .destinations
                .iter()
                .all(|d| d.last_push_lag_millis.is_none())
        );
    }
}
