//! Values Flotilla generates once per Registry and keeps in the `<name>-generated` Secret.

use k8s_openapi::api::core::v1::Secret;

use super::names::{HTTP_SECRET_KEY, NOTIFICATION_TOKEN_KEY};
use super::operator_account::OperatorAccount;

/// Generated (or dereferenced) secret values the builders put into the generated Secret.
/// They never reach the ConfigMap.
#[derive(Clone, PartialEq, Eq)]
pub struct GeneratedSecrets {
    /// The `http.secret` every replica shares (it signs upload state). Must stay stable.
    pub http_secret: String,
    /// Bearer token the registry sends with every notification; `None` when notifications
    /// are off or no receiver is configured.
    pub notification_token: Option<String>,
    /// Upstream credentials extracted by the reconciler from a `kubernetes.io/dockerconfigjson`
    /// Secret. `None` means: read `username` / `password` straight from the referenced
    /// (basic-auth) Secret.
    pub proxy_credentials: Option<(String, String)>,
    /// The operator's own account and the htpasswd file the pods mount; `Some` exactly when
    /// the Registry has htpasswd auth.
    pub operator: Option<OperatorAccount>,
    /// The token service's signing key and certificate; `Some` exactly when the Registry has
    /// `spec.access`.
    pub token_key: Option<crate::access::jwt::KeyMaterial>,
    /// Groups of `spec.access.groupsSecretRef`, parsed (group → users).
    pub access_groups: std::collections::BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for GeneratedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedSecrets")
            .field("http_secret", &"<redacted>")
            .field(
                "notification_token",
                &self.notification_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "proxy_credentials",
                &self.proxy_credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("operator", &self.operator)
            .field("token_key", &self.token_key)
            .field("access_groups", &self.access_groups.len())
            .finish()
    }
}

pub use super::random::{generate_http_secret, generate_token};

/// The string value of `key` in an existing Secret (`data`, then `stringData`), if present and
/// non-empty UTF-8.
pub fn existing_value(secret: Option<&Secret>, key: &str) -> Option<String> {
    let secret = secret?;
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok());
    let from_string_data = || {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .cloned()
    };
    from_data
        .or_else(from_string_data)
        .filter(|v| !v.is_empty())
}

impl GeneratedSecrets {
    /// Keeps the values already in the generated Secret (if any) and generates only what is
    /// missing, so `http.secret` and the token survive reconciles and operator restarts.
    pub fn reuse_or_generate(existing: Option<&Secret>, want_token: bool) -> Self {
        let http_secret =
            existing_value(existing, HTTP_SECRET_KEY).unwrap_or_else(generate_http_secret);
        let notification_token = want_token.then(|| {
            existing_value(existing, NOTIFICATION_TOKEN_KEY).unwrap_or_else(generate_token)
        });
        Self {
            http_secret,
            notification_token,
            proxy_credentials: None,
            operator: None,
            token_key: None,
            access_groups: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[test]
    fn generated_values_are_long_and_distinct() {
        let a = generate_http_secret();
        let b = generate_http_secret();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_ne!(generate_token(), generate_token());
    }

    #[test]
    fn existing_values_are_kept() {
        let secret = Secret {
            data: Some(BTreeMap::from([
                (HTTP_SECRET_KEY.to_string(), ByteString(b"kept".to_vec())),
                (
                    NOTIFICATION_TOKEN_KEY.to_string(),
                    ByteString(b"tok".to_vec()),
                ),
            ])),
            ..Secret::default()
        };
        let g = GeneratedSecrets::reuse_or_generate(Some(&secret), true);
        assert_eq!(g.http_secret, "kept");
        assert_eq!(g.notification_token.as_deref(), Some("tok"));
        let without = GeneratedSecrets::reuse_or_generate(Some(&secret), false);
        assert_eq!(without.notification_token, None);
        let fresh = GeneratedSecrets::reuse_or_generate(None, true);
        assert_eq!(fresh.http_secret.len(), 64);
        assert!(!format!("{fresh:?}").contains(&fresh.http_secret));
    }
}
