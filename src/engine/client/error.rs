//! What can go wrong talking to a registry, and which of it is worth another attempt.

use std::time::Duration;

use super::redact::without_secrets;
use crate::engine::names;

/// Errors talking to a registry.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint URL is unusable.
    #[error("invalid registry URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The TLS setup failed (e.g. a bad CA bundle).
    #[error("TLS setup for {registry} failed: {reason}")]
    Tls {
        /// Registry.
        registry: String,
        /// Why.
        reason: String,
    },
    /// The server's TLS certificate is not trusted (unknown issuer, wrong name, expired):
    /// not retried, trying again cannot help.
    #[error(
        "registry {registry} presented a TLS certificate that is not trusted ({reason}); if a private CA signed it, give that CA in the endpoint's caSecretRef"
    )]
    Certificate {
        /// Registry.
        registry: String,
        /// What the TLS library said.
        reason: String,
    },
    /// No connection (refused, DNS, TLS handshake, timeout).
    #[error("cannot reach registry {registry}: {reason}")]
    Connect {
        /// Registry.
        registry: String,
        /// Why.
        reason: String,
    },
    /// Credentials missing or rejected.
    #[error(
        "registry {registry} rejected the credentials{} (check the username/password or token)",
        for_what(.what)
    )]
    Unauthorized {
        /// Registry.
        registry: String,
        /// The operation.
        what: String,
    },
    /// A 404.
    #[error("{what} not found on {registry}")]
    NotFound {
        /// Registry.
        registry: String,
        /// What was looked up.
        what: String,
    },
    /// Any other unexpected status.
    #[error("{method} {path} on {registry} answered {status}: {body}")]
    Status {
        /// Registry.
        registry: String,
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Status code.
        status: u16,
        /// Start of the body.
        body: String,
        /// `Retry-After`, seconds.
        retry_after: Option<Duration>,
    },
    /// A response body broke off or could not be read.
    #[error("reading from {registry} failed: {reason}")]
    Body {
        /// Registry.
        registry: String,
        /// Why.
        reason: String,
    },
    /// A token endpoint misbehaved.
    #[error("token endpoint {realm} failed: {reason}")]
    Token {
        /// Realm URL.
        realm: String,
        /// Why.
        reason: String,
    },
    /// A response body larger than Flotilla reads of that kind.
    #[error("{what} on {registry} is larger than the {limit} bytes Flotilla reads; not read")]
    TooLarge {
        /// Registry.
        registry: String,
        /// What was read.
        what: String,
        /// The limit, bytes.
        limit: usize,
    },
    /// The server asked to wait longer before a retry than Flotilla waits.
    #[error(
        "{registry} answered {status} to {what} and asked to retry after {asked_secs} s, longer than the {limit_secs} s Flotilla waits; gave up"
    )]
    RetryAfterTooLong {
        /// Registry.
        registry: String,
        /// The request.
        what: String,
        /// The status.
        status: u16,
        /// `Retry-After`, seconds.
        asked_secs: u64,
        /// The cap, seconds.
        limit_secs: u64,
    },
    /// A name from a listing, a manifest or a policy is outside the Distribution grammar.
    #[error("{registry}: {source}")]
    InvalidName {
        /// Registry.
        registry: String,
        /// The grammar error.
        source: names::NameError,
    },
    /// An unparseable response.
    #[error("unexpected response from {registry}: {reason}")]
    Protocol {
        /// Registry.
        registry: String,
        /// Why.
        reason: String,
    },
}

/// ` for <what>`, or nothing when `what` is empty (a token for no scope, as for `/v2/`).
fn for_what(what: &str) -> String {
    if what.is_empty() {
        String::new()
    } else {
        format!(" for {what}")
    }
}

impl ClientError {
    /// Whether trying again may help (connection errors, 5xx, 429, broken bodies).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. } | ClientError::Body { .. } => true,
            ClientError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The server's `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The error of a request that got no answer: an untrusted certificate (named so, never
/// retried) or a connection failure, its message free of secrets.
pub(super) fn connect_error(registry: &str, e: &reqwest::Error) -> ClientError {
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(cert) = s
            .to_string()
            .strip_prefix("invalid peer certificate: ")
            .map(str::to_string)
        {
            return ClientError::Certificate {
                registry: registry.to_string(),
                reason: cert,
            };
        }
        src = s.source();
    }
    ClientError::Connect {
        registry: registry.to_string(),
        reason: without_secrets(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: Option<u64>) -> ClientError {
        ClientError::Status {
            registry: "r".into(),
            method: "GET".into(),
            path: "/v2/".into(),
            status: code,
            body: String::new(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        for code in [429, 500, 502, 503, 504] {
            assert!(status(code, None).is_retryable(), "{code}");
        }
        for code in [400, 401, 403, 404, 405, 409, 416] {
            assert!(!status(code, None).is_retryable(), "{code}");
        }
        let r = || "r".to_string();
        assert!(
            ClientError::Connect {
                registry: r(),
                reason: "refused".into()
            }
            .is_retryable()
        );
        assert!(
            ClientError::Body {
                registry: r(),
                reason: "reset".into()
            }
            .is_retryable()
        );
        for e in [
            ClientError::Certificate {
                registry: r(),
                reason: "UnknownIssuer".into(),
            },
            ClientError::Unauthorized {
                registry: r(),
                what: String::new(),
            },
            ClientError::TooLarge {
                registry: r(),
                what: "x".into(),
                limit: 1,
            },
            ClientError::Protocol {
                registry: r(),
                reason: "x".into(),
            },
        ] {
            assert!(!e.is_retryable(), "{e}");
        }
    }

    #[test]
    fn retry_after_is_read_from_statuses_only() {
        assert_eq!(
            status(503, Some(7)).retry_after(),
            Some(Duration::from_secs(7))
        );
        assert_eq!(status(503, None).retry_after(), None);
        let e = ClientError::Connect {
            registry: "r".into(),
            reason: "x".into(),
        };
        assert_eq!(e.retry_after(), None);
    }

    #[test]
    fn an_unauthorized_message_names_the_scope_only_when_there_is_one() {
        let e = |what: &str| ClientError::Unauthorized {
            registry: "r:5000".into(),
            what: what.into(),
        };
        assert_eq!(
            e("").to_string(),
            "registry r:5000 rejected the credentials (check the username/password or token)"
        );
        assert!(
            e("repository:a:pull")
                .to_string()
                .contains(" for repository:a:pull ")
        );
    }
}
