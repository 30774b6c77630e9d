//! Destinations that must wait: a Registry in its garbage-collection window refuses pushes
//! (read-only), so a policy writing to it waits for the window to close instead of failing.

use std::collections::BTreeMap;

use crate::api::registry::Registry;
use crate::api::replication_policy::ReplicationPolicySpec;

/// Reason of the `Syncing` condition while a policy waits for a destination's window to end
/// (not a failure: no failed run, no Degraded, no alert).
pub const WAITING_REASON: &str = super::reasons::MAINTENANCE_WINDOW;

/// Names of the destinations of `spec` (a policy in `namespace`) that name by `registryRef`
/// a Registry of `registries` (by `namespace/name`) in its garbage-collection window.
pub fn destinations_in_window(
    spec: &ReplicationPolicySpec,
    namespace: &str,
    registries: &BTreeMap<String, Registry>,
) -> Vec<String> {
    spec.destinations
        .iter()
        .filter(|d| {
            d.endpoint.registry_ref.as_ref().is_some_and(|r| {
                let key = format!("{}/{}", r.namespace.as_deref().unwrap_or(namespace), r.name);
                registries.get(&key).is_some_and(|reg| {
                    crate::fleet::gc::in_window(
                        reg.status
                            .as_ref()
                            .and_then(|s| s.garbage_collection.as_ref()),
                    )
                })
            })
        })
        .map(|d| d.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::gc::{GarbageCollectionStatus, GcPhase};
    use crate::api::registry::RegistryStatus;

    #[test]
    fn only_destinations_whose_fleet_is_in_its_window_wait() {
        let spec: ReplicationPolicySpec = serde_json::from_value(serde_json::json!({
            "source": {"registryRef": {"name": "hq"}},
            "destinations": [
                {"name": "east", "registryRef": {"name": "east"}},
                {"name": "west", "registryRef": {"name": "west", "namespace": "other"}},
                {"name": "far", "url": "https://far.example.com"}
            ]
        }))
        .expect("spec");
        let reg = |phase: GcPhase| {
            let mut r = Registry::new(
                "x",
                serde_json::from_value(serde_json::json!({"storage": {"s3": {"bucket": "b"}}}))
                    .expect("spec"),
            );
            r.status = Some(RegistryStatus {
                garbage_collection: Some(GarbageCollectionStatus {
                    phase,
                    ..Default::default()
                }),
                ..Default::default()
            });
            r
        };
        let mut registries = BTreeMap::from([
            ("team/hq".to_string(), reg(GcPhase::Collecting)),
            ("team/east".to_string(), reg(GcPhase::LeavingReadOnly)),
            ("other/west".to_string(), reg(GcPhase::Idle)),
        ]);
        // The source in its window is no reason to wait: pulls work while read-only.
        assert_eq!(
            destinations_in_window(&spec, "team", &registries),
            vec!["east"]
        );
        registries.insert("team/east".into(), reg(GcPhase::Idle));
        assert!(destinations_in_window(&spec, "team", &registries).is_empty());
    }
}
