//! Observed Deployment + validation → `RegistryStatus` with `Available`, `Progressing`,
//! `Degraded` and `Ready` conditions (Argo CD and kstatus read these).

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::names::Names;
use super::validate::Issue;
use crate::api::registry::{Registry, RegistrySpec, RegistryStatus};
use crate::conditions::{Desired, upsert};

/// Condition types.
pub const AVAILABLE: &str = "Available";
/// See [`AVAILABLE`].
pub const PROGRESSING: &str = "Progressing";
/// See [`AVAILABLE`].
pub const DEGRADED: &str = "Degraded";
/// See [`AVAILABLE`].
pub const READY: &str = "Ready";

/// Reason: the Deployment exceeded its progress deadline.
pub const ROLLOUT_STUCK: &str = "RolloutStuck";
/// Reason: no registry pod is available.
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// What was observed of the Deployment, reduced to what status needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedDeployment {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `status.observedGeneration`.
    pub observed_generation: Option<i64>,
    /// `status.replicas`.
    pub replicas: i32,
    /// `status.readyReplicas`.
    pub ready_replicas: i32,
    /// `status.availableReplicas`.
    pub available_replicas: i32,
    /// `status.updatedReplicas`.
    pub updated_replicas: i32,
    /// `status.conditions`.
    pub conditions: Vec<DeploymentCondition>,
}

impl ObservedDeployment {
    /// Reduces a Deployment read from the cluster.
    pub fn from_deployment(d: &Deployment) -> Self {
        let s = d.status.clone().unwrap_or_default();
        Self {
            generation: d.metadata.generation,
            observed_generation: s.observed_generation,
            replicas: s.replicas.unwrap_or(0),
            ready_replicas: s.ready_replicas.unwrap_or(0),
            available_replicas: s.available_replicas.unwrap_or(0),
            updated_replicas: s.updated_replicas.unwrap_or(0),
            conditions: s.conditions.unwrap_or_default(),
        }
    }

    fn condition(&self, type_: &str) -> Option<&DeploymentCondition> {
        self.conditions
            .iter()
            .find(|c| c.type_.as_deref() == Some(type_))
    }
}

/// The storage backend in short form, e.g. `s3://bucket/prefix`.
pub fn storage_summary(spec: &RegistrySpec) -> String {
    if let Some(s3) = &spec.storage.s3 {
        format!(
            "s3://{}{}",
            s3.bucket,
            s3.root_directory.as_deref().unwrap_or("")
        )
    } else if spec.storage.filesystem.is_some() {
        "filesystem".into()
    } else {
        "emptyDir".into()
    }
}

/// In-cluster URL of the fleet's Service.
pub fn service_url(spec: &RegistrySpec, names: &Names) -> String {
    let scheme = if spec.tls.is_some() { "https" } else { "http" };
    let port = spec.service.as_ref().map_or(5000, |s| s.port);
    format!(
        "{scheme}://{}.{}.svc:{port}",
        names.workload(),
        names.namespace
    )
}

struct Verdict {
    available: (bool, &'static str, String),
    progressing: (bool, &'static str, String),
    degraded: (bool, &'static str, String),
}

fn verdict(desired: i32, issues: &[Issue], d: Option<&ObservedDeployment>) -> Verdict {
    let Some(d) = d else {
        let why = issues.first().map_or(
            (
                "DeploymentMissing",
                "the Deployment does not exist yet".to_string(),
            ),
            |i| (i.reason, i.message.clone()),
        );
        return Verdict {
            available: (false, why.0, why.1.clone()),
            progressing: (
                issues.is_empty(),
                if issues.is_empty() { "Creating" } else { why.0 },
                why.1.clone(),
            ),
            degraded: (!issues.is_empty(), why.0, why.1),
        };
    };
    let counts = format!("{} of {desired} pods available", d.available_replicas);
    let available = if desired == 0 {
        (true, "ScaledToZero", "scaled to zero replicas".to_string())
    } else if d.available_replicas > 0
        && d.condition("Available")
            .is_none_or(|c| c.status.as_deref() == Some("True"))
    {
        (true, "MinimumReplicasAvailable", counts.clone())
    } else {
        (false, MINIMUM_REPLICAS_UNAVAILABLE, counts.clone())
    };
    let progress = d.condition("Progressing");
    let stuck = progress.is_some_and(|c| {
        c.status.as_deref() == Some("False")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    let current = d.observed_generation >= d.generation;
    let rolling = !current
        || progress.is_some_and(|c| {
            c.status.as_deref() == Some("True")
                && c.reason.as_deref() != Some("NewReplicaSetAvailable")
        })
        || d.updated_replicas < desired
        || d.replicas > d.updated_replicas;
    let progressing = if let Some(i) = issues.first() {
        (false, i.reason, i.message.clone())
    } else if stuck {
        let msg = progress.and_then(|c| c.message.clone()).unwrap_or_default();
        (
            false,
            ROLLOUT_STUCK,
            format!("rollout exceeded its progress deadline: {msg}"),
        )
    } else if rolling {
        (
            true,
            "RollingUpdate",
            format!("{} of {desired} pods updated, {counts}", d.updated_replicas),
        )
    } else {
        (false, "RolloutComplete", counts.clone())
    };
    let degraded = if let Some(i) = issues.first() {
        (true, i.reason, i.message.clone())
    } else if stuck {
        (true, ROLLOUT_STUCK, progressing.2.clone())
    } else if !rolling && d.available_replicas < desired {
        let reason = if d.available_replicas == 0 {
            MINIMUM_REPLICAS_UNAVAILABLE
        } else {
            "ReplicasUnavailable"
        };
        (true, reason, counts)
    } else {
        (false, "AsExpected", "no problem found".to_string())
    };
    Verdict {
        available,
        progressing,
        degraded,
    }
}

/// Computes the status of `registry` from its observed Deployment (`None` when absent) and the
/// issues found while validating and dereferencing (missing Secrets etc., e.g. reason
/// `S3CredentialsMissing`). `lastTransitionTime`s of unchanged conditions are kept.
pub fn status(
    registry: &Registry,
    deployment: Option<&ObservedDeployment>,
    issues: &[Issue],
    now: Timestamp,
) -> RegistryStatus {
    let old = registry.status.clone().unwrap_or_default();
    let names = Names::new(
        registry.name_any(),
        registry.namespace().unwrap_or_default(),
    );
    let generation = registry.metadata.generation;
    let v = verdict(registry.spec.replicas, issues, deployment);
    let ready = v.available.0 && !v.progressing.0 && !v.degraded.0;
    let ready_reason = if ready {
        ("Ready", "the fleet serves at the desired scale".to_string())
    } else if v.degraded.0 {
        (v.degraded.1, v.degraded.2.clone())
    } else if v.progressing.0 {
        (v.progressing.1, v.progressing.2.clone())
    } else {
        (v.available.1, v.available.2.clone())
    };
    let mut conditions = old.conditions.clone();
    for (type_, (status, reason, message)) in [
        (AVAILABLE, &v.available),
        (PROGRESSING, &v.progressing),
        (DEGRADED, &v.degraded),
        (READY, &(ready, ready_reason.0, ready_reason.1)),
    ] {
        let desired = Desired {
            type_,
            status: *status,
            reason,
            message,
        };
        upsert(&mut conditions, &desired, generation, now);
    }
    RegistryStatus {
        observed_generation: generation,
        replicas: deployment.map_or(0, |d| d.replicas),
        ready_replicas: deployment.map_or(0, |d| d.ready_replicas),
        selector: Some(names.selector()),
        url: Some(service_url(&registry.spec, &names)),
        external_url: super::ingress::external_url(&registry.spec),
        storage: Some(storage_summary(&registry.spec)),
        conditions,
        // Written by the garbage-collection state machine; carried over here.
        garbage_collection: old.garbage_collection,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::validate::Issue;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("timestamp")
    }

    fn registry(replicas: i32) -> Registry {
        let spec: RegistrySpec = serde_json::from_value(serde_json::json!({
            "replicas": replicas, "storage": {"s3": {"bucket": "b", "rootDirectory": "/x"}}}))
        .expect("spec");
        let mut r = Registry::new("hq", spec);
        r.metadata.namespace = Some("fleet".into());
        r.metadata.generation = Some(7);
        r
    }

    fn cond(type_: &str, status: &str, reason: &str) -> DeploymentCondition {
        DeploymentCondition {
            type_: Some(type_.into()),
            status: Some(status.into()),
            reason: Some(reason.into()),
            message: Some("m".into()),
            ..DeploymentCondition::default()
        }
    }

    fn steady(n: i32) -> ObservedDeployment {
        ObservedDeployment {
            generation: Some(2),
            observed_generation: Some(2),
            replicas: n,
            ready_replicas: n,
            available_replicas: n,
            updated_replicas: n,
            conditions: vec![
                cond("Available", "True", "MinimumReplicasAvailable"),
                cond("Progressing", "True", "NewReplicaSetAvailable"),
            ],
        }
    }

    fn get<'a>(s: &'a RegistryStatus, t: &str) -> (&'a str, &'a str) {
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition");
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn healthy_fleet() {
        let s = status(&registry(3), Some(&steady(3)), &[], at(10));
        assert_eq!(get(&s, AVAILABLE), ("True", "MinimumReplicasAvailable"));
        assert_eq!(get(&s, PROGRESSING), ("False", "RolloutComplete"));
        assert_eq!(get(&s, DEGRADED), ("False", "AsExpected"));
        assert_eq!(get(&s, READY).0, "True");
        assert_eq!((s.replicas, s.ready_replicas), (3, 3));
        assert_eq!(s.observed_generation, Some(7));
        assert_eq!(
            s.selector.as_deref(),
            Some("app.kubernetes.io/name=registry,app.kubernetes.io/instance=hq")
        );
        assert_eq!(s.url.as_deref(), Some("http://hq.fleet.svc:5000"));
        assert_eq!(s.storage.as_deref(), Some("s3://b/x"));
    }

    #[test]
    fn scaling_up_is_progressing() {
        let mut d = steady(3);
        d.generation = Some(3);
        let s = status(&registry(5), Some(&d), &[], at(10));
        assert_eq!(get(&s, PROGRESSING), ("True", "RollingUpdate"));
        assert_eq!(get(&s, DEGRADED).0, "False");
        assert_eq!(get(&s, AVAILABLE).0, "True");
        assert_eq!(get(&s, READY).0, "False");
    }

    #[test]
    fn stuck_rollout_is_degraded() {
        let mut d = steady(3);
        d.available_replicas = 0;
        d.conditions = vec![
            cond("Available", "False", "MinimumReplicasUnavailable"),
            cond("Progressing", "False", "ProgressDeadlineExceeded"),
        ];
        let s = status(&registry(3), Some(&d), &[], at(10));
        assert_eq!(get(&s, DEGRADED), ("True", ROLLOUT_STUCK));
        assert_eq!(get(&s, PROGRESSING), ("False", ROLLOUT_STUCK));
        assert_eq!(get(&s, AVAILABLE), ("False", MINIMUM_REPLICAS_UNAVAILABLE));
    }

    #[test]
    fn crash_after_rollout_is_degraded() {
        let mut d = steady(3);
        d.available_replicas = 0;
        d.ready_replicas = 0;
        let s = status(&registry(3), Some(&d), &[], at(10));
        assert_eq!(get(&s, DEGRADED), ("True", MINIMUM_REPLICAS_UNAVAILABLE));
    }

    #[test]
    fn issues_win_and_transition_time_is_kept() {
        let issue = Issue {
            field: "spec.storage.s3.credentialsSecretRef".into(),
            reason: "S3CredentialsMissing",
            message: "Secret \"s3\" not found; create it".into(),
        };
        let mut r = registry(3);
        let first = status(&r, None, std::slice::from_ref(&issue), at(10));
        assert_eq!(get(&first, DEGRADED), ("True", "S3CredentialsMissing"));
        assert_eq!(get(&first, AVAILABLE).0, "False");
        r.status = Some(first);
        let second = status(&r, Some(&steady(3)), &[issue], at(20));
        let degraded = second
            .conditions
            .iter()
            .find(|c| c.type_ == DEGRADED)
            .expect("c");
        assert_eq!(degraded.last_transition_time.0, at(10));
        assert_eq!(get(&second, AVAILABLE).0, "True");
        r.status = Some(second);
        let healed = status(&r, Some(&steady(3)), &[], at(30));
        assert_eq!(get(&healed, DEGRADED).0, "False");
        let degraded = healed
            .conditions
            .iter()
            .find(|c| c.type_ == DEGRADED)
            .expect("c");
        assert_eq!(degraded.last_transition_time.0, at(30));
    }

    #[test]
    fn scaled_to_zero_is_available() {
        let s = status(&registry(0), Some(&steady(0)), &[], at(1));
        assert_eq!(get(&s, AVAILABLE), ("True", "ScaledToZero"));
        assert_eq!(get(&s, DEGRADED).0, "False");
    }
}
