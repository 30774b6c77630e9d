//! The garbage-collection window of a fleet as a pure state machine: what the reconciler
//! observed (the status so far, whether the fleet serves the configuration just applied, the
//! Job) → the next status, one action on the Job, an Event and when to look again.
//!
//! ```text
//! Idle ──trigger──▶ EnteringReadOnly ──every pod read-only + grace──▶ Collecting
//!   ▲                      │ (not read-only in time: Failed)             │ Job ended / timed out
//!   └──fleet read-write── LeavingReadOnly ◀──────────────────────────────┘
//! ```
//! The fleet is rendered read-only exactly in `EnteringReadOnly` and `Collecting`; the window
//! is left only once no Job pod of the run can still be running.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::common::status_time;

use super::names::CONFIG_CHECKSUM_ANNOTATION;
use super::validate::Issue;
use crate::api::gc::{
    GarbageCollectionSpec, GarbageCollectionStatus, GcPhase, GcRecord, GcResult, GcRun,
};
use crate::api::registry::RegistrySpec;
use crate::field_path::FieldPath;

/// Condition type telling whether a garbage-collection window is open.
pub const MAINTENANCE: &str = "Maintenance";
/// Reason: `deleteUntagged` with a Distribution image that would break multi-arch indexes.
pub const DELETE_UNTAGGED_UNSAFE: &str = "DeleteUntaggedUnsafe";
/// Reason: the storage or mode of the fleet cannot be collected by a Job.
pub const UNSUPPORTED: &str = "GarbageCollectionUnsupported";
/// Reason: `spec.garbageCollection.schedule` is not a cron expression.
pub const INVALID_SCHEDULE: &str = "InvalidSchedule";

/// How long past the Job's own deadline the operator waits before it deletes the Job itself.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(60);
/// How often an open window is looked at (besides the Deployment's own events).
pub const WINDOW_POLL: Duration = Duration::from_secs(5);

/// What became of the run's Job, as the reconciler saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Not finished, or finished while a pod of it is still running or terminating.
    Running,
    /// Completed, every pod gone.
    Succeeded,
    /// Failed (the message says why: `DeadlineExceeded`, `BackoffLimitExceeded`...), every
    /// pod gone.
    Failed {
        /// The Job's `Failed` condition reason.
        reason: String,
        /// Its message.
        message: String,
    },
}

/// What to do with the run's Job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobAction {
    /// Nothing.
    None,
    /// Create it (an existing one of that name is the same run's: fine).
    Create,
    /// Delete it with its pods (the operator's own deadline passed).
    Delete,
}

/// An Event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Warning rather than Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// What happened.
    pub message: String,
}

/// Everything the state machine needs, read by the reconciler.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    /// Name of the Registry (the Job's name derives from it).
    pub instance: &'a str,
    /// `spec.garbageCollection`.
    pub spec: Option<&'a GarbageCollectionSpec>,
    /// `status.garbageCollection` so far.
    pub status: &'a GarbageCollectionStatus,
    /// Why runs are refused now (see [`check`]); the first issue is reported.
    pub refusals: &'a [Issue],
    /// The Registry has problems that keep anything from being applied.
    pub blocked: bool,
    /// Value of the `flotilla.dev/gc-requested` annotation.
    pub request: Option<&'a str>,
    /// Every pod of the fleet runs the configuration applied in this reconcile.
    pub fleet_current: bool,
    /// The run's Job, when one exists.
    pub job: Option<&'a JobState>,
    /// Now.
    pub now: Timestamp,
}

/// The decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The next `status.garbageCollection`.
    pub status: GarbageCollectionStatus,
    /// What to do with the Job.
    pub job: JobAction,
    /// Event to publish.
    pub note: Option<Note>,
    /// The run that ended in this step (or was refused), for metrics.
    pub finished: Option<GcRecord>,
    /// Look again within this long (`None`: the usual resync).
    pub wake: Option<Duration>,
}

/// Whether the fleet is rendered read-only in this phase.
pub fn renders_read_only(status: Option<&GarbageCollectionStatus>) -> bool {
    status.is_some_and(|s| matches!(s.phase, GcPhase::EnteringReadOnly | GcPhase::Collecting))
}

/// Whether the fleet is in a garbage-collection window (ReplicationPolicies wait).
pub fn in_window(status: Option<&GarbageCollectionStatus>) -> bool {
    status.is_some_and(|s| s.phase != GcPhase::Idle)
}

/// Whether `image` is a Distribution 3 (or later) image by its tag. A digest alone tells
/// nothing: `registry:3.0.0@sha256:…` names both.
pub fn is_distribution_3(image: &str) -> bool {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let Some((_, tag)) = last.split_once(':') else {
        return false;
    };
    let major = tag.trim_start_matches('v').split(['.', '-']).next();
    major
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|m| m >= 3)
}

/// Why garbage collection cannot run for `spec` (empty: it can).
pub fn check(spec: &RegistrySpec) -> Vec<Issue> {
    let Some(gc) = &spec.garbage_collection else {
        return Vec::new();
    };
    let field = FieldPath::spec().field("garbageCollection");
    let mut issues = Vec::new();
    if let Some(schedule) = &gc.schedule
        && let Err(e) = crate::replication::validate::parse_schedule(schedule)
    {
        issues.push(Issue {
            field: field.clone().field("schedule").to_string(),
            reason: INVALID_SCHEDULE,
            message: format!(
                "{e}; use 5 cron fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * 0\""
            ),
        });
    }
    if spec.storage.empty_dir.is_some() {
        issues.push(Issue {
            field: "spec.storage.emptyDir".into(),
            reason: UNSUPPORTED,
            message: "every pod has its own emptyDir, which a garbage-collect Job cannot reach; use spec.storage.s3 or spec.storage.filesystem".into(),
        });
    }
    if spec.proxy.is_some() {
        issues.push(Issue {
            field: "spec.proxy".into(),
            reason: UNSUPPORTED,
            message: "a pull-through cache cannot be made read-only (it writes what it fetches) and expires its content itself; remove spec.garbageCollection".into(),
        });
    }
    if gc.delete_untagged && !is_distribution_3(&spec.image) {
        issues.push(Issue {
            field: field.field("deleteUntagged").to_string(),
            reason: DELETE_UNTAGGED_UNSAFE,
            message: format!(
                "refused with image {:?}: Distribution 2.x's --delete-untagged deletes the platform images of tagged multi-arch indexes (distribution#3004, #3178); set deleteUntagged: false and delete unwanted manifests by digest, or use an image tagged 3.x or later",
                spec.image
            ),
        });
    }
    issues
}

/// Whether every pod of `deployment` runs the template with configuration `checksum`: the
/// Deployment controller saw the latest spec and no pod of an older template is left, not
/// even terminating.
pub fn fleet_serves(deployment: &Deployment, checksum: &str) -> bool {
    let template_checksum = deployment
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(CONFIG_CHECKSUM_ANNOTATION));
    let Some(status) = &deployment.status else {
        return false;
    };
    template_checksum.map(String::as_str) == Some(checksum)
        && deployment.metadata.generation.is_some()
        && status.observed_generation >= deployment.metadata.generation
        && status.updated_replicas.unwrap_or(0) == status.replicas.unwrap_or(0)
        && status.terminating_replicas.unwrap_or(0) == 0
}

/// Name of the Job of a run started at `start`: `<registry>-gc-<unix seconds>`, at most 63
/// characters (it becomes the `job-name` label of its pod).
pub fn job_name(instance: &str, start: Timestamp) -> String {
    let suffix = format!("-gc-{}", start.as_second());
    let room = 63usize.saturating_sub(suffix.len());
    let prefix: String = instance.chars().take(room).collect();
    format!("{}{suffix}", prefix.trim_end_matches('-'))
}

fn parse(t: Option<&Time>) -> Option<Timestamp> {
    t.map(|t| t.0)
}

fn plus(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs(secs)).unwrap_or(t)
}

fn until(now: Timestamp, then: Timestamp) -> Duration {
    then.duration_since(now)
        .try_into()
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_secs(1))
}

/// The next firing of `spec.schedule` after `status.scheduleAfter`.
pub fn next_firing(
    spec: Option<&GarbageCollectionSpec>,
    status: &GarbageCollectionStatus,
) -> Option<Timestamp> {
    let schedule = crate::replication::validate::parse_schedule(spec?.schedule.as_deref()?).ok()?;
    let after = parse(status.schedule_after.as_ref())?;
    let after = chrono::DateTime::<chrono::Utc>::from_timestamp(after.as_second(), 0)?;
    let next = schedule.after(&after).next()?;
    Timestamp::from_second(next.timestamp()).ok()
}

/// The run due now, if any: a new request value first, then the schedule.
fn due(input: &Input<'_>, st: &GarbageCollectionStatus) -> Option<&'static str> {
    if let Some(v) = input.request
        && st.handled_request.as_deref() != Some(v)
    {
        return Some("Request");
    }
    next_firing(input.spec, st)
        .is_some_and(|t| t <= input.now)
        .then_some("Schedule")
}

fn step_with(status: GarbageCollectionStatus) -> Step {
    Step {
        status,
        job: JobAction::None,
        note: None,
        finished: None,
        wake: None,
    }
}

/// Advances the window by one reconcile.
pub fn step(input: &Input<'_>) -> Step {
    let mut st = input.status.clone();
    if input.spec.is_some_and(|s| s.schedule.is_some()) && st.schedule_after.is_none() {
        // A new schedule fires at its first time from now on, not for the past.
        st.schedule_after = Some(status_time(input.now));
    }
    match (st.phase, st.current.clone()) {
        (GcPhase::Idle, _) | (_, None) => idle(input, st),
        (GcPhase::EnteringReadOnly, Some(run)) => entering(input, st, run),
        (GcPhase::Collecting, Some(run)) => collecting(input, st, run),
        (GcPhase::LeavingReadOnly, Some(run)) => leaving(input, st, run),
    }
}

fn idle(input: &Input<'_>, mut st: GarbageCollectionStatus) -> Step {
    st.phase = GcPhase::Idle;
    st.current = None;
    let Some(trigger) = due(input, &st) else {
        let wake = next_firing(input.spec, &st).map(|t| until(input.now, t));
        return Step {
            wake,
            ..step_with(st)
        };
    };
    if trigger == "Request" {
        st.handled_request = input.request.map(str::to_string);
    } else {
        st.schedule_after = Some(status_time(input.now));
    }
    let refusal = if input.spec.is_none() {
        Some(Issue {
            field: "spec.garbageCollection".into(),
            reason: "NotConfigured",
            message: "set spec.garbageCollection (an empty object takes the defaults)".into(),
        })
    } else if let Some(first) = input.refusals.first() {
        Some(first.clone())
    } else {
        input.blocked.then(|| Issue {
            field: "spec".into(),
            reason: "RegistryNotReady",
            message: "the Registry has problems that keep its configuration from being applied (see its Degraded condition)".into(),
        })
    };
    let spec = input.spec.cloned().unwrap_or_default();
    if let Some(issue) = refusal {
        let record = GcRecord {
            trigger: trigger.into(),
            start_time: status_time(input.now),
            completion_time: status_time(input.now),
            duration_seconds: 0,
            result: GcResult::Refused,
            message: issue.to_string(),
            job_name: None,
            dry_run: spec.dry_run,
            measured: None,
        };
        st.last_run = Some(record.clone());
        return Step {
            note: Some(Note {
                warning: true,
                reason: "GarbageCollectionRefused",
                message: issue.to_string(),
            }),
            finished: Some(record),
            ..step_with(st)
        };
    }
    st.phase = GcPhase::EnteringReadOnly;
    st.current = Some(GcRun {
        trigger: trigger.into(),
        start_time: status_time(input.now),
        read_only_since: None,
        job_name: None,
        job_start_time: None,
        delete_untagged: spec.delete_untagged,
        dry_run: spec.dry_run,
        result: None,
        message: None,
        measured: None,
    });
    Step {
        note: Some(Note {
            warning: false,
            reason: "GarbageCollectionStarted",
            message: format!("{trigger}: switching the fleet to read-only"),
        }),
        wake: Some(Duration::from_secs(1)),
        ..step_with(st)
    }
}

fn to_leaving(
    mut st: GarbageCollectionStatus,
    mut run: GcRun,
    result: GcResult,
    msg: String,
) -> Step {
    run.result = Some(result);
    run.message = Some(msg);
    st.phase = GcPhase::LeavingReadOnly;
    st.current = Some(run);
    Step {
        wake: Some(Duration::from_secs(1)),
        ..step_with(st)
    }
}

fn entering(input: &Input<'_>, mut st: GarbageCollectionStatus, mut run: GcRun) -> Step {
    let spec = input.spec.cloned().unwrap_or_default();
    let start = parse(Some(&run.start_time)).unwrap_or(input.now);
    // Entering read-only may take as long as the Job may run.
    let limit = plus(start, spec.timeout_seconds);
    if !input.fleet_current {
        if input.now >= limit {
            let msg = format!(
                "the fleet did not serve read-only within {} s; nothing was collected",
                spec.timeout_seconds
            );
            return to_leaving(st, run, GcResult::Failed, msg);
        }
        st.current = Some(run);
        return Step {
            wake: Some(WINDOW_POLL),
            ..step_with(st)
        };
    }
    let since = parse(run.read_only_since.as_ref()).unwrap_or(input.now);
    run.read_only_since = Some(status_time(since));
    let go = plus(since, spec.upload_grace_seconds);
    if input.now < go {
        st.current = Some(run);
        return Step {
            wake: Some(until(input.now, go)),
            ..step_with(st)
        };
    }
    run.job_name = Some(job_name(input.instance, start));
    run.job_start_time = Some(status_time(input.now));
    st.phase = GcPhase::Collecting;
    st.current = Some(run);
    Step {
        job: JobAction::Create,
        wake: Some(WINDOW_POLL),
        ..step_with(st)
    }
}

fn collecting(input: &Input<'_>, mut st: GarbageCollectionStatus, run: GcRun) -> Step {
    let spec = input.spec.cloned().unwrap_or_default();
    let cancelling = run.result.is_some();
    match (input.job, cancelling) {
        (Some(JobState::Succeeded), false) => {
            let msg = if run.dry_run {
                "dry run completed: the Job's log lists what would be deleted".to_string()
            } else {
                "garbage-collect completed".to_string()
            };
            to_leaving(st, run, GcResult::Succeeded, msg)
        }
        (Some(JobState::Failed { reason, message }), false) => {
            let result = if reason == "DeadlineExceeded" {
                GcResult::TimedOut
            } else {
                GcResult::Failed
            };
            let msg = format!(
                "Job {}: {reason}: {message}",
                run.job_name.as_deref().unwrap_or("")
            );
            to_leaving(st, run, result, msg)
        }
        // Cancelled by the operator, and no pod of it is left.
        (None | Some(JobState::Succeeded | JobState::Failed { .. }), true) => {
            let (result, msg) = (
                run.result.unwrap_or(GcResult::TimedOut),
                run.message.clone(),
            );
            to_leaving(st, run, result, msg.unwrap_or_default())
        }
        (None, false) => {
            // Never created (or deleted by someone): create it; the deadline still holds.
            st.current = Some(run);
            Step {
                job: JobAction::Create,
                wake: Some(WINDOW_POLL),
                ..step_with(st)
            }
        }
        (Some(JobState::Running), _) => {
            let started = parse(run.job_start_time.as_ref()).unwrap_or(input.now);
            let margin = i64::try_from(DEADLINE_MARGIN.as_secs()).unwrap_or(60);
            let deadline = plus(started, spec.timeout_seconds + margin);
            let mut run = run;
            let job = if cancelling || input.now >= deadline {
                run.result = Some(GcResult::TimedOut);
                run.message.get_or_insert_with(|| {
                    format!(
                        "the Job ran past its {} s deadline and was deleted",
                        spec.timeout_seconds
                    )
                });
                JobAction::Delete
            } else {
                JobAction::None
            };
            st.current = Some(run);
            Step {
                job,
                wake: Some(WINDOW_POLL),
                ..step_with(st)
            }
        }
    }
}

fn leaving(input: &Input<'_>, mut st: GarbageCollectionStatus, run: GcRun) -> Step {
    if !input.fleet_current {
        st.current = Some(run);
        return Step {
            wake: Some(WINDOW_POLL),
            ..step_with(st)
        };
    }
    let start = parse(Some(&run.start_time)).unwrap_or(input.now);
    let result = run.result.unwrap_or(GcResult::Failed);
    let record = GcRecord {
        trigger: run.trigger.clone(),
        start_time: run.start_time.clone(),
        completion_time: status_time(input.now),
        duration_seconds: input.now.duration_since(start).as_secs().max(0),
        result,
        message: run.message.clone().unwrap_or_default(),
        job_name: run.job_name.clone(),
        dry_run: run.dry_run,
        measured: run
            .measured
            .clone()
            .map(|m| super::gc_report::finish(m, run.dry_run)),
    };
    let figures = record
        .measured
        .as_ref()
        .and_then(super::gc_report::summary)
        .map_or_else(String::new, |s| format!("; {s}"));
    st.phase = GcPhase::Idle;
    st.current = None;
    st.last_run = Some(record.clone());
    Step {
        note: Some(Note {
            warning: result != GcResult::Succeeded,
            reason: match result {
                GcResult::Succeeded => "GarbageCollectionSucceeded",
                GcResult::TimedOut => "GarbageCollectionTimedOut",
                _ => "GarbageCollectionFailed",
            },
            message: format!(
                "{}{figures}; the fleet serves read-write again after {} s",
                record.message, record.duration_seconds
            ),
        }),
        finished: Some(record),
        ..step_with(st)
    }
}

/// The `Maintenance` condition: (status, reason, message); `None` for a Registry that never
/// had garbage collection.
pub fn condition(
    spec: Option<&GarbageCollectionSpec>,
    status: &GarbageCollectionStatus,
    refusals: &[Issue],
) -> Option<(bool, String, String)> {
    if let Some(run) = status
        .current
        .as_ref()
        .filter(|_| status.phase != GcPhase::Idle)
    {
        let what = match status.phase {
            GcPhase::EnteringReadOnly => "switching the fleet to read-only".to_string(),
            GcPhase::Collecting => format!(
                "read-only; Job {} collects garbage",
                run.job_name.as_deref().unwrap_or("")
            ),
            _ => format!(
                "{}; switching the fleet back to read-write",
                run.message.as_deref().unwrap_or("")
            ),
        };
        let reason = format!("{:?}", status.phase);
        return Some((
            true,
            reason,
            format!("window opened {}: {what}", run.start_time.0),
        ));
    }
    if let Some(issue) = refusals.first().filter(|_| spec.is_some()) {
        return Some((false, issue.reason.to_string(), issue.to_string()));
    }
    match (&status.last_run, spec) {
        (Some(last), _) => Some((
            false,
            format!("LastRun{}", last.result.name()),
            format!("last run {}: {}", last.completion_time.0, last.message),
        )),
        (None, Some(_)) => Some((false, "Idle".into(), "no run yet".into())),
        (None, None) => None,
    }
}

#[cfg(test)]
#[path = "gc_tests.rs"]
mod tests;
