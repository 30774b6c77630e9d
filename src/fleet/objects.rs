//! Spec + names + generated secrets → every object a Registry owns.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret, Service, ServicePort,
    ServiceSpec, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::config::{RenderError, render_config, render_notification_endpoints};
use super::generated::GeneratedSecrets;
use super::names::{
    CONFIG_KEY, DEBUG_PORT, HTPASSWD_KEY, HTTP_SECRET_KEY, NOTIFICATION_ENDPOINTS_KEY,
    NOTIFICATION_TOKEN_KEY, Names, OPERATOR_PASSWORD_KEY, OPERATOR_USERNAME, OPERATOR_USERNAME_KEY,
    PROXY_PASSWORD_KEY, PROXY_USERNAME_KEY, TOKEN_CERT_KEY, TOKEN_KEY_KEY, TOKEN_PORT,
};
use super::{access, pod};
use crate::api::registry::{AccessMode, Registry, ServiceType};

/// Errors building a Registry's objects.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Registry lacks metadata the builders need (name, namespace, uid).
    #[error("Registry is missing metadata.{0}")]
    MissingMetadata(&'static str),
    /// The configuration could not be rendered.
    #[error(transparent)]
    Config(#[from] RenderError),
    /// The access bundle could not be serialized.
    #[error("cannot render the access rules: {0}")]
    Access(#[from] serde_json::Error),
    /// `spec.access` is set but the operator knows no token service image.
    #[error("spec.access needs the operator's --token-service-image")]
    NoTokenServiceImage,
}

/// Operator-wide inputs of the builders.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildContext {
    /// URL of Flotilla's event receiver as the registry pods reach it, e.g.
    /// `http://flotilla.flotilla-system.svc:8080/v1/events`. `None`: no notifications.
    pub receiver_url: Option<String>,
    /// A garbage-collection window is open: render `storage.maintenance.readonly.enabled:
    /// true` whatever `spec.readOnly` says (a new checksum, so the pods roll).
    pub read_only_window: bool,
    /// Image running `flotilla token-service` (the operator's own), for Registries with
    /// `spec.access`.
    pub token_service_image: Option<String>,
}

/// Everything a Registry owns, ready for server-side apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    /// `<name>-generated`: `http-secret`, and the notification token and endpoint list.
    pub generated_secret: Secret,
    /// `<name>-access`: the token service's rules and users, only with `spec.access`. Not in
    /// the checksum: the service re-reads it, the pods do not roll.
    pub access_secret: Option<Secret>,
    /// What `<name>-access` becomes once `spec.access` is gone: no rules, no users. Applied
    /// only over one that exists (the operator holds no `delete` on Secrets; the Registry's
    /// deletion takes it along).
    pub access_secret_emptied: Secret,
    /// `<name>-config`: `config.yml` (no secret values).
    pub config_map: ConfigMap,
    /// `<name>`: the registry pods.
    pub deployment: Deployment,
    /// `<name>`: the fleet's Service.
    pub service: Service,
    /// `<name>`, only with `spec.ingress` (delete it otherwise).
    pub ingress: Option<Ingress>,
    /// `<name>`, the Gateway API `HTTPRoute`, only with `spec.httpRoute` (delete it
    /// otherwise).
    pub http_route: Option<kube::api::DynamicObject>,
    /// `<name>`, only when replicas > 1 (delete it otherwise).
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
    /// `<name>-data`, only when `storage.filesystem.size` is set. It carries no owner reference:
    /// the claim (the registry's data) outlives the Registry.
    pub claim: Option<PersistentVolumeClaim>,
    /// Checksum of the rendered configuration, also on the pod template.
    pub checksum: String,
}

/// The names of a Registry's objects and the owner reference they carry.
pub fn identity(registry: &Registry) -> Result<(Names, OwnerReference), BuildError> {
    let namespace = registry
        .namespace()
        .ok_or(BuildError::MissingMetadata("namespace"))?;
    let owner = registry
        .controller_owner_ref(&())
        .ok_or(BuildError::MissingMetadata("uid"))?;
    Ok((Names::new(registry.name_any(), namespace), owner))
}

/// Builds every owned object of `registry`. Pure: same inputs, same objects.
pub fn build(
    registry: &Registry,
    ctx: &BuildContext,
    generated: &GeneratedSecrets,
) -> Result<Children, BuildError> {
    let (names, owner) = identity(registry)?;
    let window_spec;
    let spec = if ctx.read_only_window && !registry.spec.read_only {
        window_spec = crate::api::registry::RegistrySpec {
            read_only: true,
            ..registry.spec.clone()
        };
        &window_spec
    } else {
        &registry.spec
    };

    let external = super::ingress::external_url(spec);
    let token = spec
        .access
        .as_ref()
        .map(|_| access::token_auth(&names, spec.tls.is_some(), external.as_deref()));
    let config = render_config(spec, token.as_ref())?;
    let endpoints = match (
        spec.notifications,
        &ctx.receiver_url,
        &generated.notification_token,
    ) {
        (true, Some(url), Some(token)) => Some(render_notification_endpoints(url, token)?),
        _ => None,
    };
    let secret_data = secret_data(generated, endpoints.as_deref(), spec.access.is_some());
    let checksum = checksum(&config, &secret_data, generated.tls_fingerprint.as_deref());

    let meta = |name: String| ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(names.labels()),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    };
    let generated_secret = Secret {
        metadata: meta(names.generated_secret()),
        type_: Some("Opaque".into()),
        data: Some(secret_data),
        ..Secret::default()
    };
    let config_map = ConfigMap {
        metadata: meta(names.config_map()),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), config)])),
        ..ConfigMap::default()
    };
    let access_secret = access_secret(spec, &names, generated, meta(names.access_secret()))?;
    let access_secret_emptied = Secret {
        metadata: meta(names.access_secret()),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::new()),
        ..Secret::default()
    };
    let sidecar = token_service_image(spec, ctx)?;
    let env = pod::env(spec, &names, generated, endpoints.is_some());
    let template = pod::template(spec, &names, env, &checksum, sidecar);
    let deployment = deployment(spec, &names, template, meta(names.workload()));
    let service = service(
        &names,
        spec.service.as_ref(),
        spec.access.is_some(),
        meta(names.workload()),
    );
    let pod_disruption_budget = (spec.replicas > 1).then(|| PodDisruptionBudget {
        metadata: meta(names.workload()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(&names)),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    });
    let claim = claim(registry, &names);
    let ingress = super::ingress::ingress(spec, &names, meta(names.workload()));
    let http_route = super::http_route::http_route(spec, &names, meta(names.workload()));
    Ok(Children {
        ingress,
        http_route,
        generated_secret,
        access_secret,
        access_secret_emptied,
        config_map,
        deployment,
        service,
        pod_disruption_budget,
        claim,
        checksum,
    })
}

/// `<name>`: the registry pods, rolled without dropping below the ready count (replaced,
/// for a single-writer volume).
fn deployment(
    spec: &crate::api::registry::RegistrySpec,
    names: &Names,
    template: k8s_openapi::api::core::v1::PodTemplateSpec,
    metadata: ObjectMeta,
) -> Deployment {
    let single_writer = spec
        .storage
        .filesystem
        .as_ref()
        .is_some_and(|f| f.access_mode == AccessMode::ReadWriteOnce);
    Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: selector(names),
            strategy: Some(strategy(single_writer)),
            revision_history_limit: Some(5),
            template,
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

/// The image of the token service sidecar, with `spec.access` only.
fn token_service_image<'a>(
    spec: &crate::api::registry::RegistrySpec,
    ctx: &'a BuildContext,
) -> Result<Option<&'a str>, BuildError> {
    match &spec.access {
        Some(_) => ctx
            .token_service_image
            .as_deref()
            .map(Some)
            .ok_or(BuildError::NoTokenServiceImage),
        None => Ok(None),
    }
}

/// `<name>-access`: the token service's bundle and users, with `spec.access` only.
fn access_secret(
    spec: &crate::api::registry::RegistrySpec,
    names: &Names,
    generated: &GeneratedSecrets,
    metadata: ObjectMeta,
) -> Result<Option<Secret>, BuildError> {
    let (Some(a), Some(account)) = (&spec.access, &generated.operator) else {
        return Ok(None);
    };
    let bundle = access::bundle(a, names, generated.access_groups.clone());
    Ok(Some(Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(access::secret_data(&bundle, &account.htpasswd)?),
        ..Secret::default()
    }))
}

fn secret_data(
    generated: &GeneratedSecrets,
    endpoints: Option<&str>,
    token_auth: bool,
) -> BTreeMap<String, ByteString> {
    let mut data = BTreeMap::new();
    let mut put = |k: &str, v: &str| data.insert(k.to_string(), ByteString(v.as_bytes().to_vec()));
    put(HTTP_SECRET_KEY, &generated.http_secret);
    if let (Some(token), Some(endpoints)) = (&generated.notification_token, endpoints) {
        put(NOTIFICATION_TOKEN_KEY, token);
        put(NOTIFICATION_ENDPOINTS_KEY, endpoints);
    }
    if let Some((user, pass)) = &generated.proxy_credentials {
        put(PROXY_USERNAME_KEY, user);
        put(PROXY_PASSWORD_KEY, pass);
    }
    if let Some(account) = &generated.operator {
        // With token auth the users live in the access Secret, outside the checksum.
        if !token_auth {
            put(HTPASSWD_KEY, &account.htpasswd);
        }
        put(OPERATOR_USERNAME_KEY, OPERATOR_USERNAME);
        put(OPERATOR_PASSWORD_KEY, &account.password);
    }
    if let Some(key) = &generated.token_key {
        put(TOKEN_KEY_KEY, &key.key_pem);
        put(TOKEN_CERT_KEY, &key.cert_pem);
    }
    data
}

/// SHA-256 over the configuration and the generated Secret's data (values the pods read only
/// at start-up), hex encoded. Not over replicas or anything else that needs no restart.
fn checksum(
    config: &str,
    secret_data: &BTreeMap<String, ByteString>,
    tls_fingerprint: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    h.update(config.as_bytes());
    for (k, v) in secret_data {
        h.update([0u8]);
        h.update(k.as_bytes());
        h.update([0u8]);
        h.update(&v.0);
    }
    // Only with TLS, so the checksum of a fleet without it is what it always was.
    if let Some(f) = tls_fingerprint {
        h.update([1u8]);
        h.update(f.as_bytes());
    }
    hex::encode(h.finalize())
}

fn selector(names: &Names) -> LabelSelector {
    LabelSelector {
        match_labels: Some(names.selector_labels()),
        match_expressions: None,
    }
}

/// Rolling update that never drops below the ready count; a single-writer volume cannot be
/// attached by a surge pod, so it is replaced instead.
fn strategy(single_writer: bool) -> DeploymentStrategy {
    if single_writer {
        return DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        };
    }
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_unavailable: Some(IntOrString::Int(0)),
            max_surge: Some(IntOrString::Int(1)),
        }),
    }
}

fn service(
    names: &Names,
    spec: Option<&crate::api::registry::ServiceSpec>,
    token: bool,
    mut metadata: ObjectMeta,
) -> Service {
    let (type_, port) = spec.map_or((ServiceType::ClusterIP, 5000), |s| (s.type_, s.port));
    let expose_debug = spec.is_some_and(|s| s.expose_debug_port);
    if let Some(s) = spec.filter(|s| !s.annotations.is_empty()) {
        metadata.annotations = Some(s.annotations.clone());
    }
    let type_ = match type_ {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    let service_port = |name: &str, port: i32, target: &str| ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(target.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    };
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            selector: Some(names.selector_labels()),
            // The debug port (metrics, pprof) has no authentication: only when asked for.
            ports: Some(
                std::iter::once(service_port("http", port, "http"))
                    .chain(expose_debug.then(|| service_port("metrics", DEBUG_PORT, "debug")))
                    .chain(token.then(|| service_port("token", TOKEN_PORT, "token")))
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn claim(registry: &Registry, names: &Names) -> Option<PersistentVolumeClaim> {
    let fs = registry.spec.storage.filesystem.as_ref()?;
    let size = fs.size.as_ref()?;
    let mode = match fs.access_mode {
        AccessMode::ReadWriteOnce => "ReadWriteOnce",
        AccessMode::ReadWriteMany => "ReadWriteMany",
    };
    Some(PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(names.claim()),
            namespace: Some(names.namespace.clone()),
            labels: Some(names.labels()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![mode.into()]),
            storage_class_name: fs.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(size.clone()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    })
}

/// The owner reference the builders put on every owned object (except the claim).
pub fn owner_reference(registry: &Registry) -> Option<OwnerReference> {
    registry.controller_owner_ref(&())
}

#[cfg(test)]
#[path = "objects_tests.rs"]
mod tests;
