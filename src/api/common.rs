//! Types shared by both kinds.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A standard Kubernetes condition (`type`, `status`, `reason`, `message`,
/// `lastTransitionTime`, `observedGeneration`).
pub type Condition = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// A reference to a Secret in the same namespace as the referring resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    /// Name of the object, in the namespace of the referring resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A reference to one key of a Secret in the same namespace as the referring resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// Name of the Secret, in the namespace of the referring resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's `data`.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A reference to a Secret holding registry credentials, in the namespace of the referring
/// resource. Either a `kubernetes.io/dockerconfigjson` Secret (key `.dockerconfigjson`) or a
/// `kubernetes.io/basic-auth` Secret (keys `username` and `password`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret, in the namespace of the referring resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// `t` as a status timestamp, cut to whole seconds as Kubernetes stores it, so a value kept
/// in memory equals the one read back.
pub fn status_time(
    t: k8s_openapi::jiff::Timestamp,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let whole = k8s_openapi::jiff::Timestamp::from_second(t.as_second()).unwrap_or(t);
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(whole)
}
