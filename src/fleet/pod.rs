//! The registry pod: container, environment from Secrets, volumes, probes, security, spread.

use super::mounts::{key_to_path, mount};
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, Lifecycle, LifecycleHandler, LocalObjectReference,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext,
    SleepAction, TCPSocketAction, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::generated::GeneratedSecrets;
use super::names::{
    AUTH_DIR, CONFIG_CHECKSUM_ANNOTATION, CONFIG_DIR, CONFIG_KEY, DATA_DIR, DEBUG_PORT,
    HTPASSWD_KEY, HTTP_PORT, HTTP_SECRET_KEY, NOTIFICATION_ENDPOINTS_KEY, Names,
    PRE_STOP_SLEEP_SECONDS, PROXY_PASSWORD_KEY, PROXY_USERNAME_KEY, TERMINATION_GRACE_SECONDS,
    TLS_DIR,
};
use crate::api::registry::RegistrySpec;

/// UID and GID the registry runs as (the image's default is root).
pub const RUN_AS: i64 = 1000;

/// Environment variable passing the whole notification endpoint list.
pub const NOTIFICATION_ENDPOINTS_ENV: &str = "REGISTRY_NOTIFICATIONS_ENDPOINTS";

fn from_secret(env: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: env.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: key.to_string(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The registry container's environment: every secret the configuration needs, each a
/// reference to a Secret key (never a literal value).
pub fn env(
    spec: &RegistrySpec,
    names: &Names,
    generated: &GeneratedSecrets,
    notifications: bool,
) -> Vec<EnvVar> {
    let own = names.generated_secret();
    let mut env = vec![from_secret("REGISTRY_HTTP_SECRET", &own, HTTP_SECRET_KEY)];
    if let Some(c) = spec
        .storage
        .s3
        .as_ref()
        .and_then(|s| s.credentials_secret_ref.as_ref())
    {
        env.push(from_secret(
            "REGISTRY_STORAGE_S3_ACCESSKEY",
            &c.name,
            &c.access_key_key,
        ));
        env.push(from_secret(
            "REGISTRY_STORAGE_S3_SECRETKEY",
            &c.name,
            &c.secret_key_key,
        ));
    }
    if let Some(p) = spec
        .cache
        .as_ref()
        .and_then(|c| c.redis.password_secret_ref.as_ref())
    {
        env.push(from_secret("REGISTRY_REDIS_PASSWORD", &p.name, &p.key));
    }
    if let Some(r) = spec
        .proxy
        .as_ref()
        .and_then(|p| p.credentials_secret_ref.as_ref())
    {
        let (secret, user, pass) = match generated.proxy_credentials {
            Some(_) => (own.as_str(), PROXY_USERNAME_KEY, PROXY_PASSWORD_KEY),
            None => (r.name.as_str(), "username", "password"),
        };
        env.push(from_secret("REGISTRY_PROXY_USERNAME", secret, user));
        env.push(from_secret("REGISTRY_PROXY_PASSWORD", secret, pass));
    }
    if notifications {
        env.push(from_secret(
            NOTIFICATION_ENDPOINTS_ENV,
            &own,
            NOTIFICATION_ENDPOINTS_KEY,
        ));
    }
    env
}

fn volume(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        ..Volume::default()
    }
}

/// Volumes and the container's mounts: config, tmp, storage, TLS, htpasswd.
pub fn volumes(spec: &RegistrySpec, names: &Names) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = vec![
        Volume {
            config_map: Some(ConfigMapVolumeSource {
                name: names.config_map(),
                ..ConfigMapVolumeSource::default()
            }),
            ..volume("config")
        },
        Volume {
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..volume("tmp")
        },
    ];
    let mut mounts = vec![
        mount("config", CONFIG_DIR),
        VolumeMount {
            read_only: Some(false),
            ..mount("tmp", "/tmp")
        },
    ];
    let data = if let Some(fs) = &spec.storage.filesystem {
        let claim_name = fs.claim_name.clone().unwrap_or_else(|| names.claim());
        Some(Volume {
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name,
                read_only: Some(false),
            }),
            ..volume("data")
        })
    } else {
        spec.storage.empty_dir.as_ref().map(|e| Volume {
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: e.size_limit.clone().map(Quantity),
                ..EmptyDirVolumeSource::default()
            }),
            ..volume("data")
        })
    };
    if let Some(data) = data {
        volumes.push(data);
        mounts.push(VolumeMount {
            read_only: Some(false),
            ..mount("data", DATA_DIR)
        });
    }
    if let Some(tls) = &spec.tls {
        volumes.push(Volume {
            secret: Some(SecretVolumeSource {
                secret_name: Some(tls.secret_name.clone()),
                items: Some(vec![key_to_path("tls.crt"), key_to_path("tls.key")]),
                ..SecretVolumeSource::default()
            }),
            ..volume("tls")
        });
        mounts.push(mount("tls", TLS_DIR));
    }
    if spec.access.is_some() {
        // Token auth: the registry trusts the token certificate; users are the sidecar's.
        let (token_volumes, cert_mount, _) = super::access::volumes(names, spec.tls.is_some());
        volumes.extend(token_volumes);
        mounts.push(cert_mount);
    } else if spec.auth.is_some() {
        // The generated Secret's file: the user's entries plus the operator's account.
        volumes.push(Volume {
            secret: Some(SecretVolumeSource {
                secret_name: Some(names.generated_secret()),
                items: Some(vec![key_to_path(HTPASSWD_KEY)]),
                ..SecretVolumeSource::default()
            }),
            ..volume("htpasswd")
        });
        mounts.push(mount("htpasswd", AUTH_DIR));
    }
    (volumes, mounts)
}

fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("100m".into())),
            ("memory".to_string(), Quantity("128Mi".into())),
        ])),
        ..ResourceRequirements::default()
    }
}

fn probe(action: Probe, period: i32, failure: i32) -> Probe {
    Probe {
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failure),
        ..action
    }
}

/// Readiness: `/debug/health` on the plain-HTTP debug port (it includes the storage-driver
/// check, so a pod that cannot reach S3 leaves the Service). Liveness: the debug port accepts
/// connections (a storage outage must not restart every pod).
fn probes() -> (Probe, Probe) {
    let readiness = Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/debug/health".into()),
            port: IntOrString::String("debug".into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    };
    let liveness = Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String("debug".into()),
            host: None,
        }),
        initial_delay_seconds: Some(5),
        ..Probe::default()
    };
    (probe(readiness, 5, 3), probe(liveness, 10, 6))
}

fn security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

fn default_spread(names: &Names) -> Vec<TopologySpreadConstraint> {
    vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "kubernetes.io/hostname".into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(names.selector_labels()),
            match_expressions: None,
        }),
        ..TopologySpreadConstraint::default()
    }]
}

fn non_empty<K: Ord, V>(m: BTreeMap<K, V>) -> Option<BTreeMap<K, V>> {
    (!m.is_empty()).then_some(m)
}

fn non_empty_vec<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// The pod template. `checksum` is the checksum of the rendered configuration.
pub fn template(
    spec: &RegistrySpec,
    names: &Names,
    env: Vec<EnvVar>,
    checksum: &str,
    token_service_image: Option<&str>,
) -> PodTemplateSpec {
    let overrides = spec.pod.clone().unwrap_or_default();
    let (volumes, volume_mounts) = volumes(spec, names);
    let (readiness, liveness) = probes();
    let scheme_port = |name: &str, port: i32| ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    };
    let container = Container {
        name: "registry".into(),
        image: Some(spec.image.clone()),
        args: Some(vec![format!("{CONFIG_DIR}/{CONFIG_KEY}")]),
        ports: Some(vec![
            scheme_port("http", HTTP_PORT),
            scheme_port("debug", DEBUG_PORT),
        ]),
        env: non_empty_vec(env),
        resources: Some(
            overrides
                .resources
                .clone()
                .unwrap_or_else(default_resources),
        ),
        volume_mounts: Some(volume_mounts),
        readiness_probe: Some(readiness),
        liveness_probe: Some(liveness),
        security_context: Some(security_context()),
        // The image has no shell: the kubelet's own sleep action, not `sh -c sleep`.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_SLEEP_SECONDS,
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        ..Container::default()
    };
    let sidecar = token_service_image
        .filter(|_| spec.access.is_some())
        .map(|image| {
            let tls = spec.tls.is_some();
            let (_, _, mounts) = super::access::volumes(names, tls);
            super::access::sidecar(image, tls, mounts, security_context())
        });
    let mut annotations = overrides.annotations.clone();
    annotations.insert(CONFIG_CHECKSUM_ANNOTATION.into(), checksum.into());
    let spread = if overrides.topology_spread_constraints.is_empty() {
        default_spread(names)
    } else {
        overrides.topology_spread_constraints.clone()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(names.labels()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: std::iter::once(container).chain(sidecar).collect(),
            volumes: Some(volumes),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS),
                run_as_group: Some(RUN_AS),
                fs_group: Some(RUN_AS),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            topology_spread_constraints: Some(spread),
            node_selector: non_empty(overrides.node_selector),
            tolerations: non_empty_vec(overrides.tolerations),
            affinity: overrides.affinity,
            image_pull_secrets: non_empty_vec(
                overrides
                    .image_pull_secrets
                    .into_iter()
                    .map(|r| LocalObjectReference { name: r.name })
                    .collect(),
            ),
            ..PodSpec::default()
        }),
    }
}
