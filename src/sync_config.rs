//! Pure conversion of a `ReplicationPolicySpec` (plus credentials already read from wherever
//! they live) into the engine's [`SyncConfig`]. No I/O: the CLI feeds it Secrets found in the
//! policy file and a docker config file, the controller feeds it Secrets read from the API.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::replication_policy::{Endpoint, ReplicationPolicySpec};
use crate::engine::auth::{AuthError, Credentials, DockerConfig, normalize_host};
use crate::engine::backoff::RetryConfig;
use crate::engine::client::EndpointConfig;
use crate::engine::config::{DestinationConfig, SyncConfig, TagRules};
use crate::engine::rewrite::Rewrite;

/// The `data` of Secrets (decoded bytes), by Secret name.
pub type SecretData = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// Credentials known besides Secrets.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// Secrets by name.
    pub secrets: SecretData,
    /// A docker config used for endpoints without `credentialsSecretRef`.
    pub docker_config: Option<DockerConfig>,
}

/// Why a spec cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A registryRef endpoint outside a cluster.
    #[error(
        "{role} uses registryRef {name:?}; outside a cluster set url (e.g. https://host:port) instead"
    )]
    RegistryRef {
        /// `source` or `destination <name>`.
        role: String,
        /// The Registry name.
        name: String,
    },
    /// Neither url nor registryRef.
    #[error("{role} has neither url nor registryRef")]
    NoUrl {
        /// Role.
        role: String,
    },
    /// A referenced Secret is not known.
    #[error(
        "{role} refers to Secret {name:?}, which was not provided (and no docker config entry for its host stands in)"
    )]
    MissingSecret {
        /// Role.
        role: String,
        /// Secret name.
        name: String,
    },
    /// A Secret lacks the expected keys.
    #[error("Secret {name:?} ({role}) has no {wanted}")]
    SecretKeys {
        /// Role.
        role: String,
        /// Secret name.
        name: String,
        /// What was expected.
        wanted: String,
    },
    /// A docker config in a Secret is invalid.
    #[error("Secret {name:?} ({role}): {source}")]
    DockerConfig {
        /// Role.
        role: String,
        /// Secret name.
        name: String,
        /// Cause.
        source: AuthError,
    },
    /// Bad bandwidth quantity.
    #[error("bandwidthLimit {0:?} is not a quantity such as 50Mi or 10M")]
    Bandwidth(String),
    /// Out-of-range numbers.
    #[error("{0}")]
    Range(String),
}

/// Converts a spec.
pub fn to_sync_config(
    spec: &ReplicationPolicySpec,
    resolved: &Resolved,
) -> Result<SyncConfig, SpecError> {
    let source = endpoint("source", &spec.source, resolved)?;
    let destinations = spec
        .destinations
        .iter()
        .map(|d| {
            Ok(DestinationConfig {
                name: d.name.clone(),
                from: d.from.clone(),
                endpoint: endpoint(&format!("destination {}", d.name), &d.endpoint, resolved)?,
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
    let concurrency = usize::try_from(spec.concurrency)
        .ok()
        .filter(|c| *c >= 1)
        .ok_or_else(|| {
            SpecError::Range(format!(
                "concurrency {} must be at least 1",
                spec.concurrency
            ))
        })?;
    let max_attempts = u32::try_from(spec.retry.max_attempts)
        .ok()
        .filter(|c| *c >= 1)
        .ok_or_else(|| SpecError::Range("retry.maxAttempts must be at least 1".into()))?;
    let backoff_ms = u64::try_from(spec.retry.initial_backoff_millis)
        .map_err(|_| SpecError::Range("retry.initialBackoffMillis must not be negative".into()))?;
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
        max_deletions: usize::try_from(spec.max_deletions)
            .map_err(|_| SpecError::Range("maxDeletions must not be negative".into()))?,
        deadline: u64::try_from(spec.active_deadline_seconds)
            .ok()
            .filter(|s| *s >= 1)
            .map(Duration::from_secs)
            .ok_or_else(|| SpecError::Range("activeDeadlineSeconds must be at least 1".into()))?,
        overwrite: spec.overwrite,
        concurrency,
        bandwidth_limit: spec
            .bandwidth_limit
            .as_ref()
            .map(|q| parse_quantity(&q.0).ok_or_else(|| SpecError::Bandwidth(q.0.clone())))
            .transpose()?,
        retry: RetryConfig {
            max_attempts,
            initial_backoff: Duration::from_millis(backoff_ms),
            request_timeout: u64::try_from(spec.retry.request_timeout_seconds)
                .ok()
                .filter(|s| *s >= 1)
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    SpecError::Range("retry.requestTimeoutSeconds must be at least 1".into())
                })?,
        },
        dry_run: false,
    })
}

fn endpoint(role: &str, e: &Endpoint, resolved: &Resolved) -> Result<EndpointConfig, SpecError> {
    if let Some(r) = &e.registry_ref {
        return Err(SpecError::RegistryRef {
            role: role.to_string(),
            name: r.name.clone(),
        });
    }
    let Some(url) = &e.url else {
        return Err(SpecError::NoUrl {
            role: role.to_string(),
        });
    };
    let host = normalize_host(url);
    let credentials = match &e.credentials_secret_ref {
        Some(r) => match resolved.secrets.get(&r.name) {
            Some(data) => Some(credentials_from_secret(role, &r.name, data, &host)?),
            // Outside a cluster the Secret may be absent: a docker config entry for the host
            // stands in for it.
            None => Some(
                resolved
                    .docker_config
                    .as_ref()
                    .and_then(|c| c.lookup(&host))
                    .cloned()
                    .ok_or_else(|| SpecError::MissingSecret {
                        role: role.to_string(),
                        name: r.name.clone(),
                    })?,
            ),
        },
        None => resolved
            .docker_config
            .as_ref()
            .and_then(|c| c.lookup(&host))
            .cloned(),
    };
    let ca_pem = match &e.ca_secret_ref {
        Some(sel) => Some(
            resolved
                .secrets
                .get(&sel.name)
                .ok_or_else(|| SpecError::MissingSecret {
                    role: role.to_string(),
                    name: sel.name.clone(),
                })?
                .get(&sel.key)
                .cloned()
                .ok_or_else(|| SpecError::SecretKeys {
                    role: role.to_string(),
                    name: sel.name.clone(),
                    wanted: format!("key {:?}", sel.key),
                })?,
        ),
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
    role: &str,
    name: &str,
    data: &BTreeMap<String, Vec<u8>>,
    host: &str,
) -> Result<Credentials, SpecError> {
    if let Some(json) = data.get(".dockerconfigjson") {
        let cfg = DockerConfig::parse(json).map_err(|source| SpecError::DockerConfig {
            role: role.to_string(),
            name: name.to_string(),
            source,
        })?;
        return cfg
            .lookup(host)
            .cloned()
            .ok_or_else(|| SpecError::SecretKeys {
                role: role.to_string(),
                name: name.to_string(),
                wanted: format!("entry for {host} in .dockerconfigjson"),
            });
    }
    match (data.get("username"), data.get("password")) {
        (Some(u), Some(p)) => Ok(Credentials {
            username: String::from_utf8_lossy(u).into_owned(),
            password: String::from_utf8_lossy(p).into_owned(),
        }),
        _ => Err(SpecError::SecretKeys {
            role: role.to_string(),
            name: name.to_string(),
            wanted: "key .dockerconfigjson nor keys username and password".into(),
        }),
    }
}

/// A Kubernetes quantity (`50Mi`, `10M`, `1.5Gi`, `1000`) in bytes.
pub fn parse_quantity(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        _ => return None,
    };
    let v = n * mult;
    (v >= 1.0 && v.is_finite()).then_some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ReplicationPolicySpec {
        serde_yaml::from_str(yaml).expect("valid spec")
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("50Mi"), Some(50 * 1024 * 1024));
        assert_eq!(parse_quantity("10M"), Some(10_000_000));
        assert_eq!(parse_quantity("1.5Ki"), Some(1536));
        assert_eq!(parse_quantity("1000"), Some(1000));
        assert_eq!(parse_quantity("5Xi"), None);
        assert_eq!(parse_quantity("0"), None);
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
        assert!(e.to_string().contains("set url"), "{e}");
        let s = spec(
            "source: {url: 'https://s', credentialsSecretRef: {name: nope}}\ndestinations: [{name: a, url: 'https://a'}]",
        );
        let e = to_sync_config(&s, &Resolved::default()).expect_err("missing secret");
        assert!(e.to_string().contains("\"nope\""), "{e}");
    }
}
