//! The status a finished sync gives a policy. Pure.

use k8s_openapi::jiff::Timestamp;

use super::reasons;
use super::trigger::Trigger;
use crate::api::common::status_time;
use crate::api::replication_policy::{
    DestinationStatus, ReplicationPolicySpec, ReplicationPolicyStatus, SyncRecord, SyncResult,
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

/// Where a run failed: the source, or one destination by name.
const SOURCE: &str = "<source>";

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
    let record = sync_record(outcome, trigger, start, now);
    let failed = failed_places(outcome);
    status.consecutive_failures = if record.result == SyncResult::Succeeded {
        0
    } else {
        status.consecutive_failures.saturating_add(1)
    };
    let source_failed = failed.iter().any(|(d, _)| d == SOURCE);
    let full = *trigger != Trigger::Push;
    let destinations: Vec<DestinationStatus> = spec
        .destinations
        .iter()
        .map(|d| {
            let old = status.destinations.iter().find(|s| s.name == d.name);
            destination_status(&d.name, old, outcome, &failed, source_failed, full, now)
        })
        .collect();
    let in_sync = destinations.iter().filter(|d| d.in_sync).count();
    status.destinations_in_sync = Some(format!("{in_sync}/{}", destinations.len()));
    status.destinations = destinations;
    status.last_sync = Some(record);
    let at = Stamp { generation, now };
    idle_condition(status, trigger, at);
    degraded_condition(status, &failed, source_failed, at);
    ready_condition(status, in_sync, at);
}

/// The generation and time a condition change is stamped with.
#[derive(Clone, Copy)]
struct Stamp {
    generation: Option<i64>,
    now: Timestamp,
}

/// The run's record for `status.lastSync`.
fn sync_record(
    outcome: &Outcome<'_>,
    trigger: &Trigger,
    start: Timestamp,
    now: Timestamp,
) -> SyncRecord {
    let times = SyncRecord {
        trigger: trigger.name().into(),
        start_time: Some(status_time(start)),
        completion_time: Some(status_time(now)),
        ..Default::default()
    };
    let Outcome::Ran(report) = outcome else {
        return SyncRecord {
            result: SyncResult::Failed,
            ..times
        };
    };
    SyncRecord {
        result: run_result(report),
        copied: as_i64(report.copied),
        skipped: as_i64(report.skipped),
        failed: as_i64(report.failed),
        conflicts: as_i64(report.conflicts),
        deleted: as_i64(report.deleted),
        unverified: as_i64(report.unverified),
        bytes: as_i64(report.bytes_read_from_source),
        ..times
    }
}

/// `Succeeded` when nothing failed; `PartiallyFailed` when something was served (an artifact
/// that reached 100 of 110 destinations failed somewhere, but the run did not fail).
fn run_result(report: &Report) -> SyncResult {
    if report.success() {
        SyncResult::Succeeded
    } else if report.copied + report.skipped > 0
        || report.destinations.iter().any(|d| d.copied + d.skipped > 0)
    {
        SyncResult::PartiallyFailed
    } else {
        SyncResult::Failed
    }
}

/// The first error of each place that failed (a destination's name, or [`SOURCE`]).
fn failed_places(outcome: &Outcome<'_>) -> Vec<(String, String)> {
    let report = match outcome {
        Outcome::Ran(report) => report,
        Outcome::Failed(error) => return vec![(SOURCE.to_string(), error.to_string())],
    };
    let mut failed: Vec<(String, String)> = Vec::new();
    for f in &report.failures {
        let place = if f.destination.is_empty() {
            SOURCE
        } else {
            f.destination.as_str()
        };
        if !failed.iter().any(|(d, _)| d == place) {
            failed.push((place.to_string(), format!("{}: {}", f.artifact, f.error)));
        }
    }
    failed
}

/// The conflicts a run met at destination `name`, bounded.
fn conflicts_at(outcome: &Outcome<'_>, name: &str) -> Vec<String> {
    let Outcome::Ran(r) = outcome else {
        return Vec::new();
    };
    let all = r
        .conflict_details
        .iter()
        .filter(|c| c.destination == name)
        .map(|c| {
            format!(
                "{} points at {}, the source at {}",
                c.artifact, c.destination_digest, c.source_digest
            )
        })
        .collect();
    bounded(all, MAX_CONFLICTS_LISTED)
}

/// One destination's state after a run.
fn destination_status(
    name: &str,
    old: Option<&DestinationStatus>,
    outcome: &Outcome<'_>,
    failed: &[(String, String)],
    source_failed: bool,
    full: bool,
    now: Timestamp,
) -> DestinationStatus {
    let error = failed
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, e)| e.clone());
    let counts = match outcome {
        Outcome::Ran(r) => r.destinations.iter().find(|x| x.name == name).cloned(),
        Outcome::Failed(_) => None,
    }
    .unwrap_or_default();
    let ok = error.is_none() && !source_failed;
    let was_in_sync = old.is_some_and(|o| o.in_sync);
    DestinationStatus {
        name: name.to_string(),
        // A push-triggered run covers one artifact: it can break but not establish sync.
        in_sync: if full { ok } else { was_in_sync && ok },
        last_sync_time: Some(status_time(now)),
        last_error: error
            .or_else(|| source_failed.then(|| "the sync could not read the source".into()))
            .map(|e| clip(e, MAX_ERROR_CHARS)),
        copied: as_i64(counts.copied),
        failed: as_i64(counts.failed),
        conflicts: conflicts_at(outcome, name),
        bytes_written: as_i64(counts.bytes_written),
        last_push_lag_millis: old.and_then(|o| o.last_push_lag_millis),
    }
}

fn idle_condition(status: &mut ReplicationPolicyStatus, trigger: &Trigger, at: Stamp) {
    let idle = format!(
        "last {} sync ended at {}",
        trigger.name(),
        status_time(at.now).0
    );
    let desired = Desired {
        type_: SYNCING,
        status: false,
        reason: reasons::IDLE,
        message: &idle,
    };
    conditions::upsert(&mut status.conditions, &desired, at.generation, at.now);
}

fn degraded_condition(
    status: &mut ReplicationPolicyStatus,
    failed: &[(String, String)],
    source_failed: bool,
    at: Stamp,
) {
    let message = degraded_text(failed);
    let degraded = if message.is_empty() {
        Desired {
            type_: DEGRADED,
            status: false,
            reason: reasons::AS_EXPECTED,
            message: "the last sync reached every destination",
        }
    } else {
        Desired {
            type_: DEGRADED,
            status: true,
            reason: if source_failed {
                reasons::SOURCE_UNAVAILABLE
            } else {
                reasons::DESTINATION_FAILED
            },
            message: &message,
        }
    };
    conditions::upsert(&mut status.conditions, &degraded, at.generation, at.now);
}

fn ready_condition(status: &mut ReplicationPolicyStatus, in_sync: usize, at: Stamp) {
    let all = status.destinations.len();
    let message = format!("{in_sync} of {all} destinations in sync");
    let (ok, reason) = if in_sync == all {
        (true, reasons::IN_SYNC)
    } else {
        (false, reasons::OUT_OF_SYNC)
    };
    let ready = Desired {
        type_: READY,
        status: ok,
        reason,
        message: &message,
    };
    conditions::upsert(&mut status.conditions, &ready, at.generation, at.now);
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
#[path = "report_status_tests.rs"]
mod tests;
