//! Tests of the fleet view (`super`): policies and registries as `kubectl get` shows them.

use super::*;
use crate::api::registry::{RegistrySpec, RegistryStatus};
use crate::api::replication_policy::{RegistryReference, ReplicationPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub(crate) fn now() -> Timestamp {
    "2026-12-01T12:00:00Z".parse().expect("timestamp")
}

pub(crate) fn cond(type_: &str, status: &str, reason: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: String::new(),
        last_transition_time: Time(now()),
        observed_generation: None,
    }
}

pub(crate) fn dest(name: &str, from: Option<&str>) -> Destination {
    Destination {
        name: name.into(),
        from: from.map(Into::into),
        endpoint: Endpoint {
            url: Some(format!("http://{name}.example:5000")),
            ..Default::default()
        },
    }
}

pub(crate) fn dest_status(name: &str, in_sync: bool, error: Option<&str>) -> DestinationStatus {
    DestinationStatus {
        name: name.into(),
        in_sync,
        last_sync_time: Some(Time("2026-12-01T11:57:00Z".parse().expect("time"))),
        last_error: error.map(Into::into),
        ..Default::default()
    }
}

pub(crate) fn policy(
    ns: &str,
    name: &str,
    dests: Vec<Destination>,
    status: Option<ReplicationPolicyStatus>,
) -> ReplicationPolicy {
    let spec: ReplicationPolicySpec = serde_json::from_value(serde_json::json!({
        "source": {"url": "http://hq.example:5000"},
        "destinations": [],
    }))
    .expect("spec");
    let mut p = ReplicationPolicy::new(
        name,
        ReplicationPolicySpec {
            destinations: dests,
            ..spec
        },
    );
    p.metadata.namespace = Some(ns.into());
    p.status = status;
    p
}

pub(crate) fn registry(ns: &str, name: &str, ready: i32, desired: i32) -> Registry {
    let spec: RegistrySpec = serde_json::from_value(serde_json::json!({
        "replicas": desired,
        "storage": {"emptyDir": {}},
    }))
    .expect("spec");
    let mut r = Registry::new(name, spec);
    r.metadata.namespace = Some(ns.into());
    let ok = ready == desired;
    r.status = Some(RegistryStatus {
        ready_replicas: ready,
        replicas: desired,
        url: Some(format!("http://{name}.{ns}.svc:5000")),
        conditions: vec![cond(
            "Ready",
            if ok { "True" } else { "False" },
            if ok { "Ready" } else { "Progressing" },
        )],
        ..Default::default()
    });
    r
}

/// HQ → 2 regions → 4 cities, listed children first to prove nesting does not depend on
/// order; city-2 failing.
pub(crate) fn tiers() -> ReplicationPolicy {
    let dests = vec![
        dest("city-1", Some("region-1")),
        dest("region-1", None),
        dest("city-2", Some("region-1")),
        dest("region-2", None),
        dest("city-3", Some("region-2")),
        dest("city-4", Some("region-2")),
    ];
    let mut statuses: Vec<DestinationStatus> = ["region-1", "region-2", "city-1", "city-3"]
        .iter()
        .map(|n| dest_status(n, true, None))
        .collect();
    statuses.push(dest_status(
        "city-2",
        false,
        Some("tiers/app:v1: connection refused"),
    ));
    // city-4 has no status entry yet (added to the spec after the last sync).
    let status = ReplicationPolicyStatus {
        conditions: vec![
            cond("Ready", "False", "OutOfSync"),
            cond("Syncing", "False", "Idle"),
            cond("Degraded", "True", "DestinationFailed"),
        ],
        destinations: statuses,
        last_sync: Some(crate::api::replication_policy::SyncRecord {
            trigger: "Schedule".into(),
            completion_time: Some(Time("2026-12-01T11:57:00Z".parse().expect("time"))),
            result: crate::api::replication_policy::SyncResult::PartiallyFailed,
            ..Default::default()
        }),
        ..Default::default()
    };
    policy("default", "tiers", dests, Some(status))
}

fn names(nodes: &[DestinationNode]) -> Vec<String> {
    nodes.iter().map(|n| n.name.clone()).collect()
}

#[test]
fn relays_nest_under_their_feeder_in_spec_order() {
    let f = build(&[], &[tiers()], now());
    let p = &f.policies[0];
    assert_eq!(names(&p.destinations), ["region-1", "region-2"]);
    assert_eq!(names(&p.destinations[0].children), ["city-1", "city-2"]);
    assert_eq!(names(&p.destinations[1].children), ["city-3", "city-4"]);
    let city2 = &p.destinations[0].children[1];
    assert!(!city2.in_sync);
    assert_eq!(city2.from.as_deref(), Some("region-1"));
    assert_eq!(
        city2.last_error.as_deref(),
        Some("tiers/app:v1: connection refused")
    );
    assert_eq!(city2.seconds_since_sync, Some(180));
    let city4 = &p.destinations[1].children[1];
    assert!(!city4.in_sync && city4.last_sync_time.is_none());
    assert_eq!((p.in_sync, p.destination_count), (4, 6));
    assert_eq!(
        (p.phase, p.reason.as_deref()),
        (Phase::Degraded, Some("DestinationFailed"))
    );
    assert_eq!(
        p.last_sync.as_ref().and_then(|l| l.seconds_since),
        Some(180)
    );
}

#[test]
fn a_deep_relay_chain_nests_all_the_way() {
    let dests = vec![
        dest("d", Some("c")),
        dest("c", Some("b")),
        dest("b", Some("a")),
        dest("a", None),
    ];
    let f = build(&[], &[policy("ns", "chain", dests, None)], now());
    let mut n = &f.policies[0].destinations;
    for name in ["a", "b", "c", "d"] {
        assert_eq!(names(n), [name]);
        assert_eq!(n[0].problem, None);
        n = &n[0].children;
    }
    assert!(n.is_empty());
    assert_eq!(f.policies[0].phase, Phase::Pending);
}

#[test]
fn unknown_feeders_and_cycles_surface_at_the_top_instead_of_vanishing() {
    let dests = vec![
        dest("a", None),
        dest("lost", Some("nowhere")),
        dest("x", Some("y")),
        dest("y", Some("x")),
        dest("z", Some("y")),
    ];
    let f = build(&[], &[policy("ns", "odd", dests, None)], now());
    let top = &f.policies[0].destinations;
    assert_eq!(names(top), ["a", "lost", "x"]);
    assert_eq!(top[1].problem, Some(FeedProblem::UnknownFeeder));
    assert_eq!(top[2].problem, Some(FeedProblem::Cycle));
    assert_eq!(names(&top[2].children), ["y"]);
    assert_eq!(names(&top[2].children[0].children), ["z"]);
    assert_eq!(top[2].children[0].problem, Some(FeedProblem::Cycle));
    // Every destination appears exactly once.
    fn count(n: &[DestinationNode]) -> usize {
        n.iter().map(|d| 1 + count(&d.children)).sum()
    }
    assert_eq!(count(top), 5);
}

#[test]
fn registries_and_policies_are_sorted_by_namespace_then_name() {
    let f = build(
        &[
            registry("zeta", "a", 1, 1),
            registry("alpha", "b", 0, 2),
            registry("alpha", "a", 1, 1),
        ],
        &[
            policy("b", "one", vec![], None),
            policy("a", "two", vec![], None),
            policy("a", "one", vec![], None),
        ],
        now(),
    );
    let regs: Vec<_> = f
        .registries
        .iter()
        .map(|r| format!("{}/{}", r.namespace, r.name))
        .collect();
    assert_eq!(regs, ["alpha/a", "alpha/b", "zeta/a"]);
    let pols: Vec<_> = f
        .policies
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    assert_eq!(pols, ["a/one", "a/two", "b/one"]);
    let b = &f.registries[1];
    assert_eq!((b.ready_replicas, b.desired_replicas), (0, 2));
    assert_eq!(b.ready.status, ConditionStatus::False);
    assert_eq!(b.ready.reason.as_deref(), Some("Progressing"));
}

#[test]
fn a_registry_ref_source_shows_that_registrys_readiness() {
    let mut p = policy("fleet", "p", vec![dest("a", None)], None);
    p.spec.source = Endpoint {
        registry_ref: Some(RegistryReference {
            name: "hq".into(),
            namespace: None,
        }),
        ..Default::default()
    };
    let f = build(&[registry("fleet", "hq", 1, 2)], &[p], now());
    let s = &f.policies[0].source;
    assert_eq!(s.endpoint, "registry fleet/hq");
    assert_eq!(s.registry_ready.as_deref(), Some("1/2"));
}

#[test]
fn suspend_wins_over_every_condition_and_a_destination_never_synced_has_no_age() {
    let mut p = tiers();
    p.spec.suspend = true;
    if let Some(s) = p.status.as_mut() {
        s.destinations[0].last_sync_time = None;
    }
    let f = build(&[], &[p], now());
    assert_eq!(f.policies[0].phase, Phase::Suspended);
    let region1 = &f.policies[0].destinations[0];
    assert_eq!(region1.last_sync_time, None);
    assert_eq!(region1.seconds_since_sync, None);
}
