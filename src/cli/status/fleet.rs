//! The view model of `flotilla status`: Registries and ReplicationPolicies reduced to what one
//! picture of the fleet shows. Built without I/O from the listed objects and the current time;
//! `-o json` is this model serialized, so its field names are a stable interface for scripts
//! (add fields, never rename or remove them without raising [`FORMAT_VERSION`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::common::Condition;
use crate::api::registry::Registry;
use crate::api::replication_policy::{
    Destination, DestinationStatus, Endpoint, ReplicationPolicy, ReplicationPolicyStatus,
};
use crate::engine::FeedTree;

/// Version of the JSON document's shape.
pub const FORMAT_VERSION: u32 = 1;

/// Everything `flotilla status` shows.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Fleet {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// When the picture was taken (RFC 3339); every `secondsSince…` counts from it.
    pub now: String,
    /// Registries, by namespace then name.
    pub registries: Vec<RegistryView>,
    /// ReplicationPolicies, by namespace then name.
    pub policies: Vec<PolicyView>,
}

/// The status of a condition, as Kubernetes spells it; `Unknown` also when it is absent.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// `status: "True"`.
    True,
    /// `status: "False"`.
    False,
    /// `status: "Unknown"`, or no such condition.
    Unknown,
}

/// One condition, reduced.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// Machine-readable reason; `None` when the condition is absent.
    pub reason: Option<String>,
    /// Human-readable message; `None` when absent or empty.
    pub message: Option<String>,
}

/// One Registry.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegistryView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.replicas`.
    pub desired_replicas: i32,
    /// `status.readyReplicas`.
    pub ready_replicas: i32,
    /// The `Ready` condition.
    pub ready: ConditionView,
    /// `status.url`.
    pub url: Option<String>,
}

/// What a policy is doing, in one word (the most pressing first).
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `spec.suspend`: no sync runs.
    Suspended,
    /// The last sync failed somewhere (`Degraded=True`).
    Degraded,
    /// A sync is running (`Syncing=True`).
    Syncing,
    /// Every destination is in sync (`Ready=True`).
    Ready,
    /// Some destination is not in sync (`Ready=False`).
    NotReady,
    /// No status yet: the operator has not seen the policy.
    Pending,
}

/// The last completed sync of a policy.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LastSync {
    /// `Push`, `Schedule`, `Request`, `SpecChange`, `Retry`.
    pub trigger: String,
    /// `Succeeded`, `PartiallyFailed` or `Failed`.
    pub result: String,
    /// End of the sync (RFC 3339).
    pub completion_time: Option<String>,
    /// Seconds from `completionTime` to `now`.
    pub seconds_since: Option<i64>,
}

/// A Registry of this cluster, by namespace and name.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RegistryKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Where a policy reads from.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourceView {
    /// The endpoint in short form: its URL, or `registry NAMESPACE/NAME`.
    pub endpoint: String,
    /// The Registry it names (`registryRef`), if any.
    pub registry: Option<RegistryKey>,
    /// `ready/desired` of that Registry when it was listed too.
    pub registry_ready: Option<String>,
}

/// Why a destination is not where its `from` says.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedProblem {
    /// `from` names no destination of the policy: shown at the top level.
    UnknownFeeder,
    /// The destination is fed through a `from` cycle, so nothing ever reaches it.
    Cycle,
}

/// One destination with the destinations it feeds.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DestinationNode {
    /// Name, unique in the policy.
    pub name: String,
    /// The destination feeding it (`spec.destinations[].from`); `None`: the source.
    pub from: Option<String>,
    /// The endpoint in short form: its URL, or `registry NAMESPACE/NAME`.
    pub endpoint: String,
    /// Whether the last sync left it holding every artifact in scope.
    pub in_sync: bool,
    /// End of the last sync that reached it (RFC 3339); `None`: never synced.
    pub last_sync_time: Option<String>,
    /// Seconds from `lastSyncTime` to `now`.
    pub seconds_since_sync: Option<i64>,
    /// Push-to-destination lag of the last push-triggered run that reached it, milliseconds.
    pub last_push_lag_millis: Option<i64>,
    /// Last error, in full.
    pub last_error: Option<String>,
    /// Set when the feed tree could not place it under its `from`.
    pub problem: Option<FeedProblem>,
    /// The destinations with `from` naming this one, in spec order.
    pub children: Vec<DestinationNode>,
}

/// One ReplicationPolicy.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The source, root of the feed tree.
    pub source: SourceView,
    /// One word for the policy's state.
    pub phase: Phase,
    /// Reason of the condition behind `phase` (e.g. `DestinationFailed`).
    pub reason: Option<String>,
    /// Destinations in sync.
    pub in_sync: usize,
    /// Destinations in the spec.
    pub destination_count: usize,
    /// The last completed sync.
    pub last_sync: Option<LastSync>,
    /// Destinations fed by the source, each with the ones it feeds.
    pub destinations: Vec<DestinationNode>,
}

/// Builds the picture from listed objects; `now` is the time relative ages count from.
pub fn build(registries: &[Registry], policies: &[ReplicationPolicy], now: Timestamp) -> Fleet {
    let mut registries: Vec<RegistryView> = registries.iter().map(registry_view).collect();
    registries.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut policies: Vec<PolicyView> = policies
        .iter()
        .map(|p| policy_view(p, &registries, now))
        .collect();
    policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Fleet {
        format_version: FORMAT_VERSION,
        now: now.to_string(),
        registries,
        policies,
    }
}

fn registry_view(r: &Registry) -> RegistryView {
    let status = r.status.clone().unwrap_or_default();
    RegistryView {
        namespace: r.namespace().unwrap_or_default(),
        name: r.name_any(),
        desired_replicas: r.spec.replicas,
        ready_replicas: status.ready_replicas,
        ready: condition_view(&status.conditions, "Ready"),
        url: status.url,
    }
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

fn condition_view(conditions: &[Condition], type_: &str) -> ConditionView {
    match find(conditions, type_) {
        None => ConditionView {
            status: ConditionStatus::Unknown,
            reason: None,
            message: None,
        },
        Some(c) => ConditionView {
            status: match c.status.as_str() {
                "True" => ConditionStatus::True,
                "False" => ConditionStatus::False,
                _ => ConditionStatus::Unknown,
            },
            reason: non_empty(&c.reason),
            message: non_empty(&c.message),
        },
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Seconds from a status time to `now`.
fn seconds_since(time: &Time, now: Timestamp) -> i64 {
    now.as_second() - time.0.as_second()
}

fn endpoint_label(e: &Endpoint, policy_namespace: &str) -> (String, Option<RegistryKey>) {
    match (&e.registry_ref, &e.url) {
        (Some(r), _) => {
            let key = RegistryKey {
                namespace: r
                    .namespace
                    .clone()
                    .unwrap_or_else(|| policy_namespace.to_string()),
                name: r.name.clone(),
            };
            (
                format!("registry {}/{}", key.namespace, key.name),
                Some(key),
            )
        }
        (None, Some(url)) => (url.clone(), None),
        (None, None) => ("(no endpoint)".to_string(), None),
    }
}

fn phase(p: &ReplicationPolicy) -> (Phase, Option<String>) {
    let reason = |type_: &str| {
        p.status
            .as_ref()
            .and_then(|s| find(&s.conditions, type_))
            .and_then(|c| non_empty(&c.reason))
    };
    if p.spec.suspend {
        return (Phase::Suspended, None);
    }
    let Some(status) = &p.status else {
        return (Phase::Pending, None);
    };
    if is_true(&status.conditions, "Degraded") {
        (Phase::Degraded, reason("Degraded"))
    } else if is_true(&status.conditions, "Syncing") {
        (Phase::Syncing, reason("Syncing"))
    } else if is_true(&status.conditions, "Ready") {
        (Phase::Ready, reason("Ready"))
    } else if find(&status.conditions, "Ready").is_some() {
        (Phase::NotReady, reason("Ready"))
    } else {
        (Phase::Pending, None)
    }
}

fn policy_view(p: &ReplicationPolicy, registries: &[RegistryView], now: Timestamp) -> PolicyView {
    let namespace = p.namespace().unwrap_or_default();
    let status = p.status.clone().unwrap_or_default();
    let (endpoint, registry) = endpoint_label(&p.spec.source, &namespace);
    let registry_ready = registry.as_ref().and_then(|k| {
        registries
            .iter()
            .find(|r| r.namespace == k.namespace && r.name == k.name)
            .map(|r| format!("{}/{}", r.ready_replicas, r.desired_replicas))
    });
    let (phase, reason) = phase(p);
    let destinations = feed_tree(&p.spec.destinations, &status, &namespace, now);
    let in_sync = p
        .spec
        .destinations
        .iter()
        .filter(|d| destination_status(&status, &d.name).is_some_and(|s| s.in_sync))
        .count();
    PolicyView {
        name: p.name_any(),
        source: SourceView {
            endpoint,
            registry,
            registry_ready,
        },
        phase,
        reason,
        in_sync,
        destination_count: p.spec.destinations.len(),
        last_sync: status.last_sync.as_ref().map(|l| LastSync {
            trigger: l.trigger.clone(),
            result: l.result.name().to_string(),
            completion_time: l.completion_time.as_ref().map(|t| t.0.to_string()),
            seconds_since: l.completion_time.as_ref().map(|t| seconds_since(t, now)),
        }),
        destinations,
        namespace,
    }
}

fn destination_status<'a>(
    status: &'a ReplicationPolicyStatus,
    name: &str,
) -> Option<&'a DestinationStatus> {
    status.destinations.iter().find(|d| d.name == name)
}

/// Nests the destinations as the policy feeds them: a destination with `from` under the one
/// it names, in spec order at every level. One whose `from` names nothing, or that is only
/// reachable through a `from` cycle, goes to the top level with a [`FeedProblem`].
fn feed_tree(
    dests: &[Destination],
    status: &ReplicationPolicyStatus,
    namespace: &str,
    now: Timestamp,
) -> Vec<DestinationNode> {
    let (tree, _) =
        FeedTree::from_links(dests.iter().map(|d| (d.name.as_str(), d.from.as_deref())));
    let ctx = TreeContext {
        dests,
        status,
        namespace,
        now,
        tree,
    };
    let mut placed = vec![false; dests.len()];
    let mut roots = Vec::new();
    for (i, d) in dests.iter().enumerate() {
        if ctx.tree.parent(i).is_none() {
            let problem = d.from.is_some().then_some(FeedProblem::UnknownFeeder);
            roots.push(ctx.node(i, problem, &mut placed));
        }
    }
    for i in 0..dests.len() {
        if !placed[i] {
            roots.push(ctx.node(i, Some(FeedProblem::Cycle), &mut placed));
        }
    }
    roots
}

struct TreeContext<'a> {
    dests: &'a [Destination],
    status: &'a ReplicationPolicyStatus,
    namespace: &'a str,
    now: Timestamp,
    tree: FeedTree,
}

impl TreeContext<'_> {
    /// The node of destination `i` with every not yet placed descendant (`placed` stops a
    /// cycle from recursing for ever).
    fn node(&self, i: usize, problem: Option<FeedProblem>, placed: &mut [bool]) -> DestinationNode {
        placed[i] = true;
        let d = &self.dests[i];
        let s = destination_status(self.status, &d.name);
        let last_sync_time = s.and_then(|s| s.last_sync_time.as_ref());
        let mut children = Vec::new();
        for &c in self.tree.children(i) {
            if !placed[c] {
                let child_problem = problem.filter(|p| *p == FeedProblem::Cycle);
                children.push(self.node(c, child_problem, placed));
            }
        }
        DestinationNode {
            name: d.name.clone(),
            from: d.from.clone(),
            endpoint: endpoint_label(&d.endpoint, self.namespace).0,
            in_sync: s.is_some_and(|s| s.in_sync),
            seconds_since_sync: last_sync_time.map(|t| seconds_since(t, self.now)),
            last_sync_time: last_sync_time.map(|t| t.0.to_string()),
            last_push_lag_millis: s.and_then(|s| s.last_push_lag_millis),
            last_error: s.and_then(|s| s.last_error.clone()),
            problem,
            children,
        }
    }
}

#[cfg(test)]
#[path = "fleet_tests.rs"]
pub(crate) mod tests;
