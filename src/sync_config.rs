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
        rewrite: rewrite(spec),
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
        scope: crate::engine::SyncScope::All,
        unreachable: crate::engine::config::OnUnreachable::Stop,
        referrer_rules: supply_chain::referrer_rules(spec),
        verify: supply_chain::verify(spec, resolved)?,
    })
}

/// `spec.rewrite` (none: names unchanged).
fn rewrite(spec: &ReplicationPolicySpec) -> Rewrite {
    spec.rewrite
        .as_ref()
        .map(|r| Rewrite {
            strip_prefix: r.strip_prefix.clone(),
            prefix: r.prefix.clone(),
        })
        .unwrap_or_default()
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
        token_realm: None,
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
mod tests;
