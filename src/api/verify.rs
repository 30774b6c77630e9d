//! Supply-chain rules of a `ReplicationPolicy`: which artifacts may be copied (signed by a
//! trusted key) and which of their referrers travel with them.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::common::SecretKeySelector;

/// Copy an artifact only when it carries a cosign signature that verifies against one of
/// `keys` and whose signed payload names the artifact's own digest; artifacts that do not
/// are held back (reported as unverified: never copied, nor their referrers). Signatures are
/// found by the OCI 1.1 referrers API or the `sha256-<hex>.sig` tag scheme.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verify {
    /// Trusted public keys (PEM, as `cosign generate-key-pair` writes `cosign.pub`; ECDSA
    /// P-256). A signature by any one of them suffices.
    #[schemars(length(min = 1, max = 16))]
    pub keys: Vec<PublicKeyReference>,
    /// Predicate types (e.g. `https://spdx.dev/Document`) of in-toto attestations that must
    /// also be present, each signed (DSSE, as `cosign attest` makes) by one of `keys` for the
    /// artifact's digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub attestations: Vec<String>,
}

/// Where one public key (or a PEM bundle of several) is: one key of a Secret or of a
/// ConfigMap in the policy's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[x_kube(validation = kube::core::Rule::new("has(self.secretKeyRef) != has(self.configMapKeyRef)").message("set exactly one of secretKeyRef or configMapKeyRef"))]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyReference {
    /// A key of a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeySelector>,
    /// A key of a ConfigMap (public keys are not secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeySelector>,
}

/// A reference to one key of a ConfigMap in the same namespace as the referring resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeySelector {
    /// Name of the ConfigMap, in the namespace of the referring resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the ConfigMap's `data` (or `binaryData`).
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Which referrers travel with their subject (when `referrers` is true). A referrer travels
/// when it matches one `include` rule (or there are none) and no `exclude` rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerFilter {
    /// Referrers that travel (empty: every one not excluded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub include: Vec<ReferrerRule>,
    /// Referrers that never travel, e.g. `{artifactType: application/vnd.example.scan+json}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub exclude: Vec<ReferrerRule>,
}

/// One referrer rule; every part that is set must match. The artifact type is the manifest's
/// `artifactType`, else its config media type, else (cosign's tag-scheme signatures and
/// attestations, whose config is a plain image config)
/// `application/vnd.dev.cosign.artifact.sig.v1+json` for a signature and the first layer's
/// media type otherwise (`application/vnd.dsse.envelope.v1+json` for an attestation).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerRule {
    /// Glob on the artifact type (`*` stays within one `/` segment), e.g.
    /// `application/vnd.dev.cosign.*` or `application/spdx+json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub artifact_type: Option<String>,
    /// Annotations the referrer's manifest must carry, with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}
