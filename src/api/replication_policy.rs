//! `ReplicationPolicy`: what to copy from one source registry to which destinations, and when.
// Each `printcolumn(...)` repeats `type_ = ...`; clippy mistakes that for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, SecretKeySelector, SecretReference};

/// Copies OCI artifacts (images, indexes, Helm charts, signatures) from a source registry to
/// destinations in this or other clusters: fan-out, hierarchical (`from`) and dual-master
/// (two policies), on push events, on a schedule and on request.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "flotilla.dev",
    version = "v1alpha1",
    kind = "ReplicationPolicy",
    plural = "replicationpolicies",
    singular = "replicationpolicy",
    shortname = "rp",
    shortname = "repl",
    category = "flotilla",
    namespaced,
    status = "ReplicationPolicyStatus",
    doc = "Copies OCI artifacts from a source registry to destinations: fan-out, hierarchical and dual-master, on push, on schedule or on request.",
    printcolumn(
        name = "Source",
        type_ = "string",
        json_path = ".status.source",
        description = "Source registry"
    ),
    printcolumn(
        name = "Destinations",
        type_ = "string",
        json_path = ".status.destinationsInSync",
        description = "Destinations in sync / all"
    ),
    printcolumn(
        name = "Last Sync",
        type_ = "date",
        json_path = ".status.lastSync.completionTime",
        description = "End of the last sync"
    ),
    printcolumn(
        name = "Result",
        type_ = "string",
        json_path = ".status.lastSync.result",
        description = "Result of the last sync"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
// `sets.contains` instead of an `exists` inside `all`: the API server's estimated cost of the
// latter passes its per-rule budget at 541 destinations, this one at 3124 (README, *A tree of
// hundreds of sites*).
#[x_kube(validation = Rule::new("sets.contains(self.destinations.map(e, e.name), self.destinations.filter(d, has(d.from)).map(d, d.from)) && self.destinations.all(d, !has(d.from) || d.from != d.name)").message("spec.destinations[].from must name another destination of this policy").field_path(".destinations"))]
#[serde(rename_all = "camelCase")]
pub struct ReplicationPolicySpec {
    /// The registry artifacts are copied from.
    pub source: Endpoint,

    /// Where artifacts are copied to. Names are unique within the policy. A destination with
    /// `from` is fed by another destination once that one holds the artifact (hierarchical
    /// replication) instead of by the source. Up to 256, e.g. a tree of HQ, 10 regions and
    /// 100 cities in one policy: the source is read once per artifact, each region reads it
    /// from the source and each city from its region.
    #[schemars(length(min = 1, max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub destinations: Vec<Destination>,

    /// Which repositories to copy. Default: every repository of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repositories: Option<RepositoryFilter>,

    /// Which tags to copy. Default: every tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagFilter>,

    /// Platforms to copy from multi-platform indexes, as `os/arch` or `os/arch/variant`
    /// (`linux/arm64` also selects `linux/arm64/v8`). Empty copies every index unchanged. An
    /// index with children outside the list is pushed as a new index holding only the listed
    /// ones (a different digest: the only case where a destination manifest is not
    /// byte-identical to the source's; signatures made for the source digest keep their
    /// name); an index whose children are all listed keeps its exact bytes; one with none
    /// listed is not copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub platforms: Vec<Platform>,

    /// Also copy the artifacts that refer to each copied manifest (signatures, SBOMs,
    /// attestations), through the OCI 1.1 referrers API or the `sha256-<hex>.sig/.att/.sbom`
    /// tag scheme.
    #[serde(default = "default_true")]
    pub referrers: bool,

    /// Which referrers travel with their subject, by artifact type and annotations (e.g.
    /// signatures and SBOMs but not scan reports). Unset: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_filter: Option<super::verify::ReferrerFilter>,

    /// Copy only artifacts signed by a trusted key (cosign), optionally also attested.
    /// Unset: no signature is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<super::verify::Verify>,

    /// Rename repositories on the way to every destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,

    /// When syncs run. A full sync can always be requested by setting the annotation
    /// `flotilla.dev/sync-requested` to a new value.
    #[serde(default)]
    pub trigger: Trigger,

    /// Delete, at the destinations, the tags in scope that the source no longer has.
    /// Never happens without this.
    #[serde(default)]
    pub deletion: bool,

    /// The most tags one sync deletes (with `deletion: true`). A sync that would delete more
    /// deletes none of them, marks the policy `Degraded` and records an Event: a broken or
    /// emptied source cannot wipe the destinations. Raise it for a planned large clean-up.
    #[serde(default = "default_max_deletions")]
    #[schemars(range(min = 0, max = 1000000))]
    pub max_deletions: i32,

    /// The longest one sync may run, in seconds; then it is stopped and reported as failed,
    /// so that no registry can hold a sync slot for ever. Default 21600 (6 h).
    #[serde(default = "default_active_deadline")]
    #[schemars(range(min = 1, max = 604800))]
    pub active_deadline_seconds: i64,

    /// Move a destination tag that points at another digest. With `false` such a tag is left
    /// alone and reported as a conflict.
    #[serde(default = "default_true")]
    pub overwrite: bool,

    /// Artifacts copied at once.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 64))]
    pub concurrency: i32,

    /// Upper bound of the bytes per second read from the source by this policy, all copies
    /// together, e.g. `50Mi`. Unset means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_limit: Option<Quantity>,

    /// Retries of failed requests (connection errors, 5xx, 429).
    #[serde(default)]
    pub retry: RetryPolicy,

    /// Stop every sync of this policy (events, schedule and requests) until set back to false.
    #[serde(default)]
    pub suspend: bool,
}

/// A registry: a Registry of this cluster (`registryRef`) or any registry by `url`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.registryRef) != has(self.url)").message("set exactly one of registryRef (a Registry of this cluster) or url"))]
#[x_kube(validation = Rule::new("!has(self.registryRef) || (!has(self.credentialsSecretRef) && !has(self.caSecretRef) && !self.insecure)").message("credentialsSecretRef, caSecretRef and insecure apply to url endpoints only: Flotilla manages access to a registryRef itself"))]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// A Registry managed by Flotilla in this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_ref: Option<RegistryReference>,
    /// Base URL of a registry, e.g. `https://registry.east.example.com`. `http://` requires
    /// `insecure: true`. No `user:password@`: credentials belong in `credentialsSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s/@]+(/[^\s]*)?$"), length(max = 2048))]
    pub url: Option<String>,
    /// Credentials: a `kubernetes.io/dockerconfigjson` Secret (key `.dockerconfigjson`) or a
    /// `kubernetes.io/basic-auth` Secret (keys `username`, `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,
    /// Secret key holding the PEM CA bundle that signed the registry's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeySelector>,
    /// Allow plain HTTP and unverified TLS. Never use over a network you do not control.
    #[serde(default)]
    pub insecure: bool,
}

/// A destination of a ReplicationPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.registryRef) != has(self.url)").message("set exactly one of registryRef (a Registry of this cluster) or url"))]
#[x_kube(validation = Rule::new("!has(self.registryRef) || (!has(self.credentialsSecretRef) && !has(self.caSecretRef) && !self.insecure)").message("credentialsSecretRef, caSecretRef and insecure apply to url endpoints only: Flotilla manages access to a registryRef itself"))]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Name of the destination, unique within the policy (used by `from`, status and metrics).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Another destination of this policy that feeds this one (hierarchical replication).
    /// Unset: fed by the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub from: Option<String>,
    /// The registry.
    #[serde(flatten)]
    pub endpoint: Endpoint,
}

/// A Registry of this cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryReference {
    /// Name of the Registry.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Registry. Default: the policy's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Repository filter. A repository is copied when it matches an `include` glob (or
/// `include` is empty) and no `exclude` glob.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryFilter {
    /// Globs: `*` matches within one path segment, `**` across segments, e.g. `team-a/**`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Globs of repositories never copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// Tag filter. A tag is copied when it passes every rule that is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagFilter {
    /// Globs of tags to copy, e.g. `v*`. Empty: every tag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Globs of tags never copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Regular expression (RE2 syntax, anchored) tags must match, e.g. `v[0-9]+\.[0-9]+\.[0-9]+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub regex: Option<String>,
    /// Semantic-version range tags must satisfy, e.g. `>=1.2, <2`. Tags that are not
    /// versions (an optional leading `v` is allowed) do not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub semver: Option<String>,
}

/// A platform, `os/arch` or `os/arch/variant`, e.g. `linux/arm64/v8`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(transparent)]
pub struct Platform(
    #[schemars(regex(pattern = r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$"))] pub String,
);

/// Repository renaming.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rewrite {
    /// Removed from the start of each repository name, e.g. `library/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<String>,
    /// Added in front of each repository name (after `stripPrefix`), e.g. `mirror/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]+([._/-][a-z0-9]+)*/?$"))]
    pub prefix: Option<String>,
}

/// When syncs run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// Replicate an artifact seconds after it is pushed to the source (needs a source that
    /// sends notifications to Flotilla: a Registry with `notifications: true`).
    #[serde(default = "default_true")]
    pub on_push: bool,
    /// Cron expression (5 fields, UTC) of full syncs that repair any drift, e.g.
    /// `*/30 * * * *`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 128))]
    pub schedule: Option<String>,
}

/// Retries of failed requests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    #[serde(default = "default_attempts")]
    #[schemars(range(min = 1, max = 20))]
    pub max_attempts: i32,
    /// First backoff in milliseconds; doubled after each failure, with jitter, up to 30 s.
    #[serde(default = "default_backoff_ms")]
    #[schemars(range(min = 10, max = 60000))]
    pub initial_backoff_millis: i32,
    /// Total seconds one attempt of a request may take, blob transfers aside (they may
    /// stream for long; a transfer that stops sending for 120 s fails). A registry that drips
    /// its answers is cut off then.
    #[serde(default = "default_request_timeout")]
    #[schemars(range(min = 1, max = 3600))]
    pub request_timeout_seconds: i32,
}

impl Default for Trigger {
    fn default() -> Self {
        Self {
            on_push: true,
            schedule: None,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: default_attempts(),
            initial_backoff_millis: default_backoff_ms(),
            request_timeout_seconds: default_request_timeout(),
        }
    }
}

/// Observed state of a ReplicationPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationPolicyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The source, in short form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Destinations in sync out of all, e.g. `2/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destinations_in_sync: Option<String>,
    /// The `metadata.generation` the last full sync ran with (a spec change runs a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_generation: Option<i64>,
    /// Start of the last full sync; the schedule counts from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_sync_time: Option<Time>,
    /// Value of the `flotilla.dev/sync-requested` annotation last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_sync_request: Option<String>,
    /// Syncs in a row that failed somewhere (source or a destination unreachable, an artifact
    /// not copied). While above 0, a full sync is retried 10 s after the last one ended,
    /// doubling with each failure up to 5 minutes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_failures: i64,
    /// Conditions: `Ready`, `Syncing`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The last completed sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<SyncRecord>,
    /// Per destination state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub destinations: Vec<DestinationStatus>,
    /// Push work the registries were told was received and that no finished run has covered
    /// yet: written when a run starts, cleared when the run that covered it ends. An operator
    /// that starts (after a crash, or a new leader) copies what is listed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_pushes: Option<PendingPushes>,
}

/// Push work not yet covered by a finished run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingPushes {
    /// The artifacts notifications named, at most 100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub items: Vec<PendingPush>,
    /// More work waited than `items` holds: the next run is a full sync.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overflowed: bool,
}

/// One artifact a notification named.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingPush {
    /// What happened at the source.
    pub action: PushAction,
    /// Source repository.
    #[schemars(length(max = 255))]
    pub repository: String,
    /// The tag pushed (or deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub tag: Option<String>,
    /// The manifest deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub digest: Option<String>,
}

/// What a notification said happened.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PushAction {
    /// A tag was pushed.
    Pushed,
    /// A manifest was deleted.
    Deleted,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// One sync run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    /// What started it: `Push`, `Schedule`, `Request`, `SpecChange`.
    pub trigger: String,
    /// Start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// End time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// How the run ended.
    pub result: SyncResult,
    /// Artifacts copied.
    #[serde(default)]
    pub copied: i64,
    /// Artifacts already present.
    #[serde(default)]
    pub skipped: i64,
    /// Artifacts that failed.
    #[serde(default)]
    pub failed: i64,
    /// Destination tags left alone because they point elsewhere (`overwrite: false`).
    #[serde(default)]
    pub conflicts: i64,
    /// Destination tags deleted (`deletion: true`).
    #[serde(default)]
    pub deleted: i64,
    /// Artifacts held back because their signatures do not verify (`spec.verify`).
    #[serde(default)]
    pub unverified: i64,
    /// Bytes read from the source.
    #[serde(default)]
    pub bytes: i64,
}

/// How a sync run ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum SyncResult {
    /// Every artifact in scope reached every destination it was meant for.
    #[default]
    Succeeded,
    /// Some artifacts or destinations failed; the others were served.
    PartiallyFailed,
    /// Nothing was served (e.g. the source could not be listed, the run was refused).
    Failed,
}

impl SyncResult {
    /// The name used in Events, metrics and `flotilla status`.
    pub fn name(self) -> &'static str {
        match self {
            SyncResult::Succeeded => "Succeeded",
            SyncResult::PartiallyFailed => "PartiallyFailed",
            SyncResult::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for SyncResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// State of one destination.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationStatus {
    /// Destination name.
    pub name: String,
    /// Whether the last sync left this destination holding every artifact in scope.
    #[serde(default)]
    pub in_sync: bool,
    /// End of the last sync that reached this destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// Last error, if the last sync failed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Artifacts copied here by the last sync.
    #[serde(default)]
    pub copied: i64,
    /// Artifacts that failed here in the last sync.
    #[serde(default)]
    pub failed: i64,
    /// Tags here left alone by the last sync because they point at another digest than the
    /// source's (`overwrite: false`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// Bytes written here by the last sync.
    #[serde(default)]
    pub bytes_written: i64,
    /// Push-to-destination lag of the last push-triggered run that reached this destination:
    /// milliseconds from the arrival of the oldest push event it covered to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push_lag_millis: Option<i64>,
}

fn default_true() -> bool {
    true
}
fn default_concurrency() -> i32 {
    4
}
fn default_attempts() -> i32 {
    5
}
fn default_backoff_ms() -> i32 {
    200
}
fn default_request_timeout() -> i32 {
    60
}
fn default_max_deletions() -> i32 {
    50
}
fn default_active_deadline() -> i64 {
    21600
}
