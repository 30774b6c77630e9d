//! Names, labels and in-pod paths of everything Flotilla builds for one Registry.

use std::collections::BTreeMap;

/// Port the registry serves its API on inside the pod.
pub const HTTP_PORT: i32 = 5000;
/// Port of the registry's debug server (`/debug/health`, `/metrics`).
pub const DEBUG_PORT: i32 = 5001;
/// Seconds a terminating registry pod keeps serving before it is told to stop (the preStop
/// sleep): the time kube-proxy and other endpoint watchers get to take it out of the Service,
/// so no new connection reaches a pod that is going away.
pub const PRE_STOP_SLEEP_SECONDS: i64 = 5;
/// Seconds the registry drains its open connections after SIGTERM (`http.draintimeout`);
/// without it Distribution exits at once and cuts every pull in flight.
pub const DRAIN_TIMEOUT_SECONDS: i64 = 20;
/// The pod's `terminationGracePeriodSeconds`: preStop sleep plus drain, with room to exit.
pub const TERMINATION_GRACE_SECONDS: i64 = PRE_STOP_SLEEP_SECONDS + DRAIN_TIMEOUT_SECONDS + 5;
/// Directory the ConfigMap is mounted at; `config.yml` is inside.
pub const CONFIG_DIR: &str = "/etc/docker/registry";
/// Key of the configuration inside the ConfigMap.
pub const CONFIG_KEY: &str = "config.yml";
/// Directory the TLS Secret is mounted at (`tls.crt`, `tls.key`).
pub const TLS_DIR: &str = "/etc/flotilla/tls";
/// Directory the htpasswd Secret key is mounted at, as file `htpasswd`.
pub const AUTH_DIR: &str = "/etc/flotilla/auth";
/// Where filesystem and emptyDir storage are mounted.
pub const DATA_DIR: &str = "/var/lib/registry";

/// Key of the generated Secret holding the shared `http.secret`.
pub const HTTP_SECRET_KEY: &str = "http-secret";
/// Key of the generated Secret holding the notification bearer token.
pub const NOTIFICATION_TOKEN_KEY: &str = "notification-token";
/// Key of the generated Secret holding the whole `notifications.endpoints` list (YAML), which
/// reaches the registry as `REGISTRY_NOTIFICATIONS_ENDPOINTS`.
pub const NOTIFICATION_ENDPOINTS_KEY: &str = "notifications-endpoints";
/// Keys of the generated Secret holding proxy credentials copied from a dockerconfigjson Secret.
pub const PROXY_USERNAME_KEY: &str = "proxy-username";
/// See [`PROXY_USERNAME_KEY`].
pub const PROXY_PASSWORD_KEY: &str = "proxy-password";

/// Key of the generated Secret holding the htpasswd file the pods mount: the user's entries
/// plus the operator's own ([`OPERATOR_USERNAME`]).
pub const HTPASSWD_KEY: &str = "htpasswd";
/// User name of the account Flotilla keeps for itself at a Registry with htpasswd auth
/// (replication through `registryRef`). Reserved: a user's htpasswd must not define it.
pub const OPERATOR_USERNAME: &str = "flotilla-operator";
/// Keys of the generated Secret holding the operator's account (basic-auth style).
pub const OPERATOR_USERNAME_KEY: &str = "username";
/// See [`OPERATOR_USERNAME_KEY`].
pub const OPERATOR_PASSWORD_KEY: &str = "password";

/// Port of the token service sidecar (`spec.access`), in the pod and on the Service.
pub const TOKEN_PORT: i32 = 5002;
/// Directory the `<name>-access` Secret (rules, users) is mounted at in the token service.
pub const ACCESS_DIR: &str = "/etc/flotilla/access";
/// Directory of the token service's signing key and certificate.
pub const TOKEN_KEY_DIR: &str = "/etc/flotilla/token";
/// Directory of the certificate the registry trusts for tokens (`auth.token.rootcertbundle`).
pub const TOKEN_CERT_DIR: &str = "/etc/flotilla/token-cert";
/// Keys of the generated Secret holding the token signing key and its certificate (also the
/// file names in the token service).
pub const TOKEN_KEY_KEY: &str = crate::access::service::KEY_FILE;
/// See [`TOKEN_KEY_KEY`].
pub const TOKEN_CERT_KEY: &str = crate::access::service::CERT_FILE;

/// Annotation on the pod template carrying the checksum of the rendered configuration.
pub const CONFIG_CHECKSUM_ANNOTATION: &str = "flotilla.dev/config-checksum";

/// Names of the objects owned by one Registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// Name of the Registry.
    pub instance: String,
    /// Namespace of the Registry and of everything it owns.
    pub namespace: String,
}

impl Names {
    /// Names for Registry `instance` in `namespace`.
    pub fn new(instance: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
            namespace: namespace.into(),
        }
    }
    /// Deployment, Service and PodDisruptionBudget: the Registry's own name.
    pub fn workload(&self) -> String {
        self.instance.clone()
    }
    /// ConfigMap holding `config.yml`.
    pub fn config_map(&self) -> String {
        format!("{}-config", self.instance)
    }
    /// Secret Flotilla generates (http.secret, notification token).
    pub fn generated_secret(&self) -> String {
        format!("{}-generated", self.instance)
    }
    /// Secret with the token service's rules and users (not part of the pod checksum: the
    /// service re-reads it).
    pub fn access_secret(&self) -> String {
        format!("{}-access", self.instance)
    }
    /// The `service` of token authentication: the Service's host.
    pub fn token_service(&self) -> String {
        format!("{}.{}.svc", self.instance, self.namespace)
    }
    /// The issuer of the fleet's tokens.
    pub fn token_issuer(&self) -> String {
        format!("flotilla/{}/{}", self.namespace, self.instance)
    }
    /// PersistentVolumeClaim Flotilla creates when `storage.filesystem.size` is set.
    pub fn claim(&self) -> String {
        format!("{}-data", self.instance)
    }
    /// Labels every owned object carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert("app.kubernetes.io/managed-by".into(), "flotilla".into());
        labels.insert("app.kubernetes.io/component".into(), "registry".into());
        labels
    }
    /// Labels selecting the registry pods (immutable Deployment selector).
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "registry".to_string()),
            (
                "app.kubernetes.io/instance".to_string(),
                self.instance.clone(),
            ),
        ])
    }
    /// The selector in string form, for `status.selector` (scale subresource, HPA).
    pub fn selector(&self) -> String {
        format!(
            "app.kubernetes.io/name=registry,app.kubernetes.io/instance={}",
            self.instance
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_string_matches_selector_labels() {
        let n = Names::new("hq", "fleet");
        let joined: Vec<String> = n
            .selector_labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let selector = n.selector();
        let mut from_string: Vec<&str> = selector.split(',').collect();
        from_string.sort_unstable();
        assert_eq!(joined, from_string);
        assert_eq!(n.labels()["app.kubernetes.io/managed-by"], "flotilla");
        assert_eq!(n.labels()["app.kubernetes.io/component"], "registry");
    }
}
