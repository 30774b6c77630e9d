//! `registryRef` endpoints resolved to what the engine needs: the Registry's URL, the
//! operator's own account there and the certificate to trust. Pure: the Registries and their
//! Secrets were read by the controller's dereference step.

use std::collections::BTreeMap;

use super::reasons;
use super::tenancy;
use super::validate::Issue;
use crate::api::registry::Registry;
use crate::api::replication_policy::ReplicationPolicySpec;
use crate::api::{SecretKeySelector, SecretReference};
use crate::fleet::names::{OPERATOR_PASSWORD_KEY, OPERATOR_USERNAME_KEY};
use crate::sync_config::SecretData;

/// Registries a policy names by `registryRef`, by `namespace/name`, with the data of their
/// generated Secret when they have htpasswd auth (the operator's own account) and the
/// certificate to trust when they serve TLS.
#[derive(Debug, Default)]
pub struct Referenced {
    /// The Registries, by `namespace/name`.
    pub registries: BTreeMap<String, Registry>,
    /// The data of their generated Secret (htpasswd auth), by `namespace/name`.
    pub accounts: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// The certificate to trust (TLS), by `namespace/name`.
    pub trust: BTreeMap<String, Vec<u8>>,
}

/// Key of the certificate to trust in the Secret data handed to [`to_sync_config`](crate::sync_config::to_sync_config).
pub const TRUST_KEY: &str = "ca.crt";

/// Name under which the operator's account at Registry `key` (`namespace/name`) is handed to
/// [`to_sync_config`](crate::sync_config::to_sync_config). It contains `/`, so no real Secret can have it.
fn account_secret_name(key: &str) -> String {
    format!("registry/{key}")
}

/// The token services to ask in place of the realms challenges name, for `registryRef`
/// endpoints: the source (`None` key) and destinations by name.
pub type TokenRealms = BTreeMap<Option<String>, String>;

/// For each `registryRef` endpoint naming a Registry with access rules that the operator
/// reaches by its in-cluster URL: the token service's in-cluster address. The Registry's
/// challenges name `<externalURL>/token` once it has an external URL, which the operator's
/// pods need not reach; what the operator copies through the Service it authorizes through
/// the Service too. Not for an endpoint reached through `--registry-url` (an operator outside
/// the cluster goes where the challenge says).
pub fn token_realms(
    spec: &ReplicationPolicySpec,
    namespace: &str,
    referenced: &Referenced,
    url_overrides: &BTreeMap<String, String>,
) -> TokenRealms {
    let endpoints = std::iter::once((None, &spec.source)).chain(
        spec.destinations
            .iter()
            .map(|d| (Some(d.name.clone()), &d.endpoint)),
    );
    let mut out = TokenRealms::new();
    for (id, e) in endpoints {
        let Some(r) = &e.registry_ref else {
            continue;
        };
        let registry_namespace = r.namespace.as_deref().unwrap_or(namespace);
        let key = format!("{registry_namespace}/{}", r.name);
        let Some(reg) = referenced.registries.get(&key) else {
            continue;
        };
        if reg.spec.access.is_none() || url_overrides.contains_key(&key) {
            continue;
        }
        let names = crate::fleet::names::Names::new(&r.name, registry_namespace);
        let realm = crate::fleet::access::in_cluster_realm(&names, reg.spec.tls.is_some());
        out.insert(id, realm);
    }
    out
}

/// Replaces `registryRef` endpoints with the URL of the Registry they name (its in-cluster URL
/// or the operator's `--registry-url` for it), the operator's own account there when it has
/// htpasswd auth, and the certificate to trust when it serves TLS. Returns the spec and that
/// access data, as Secret data under names no real Secret can have.
pub fn resolve_registry_refs(
    spec: &ReplicationPolicySpec,
    namespace: &str,
    referenced: &Referenced,
    url_overrides: &BTreeMap<String, String>,
) -> Result<(ReplicationPolicySpec, SecretData), Issue> {
    let mut out = spec.clone();
    let mut accounts = SecretData::new();
    let endpoints = std::iter::once(("spec.source".to_string(), &mut out.source)).chain(
        out.destinations
            .iter_mut()
            .map(|d| (format!("spec.destinations[{}]", d.name), &mut d.endpoint)),
    );
    for (field, e) in endpoints {
        let Some(r) = e.registry_ref.take() else {
            continue;
        };
        let registry_namespace = r.namespace.as_deref().unwrap_or(namespace);
        let key = format!("{registry_namespace}/{}", r.name);
        let registry = referenced.registries.get(&key);
        if let Some(reg) = registry {
            let field = format!("{field}.registryRef");
            let reference = tenancy::Reference {
                field: &field,
                policy_namespace: namespace,
                registry_namespace,
                registry_name: &r.name,
            };
            if let Some(issue) = tenancy::check(&reference, reg.spec.replication.as_ref()) {
                return Err(issue);
            }
        }
        let in_cluster = registry
            .and_then(|reg| reg.status.as_ref())
            .and_then(|s| s.url.clone());
        let not_ready = |message: String| Issue {
            reason: reasons::REGISTRY_NOT_READY,
            field: format!("{field}.registryRef"),
            message,
        };
        let Some(url) = url_overrides.get(&key).cloned().or(in_cluster) else {
            return Err(not_ready(format!(
                "Registry {key} has no URL in its status yet; wait for it to be reconciled"
            )));
        };
        let name = account_secret_name(&key);
        let mut access = BTreeMap::new();
        if registry.is_some_and(|reg| reg.spec.auth.is_some()) {
            let account = referenced.accounts.get(&key).filter(|data| {
                data.contains_key(OPERATOR_USERNAME_KEY) && data.contains_key(OPERATOR_PASSWORD_KEY)
            });
            let Some(account) = account else {
                return Err(not_ready(format!(
                    "Registry {key} has htpasswd auth and Flotilla's account there is not generated yet; wait for the Registry to be reconciled"
                )));
            };
            for k in [OPERATOR_USERNAME_KEY, OPERATOR_PASSWORD_KEY] {
                if let Some(v) = account.get(k) {
                    access.insert(k.to_string(), v.clone());
                }
            }
            e.credentials_secret_ref = Some(SecretReference { name: name.clone() });
        }
        if let Some(pem) = referenced.trust.get(&key) {
            access.insert(TRUST_KEY.to_string(), pem.clone());
            e.ca_secret_ref = Some(SecretKeySelector {
                name: name.clone(),
                key: TRUST_KEY.to_string(),
            });
        }
        if !access.is_empty() {
            accounts.insert(name, access);
        }
        e.insecure = url.starts_with("http://");
        e.url = Some(url);
    }
    Ok((out, accounts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::RegistryStatus;
    use crate::sync_config::{Resolved, to_sync_config};

    fn registry(name: &str, spec: serde_json::Value) -> Registry {
        let mut reg = Registry::new(name, serde_json::from_value(spec).expect("registry spec"));
        reg.status = Some(RegistryStatus {
            url: Some(format!("http://{name}.fleet.svc:5000")),
            ..Default::default()
        });
        reg
    }

    fn policy_spec(v: serde_json::Value) -> ReplicationPolicySpec {
        serde_json::from_value(v).expect("valid spec")
    }

    /// What a reconcile found: Registry `fleet/hq` with `spec` (its status has a URL).
    fn referencing_hq(spec: serde_json::Value) -> Referenced {
        let mut referenced = Referenced::default();
        referenced
            .registries
            .insert("fleet/hq".to_string(), registry("hq", spec));
        referenced
    }

    #[test]
    fn registry_refs_resolve_to_the_in_cluster_url_or_its_override() {
        let spec = policy_spec(serde_json::json!({
            "source": {"registryRef": {"name": "hq"}},
            "destinations": [{"name": "east", "url": "https://east.example.com"}],
        }));
        let none = BTreeMap::new();
        assert_eq!(
            resolve_registry_refs(&spec, "fleet", &Referenced::default(), &none)
                .map_err(|p| p.reason),
            Err("RegistryNotReady")
        );
        let referenced = referencing_hq(serde_json::json!({"storage": {"emptyDir": {}}}));
        let (out, accounts) =
            resolve_registry_refs(&spec, "fleet", &referenced, &none).expect("resolved");
        assert_eq!(out.source.url.as_deref(), Some("http://hq.fleet.svc:5000"));
        assert!(out.source.insecure && out.source.registry_ref.is_none());
        assert!(out.source.credentials_secret_ref.is_none() && accounts.is_empty());
        let overrides =
            BTreeMap::from([("fleet/hq".to_string(), "https://127.0.0.1:5443".to_string())]);
        let (out, _) =
            resolve_registry_refs(&spec, "fleet", &referenced, &overrides).expect("resolved");
        assert_eq!(out.source.url.as_deref(), Some("https://127.0.0.1:5443"));
        assert!(!out.source.insecure);
    }

    #[test]
    fn tokens_for_a_registry_with_access_rules_come_from_its_in_cluster_token_service() {
        let spec = policy_spec(serde_json::json!({
            "source": {"registryRef": {"name": "hq"}},
            "destinations": [
                {"name": "east", "url": "https://east.example.com"},
                {"name": "local", "registryRef": {"name": "hq"}},
            ],
        }));
        let none = BTreeMap::new();
        let plain = referencing_hq(serde_json::json!({"storage": {"emptyDir": {}}}));
        assert!(
            token_realms(&spec, "fleet", &plain, &none).is_empty(),
            "no token service"
        );
        let ruled = referencing_hq(serde_json::json!({"storage": {"emptyDir": {}},
            "tls": {"secretName": "hq-tls"},
            "ingress": {"host": "registry.example.com"},
            "access": {"rules": [{"repositories": ["**"], "anonymous": ["pull"]}]}}));
        let realms = token_realms(&spec, "fleet", &ruled, &none);
        let in_cluster = "https://hq.fleet.svc:5002/token".to_string();
        assert_eq!(
            realms,
            TokenRealms::from([
                (None, in_cluster.clone()),
                (Some("local".into()), in_cluster)
            ])
        );
        let overrides =
            BTreeMap::from([("fleet/hq".to_string(), "https://127.0.0.1:5443".to_string())]);
        assert!(
            token_realms(&spec, "fleet", &ruled, &overrides).is_empty(),
            "an operator outside the cluster follows the challenge"
        );
    }

    #[test]
    fn a_registry_with_htpasswd_auth_is_reached_with_the_operator_account() {
        let spec = policy_spec(serde_json::json!({
            "source": {"url": "https://src.example.com"},
            "destinations": [{"name": "local", "registryRef": {"name": "hq", "namespace": "fleet"}}],
        }));
        let auth = serde_json::json!({"storage": {"emptyDir": {}},
            "auth": {"htpasswd": {"secretRef": {"name": "users", "key": "htpasswd"}}}});
        let none = BTreeMap::new();
        let refused = resolve_registry_refs(&spec, "apps", &referencing_hq(auth), &none)
            .expect_err("fleet/hq does not allow namespace apps");
        assert_eq!(refused.reason, tenancy::REFERENCE_NOT_ALLOWED);
        let mut referenced = referencing_hq(serde_json::json!({"storage": {"emptyDir": {}},
            "auth": {"htpasswd": {"secretRef": {"name": "users", "key": "htpasswd"}}},
            "replication": {"allowedNamespaces": ["apps"]}}));
        let e = resolve_registry_refs(&spec, "apps", &referenced, &none).expect_err("no account");
        assert_eq!(e.reason, "RegistryNotReady");
        assert_eq!(e.field, "spec.destinations[local].registryRef");
        referenced.accounts.insert(
            "fleet/hq".to_string(),
            BTreeMap::from([
                ("username".to_string(), b"flotilla-operator".to_vec()),
                ("password".to_string(), b"pw".to_vec()),
                ("http-secret".to_string(), b"not for the engine".to_vec()),
            ]),
        );
        let (out, accounts) =
            resolve_registry_refs(&spec, "apps", &referenced, &none).expect("resolved");
        let name = &out.destinations[0]
            .endpoint
            .credentials_secret_ref
            .as_ref()
            .expect("credentials")
            .name;
        assert_eq!(accounts[name].len(), 2, "only username and password");
        let resolved = Resolved {
            secrets: accounts,
            ..Default::default()
        };
        let cfg = to_sync_config(&out, &resolved).expect("sync config");
        let creds = cfg.destinations[0]
            .endpoint
            .credentials
            .as_ref()
            .expect("credentials");
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("flotilla-operator", "pw")
        );
        assert!(cfg.destinations[0].endpoint.ca_pem.is_none());
    }

    #[test]
    fn a_registry_serving_tls_is_trusted_by_its_certificate() {
        let spec = policy_spec(serde_json::json!({
            "source": {"registryRef": {"name": "hq"}},
            "destinations": [{"name": "east", "url": "https://east.example.com"}],
        }));
        let mut referenced = referencing_hq(
            serde_json::json!({"storage": {"emptyDir": {}}, "tls": {"secretName": "hq-tls"}}),
        );
        referenced
            .trust
            .insert("fleet/hq".to_string(), b"PEM".to_vec());
        let (out, access) =
            resolve_registry_refs(&spec, "fleet", &referenced, &BTreeMap::new()).expect("resolved");
        assert!(out.source.credentials_secret_ref.is_none());
        let cfg = to_sync_config(
            &out,
            &Resolved {
                secrets: access,
                ..Default::default()
            },
        )
        .expect("sync config");
        assert_eq!(cfg.source.ca_pem.as_deref(), Some(&b"PEM"[..]));
    }
}
