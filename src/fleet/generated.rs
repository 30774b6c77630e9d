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
    /// A digest of the certificate and key of `spec.tls`'s Secret. Part of the pod checksum:
    /// the registry and the token service read them at start-up, so a renewed certificate
    /// (cert-manager's, or by hand) rolls the pods.
    pub tls_fingerprint: Option<String>,
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
            .field("tls_fingerprint", &self.tls_fingerprint)
            .finish()
    }
}

pub use super::random::{generate_http_secret, generate_token};

/// A digest of a `kubernetes.io/tls` Secret's certificate and key (hex; what the Secret holds
/// is never revealed by it).
pub fn tls_fingerprint(secret: &Secret) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for key in ["tls.crt", "tls.key"] {
        h.update(key.as_bytes());
        h.update([0u8]);
        if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
            h.update(&v.0);
        }
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

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
            tls_fingerprint: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_fingerprint_follows_certificate_and_key_and_reveals_neither() {
        use k8s_openapi::ByteString;
        let tls = |crt: &str, key: &str| Secret {
            data: Some(std::collections::BTreeMap::from([
                ("tls.crt".to_string(), ByteString(crt.as_bytes().to_vec())),
                ("tls.key".to_string(), ByteString(key.as_bytes().to_vec())),
            ])),
            ..Default::default()
        };
        let first = tls_fingerprint(&tls("cert 1", "key"));
        assert_eq!(first, tls_fingerprint(&tls("cert 1", "key")));
        assert_ne!(first, tls_fingerprint(&tls("cert 2", "key")));
        assert_ne!(first, tls_fingerprint(&tls("cert 1", "key 2")));
        assert!(!first.contains("cert") && first.len() == 64);
    }
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
