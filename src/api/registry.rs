//! `Registry`: a fleet of CNCF Distribution registry pods sharing one storage backend.
// Each `printcolumn(...)` repeats `type_ = ...`; clippy mistakes that for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::common::{Condition, LocalObjectReference, SecretKeySelector, SecretReference};
use super::gc::{GarbageCollectionSpec, GarbageCollectionStatus};

/// Distribution registry image used when `spec.image` is not set.
pub const DEFAULT_REGISTRY_IMAGE: &str = "docker.io/library/registry:2.8.3";

/// A highly available fleet of CNCF Distribution registry pods that share one storage backend
/// (multi-master), behind one Service. Scale it with `kubectl scale registry/NAME --replicas=N`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "flotilla.dev",
    version = "v1alpha1",
    kind = "Registry",
    plural = "registries",
    singular = "registry",
    shortname = "reg",
    category = "flotilla",
    namespaced,
    status = "RegistryStatus",
    doc = "A highly available fleet of CNCF Distribution registry pods sharing one storage backend, behind one Service.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Desired registry pods"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Registry pods ready to serve"
    ),
    printcolumn(
        name = "Storage",
        type_ = "string",
        json_path = ".status.storage",
        description = "Storage backend"
    ),
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".status.url",
        description = "In-cluster URL"
    ),
    printcolumn(
        name = "Maintenance",
        type_ = "string",
        json_path = ".status.garbageCollection.phase",
        description = "Garbage-collection window: Idle, EnteringReadOnly, Collecting, LeavingReadOnly"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.replicas <= 1 || has(self.storage.s3) || (has(self.storage.filesystem) && self.storage.filesystem.accessMode == 'ReadWriteMany')").message("spec.replicas > 1 needs shared storage: use spec.storage.s3, or spec.storage.filesystem with accessMode ReadWriteMany").field_path(".replicas"))]
#[x_kube(validation = Rule::new("!has(self.proxy) || !self.readOnly").message("spec.readOnly cannot be combined with spec.proxy: a pull-through cache must write what it fetches").field_path(".readOnly"))]
#[serde(rename_all = "camelCase")]
pub struct RegistrySpec {
    /// Number of registry pods. More than one requires shared storage (S3, or a
    /// ReadWriteMany volume). Changed by `kubectl scale` and by HorizontalPodAutoscalers.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,

    /// Container image of the CNCF Distribution registry (v2.8 configuration format).
    /// Pin it by digest in production.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// Where the registry keeps blobs and manifests. Exactly one of `s3`, `filesystem` or
    /// `emptyDir`.
    pub storage: StorageSpec,

    /// URL under which clients outside the cluster (other clusters, developers) reach this
    /// fleet, e.g. `https://registry.east.example.com`. Reported in status; used by
    /// ReplicationPolicies in other clusters. Default: derived from `spec.ingress`. When set
    /// (or derived), the registry answers with relative `Location`s and, with `spec.access`,
    /// sends clients to `<externalURL>/token` for tokens: the proxy in front must route
    /// `/token` to the Service's `token` port (`spec.ingress` does).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "externalURL"
    )]
    #[schemars(regex(pattern = r"^https?://[^\s/@]+(/.*)?$"), length(max = 2048))]
    pub external_url: Option<String>,

    /// Client authentication. Without it the registry accepts anonymous pushes and pulls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    /// Access rules (anonymous pull, per-team push, admins), enforced by Flotilla's token
    /// service. Without it, `spec.auth` alone lets every user do everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<super::access::AccessSpec>,

    /// Exposure outside the cluster through an Ingress (`/v2` and `/token` on one host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<super::ingress::IngressSpec>,

    /// Exposure outside the cluster through a Gateway API `HTTPRoute` (`/v2` and `/token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route: Option<super::ingress::HttpRouteSpec>,

    /// Serve HTTPS with the certificate of a `kubernetes.io/tls` Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Run as a pull-through cache of an upstream registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxySpec>,

    /// Maintenance mode: reject pushes and deletes (e.g. during garbage collection).
    #[serde(default)]
    pub read_only: bool,

    /// Allow deleting manifests and blobs through the API (needed by deletion sync and
    /// garbage collection).
    #[serde(default = "default_true")]
    pub delete_enabled: bool,

    /// Shared blob-descriptor cache for all replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,

    /// Send push and delete notifications to Flotilla, so ReplicationPolicies with
    /// `trigger.onPush` replicate within seconds.
    #[serde(default = "default_true")]
    pub notifications: bool,

    /// How the fleet is exposed inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,

    /// Who may replicate from and to this fleet. ReplicationPolicies in the Registry's own
    /// namespace always may; policies in other namespaces only when listed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationAccess>,

    /// Overrides applied on top of the pods Flotilla builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,

    /// Garbage collection in a read-only window (S3 or a ReadWriteMany/ReadWriteOnce claim;
    /// not `emptyDir`, not a pull-through cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garbage_collection: Option<GarbageCollectionSpec>,
}

/// Storage backend. Exactly one of `s3`, `filesystem` or `emptyDir`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[x_kube(validation = Rule::new("[has(self.s3), has(self.filesystem), has(self.emptyDir)].filter(x, x).size() == 1").message("set exactly one of spec.storage.s3, spec.storage.filesystem or spec.storage.emptyDir"))]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// An S3 (or S3-compatible: MinIO, Ceph RGW, ...) bucket shared by every replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
    /// A PersistentVolumeClaim. More than one replica requires `accessMode: ReadWriteMany`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemStorage>,
    /// A pod-local emptyDir: content is lost when the pod goes. Development only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirStorage>,
}

/// An S3 bucket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    /// Bucket name. It must exist; Flotilla never creates nor deletes buckets or objects.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Region of the bucket (any value for most S3-compatible servers).
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// Endpoint of an S3-compatible server, e.g. `https://minio.storage.svc:9000`.
    /// Empty means AWS S3. No `user:password@`: the keys belong in `credentialsSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s/@]+(/[^\s]*)?$"))]
    pub endpoint: Option<String>,
    /// Address the bucket as `endpoint/bucket` instead of `bucket.endpoint` (MinIO needs it).
    #[serde(default)]
    pub force_path_style: bool,
    /// Prefix of every object the registry writes, so several fleets can share a bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/[^\s]*$"), length(max = 1024))]
    pub root_directory: Option<String>,
    /// Ask S3 for server-side encryption of every object.
    #[serde(default)]
    pub encrypt: bool,
    /// Secret with the access key pair. Omit it to use the pod's ambient credentials
    /// (IRSA, instance profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<S3CredentialsRef>,
}

impl S3Storage {
    /// Whether the bucket is addressed as `endpoint/bucket`: asked for, or implied by an
    /// S3-compatible endpoint (whose DNS rarely has a name per bucket).
    pub fn path_style(&self) -> bool {
        self.force_path_style || self.endpoint.is_some()
    }
}

/// Secret holding an S3 access key pair.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3CredentialsRef {
    /// Name of the Secret, in the Registry's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key of the access key ID.
    #[serde(default = "default_access_key_key")]
    pub access_key_key: String,
    /// Key of the secret access key.
    #[serde(default = "default_secret_key_key")]
    pub secret_key_key: String,
}

/// A filesystem on a PersistentVolumeClaim: an existing claim, or one Flotilla creates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.claimName) != has(self.size)").message("set exactly one of spec.storage.filesystem.claimName (an existing claim) or spec.storage.filesystem.size (Flotilla creates the claim)"))]
#[serde(rename_all = "camelCase")]
pub struct FilesystemStorage {
    /// Name of an existing PersistentVolumeClaim in the Registry's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_name: Option<String>,
    /// Size of the claim Flotilla creates, e.g. `100Gi`. The claim is kept when the Registry
    /// is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"))]
    pub size: Option<String>,
    /// Storage class of the claim Flotilla creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Access mode of the volume. Only `ReadWriteMany` can be shared by several replicas.
    #[serde(default)]
    pub access_mode: AccessMode,
}

/// Access mode of a filesystem volume.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum AccessMode {
    /// Mounted by one node.
    #[default]
    ReadWriteOnce,
    /// Mounted by many nodes: several replicas can share it.
    ReadWriteMany,
}

/// Pod-local scratch storage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmptyDirStorage {
    /// Upper bound of the volume, e.g. `10Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"))]
    pub size_limit: Option<String>,
}

/// Client authentication.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Basic authentication against an htpasswd file (bcrypt entries) kept in a Secret.
    /// Flotilla adds its own user `flotilla-operator` (random password, kept in the
    /// `<name>-generated` Secret) for ReplicationPolicies that name this Registry by
    /// `registryRef`; that user name is reserved.
    pub htpasswd: HtpasswdAuth,
}

/// htpasswd authentication.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HtpasswdAuth {
    /// Secret key holding the htpasswd file.
    pub secret_ref: SecretKeySelector,
    /// Realm announced in the `WWW-Authenticate` challenge.
    #[serde(default = "default_realm")]
    pub realm: String,
}

/// HTTPS serving.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A Secret of type `kubernetes.io/tls` (keys `tls.crt`, `tls.key`) in the Registry's
    /// namespace. ReplicationPolicies naming this Registry by `registryRef` trust the CA in the
    /// Secret's `ca.crt` (as cert-manager writes it). Without `ca.crt` they try `tls.crt`
    /// itself, which fails for a self-signed certificate marked as a CA: add `ca.crt`. The
    /// certificate must name the Service host `<name>.<namespace>.svc`.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// Pull-through cache of an upstream registry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxySpec {
    /// URL of the upstream registry, e.g. `https://registry-1.docker.io`. No
    /// `user:password@`: credentials belong in `credentialsSecretRef`.
    #[serde(rename = "remoteURL")]
    #[schemars(regex(pattern = r"^https?://[^\s/@]+(/[^\s]*)?$"))]
    pub remote_url: String,
    /// Credentials for the upstream (dockerconfigjson or basic-auth Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,
}

/// Blob-descriptor cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheSpec {
    /// A Redis server shared by every replica.
    pub redis: RedisCache,
}

/// A Redis server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisCache {
    /// `host:port` of the Redis server.
    #[schemars(regex(pattern = r"^[^\s:]+:[0-9]{1,5}$"))]
    pub address: String,
    /// Redis database number.
    #[serde(default)]
    #[schemars(range(min = 0, max = 15))]
    pub db: i32,
    /// Secret key holding the Redis password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeySelector>,
}

/// How the fleet's Service is exposed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Service port.
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Annotations of the Service (load balancer settings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Also expose the registry's debug port (5001: Prometheus metrics, health, pprof
    /// profiles) on the Service, as port `metrics`. Off by default: the debug port has no
    /// authentication. Prometheus can scrape the pods directly without it.
    #[serde(default)]
    pub expose_debug_port: bool,
}

/// Which ReplicationPolicies outside the Registry's namespace may name it by `registryRef`.
/// Such a policy pulls, pushes and (with `deletion: true`) deletes here with Flotilla's own
/// account, so only the Registry's owner grants it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationAccess {
    /// Namespaces whose ReplicationPolicies may name this Registry by `registryRef`, as
    /// source or destination; `"*"` allows every namespace. The Registry's own namespace is
    /// always allowed. Default: none other.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        inner(
            regex(pattern = r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$"),
            length(max = 63)
        )
    )]
    pub allowed_namespaces: Vec<String>,
}

/// Kubernetes Service type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Also through a cloud load balancer.
    LoadBalancer,
}

/// Overrides applied on top of the registry pods Flotilla builds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Compute resources of the registry container (default: requests 100m CPU, 128Mi memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity rules (replaces Flotilla's default anti-affinity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Topology spread constraints (replace Flotilla's default spread across nodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Pull secrets for the registry image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
}

/// Observed state of a Registry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Registry pods that exist (read by the scale subresource).
    #[serde(default)]
    pub replicas: i32,
    /// Registry pods ready to serve.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the registry pods, in string form (read by the scale subresource
    /// and HorizontalPodAutoscalers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// In-cluster URL of the fleet's Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// URL for clients outside the cluster: `spec.externalURL`, else derived from
    /// `spec.ingress` (`https://<host>` with TLS).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "externalURL"
    )]
    pub external_url: Option<String>,
    /// Storage backend in short form, e.g. `s3://bucket/prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// Conditions: `Ready`, `Available`, `Progressing`, `Degraded`, `Maintenance`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Garbage-collection window and last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garbage_collection: Option<GarbageCollectionStatus>,
}

fn default_replicas() -> i32 {
    1
}
fn default_image() -> String {
    DEFAULT_REGISTRY_IMAGE.to_string()
}
fn default_true() -> bool {
    true
}
fn default_region() -> String {
    "us-east-1".to_string()
}
fn default_access_key_key() -> String {
    "accessKey".to_string()
}
fn default_secret_key_key() -> String {
    "secretKey".to_string()
}
fn default_realm() -> String {
    "flotilla".to_string()
}
fn default_service_port() -> i32 {
    5000
}
