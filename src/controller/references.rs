//! Secrets and Registries a resource refers to, and the pure check of what was found.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use crate::api::registry::RegistrySpec;
use crate::api::replication_policy::{Endpoint, ReplicationPolicySpec};
use crate::replication::validate::Issue;

/// What a referenced Secret must contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Every one of these keys.
    Keys(Vec<String>),
    /// Registry credentials: `.dockerconfigjson`, or both `username` and `password`.
    RegistryCredentials,
}

/// One Secret a spec refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRequirement {
    /// Field holding the reference, e.g. `spec.storage.s3.credentialsSecretRef`.
    pub field: String,
    /// Secret name (same namespace as the referring resource).
    pub name: String,
    /// What it must contain.
    pub needs: Needs,
}

/// One Registry a policy refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRequirement {
    /// Field holding the reference.
    pub field: String,
    /// Registry name.
    pub name: String,
    /// Registry namespace.
    pub namespace: String,
}

/// The Secrets a Registry spec refers to.
pub fn registry_secrets(spec: &RegistrySpec) -> Vec<SecretRequirement> {
    let mut out = Vec::new();
    if let Some(creds) = spec
        .storage
        .s3
        .as_ref()
        .and_then(|s| s.credentials_secret_ref.as_ref())
    {
        out.push(SecretRequirement {
            field: "spec.storage.s3.credentialsSecretRef".into(),
            name: creds.name.clone(),
            needs: Needs::Keys(vec![
                creds.access_key_key.clone(),
                creds.secret_key_key.clone(),
            ]),
        });
    }
    if let Some(auth) = &spec.auth {
        out.push(SecretRequirement {
            field: "spec.auth.htpasswd.secretRef".into(),
            name: auth.htpasswd.secret_ref.name.clone(),
            needs: Needs::Keys(vec![auth.htpasswd.secret_ref.key.clone()]),
        });
    }
    if let Some(tls) = &spec.tls {
        out.push(SecretRequirement {
            field: "spec.tls.secretName".into(),
            name: tls.secret_name.clone(),
            needs: Needs::Keys(vec!["tls.crt".into(), "tls.key".into()]),
        });
    }
    if let Some(creds) = spec
        .proxy
        .as_ref()
        .and_then(|p| p.credentials_secret_ref.as_ref())
    {
        out.push(SecretRequirement {
            field: "spec.proxy.credentialsSecretRef".into(),
            name: creds.name.clone(),
            needs: Needs::RegistryCredentials,
        });
    }
    if let Some(pw) = spec
        .cache
        .as_ref()
        .and_then(|c| c.redis.password_secret_ref.as_ref())
    {
        out.push(SecretRequirement {
            field: "spec.cache.redis.passwordSecretRef".into(),
            name: pw.name.clone(),
            needs: Needs::Keys(vec![pw.key.clone()]),
        });
    }
    if let Some(g) = spec
        .access
        .as_ref()
        .and_then(|a| a.groups_secret_ref.as_ref())
    {
        out.push(SecretRequirement {
            field: crate::fleet::access::GROUPS_FIELD.into(),
            name: g.name.clone(),
            needs: Needs::Keys(vec![g.key.clone()]),
        });
    }
    out
}

fn endpoint_secrets(field: &str, e: &Endpoint, out: &mut Vec<SecretRequirement>) {
    if let Some(c) = &e.credentials_secret_ref {
        out.push(SecretRequirement {
            field: format!("{field}.credentialsSecretRef"),
            name: c.name.clone(),
            needs: Needs::RegistryCredentials,
        });
    }
    if let Some(ca) = &e.ca_secret_ref {
        out.push(SecretRequirement {
            field: format!("{field}.caSecretRef"),
            name: ca.name.clone(),
            needs: Needs::Keys(vec![ca.key.clone()]),
        });
    }
}

/// The Secrets a ReplicationPolicy spec refers to.
pub fn policy_secrets(spec: &ReplicationPolicySpec) -> Vec<SecretRequirement> {
    let mut out = Vec::new();
    endpoint_secrets("spec.source", &spec.source, &mut out);
    for d in &spec.destinations {
        endpoint_secrets(
            &format!("spec.destinations[{}]", d.name),
            &d.endpoint,
            &mut out,
        );
    }
    for (i, k) in spec.verify.iter().flat_map(|v| v.keys.iter()).enumerate() {
        if let Some(r) = &k.secret_key_ref {
            out.push(SecretRequirement {
                field: format!("spec.verify.keys[{i}].secretKeyRef"),
                name: r.name.clone(),
                needs: Needs::Keys(vec![r.key.clone()]),
            });
        }
    }
    out
}

/// The ConfigMaps (name) a ReplicationPolicy spec refers to: public keys of `spec.verify`.
pub fn policy_config_maps(spec: &ReplicationPolicySpec) -> Vec<String> {
    let mut names: Vec<String> = spec
        .verify
        .iter()
        .flat_map(|v| v.keys.iter())
        .filter_map(|k| k.config_map_key_ref.as_ref().map(|c| c.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The Registries a ReplicationPolicy spec refers to; `namespace` is the policy's.
pub fn policy_registries(
    spec: &ReplicationPolicySpec,
    namespace: &str,
) -> Vec<RegistryRequirement> {
    let endpoints = std::iter::once(("spec.source".to_string(), &spec.source)).chain(
        spec.destinations
            .iter()
            .map(|d| (format!("spec.destinations[{}]", d.name), &d.endpoint)),
    );
    endpoints
        .filter_map(|(field, e)| {
            e.registry_ref.as_ref().map(|r| RegistryRequirement {
                field: format!("{field}.registryRef"),
                name: r.name.clone(),
                namespace: r.namespace.clone().unwrap_or_else(|| namespace.to_string()),
            })
        })
        .collect()
}

fn has_key(data: &BTreeMap<String, ByteString>, key: &str) -> bool {
    data.get(key).is_some_and(|v| !v.0.is_empty())
}

/// The problem with a referenced Secret as found (`None`: not found), or `None` when it
/// satisfies the requirement. Never looks at, nor reports, secret values.
pub fn check_secret(
    req: &SecretRequirement,
    namespace: &str,
    found: Option<&Secret>,
) -> Option<Issue> {
    let Some(secret) = found else {
        return Some(Issue {
            reason: "SecretNotFound",
            field: req.field.clone(),
            message: format!(
                "Secret {:?} not found in namespace {namespace:?}; create it ({}) or fix the reference",
                req.name,
                describe(&req.needs)
            ),
        });
    };
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let ok = match &req.needs {
        Needs::Keys(keys) => keys.iter().all(|k| has_key(data, k)),
        Needs::RegistryCredentials => {
            has_key(data, ".dockerconfigjson")
                || (has_key(data, "username") && has_key(data, "password"))
        }
    };
    (!ok).then(|| Issue {
        reason: "SecretKeyMissing",
        field: req.field.clone(),
        message: format!(
            "Secret {:?} lacks what is needed: {}",
            req.name,
            describe(&req.needs)
        ),
    })
}

fn describe(needs: &Needs) -> String {
    match needs {
        Needs::Keys(keys) => format!("keys {}", keys.join(", ")),
        Needs::RegistryCredentials => {
            "key .dockerconfigjson (type kubernetes.io/dockerconfigjson) or keys username and password (type kubernetes.io/basic-auth)".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(keys: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                keys.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn policy() -> ReplicationPolicySpec {
        serde_json::from_value(serde_json::json!({
            "source": {"registryRef": {"name": "hq"}},
            "destinations": [
                {"name": "east", "url": "https://east.example.com", "credentialsSecretRef": {"name": "east-creds"},
                 "caSecretRef": {"name": "east-ca", "key": "ca.crt"}},
                {"name": "local", "registryRef": {"name": "mirror", "namespace": "other"}}
            ]
        }))
        .expect("valid spec")
    }

    #[test]
    fn policy_references_are_collected_with_fields() {
        let s = policy_secrets(&policy());
        let fields: Vec<&str> = s.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.destinations[east].credentialsSecretRef",
                "spec.destinations[east].caSecretRef"
            ]
        );
        let r = policy_registries(&policy(), "ns");
        assert_eq!(
            r[0],
            RegistryRequirement {
                field: "spec.source.registryRef".into(),
                name: "hq".into(),
                namespace: "ns".into()
            }
        );
        assert_eq!(r[1].namespace, "other");
    }

    #[test]
    fn registry_references_are_collected() {
        let spec: RegistrySpec = serde_json::from_value(serde_json::json!({
            "storage": {"s3": {"bucket": "b", "credentialsSecretRef": {"name": "s3"}}},
            "tls": {"secretName": "tls"},
            "auth": {"htpasswd": {"secretRef": {"name": "users", "key": "htpasswd"}}}
        }))
        .expect("valid spec");
        let r = registry_secrets(&spec);
        assert_eq!(
            r[0].needs,
            Needs::Keys(vec!["accessKey".into(), "secretKey".into()])
        );
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn missing_secret_names_field_and_fix() {
        let req = &policy_secrets(&policy())[0];
        let p = check_secret(req, "ns", None).expect("a problem");
        assert_eq!(p.reason, "SecretNotFound");
        assert_eq!(p.field, "spec.destinations[east].credentialsSecretRef");
        assert!(p.message.contains("east-creds") && p.message.contains("dockerconfigjson"));
    }

    #[test]
    fn credentials_accept_dockerconfig_or_basic_auth() {
        let req = &policy_secrets(&policy())[0];
        assert!(check_secret(req, "ns", Some(&secret(&[(".dockerconfigjson", "{}")]))).is_none());
        assert!(
            check_secret(
                req,
                "ns",
                Some(&secret(&[("username", "u"), ("password", "p")]))
            )
            .is_none()
        );
        let p = check_secret(req, "ns", Some(&secret(&[("username", "u")]))).expect("a problem");
        assert_eq!(p.reason, "SecretKeyMissing");
    }

    #[test]
    fn problems_never_quote_secret_values() {
        let req = &policy_secrets(&policy())[1];
        let p = check_secret(req, "ns", Some(&secret(&[("other", "hunter2")]))).expect("a problem");
        assert!(!p.message.contains("hunter2"));
    }
}
