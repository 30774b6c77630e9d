//! Pure conversion of a `ReplicationPolicySpec` (plus credentials already read from wherever
//! they live) into the engine's [`SyncConfig`]. No I/O: the CLI feeds it Secrets found in the
//! policy file and a docker config file, the controller feeds it Secrets read from the API.

mod docker_config;
mod quantity;
mod supply_chain;

use std::collections::BTreeMap;
use std::time::Duration;

pub use docker_config::{DockerConfigError, parse as parse_docker_config};
pub use quantity::{SUFFIXES, parse_quantity};
pub use supply_chain::referrer_rules;

use crate::api::replication_policy::{Endpoint, ReplicationPolicySpec};
use crate::engine::auth::{Credentials, DockerConfig, normalize_host};
use crate::engine::backoff::RetryConfig;
use crate::engine::client::EndpointConfig;
use crate::engine::config::{DestinationConfig, SyncConfig, TagRules};
use crate::engine::rewrite::Rewrite;
use crate::field_path::FieldPath;

/// The `data` of Secrets (decoded bytes), by Secret name.
pub type SecretData = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// Credentials known besides Secrets.
#[derive(Clone, Default)]
pub struct Resolved {
    /// Secrets by name.
    pub secrets: SecretData,
    /// ConfigMaps by name (`data` and `binaryData` together), for `spec.verify.keys`.
    pub config_maps: SecretData,
    /// A docker config used for endpoints without `credentialsSecretRef`.
    pub docker_config: Option<DockerConfig>,
}

/// Names the Secrets and their keys, never a value.
impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: BTreeMap<&String, Vec<&String>> = self
            .secrets
            .iter()
            .map(|(name, data)| (name, data.keys().collect()))
            .collect();
        f.debug_struct("Resolved")
            .field("secrets", &keys)
            .field("config_maps", &self.config_maps.keys().collect::<Vec<_>>())
            .field("docker_config", &self.docker_config)
            .finish()
    }
}

/// Why a spec cannot be run, and the field at fault: `spec.bandwidthLimit: "5Xi" is not …`.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SpecError {
    /// Where, e.g. `spec.destinations[east].credentialsSecretRef`.
    pub field: FieldPath,
    /// What.
    pub problem: SpecProblem,
}

/// What is wrong with a field.
#[derive(Debug, thiserror::Error)]
pub enum SpecProblem {
    /// A registryRef endpoint outside a cluster.
    #[error(
        "registryRef {name:?} only exists inside a cluster; outside one set url (e.g. https://host:port) instead"
    )]
    RegistryRef {
        /// The Registry name.
        name: String,
    },
    /// Neither url nor registryRef.
    #[error("neither url nor registryRef is set")]
    NoUrl,
    /// A referenced Secret is not known.
    #[error(
        "Secret {name:?} was not provided (and no docker config entry for the endpoint's host stands in)"
    )]
    MissingSecret {
        /// Secret name.
        name: String,
    },
    /// A Secret lacks the expected keys.
    #[error("Secret {name:?} has no {wanted}")]
    SecretKeys {
        /// Secret name.
        name: String,
        /// What was expected.
        wanted: Wanted,
    },
    /// A docker config in a Secret is invalid.
    #[error("Secret {name:?} key .dockerconfigjson: {source}")]
    DockerConfig {
        /// Secret name.
        name: String,
        /// Cause (never quotes the document).
        source: DockerConfigError,
    },
    /// Bad bandwidth quantity.
    #[error("{value:?} is not a byte quantity such as 50Mi or 10M")]
    Bandwidth {
        /// As written.
        value: String,
    },
    /// A key reference with neither or both of secretKeyRef and configMapKeyRef.
    #[error("set exactly one of secretKeyRef or configMapKeyRef")]
    KeyReference,
    /// A Secret or ConfigMap without the named key.
    #[error("{kind} {name:?} has no key {key:?}")]
    ObjectKey {
        /// `Secret` or `ConfigMap`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The key.
        key: String,
    },
    /// A referenced ConfigMap is not known.
    #[error("ConfigMap {name:?} was not provided")]
    MissingConfigMap {
        /// ConfigMap name.
        name: String,
    },
    /// Public key material that cannot be used.
    #[error(transparent)]
    Key(#[from] crate::engine::verify::KeyError),
    /// A number below its minimum.
    #[error("{value} is below the minimum of {min}")]
    TooSmall {
        /// As written.
        value: i64,
        /// The least allowed.
        min: i64,
    },
}

/// What a Secret was expected to hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Wanted {
    /// The key a `caSecretRef` names.
    Key(String),
    /// An `auths` entry for the endpoint's host.
    DockerConfigEntry {
        /// The host.
        host: String,
    },
    /// `.dockerconfigjson`, or `username` and `password`.
    CredentialKeys,
}

impl std::fmt::Display for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wanted::Key(k) => write!(f, "key {k:?}"),
            Wanted::DockerConfigEntry { host } => {
                write!(f, "entry for {host} in .dockerconfigjson")
            }
            Wanted::CredentialKeys => {
                f.write_str("key .dockerconfigjson nor keys username and password")
            }
        }
    }
}

fn at(field: FieldPath, problem: SpecProblem) -> SpecError {
    SpecError { field, problem }
}

/// A number of `field` that must be at least `min`.
fn at_least<T: TryFrom<i64>>(
    field: FieldPath,
    value: impl Into<i64>,
    min: i64,
) -> Result<T, SpecError> {
    let value = value.into();
    T::try_from(value)
        .ok()
        .filter(|_| value >= min)
        .ok_or_else(|| at(field, SpecProblem::TooSmall { value, min }))
}

/// Converts a spec.
pub fn to_sync_config(
    spec: &ReplicationPolicySpec,
    resolved: &Resolved,
) -> Result<SyncConfig, SpecError> {
    let source = endpoint(FieldPath::spec().field("source"), &spec.source, resolved)?;
    let destinations = spec
        .destinations
        .iter()
        .map(|d| {
            let field = FieldPath::spec().field("destinations").key(d.name.clone());
            Ok(DestinationConfig {
                name: d.name.clone(),
                from: d.from.clone(),
                endpoint: endpoint(field, &d.endpoint, resolved)?,
            })
        })
        .collect::<Result<Vec<_>, SpecError>>()?;
    let (repo_inc, repo_exc) = spec
        .repositories
        .as_ref()
        .map(|r| (r.include.clone(), r.exclude.clone()))
        .unwrap_or_default();
    let tags = spec
        .tags
        .as_ref()
        .map(|t| TagRules {
            include: t.include.clone(),
            exclude: t.exclude.clone(),
            regex: t.regex.clone(),
            semver: t.semver.clone(),
        })
        .unwrap_or_default();
    let concurrency = at_least(FieldPath::spec().field("concurrency"), spec.concurrency, 1)?;
    let retry = FieldPath::spec().field("retry");
    let max_attempts = at_least(
        retry.clone().field("maxAttempts"),
        spec.retry.max_attempts,
        1,
    )?;
    let backoff_ms: u64 = at_least(
        retry.clone().field("initialBackoffMillis"),
        spec.retry.initial_backoff_millis,
        0,
    )?;
    let request_timeout: u64 = at_least(
        retry.field("requestTimeoutSeconds"),
        spec.retry.request_timeout_seconds,
        1,
    )?;
    let max_deletions = at_least(
        FieldPath::spec().field("maxDeletions"),
        spec.max_deletions,
        0,
    )?;
    let deadline: u64 = at_least(
        FieldPath::spec().field("activeDeadlineSeconds"),
        spec.active_deadline_seconds,
        1,
    )?;
    Ok(SyncConfig {
        source,
        destinations,
        repositories_include: repo_inc,
        repositories_exclude: repo_exc,
        tags,
        platforms: spec.platforms.iter().map(|p| p.0.clone()).collect(),
        referrers: spec.referrers,
        rewrite: spec
            .rewrite
            .as_ref()
            .map(|r| Rewrite {
                strip_prefix: r.strip_prefix.clone(),
                prefix: r.prefix.clone(),
            })
            .unwrap_or_default(),
        deletion: spec.deletion,
        max_deletions,
        deadline: Duration::from_secs(deadline),
        overwrite: spec.overwrite,
        concurrency,
        bandwidth_limit: spec
            .bandwidth_limit
            .as_ref()
            .map(|q| {
                parse_quantity(&q.0).ok_or_else(|| {
                    at(
                        FieldPath::spec().field("bandwidthLimit"),
                        SpecProblem::Bandwidth { value: q.0.clone() },
                    )
                })
            })
            .transpose()?,
        retry: RetryConfig {
            max_attempts,
            initial_backoff: Duration::from_millis(backoff_ms),
            request_timeout: Duration::from_secs(request_timeout),
        },
        dry_run: false,
        referrer_rules: supply_chain::referrer_rules(spec),
        verify: supply_chain::verify(spec, resolved)?,
    })
}

fn endpoint(
    field: FieldPath,
    e: &Endpoint,
    resolved: &Resolved,
) -> Result<EndpointConfig, SpecError> {
    if let Some(r) = &e.registry_ref {
        return Err(at(
            field.field("registryRef"),
            SpecProblem::RegistryRef {
                name: r.name.clone(),
            },
        ));
    }
    let Some(url) = &e.url else {
        return Err(at(field, SpecProblem::NoUrl));
    };
    let host = normalize_host(url);
    let credentials = match &e.credentials_secret_ref {
        Some(r) => {
            let field = field.clone().field("credentialsSecretRef");
            match resolved.secrets.get(&r.name) {
                Some(data) => Some(credentials_from_secret(field, &r.name, data, &host)?),
                // Outside a cluster the Secret may be absent: a docker config entry for the
                // host stands in for it.
                None => Some(
                    resolved
                        .docker_config
                        .as_ref()
                        .and_then(|c| c.lookup(&host))
                        .cloned()
                        .ok_or_else(|| {
                            at(
                                field,
                                SpecProblem::MissingSecret {
                                    name: r.name.clone(),
                                },
                            )
                        })?,
                ),
            }
        }
        None => resolved
            .docker_config
            .as_ref()
            .and_then(|c| c.lookup(&host))
            .cloned(),
    };
    let ca_pem = match &e.ca_secret_ref {
        Some(sel) => {
            let field = field.field("caSecretRef");
            let data = resolved.secrets.get(&sel.name).ok_or_else(|| {
                at(
                    field.clone(),
                    SpecProblem::MissingSecret {
                        name: sel.name.clone(),
                    },
                )
            })?;
            Some(data.get(&sel.key).cloned().ok_or_else(|| {
                at(
                    field,
                    SpecProblem::SecretKeys {
                        name: sel.name.clone(),
                        wanted: Wanted::Key(sel.key.clone()),
                    },
                )
            })?)
        }
        None => None,
    };
    Ok(EndpointConfig {
        url: url.trim_end_matches('/').to_string(),
        credentials,
        ca_pem,
        insecure: e.insecure,
    })
}

fn credentials_from_secret(
    field: FieldPath,
    name: &str,
    data: &BTreeMap<String, Vec<u8>>,
    host: &str,
) -> Result<Credentials, SpecError> {
    let keys = |wanted| SpecProblem::SecretKeys {
        name: name.to_string(),
        wanted,
    };
    if let Some(json) = data.get(".dockerconfigjson") {
        let cfg = parse_docker_config(json).map_err(|source| {
            at(
                field.clone(),
                SpecProblem::DockerConfig {
                    name: name.to_string(),
                    source,
                },
            )
        })?;
        return cfg.lookup(host).cloned().ok_or_else(|| {
            at(
                field,
                keys(Wanted::DockerConfigEntry {
                    host: host.to_string(),
                }),
            )
        });
    }
    match (data.get("username"), data.get("password")) {
        (Some(u), Some(p)) => Ok(Credentials {
            username: String::from_utf8_lossy(u).into_owned(),
            password: String::from_utf8_lossy(p).into_owned(),
        }),
        _ => Err(at(field, keys(Wanted::CredentialKeys))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_resolved_credentials_names_keys_only() {
        let mut secrets = SecretData::new();
        secrets.insert(
            "src".into(),
            BTreeMap::from([("password".to_string(), b"hunter2-planted".to_vec())]),
        );
        let r = Resolved {
            secrets,
            config_maps: SecretData::new(),
            docker_config: Some(
                DockerConfig::parse(
                    br#"{"auths":{"h":{"username":"u","password":"hunter3-planted"}}}"#,
                )
                .expect("config"),
            ),
        };
        let text = format!("{r:?}");
        assert!(!text.contains("planted"), "{text}");
        assert!(text.contains("password"), "{text}");
    }

    fn spec(yaml: &str) -> ReplicationPolicySpec {
        serde_yaml::from_str(yaml).expect("valid spec")
    }

    #[test]
    fn converts_with_secrets_and_docker_config() {
        let s = spec(
            r#"
source: {url: "http://127.0.0.1:5000", insecure: true, credentialsSecretRef: {name: src}}
destinations:
  - {name: east, url: "https://east.example.com"}
  - {name: city, url: "https://city.example.com", from: east}
tags: {include: ["v*"], semver: ">=1"}
rewrite: {prefix: mirror}
concurrency: 8
bandwidthLimit: 10Mi
"#,
        );
        let mut secrets = SecretData::new();
        secrets.insert(
            "src".into(),
            [
                ("username".to_string(), b"u".to_vec()),
                ("password".to_string(), b"p".to_vec()),
            ]
            .into(),
        );
        let docker = DockerConfig::parse(
            br#"{"auths":{"east.example.com":{"username":"e","password":"x"}}}"#,
        )
        .expect("docker config");
        let cfg = to_sync_config(
            &s,
            &Resolved {
                secrets,
                config_maps: SecretData::new(),
                docker_config: Some(docker),
            },
        )
        .expect("converts");
        assert_eq!(
            cfg.source.credentials.as_ref().map(|c| c.username.as_str()),
            Some("u")
        );
        assert!(cfg.source.insecure);
        assert_eq!(
            cfg.destinations[0]
                .endpoint
                .credentials
                .as_ref()
                .map(|c| c.username.as_str()),
            Some("e")
        );
        assert!(cfg.destinations[1].endpoint.credentials.is_none());
        assert_eq!(cfg.destinations[1].from.as_deref(), Some("east"));
        assert_eq!(cfg.concurrency, 8);
        assert_eq!(cfg.bandwidth_limit, Some(10 * 1024 * 1024));
        assert_eq!(cfg.rewrite.apply("a"), "mirror/a");
        assert_eq!(cfg.tags.include, vec!["v*".to_string()]);
        assert!(cfg.referrers && cfg.overwrite && !cfg.deletion);
    }

    #[test]
    fn authfile_stands_in_for_an_absent_secret() {
        let s = spec(
            "source: {url: 'https://s.example.com', credentialsSecretRef: {name: absent}}\ndestinations: [{name: a, url: 'https://a'}]",
        );
        let docker = DockerConfig::parse(
            br#"{"auths":{"s.example.com":{"username":"cli","password":"x"}}}"#,
        )
        .expect("docker config");
        let cfg = to_sync_config(
            &s,
            &Resolved {
                secrets: SecretData::new(),
                config_maps: SecretData::new(),
                docker_config: Some(docker),
            },
        )
        .expect("converts");
        assert_eq!(
            cfg.source.credentials.map(|c| c.username),
            Some("cli".to_string())
        );
    }

    #[test]
    fn explains_what_to_fix() {
        let s =
            spec("source: {registryRef: {name: hq}}\ndestinations: [{name: a, url: 'https://a'}]");
        let e = to_sync_config(&s, &Resolved::default()).expect_err("registryRef");
        assert!(
            e.to_string().starts_with("spec.source.registryRef: ")
                && e.to_string().contains("set url"),
            "{e}"
        );
        let s = spec(
            "source: {url: 'https://s', credentialsSecretRef: {name: nope}}\ndestinations: [{name: a, url: 'https://a'}]",
        );
        let e = to_sync_config(&s, &Resolved::default()).expect_err("missing secret");
        assert!(
            e.to_string()
                .starts_with("spec.source.credentialsSecretRef: Secret \"nope\""),
            "{e}"
        );
    }

    fn error(yaml: &str, secrets: SecretData) -> String {
        let resolved = Resolved {
            secrets,
            config_maps: SecretData::new(),
            docker_config: None,
        };
        to_sync_config(&spec(yaml), &resolved)
            .expect_err("refused")
            .to_string()
    }

    const ONE_DEST: &str = "destinations: [{name: east, url: 'https://east'}]\n";

    #[test]
    fn every_error_names_its_field() {
        let src = "source: {url: 'https://s'}\n";
        let e = error(
            &format!("{src}{ONE_DEST}bandwidthLimit: 5Xi"),
            SecretData::new(),
        );
        assert!(
            e.starts_with("spec.bandwidthLimit: \"5Xi\" is not a byte quantity"),
            "{e}"
        );
        let e = error(&format!("{src}{ONE_DEST}concurrency: 0"), SecretData::new());
        assert_eq!(e, "spec.concurrency: 0 is below the minimum of 1");
        let e = error(
            &format!("{src}{ONE_DEST}maxDeletions: -1"),
            SecretData::new(),
        );
        assert_eq!(e, "spec.maxDeletions: -1 is below the minimum of 0");
        let e = error(
            &format!("{src}{ONE_DEST}activeDeadlineSeconds: 0"),
            SecretData::new(),
        );
        assert!(e.starts_with("spec.activeDeadlineSeconds: "), "{e}");
        let e = error(
            &format!("{src}{ONE_DEST}retry: {{requestTimeoutSeconds: 0}}"),
            SecretData::new(),
        );
        assert!(e.starts_with("spec.retry.requestTimeoutSeconds: "), "{e}");
        let e = error(
            &format!("{src}{ONE_DEST}retry: {{maxAttempts: 0}}"),
            SecretData::new(),
        );
        assert!(e.starts_with("spec.retry.maxAttempts: "), "{e}");
        let e = error(
            &format!("{src}{ONE_DEST}retry: {{initialBackoffMillis: -1}}"),
            SecretData::new(),
        );
        assert!(e.starts_with("spec.retry.initialBackoffMillis: "), "{e}");
        let e = error(
            &format!("{src}destinations: [{{name: east, registryRef: {{name: hq}}}}]"),
            SecretData::new(),
        );
        assert!(
            e.starts_with("spec.destinations[east].registryRef: "),
            "{e}"
        );
        let e = error(
            &format!("{src}destinations: [{{name: east}}]"),
            SecretData::new(),
        );
        assert_eq!(
            e,
            "spec.destinations[east]: neither url nor registryRef is set"
        );
        let mut secrets = SecretData::new();
        secrets.insert("ca".into(), [("other".to_string(), b"x".to_vec())].into());
        let e = error(
            &format!(
                "source: {{url: 'https://s', caSecretRef: {{name: ca, key: ca.crt}}}}\n{ONE_DEST}"
            ),
            secrets,
        );
        assert_eq!(
            e,
            "spec.source.caSecretRef: Secret \"ca\" has no key \"ca.crt\""
        );
    }

    #[test]
    fn a_malformed_dockerconfigjson_is_reported_without_its_content() {
        let mut secrets = SecretData::new();
        secrets.insert(
            "creds".into(),
            [(
                ".dockerconfigjson".to_string(),
                br#"{"auths": {"east": {"username": "u", "password": 4711123}}}"#.to_vec(),
            )]
            .into(),
        );
        let e = error(
            "source: {url: 'https://s'}\ndestinations: [{name: east, url: 'https://east', credentialsSecretRef: {name: creds}}]",
            secrets,
        );
        assert!(
            e.starts_with("spec.destinations[east].credentialsSecretRef: Secret \"creds\" key .dockerconfigjson: auths[\"east\"].password must be a string"),
            "{e}"
        );
        assert!(!e.contains("4711123"), "{e}");
    }
}
