//! The dereference step of the ReplicationPolicy reconciler: every read a reconcile needs,
//! once — the Secrets and ConfigMaps the policy names (checked and kept for the engine), the
//! Registries it names by `registryRef` and, where their owners allow this namespace, the
//! operator's account there and the certificate to trust.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use super::super::{Error, references};
use crate::api::registry::Registry;
use crate::api::replication_policy::ReplicationPolicySpec;
use crate::fleet::names::Names;
use crate::replication::reasons;
use crate::replication::refs::Referenced;
use crate::replication::tenancy;
use crate::replication::validate::Issue;
use crate::sync_config::Resolved;

/// What a reconcile read.
pub struct Dereferenced {
    /// Problems found: Secrets missing or incomplete, Registries missing or refusing.
    pub found: Vec<Issue>,
    /// The Registries named, with the operator's access data there.
    pub referenced: Referenced,
    /// The Secrets and ConfigMaps named, for the engine.
    pub resolved: Resolved,
}

/// Reads everything `spec` (a policy in `namespace`) refers to.
pub async fn read(
    client: &Client,
    spec: &ReplicationPolicySpec,
    namespace: &str,
) -> Result<Dereferenced, Error> {
    let (mut found, resolved) = secrets_and_config_maps(client, spec, namespace).await?;
    let (refused, referenced) = registries(client, spec, namespace).await?;
    found.extend(refused);
    Ok(Dereferenced {
        found,
        referenced,
        resolved,
    })
}

/// The Secrets the policy names, each read once: checked, and their data kept for the
/// engine; and the ConfigMaps holding verification keys.
async fn secrets_and_config_maps(
    client: &Client,
    spec: &ReplicationPolicySpec,
    namespace: &str,
) -> Result<(Vec<Issue>, Resolved), Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut read: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    let mut found = Vec::new();
    for req in references::policy_secrets(spec) {
        if !read.contains_key(&req.name) {
            let secret = api.get_opt(&req.name).await?;
            read.insert(req.name.clone(), secret);
        }
        let secret = read.get(&req.name).and_then(Option::as_ref);
        found.extend(references::check_secret(&req, namespace, secret));
    }
    let mut resolved = Resolved::default();
    for (name, secret) in read {
        if let Some(secret) = secret {
            let data = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            resolved.secrets.insert(name, data);
        }
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for name in references::policy_config_maps(spec) {
        if let Some(cm) = config_maps.get_opt(&name).await? {
            let mut data: BTreeMap<String, Vec<u8>> = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            data.extend(
                cm.binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0)),
            );
            resolved.config_maps.insert(name, data);
        }
    }
    Ok((found, resolved))
}

/// The PEM to trust for a Registry's TLS Secret: its `ca.crt` (as cert-manager writes it) or,
/// without one, the serving certificate `tls.crt` itself (self-signed).
fn trust_anchor(secret: Secret) -> Option<Vec<u8>> {
    let mut data = secret.data?;
    ["ca.crt", "tls.crt"]
        .into_iter()
        .find_map(|k| data.remove(k).map(|v| v.0).filter(|v| !v.is_empty()))
}

async fn registries(
    client: &Client,
    spec: &ReplicationPolicySpec,
    namespace: &str,
) -> Result<(Vec<Issue>, Referenced), Error> {
    let mut problems = Vec::new();
    let mut found = Referenced::default();
    for req in references::policy_registries(spec, namespace) {
        let api: Api<Registry> = Api::namespaced(client.clone(), &req.namespace);
        let key = format!("{}/{}", req.namespace, req.name);
        match api.get_opt(&req.name).await? {
            Some(r) => {
                // Refused: its Secrets (Flotilla's account there) are not even read.
                let reference = tenancy::Reference {
                    field: &req.field,
                    policy_namespace: namespace,
                    registry_namespace: &req.namespace,
                    registry_name: &req.name,
                };
                if let Some(issue) = tenancy::check(&reference, r.spec.replication.as_ref()) {
                    problems.push(issue);
                    continue;
                }
                let secrets: Api<Secret> = Api::namespaced(client.clone(), &req.namespace);
                if let Some(tls) = &r.spec.tls
                    && let Some(pem) = secrets.get_opt(&tls.secret_name).await?.and_then(trust_anchor)
                {
                    found.trust.insert(key.clone(), pem);
                }
                if r.spec.auth.is_some() {
                    let generated = Names::new(&req.name, &req.namespace).generated_secret();
                    if let Some(data) = secrets.get_opt(&generated).await?.and_then(|s| s.data) {
                        let data = data.into_iter().map(|(k, v)| (k, v.0)).collect();
                        found.accounts.insert(key.clone(), data);
                    }
                }
                found.registries.insert(key, r);
            }
            None => problems.push(Issue {
                reason: reasons::REGISTRY_NOT_FOUND,
                field: req.field,
                message: format!(
                    "Registry {:?} not found in namespace {:?}; create it, fix the name, or use url for a registry outside this cluster",
                    req.name, req.namespace
                ),
            }),
        }
    }
    Ok((problems, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_serving_tls_is_trusted_by_its_own_certificate() {
        let secret = |pairs: &[(&str, &[u8])]| Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        assert_eq!(
            trust_anchor(secret(&[("tls.crt", b"LEAF"), ("ca.crt", b"CA")])),
            Some(b"CA".to_vec())
        );
        assert_eq!(
            trust_anchor(secret(&[("tls.crt", b"LEAF"), ("ca.crt", b"")])),
            Some(b"LEAF".to_vec())
        );
    }
}
