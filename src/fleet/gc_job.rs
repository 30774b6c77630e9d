//! The garbage-collect Job of a run: the registry pod's image, environment (the same Secret
//! references: `http.secret`, S3 keys), volumes and security, running
//! `registry garbage-collect [--delete-untagged] [--dry-run] CONFIG` once.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, PodAffinity, PodAffinityTerm, PodSpec, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::names::{CONFIG_DIR, CONFIG_KEY, Names};
use super::objects::BuildError;
use crate::api::gc::GcRun;
use crate::api::registry::{AccessMode, Registry};

/// The command the Job runs: Distribution's binary as the official image puts it on `PATH`.
pub const GC_COMMAND: &str = "registry";
/// Finished Jobs (and their logs) are kept this long.
const KEEP_FINISHED_SECONDS: i32 = 7 * 24 * 3600;

/// Labels of the Job and its pod: the Registry's, but never its pods' selector (the Service
/// and the Deployment must not pick the Job's pod).
pub fn labels(names: &Names) -> BTreeMap<String, String> {
    let mut labels = names.labels();
    labels.insert("app.kubernetes.io/name".into(), "registry-gc".into());
    labels.insert(
        "app.kubernetes.io/component".into(),
        "garbage-collection".into(),
    );
    labels
}

/// `garbage-collect` and its flags, then the configuration path.
pub fn command(run: &GcRun) -> Vec<String> {
    let mut c = vec![GC_COMMAND.to_string(), "garbage-collect".to_string()];
    if run.delete_untagged {
        c.push("--delete-untagged".into());
    }
    if run.dry_run {
        c.push("--dry-run".into());
    }
    c.push(format!("{CONFIG_DIR}/{CONFIG_KEY}"));
    c
}

/// Builds the Job of `run` from the registry pods' `template` (as built for the read-only
/// window). `timeout_seconds` becomes its `activeDeadlineSeconds`.
pub fn build_job(
    registry: &Registry,
    template: &PodTemplateSpec,
    run: &GcRun,
    timeout_seconds: i64,
) -> Result<Job, BuildError> {
    let (names, owner) = super::objects::identity(registry)?;
    let name = run.job_name.clone().ok_or(BuildError::MissingMetadata(
        "status.garbageCollection.current.jobName",
    ))?;
    let pod = template.spec.clone().unwrap_or_default();
    let containers = pod
        .containers
        .into_iter()
        .take(1)
        .map(|c| k8s_openapi::api::core::v1::Container {
            name: "garbage-collect".into(),
            command: Some(command(run)),
            args: None,
            ports: None,
            readiness_probe: None,
            liveness_probe: None,
            startup_probe: None,
            lifecycle: None,
            termination_message_policy: Some("FallbackToLogsOnError".into()),
            ..c
        })
        .collect();
    let single_writer = registry
        .spec
        .storage
        .filesystem
        .as_ref()
        .is_some_and(|f| f.access_mode == AccessMode::ReadWriteOnce);
    let affinity = if single_writer {
        // A ReadWriteOnce claim is mounted on one node: the registry pod's.
        Some(Affinity {
            pod_affinity: Some(PodAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(names.selector_labels()),
                        match_expressions: None,
                    }),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..PodAffinityTerm::default()
                }]),
                ..PodAffinity::default()
            }),
            ..Affinity::default()
        })
    } else {
        pod.affinity
    };
    let labels = labels(&names);
    let pod = PodSpec {
        containers,
        restart_policy: Some("Never".into()),
        topology_spread_constraints: None,
        affinity,
        ..pod
    };
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(names.namespace.clone()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(timeout_seconds),
            ttl_seconds_after_finished: Some(KEEP_FINISHED_SECONDS),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: template
                        .metadata
                        .as_ref()
                        .and_then(|m| m.annotations.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::generated::GeneratedSecrets;
    use crate::fleet::objects::{BuildContext, build};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn registry(storage: serde_json::Value) -> Registry {
        let spec = serde_json::from_value(serde_json::json!({
            "replicas": 2, "storage": storage,
            "garbageCollection": {"deleteUntagged": false}
        }))
        .expect("spec");
        let mut r = Registry::new("hq", spec);
        r.metadata.namespace = Some("fleet".into());
        r.metadata.uid = Some("u-1".into());
        r
    }

    fn generated() -> GeneratedSecrets {
        GeneratedSecrets {
            http_secret: "h".into(),
            notification_token: None,
            proxy_credentials: None,
            operator: None,
            token_key: None,
            access_groups: Default::default(),
            tls_fingerprint: None,
        }
    }

    fn run(dry: bool, untagged: bool) -> GcRun {
        GcRun {
            trigger: "Request".into(),
            start_time: Time("2026-01-01T00:00:00Z".parse().expect("time")),
            read_only_since: None,
            job_name: Some("hq-gc-1767225600".into()),
            job_start_time: None,
            delete_untagged: untagged,
            dry_run: dry,
            result: None,
            message: None,
            measured: None,
        }
    }

    fn job_of(r: &Registry, run: &GcRun) -> Job {
        let ctx = BuildContext {
            receiver_url: None,
            read_only_window: true,
            token_service_image: None,
        };
        let children = build(r, &ctx, &generated()).expect("build");
        build_job(r, &children.deployment.spec.template, run, 600).expect("job")
    }

    #[test]
    fn the_job_runs_garbage_collect_with_the_pods_config_env_and_image() {
        let s3 = serde_json::json!({"s3": {"bucket": "b", "endpoint": "http://minio:9000",
            "credentialsSecretRef": {"name": "s3"}}});
        let r = registry(s3);
        let job = job_of(&r, &run(true, false));
        let spec = job.spec.as_ref().expect("job spec");
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(600));
        let pod = spec.template.spec.as_ref().expect("pod");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let c = &pod.containers[0];
        assert_eq!(
            c.command.as_deref(),
            Some(
                &[
                    "registry".to_string(),
                    "garbage-collect".into(),
                    "--dry-run".into(),
                    "/etc/docker/registry/config.yml".into()
                ][..]
            )
        );
        assert_eq!(c.image.as_deref(), Some(r.spec.image.as_str()));
        assert!(c.readiness_probe.is_none() && c.ports.is_none());
        let env: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
        for name in [
            "REGISTRY_HTTP_SECRET",
            "REGISTRY_STORAGE_S3_ACCESSKEY",
            "REGISTRY_STORAGE_S3_SECRETKEY",
        ] {
            assert!(env.contains(&name), "{name} missing from {env:?}");
        }
        assert!(
            c.env.iter().flatten().all(|e| e.value.is_none()),
            "every secret comes by reference"
        );
        let volumes: Vec<&str> = pod
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        assert!(volumes.contains(&"config"), "{volumes:?}");
        // The Job's pod is not one of the fleet's: the Service must not route to it.
        let labels = job.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["app.kubernetes.io/name"], "registry-gc");
        assert_eq!(labels["app.kubernetes.io/instance"], "hq");
        let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Registry", "u-1")
        );
        assert_eq!(job.metadata.name.as_deref(), Some("hq-gc-1767225600"));
    }

    #[test]
    fn flags_follow_the_run_and_a_single_writer_claim_pins_the_node() {
        let fs = serde_json::json!({"filesystem": {"size": "1Gi"}});
        let mut r = registry(fs);
        r.spec.replicas = 1;
        let job = job_of(&r, &run(false, true));
        let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
        let cmd = pod.containers[0].command.clone().expect("command");
        assert!(cmd.contains(&"--delete-untagged".to_string()));
        assert!(!cmd.contains(&"--dry-run".to_string()));
        let affinity = pod
            .affinity
            .and_then(|a| a.pod_affinity)
            .expect("pod affinity");
        let term = &affinity
            .required_during_scheduling_ignored_during_execution
            .expect("required")[0];
        assert_eq!(term.topology_key, "kubernetes.io/hostname");
        assert!(
            pod.volumes
                .iter()
                .flatten()
                .any(|v| v.persistent_volume_claim.is_some()),
            "the Job mounts the claim"
        );
    }
}
