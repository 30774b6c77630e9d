//! Spec → the Distribution (v2.8, configuration version 0.1) `config.yml`.
//!
//! Only non-secret settings are rendered here. Every secret reaches the pod as a `REGISTRY_*`
//! environment variable from a Secret (see [`super::pod`]): `http.secret`, S3 keys, the redis
//! password, proxy credentials, and the whole `notifications.endpoints` list (its bearer header
//! is a secret, and Distribution's environment overrides cannot address one list entry, so the
//! list is passed as one YAML value in `REGISTRY_NOTIFICATIONS_ENDPOINTS`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::names::{AUTH_DIR, DATA_DIR, DEBUG_PORT, DRAIN_TIMEOUT_SECONDS, HTTP_PORT, TLS_DIR};
use crate::api::registry::{RegistrySpec, S3Storage};

/// Errors rendering the configuration.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The configuration could not be serialized.
    #[error("cannot render registry configuration: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// Media type of blob events, which the registry is told not to send.
pub const IGNORED_BLOB_MEDIA_TYPE: &str = "application/octet-stream";

#[derive(Serialize)]
struct Config {
    version: &'static str,
    log: Log,
    storage: Storage,
    http: Http,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<Auth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy: Option<Proxy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<Redis>,
    health: Health,
}

#[derive(Serialize)]
struct Log {
    level: &'static str,
    formatter: &'static str,
    fields: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
struct Storage {
    #[serde(skip_serializing_if = "Option::is_none")]
    s3: Option<S3>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filesystem: Option<Filesystem>,
    delete: Enabled,
    maintenance: Maintenance,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<Cache>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect: Option<Redirect>,
}

#[derive(Serialize)]
struct S3 {
    region: String,
    bucket: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    regionendpoint: Option<String>,
    /// Read by Distribution v3; v2.8 ignores it and forces path style whenever
    /// `regionendpoint` is set.
    forcepathstyle: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    rootdirectory: Option<String>,
    encrypt: bool,
    secure: bool,
    v4auth: bool,
}

#[derive(Serialize)]
struct Filesystem {
    rootdirectory: &'static str,
}

#[derive(Serialize)]
struct Enabled {
    enabled: bool,
}

#[derive(Serialize)]
struct Maintenance {
    readonly: Enabled,
}

#[derive(Serialize)]
struct Cache {
    blobdescriptor: &'static str,
}

#[derive(Serialize)]
struct Redirect {
    disable: bool,
}

#[derive(Serialize)]
struct Http {
    addr: String,
    /// Graceful shutdown on SIGTERM: in-flight requests finish within this time.
    draintimeout: String,
    headers: BTreeMap<&'static str, Vec<&'static str>>,
    debug: Debug,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<Tls>,
    /// Relative `Location` headers (upload sessions, redirects), only for a fleet with an
    /// external URL: they resolve against whatever URL the client used, the Service or the
    /// proxy. `http.host` would instead make every `Location` absolute on the external host,
    /// also for clients inside the cluster (the operator replicating through the Service).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    relativeurls: bool,
}

#[derive(Serialize)]
struct Debug {
    addr: String,
    prometheus: Prometheus,
}

#[derive(Serialize)]
struct Prometheus {
    enabled: bool,
    path: &'static str,
}

#[derive(Serialize)]
struct Tls {
    certificate: String,
    key: String,
}

#[derive(Serialize)]
struct Auth {
    #[serde(skip_serializing_if = "Option::is_none")]
    htpasswd: Option<Htpasswd>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<TokenAuth>,
}

/// Distribution's `auth.token`: where clients get tokens and whom the registry trusts.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct TokenAuth {
    /// URL of the token service clients are sent to.
    pub realm: String,
    /// Name of this registry in tokens (`aud`).
    pub service: String,
    /// Issuer the registry accepts.
    pub issuer: String,
    /// Certificate bundle whose keys may sign tokens.
    pub rootcertbundle: String,
}

#[derive(Serialize)]
struct Htpasswd {
    realm: String,
    path: String,
}

#[derive(Serialize)]
struct Proxy {
    remoteurl: String,
}

#[derive(Serialize)]
struct Redis {
    addr: String,
    db: i32,
    dialtimeout: &'static str,
    readtimeout: &'static str,
    writetimeout: &'static str,
}

#[derive(Serialize)]
struct Health {
    storagedriver: StorageDriverHealth,
}

#[derive(Serialize)]
struct StorageDriverHealth {
    enabled: bool,
    interval: &'static str,
    threshold: u32,
}

/// One `notifications.endpoints` entry (v2.8 field names).
#[derive(Serialize)]
struct Endpoint<'a> {
    name: &'static str,
    url: &'a str,
    headers: BTreeMap<&'static str, Vec<String>>,
    timeout: &'static str,
    threshold: u32,
    backoff: &'static str,
    ignoredmediatypes: Vec<&'static str>,
    ignore: Ignore,
}

#[derive(Serialize)]
struct Ignore {
    actions: Vec<&'static str>,
}

/// Renders `config.yml` for `spec`; `token` replaces htpasswd with token authentication.
/// The result holds no secret value.
pub fn render_config(
    spec: &RegistrySpec,
    token: Option<&TokenAuth>,
) -> Result<String, RenderError> {
    let config = Config {
        version: "0.1",
        log: Log {
            level: "info",
            formatter: "text",
            fields: BTreeMap::from([("service", "registry")]),
        },
        storage: storage(spec),
        http: Http {
            addr: format!(":{HTTP_PORT}"),
            draintimeout: format!("{DRAIN_TIMEOUT_SECONDS}s"),
            headers: BTreeMap::from([("X-Content-Type-Options", vec!["nosniff"])]),
            debug: Debug {
                addr: format!(":{DEBUG_PORT}"),
                prometheus: Prometheus {
                    enabled: true,
                    path: "/metrics",
                },
            },
            tls: spec.tls.as_ref().map(|_| Tls {
                certificate: format!("{TLS_DIR}/tls.crt"),
                key: format!("{TLS_DIR}/tls.key"),
            }),
            relativeurls: super::ingress::external_url(spec).is_some(),
        },
        auth: match token {
            Some(t) => Some(Auth {
                htpasswd: None,
                token: Some(t.clone()),
            }),
            None => spec.auth.as_ref().map(|a| Auth {
                htpasswd: Some(Htpasswd {
                    realm: a.htpasswd.realm.clone(),
                    path: format!("{AUTH_DIR}/htpasswd"),
                }),
                token: None,
            }),
        },
        proxy: spec.proxy.as_ref().map(|p| Proxy {
            remoteurl: p.remote_url.clone(),
        }),
        redis: spec.cache.as_ref().map(|c| Redis {
            addr: c.redis.address.clone(),
            db: c.redis.db,
            dialtimeout: "5s",
            readtimeout: "5s",
            writetimeout: "5s",
        }),
        health: Health {
            storagedriver: StorageDriverHealth {
                enabled: true,
                interval: "10s",
                threshold: 3,
            },
        },
    };
    let body = serde_yaml::to_string(&config)?;
    let mut header = String::from(
        "# Rendered by Flotilla; do not edit. Secrets come from environment variables:\n\
         # REGISTRY_HTTP_SECRET and, when configured, REGISTRY_STORAGE_S3_ACCESSKEY/SECRETKEY,\n\
         # REGISTRY_REDIS_PASSWORD, REGISTRY_PROXY_USERNAME/PASSWORD.\n",
    );
    if spec.notifications {
        header.push_str(
            "# notifications.endpoints (with its bearer token) comes from REGISTRY_NOTIFICATIONS_ENDPOINTS.\n",
        );
    }
    Ok(header + &body)
}

fn storage(spec: &RegistrySpec) -> Storage {
    let s3 = spec.storage.s3.as_ref().map(s3);
    // In-cluster S3-compatible servers are rarely reachable by the registry's clients:
    // serve blobs through the registry instead of redirecting to a presigned URL.
    let redirect = spec
        .storage
        .s3
        .as_ref()
        .and_then(|s| s.endpoint.as_ref())
        .map(|_| Redirect { disable: true });
    Storage {
        filesystem: s3.is_none().then_some(Filesystem {
            rootdirectory: DATA_DIR,
        }),
        s3,
        delete: Enabled {
            enabled: spec.delete_enabled,
        },
        maintenance: Maintenance {
            readonly: Enabled {
                enabled: spec.read_only,
            },
        },
        // Without a shared cache, no per-replica in-memory cache either: it would serve
        // descriptors of blobs another replica deleted.
        cache: spec.cache.as_ref().map(|_| Cache {
            blobdescriptor: "redis",
        }),
        redirect,
    }
}

fn s3(s: &S3Storage) -> S3 {
    let endpoint = s
        .endpoint
        .as_ref()
        .map(|e| e.trim_end_matches('/').to_string());
    S3 {
        region: s.region.clone(),
        bucket: s.bucket.clone(),
        secure: !endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://")),
        forcepathstyle: s.path_style(),
        regionendpoint: endpoint,
        rootdirectory: s.root_directory.clone(),
        encrypt: s.encrypt,
        v4auth: true,
    }
}

/// Renders the `notifications.endpoints` list (one endpoint, Flotilla's receiver at `url`,
/// sending `Authorization: Bearer <token>`). It contains the token: it belongs in a Secret
/// and reaches the registry as `REGISTRY_NOTIFICATIONS_ENDPOINTS`.
pub fn render_notification_endpoints(url: &str, token: &str) -> Result<String, RenderError> {
    let endpoint = Endpoint {
        name: "flotilla",
        url,
        headers: BTreeMap::from([("Authorization", vec![format!("Bearer {token}")])]),
        timeout: "5s",
        threshold: 5,
        backoff: "10s",
        ignoredmediatypes: vec![IGNORED_BLOB_MEDIA_TYPE],
        ignore: Ignore {
            actions: vec!["pull"],
        },
    };
    Ok(serde_yaml::to_string(&vec![endpoint])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml::Value;

    fn spec(v: serde_json::Value) -> RegistrySpec {
        serde_json::from_value(v).expect("valid spec")
    }

    fn rendered(v: serde_json::Value) -> Value {
        let text = render_config(&spec(v), None).expect("renders");
        serde_yaml::from_str(&text).expect("valid yaml")
    }

    #[test]
    fn s3_with_endpoint() {
        let c = rendered(serde_json::json!({"storage": {"s3": {
            "bucket": "imgs", "region": "eu-1", "endpoint": "http://minio:9000/",
            "rootDirectory": "/east", "encrypt": true,
            "credentialsSecretRef": {"name": "s3"}}}}));
        let s3 = &c["storage"]["s3"];
        assert_eq!(s3["bucket"], "imgs");
        assert_eq!(s3["region"], "eu-1");
        assert_eq!(s3["regionendpoint"], "http://minio:9000");
        assert_eq!(s3["forcepathstyle"], true);
        assert_eq!(s3["rootdirectory"], "/east");
        assert_eq!(s3["encrypt"], true);
        assert_eq!(s3["secure"], false);
        assert!(s3.get("accesskey").is_none() && s3.get("secretkey").is_none());
        assert_eq!(c["storage"]["redirect"]["disable"], true);
        assert!(c["storage"].get("filesystem").is_none());
        assert_eq!(c["version"], "0.1");
        assert_eq!(c["http"]["addr"], ":5000");
        assert_eq!(c["http"]["debug"]["addr"], ":5001");
        // Graceful shutdown: without a drain timeout Distribution exits on SIGTERM at once.
        assert_eq!(c["http"]["draintimeout"], "20s");
        assert!(c["http"].get("secret").is_none());
        assert_eq!(c["health"]["storagedriver"]["enabled"], true);
    }

    #[test]
    fn aws_s3_keeps_redirects_and_tls() {
        let c = rendered(serde_json::json!({"storage": {"s3": {"bucket": "imgs"}}}));
        assert_eq!(c["storage"]["s3"]["secure"], true);
        assert_eq!(c["storage"]["s3"]["forcepathstyle"], false);
        assert!(c["storage"]["s3"].get("regionendpoint").is_none());
        assert!(c["storage"].get("redirect").is_none());
    }

    #[test]
    fn filesystem_flags_auth_tls_proxy_redis() {
        let c = rendered(serde_json::json!({
            "storage": {"filesystem": {"size": "1Gi"}},
            "readOnly": true, "deleteEnabled": false,
            "auth": {"htpasswd": {"secretRef": {"name": "h", "key": "users"}, "realm": "r"}},
            "tls": {"secretName": "t"},
            "proxy": {"remoteURL": "https://up.example", "credentialsSecretRef": {"name": "p"}},
            "cache": {"redis": {"address": "redis:6379", "db": 2,
                                "passwordSecretRef": {"name": "r", "key": "pw"}}}}));
        assert_eq!(c["storage"]["filesystem"]["rootdirectory"], DATA_DIR);
        assert_eq!(c["storage"]["maintenance"]["readonly"]["enabled"], true);
        assert_eq!(c["storage"]["delete"]["enabled"], false);
        assert_eq!(c["storage"]["cache"]["blobdescriptor"], "redis");
        assert_eq!(c["redis"]["addr"], "redis:6379");
        assert_eq!(c["redis"]["db"], 2);
        assert!(c["redis"].get("password").is_none());
        assert_eq!(c["auth"]["htpasswd"]["realm"], "r");
        assert_eq!(c["auth"]["htpasswd"]["path"], "/etc/flotilla/auth/htpasswd");
        assert_eq!(c["http"]["tls"]["certificate"], "/etc/flotilla/tls/tls.crt");
        assert_eq!(c["http"]["tls"]["key"], "/etc/flotilla/tls/tls.key");
        assert_eq!(c["proxy"]["remoteurl"], "https://up.example");
        assert!(c["proxy"].get("username").is_none());
        assert!(c.get("notifications").is_none());
        assert!(c["http"].get("relativeurls").is_none());
    }

    #[test]
    fn an_external_url_makes_locations_relative() {
        for exposure in [
            serde_json::json!({"externalURL": "https://r.example.com"}),
            serde_json::json!({"ingress": {"host": "r.example.com"}}),
        ] {
            let mut v = serde_json::json!({"storage": {"emptyDir": {}}});
            v.as_object_mut()
                .expect("object")
                .extend(exposure.as_object().expect("object").clone());
            let c = rendered(v);
            assert_eq!(c["http"]["relativeurls"], true);
            assert!(c["http"].get("host").is_none());
        }
    }

    #[test]
    fn notification_endpoints_carry_token_and_filters() {
        let text =
            render_notification_endpoints("http://flotilla:8080/events", "tok").expect("renders");
        let v: Value = serde_yaml::from_str(&text).expect("yaml");
        let e = &v[0];
        assert_eq!(e["url"], "http://flotilla:8080/events");
        assert_eq!(e["headers"]["Authorization"][0], "Bearer tok");
        assert_eq!(e["ignoredmediatypes"][0], IGNORED_BLOB_MEDIA_TYPE);
        assert_eq!(e["ignore"]["actions"][0], "pull");
    }
}
