//! What a reconcile of a ReplicationPolicy does, from what its dereference read. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::pending::Batch;
use super::reasons;
use super::refs::{Referenced, resolve_registry_refs, token_realms};
use super::trigger::{self, Trigger};
use super::validate::{self, Issue};
use crate::api::replication_policy::{ReplicationPolicySpec, ReplicationPolicyStatus};
use crate::engine::config::OnUnreachable;
use crate::engine::{SyncConfig, SyncScope};
use crate::sync_config::{Resolved, to_sync_config};

/// Extra time after a trigger's moment before the policy is looked at again (so that the
/// trigger is due then, not a moment before).
const WAKE_MARGIN: Duration = Duration::from_millis(200);

/// What the dereference step read, and the moment of the reconcile.
pub struct Facts<'a> {
    /// The policy's spec.
    pub spec: &'a ReplicationPolicySpec,
    /// The policy's namespace.
    pub namespace: &'a str,
    /// Its status as read.
    pub status: &'a ReplicationPolicyStatus,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Its annotations (`flotilla.dev/sync-requested`).
    pub annotations: &'a BTreeMap<String, String>,
    /// Problems the dereference found (Secrets, Registries).
    pub found: Vec<Issue>,
    /// The Registries it names, with the operator's access data there.
    pub referenced: &'a Referenced,
    /// The Secrets and ConfigMaps it names.
    pub resolved: &'a Resolved,
    /// URLs replacing Registries' in-cluster URLs (`--registry-url`).
    pub registry_urls: &'a BTreeMap<String, String>,
    /// The push work waiting (`None`: none, or the policy is suspended).
    pub pending: Option<&'a Batch>,
    /// Now.
    pub now: Timestamp,
    /// The longest a healthy policy goes without a look.
    pub resync: Duration,
}

/// What to do.
#[derive(Debug)]
pub enum Decision {
    /// The policy cannot run: say why (Ready=False).
    Invalid {
        /// Every problem, the first one's reason in the condition.
        issues: Vec<Issue>,
    },
    /// A destination is in its garbage-collection window (read-only): wait, keeping the
    /// triggers and the push work.
    Wait {
        /// The destinations in their window.
        destinations: Vec<String>,
    },
    /// Nothing is due: look again after `requeue`.
    Idle {
        /// When to look again.
        requeue: Duration,
    },
    /// Run the engine.
    Sync {
        /// The engine's configuration.
        config: Box<SyncConfig>,
        /// What the run covers.
        scope: SyncScope,
        /// Why it runs.
        trigger: Trigger,
        /// When to look again after a successful run.
        requeue: Duration,
    },
}

/// Decides what a reconcile does.
pub fn decide(f: &Facts<'_>) -> Decision {
    let mut issues = validate::validate(f.spec);
    issues.extend(f.found.iter().cloned());
    let resolved = resolve_registry_refs(f.spec, f.namespace, f.referenced, f.registry_urls);
    let (spec, accounts) = match resolved {
        Ok(r) if issues.is_empty() => r,
        Ok(_) => return Decision::Invalid { issues },
        Err(issue) => {
            // One refusal says enough when nothing else is wrong; else the others come first.
            if issues.is_empty() {
                issues.push(issue);
            }
            return Decision::Invalid { issues };
        }
    };
    let waiting =
        super::maintenance::destinations_in_window(f.spec, f.namespace, &f.referenced.registries);
    if !waiting.is_empty() {
        return Decision::Wait {
            destinations: waiting,
        };
    }
    let (full, next) = trigger::due(f.spec, f.status, f.generation, f.annotations, f.now);
    let requeue = next
        .and_then(|n| n.duration_since(f.now).try_into().ok())
        .map_or(f.resync, |d: Duration| d.min(f.resync) + WAKE_MARGIN);
    let pending = f.pending.filter(|_| !f.spec.suspend);
    let (trigger, scope) = match (full, pending) {
        (Some(t), _) => (t, SyncScope::All),
        // Work a failed run left waits for the policy's retry (a full sync), new work not.
        (None, Some(b)) if !b.fresh => return Decision::Idle { requeue },
        (None, Some(b)) if b.overflowed => (Trigger::Push, SyncScope::All),
        (None, Some(b)) => (Trigger::Push, SyncScope::Only(b.named())),
        (None, None) => return Decision::Idle { requeue },
    };
    let mut resolved = f.resolved.clone();
    resolved.secrets.extend(accounts);
    match to_sync_config(&spec, &resolved) {
        Ok(mut config) => {
            config.unreachable = OnUnreachable::Skip;
            let realms = token_realms(f.spec, f.namespace, f.referenced, f.registry_urls);
            config.source.token_realm = realms.get(&None).cloned();
            for d in &mut config.destinations {
                d.endpoint.token_realm = realms.get(&Some(d.name.clone())).cloned();
            }
            Decision::Sync {
                config: Box::new(config),
                scope,
                trigger,
                requeue,
            }
        }
        Err(e) => Decision::Invalid {
            issues: vec![Issue {
                reason: reasons::INVALID_SPEC,
                field: e.field.to_string(),
                message: e.problem.to_string(),
            }],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::replication_policy::SyncRecord;
    use crate::engine::scope::Named;
    use crate::replication::pending::PendingQueue;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::time::Instant;

    fn spec(v: serde_json::Value) -> ReplicationPolicySpec {
        serde_json::from_value(v).expect("valid spec")
    }

    fn by_url() -> ReplicationPolicySpec {
        spec(serde_json::json!({
            "source": {"url": "https://hq.example.com"},
            "destinations": [{"name": "east", "url": "https://east.example.com"}],
            "trigger": {"onPush": true},
        }))
    }

    fn synced() -> ReplicationPolicyStatus {
        ReplicationPolicyStatus {
            synced_generation: Some(1),
            last_full_sync_time: Some(Time("2026-01-01T00:00:00Z".parse().expect("time"))),
            last_sync: Some(SyncRecord {
                result: crate::api::replication_policy::SyncResult::Succeeded,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    struct World {
        spec: ReplicationPolicySpec,
        status: ReplicationPolicyStatus,
        generation: Option<i64>,
        found: Vec<Issue>,
        referenced: Referenced,
        resolved: Resolved,
        pending: Option<Batch>,
    }

    impl World {
        fn new(spec: ReplicationPolicySpec, status: ReplicationPolicyStatus) -> Self {
            Self {
                spec,
                status,
                generation: Some(1),
                found: Vec::new(),
                referenced: Referenced::default(),
                resolved: Resolved::default(),
                pending: None,
            }
        }

        fn decide(&self) -> Decision {
            let none = BTreeMap::new();
            decide(&Facts {
                spec: &self.spec,
                namespace: "fleet",
                status: &self.status,
                generation: self.generation,
                annotations: &none,
                found: self.found.clone(),
                referenced: &self.referenced,
                resolved: &self.resolved,
                registry_urls: &none,
                pending: self.pending.as_ref(),
                now: "2026-01-01T00:01:00Z".parse().expect("time"),
                resync: Duration::from_secs(300),
            })
        }
    }

    fn batch(items: &[Named], limit: usize) -> Batch {
        let mut q = PendingQueue::with_limit(limit);
        for i in items {
            q.push(i.clone(), Instant::now());
        }
        q.peek().expect("work")
    }

    fn pushed(tag: &str) -> Named {
        Named::Pushed {
            repository: "apps/web".into(),
            tag: tag.into(),
        }
    }

    #[test]
    fn nothing_due_is_idle_until_the_resync() {
        let w = World::new(by_url(), synced());
        assert!(
            matches!(w.decide(), Decision::Idle { requeue } if requeue == Duration::from_secs(300))
        );
    }

    #[test]
    fn push_work_runs_scoped_to_what_was_named_and_skips_unreachable_destinations() {
        let mut w = World::new(by_url(), synced());
        w.pending = Some(batch(&[pushed("v1"), pushed("v2")], 10));
        let Decision::Sync {
            config,
            scope,
            trigger,
            ..
        } = w.decide()
        else {
            panic!("expected a sync");
        };
        assert_eq!(trigger, Trigger::Push);
        assert_eq!(scope, SyncScope::Only(vec![pushed("v1"), pushed("v2")]));
        assert_eq!(config.unreachable, OnUnreachable::Skip);
        // An overflowed queue, or a full trigger due at once, runs over everything.
        w.pending = Some(batch(&[pushed("v1"), pushed("v2")], 1));
        assert!(matches!(
            w.decide(),
            Decision::Sync {
                scope: SyncScope::All,
                trigger: Trigger::Push,
                ..
            }
        ));
        w.generation = Some(2);
        assert!(matches!(
            w.decide(),
            Decision::Sync {
                scope: SyncScope::All,
                trigger: Trigger::SpecChange,
                ..
            }
        ));
    }

    #[test]
    fn work_a_failed_run_left_waits_for_the_retry() {
        let mut w = World::new(by_url(), synced());
        let mut q = PendingQueue::default();
        q.push(pushed("v1"), Instant::now());
        let b = q.peek().expect("work");
        q.requeue(b);
        w.pending = q.peek();
        assert!(matches!(w.decide(), Decision::Idle { .. }));
        q.push(pushed("v2"), Instant::now());
        w.pending = q.peek();
        assert!(
            matches!(w.decide(), Decision::Sync { scope: SyncScope::Only(items), .. } if items.len() == 2)
        );
    }

    #[test]
    fn a_suspended_policy_ignores_its_push_work() {
        let mut s = by_url();
        s.suspend = true;
        let mut w = World::new(s, synced());
        w.pending = Some(batch(&[pushed("v1")], 10));
        assert!(matches!(w.decide(), Decision::Idle { .. }));
    }

    #[test]
    fn problems_make_it_invalid_with_every_issue() {
        let mut w = World::new(
            spec(serde_json::json!({
                "source": {"url": "https://hq.example.com"},
                "destinations": [{"name": "a", "url": "https://a.example.com", "from": "zzz"}],
            })),
            synced(),
        );
        w.found.push(Issue {
            reason: "SecretNotFound",
            field: "spec.source.credentialsSecretRef".into(),
            message: "no such Secret".into(),
        });
        let Decision::Invalid { issues } = w.decide() else {
            panic!("expected invalid");
        };
        let reasons: Vec<&str> = issues.iter().map(|i| i.reason).collect();
        assert_eq!(reasons, [reasons::UNKNOWN_DESTINATION, "SecretNotFound"]);
        // A registryRef that does not resolve, alone, is the reason.
        let w = World::new(
            spec(serde_json::json!({
                "source": {"registryRef": {"name": "hq"}},
                "destinations": [{"name": "a", "url": "https://a.example.com"}],
            })),
            synced(),
        );
        assert!(
            matches!(w.decide(), Decision::Invalid { issues } if issues[0].reason == reasons::REGISTRY_NOT_READY)
        );
    }

    #[test]
    fn a_spec_the_engine_refuses_is_invalid_at_its_field() {
        let mut s = by_url();
        s.destinations[0].endpoint.credentials_secret_ref = Some(crate::api::SecretReference {
            name: "gone".into(),
        });
        let w = World::new(s, ReplicationPolicyStatus::default());
        let Decision::Invalid { issues } = w.decide() else {
            panic!("expected invalid");
        };
        assert_eq!(issues[0].reason, reasons::INVALID_SPEC);
        assert!(
            issues[0].field.starts_with("spec.destinations"),
            "{issues:?}"
        );
    }
}
