//! Garbage collection of a Registry fleet in a read-only window: spec and status types.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Garbage collection: `registry garbage-collect` run by a Job while every pod of the fleet
/// serves read-only (`storage.maintenance.readonly`), then the fleet is switched back to
/// read-write, also when the Job fails or times out. Runs on `schedule` and whenever the
/// annotation `flotilla.dev/gc-requested` gets a new value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GarbageCollectionSpec {
    /// Cron schedule (5 fields, UTC), e.g. `"0 3 * * 0"`. Without it, only requests run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 128))]
    pub schedule: Option<String>,
    /// Also delete manifests that no tag names (`--delete-untagged`). Refused with
    /// Distribution 2.x images, whose collector then deletes the platform images of tagged
    /// multi-arch indexes (distribution#3004, #3178): only an image tagged 3.x or later runs it.
    #[serde(default)]
    pub delete_untagged: bool,
    /// Report what would be deleted (in the Job's log) and delete nothing (`--dry-run`). The
    /// fleet still goes read-only: the report is then exact.
    #[serde(default)]
    pub dry_run: bool,
    /// Longest the Job may run (its `activeDeadlineSeconds`); the whole window, entering
    /// read-only included, is bounded by twice this.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 60, max = 86400))]
    pub timeout_seconds: i64,
    /// Seconds between the moment every pod serves read-only and the start of the Job, so
    /// that uploads accepted just before the window have ended.
    #[serde(default = "default_grace_seconds")]
    #[schemars(range(min = 0, max = 3600))]
    pub upload_grace_seconds: i64,
}

impl Default for GarbageCollectionSpec {
    fn default() -> Self {
        Self {
            schedule: None,
            delete_untagged: false,
            dry_run: false,
            timeout_seconds: default_timeout_seconds(),
            upload_grace_seconds: default_grace_seconds(),
        }
    }
}

fn default_timeout_seconds() -> i64 {
    3600
}
fn default_grace_seconds() -> i64 {
    30
}

/// Where a garbage-collection window stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum GcPhase {
    /// No window is open.
    #[default]
    Idle,
    /// The fleet is being rolled to its read-only configuration.
    EnteringReadOnly,
    /// Every pod serves read-only; the garbage-collect Job runs.
    Collecting,
    /// The fleet is being rolled back to read-write.
    LeavingReadOnly,
}

/// How a run ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum GcResult {
    /// The Job completed.
    Succeeded,
    /// The Job failed, or the fleet did not become read-only in time.
    Failed,
    /// The Job ran past its deadline and was stopped.
    TimedOut,
    /// The run was not started: the message says why (e.g. `deleteUntagged` on 2.x).
    Refused,
}

impl GcResult {
    /// The name used in metrics and reasons.
    pub fn name(self) -> &'static str {
        match self {
            GcResult::Succeeded => "Succeeded",
            GcResult::Failed => "Failed",
            GcResult::TimedOut => "TimedOut",
            GcResult::Refused => "Refused",
        }
    }
}

/// The run in progress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcRun {
    /// `Schedule` or `Request`.
    pub trigger: String,
    /// When the window opened.
    pub start_time: Time,
    /// When every pod was first seen serving read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_since: Option<Time>,
    /// Name of the garbage-collect Job of this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// When the Job was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_start_time: Option<Time>,
    /// Options the run was started with.
    #[serde(default)]
    pub delete_untagged: bool,
    /// See [`GcRun::delete_untagged`].
    #[serde(default)]
    pub dry_run: bool,
    /// Set once the run has an outcome (while leaving read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<GcResult>,
    /// What happened, for `result`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The storage as measured during this run so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<GcMeasurement>,
}

/// Blob data in the fleet's storage: the `data` objects under `docker/registry/v2/blobs/`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageUsage {
    /// Number of blobs.
    pub blobs: i64,
    /// Their bytes.
    pub bytes: i64,
}

/// What a run found in the storage (listed by the operator while the fleet is read-only) and
/// in its Job's log. Absent figures could not be measured; `note` says why.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcMeasurement {
    /// Blob data before the Job ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<StorageUsage>,
    /// Blob data after the Job ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<StorageUsage>,
    /// What the run freed: `before` − `after` (not for a dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freed: Option<StorageUsage>,
    /// A dry run: the blobs its log named eligible for deletion and their bytes (as listed
    /// before the Job ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_free: Option<StorageUsage>,
    /// Manifests the Job's log named eligible for deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests_eligible: Option<i64>,
    /// Why a figure is missing (e.g. storage that is not S3, a listing or log that could not be
    /// read). Never a reason for the run itself to fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The last finished (or refused) run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcRecord {
    /// `Schedule` or `Request`.
    pub trigger: String,
    /// When the window opened.
    pub start_time: Time,
    /// When the fleet served read-write again.
    pub completion_time: Time,
    /// Seconds from opening to closing the window.
    pub duration_seconds: i64,
    /// How it ended.
    pub result: GcResult,
    /// What happened.
    pub message: String,
    /// The Job, if one ran (its log lists what was deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Whether it was a dry run.
    #[serde(default)]
    pub dry_run: bool,
    /// Storage before and after, what was freed (or a dry run would free).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<GcMeasurement>,
}

/// Observed garbage-collection state; an operator restart resumes from here.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GarbageCollectionStatus {
    /// Where the window stands.
    #[serde(default)]
    pub phase: GcPhase,
    /// The run in progress (absent when `Idle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<GcRun>,
    /// The last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<GcRecord>,
    /// Value of `flotilla.dev/gc-requested` last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_request: Option<String>,
    /// The schedule fires at its first time after this (the last scheduled run, or when the
    /// schedule was first seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_after: Option<Time>,
}
