//! What the CRD schema cannot check, as issues naming the field and the fix.

use std::sync::LazyLock;

use k8s_openapi::api::core::v1::Secret;
use regex::Regex;

use crate::api::registry::{AccessMode, RegistrySpec};

pub use crate::issue::Issue;

/// Reason: `spec.image` is not a valid image reference.
pub const INVALID_IMAGE: &str = "InvalidImage";
/// Reason: several replicas on storage that cannot be shared.
pub const SHARED_STORAGE_REQUIRED: &str = "SharedStorageRequired";
/// Reason: the TLS Secret has the wrong type or lacks keys.
pub const TLS_SECRET_INVALID: &str = "TLSSecretInvalid";
/// Reason: a URL in the spec does not parse.
pub const INVALID_URL: &str = "InvalidURL";
/// Reason: the Registry's name cannot name its Service.
pub const INVALID_NAME: &str = "InvalidName";

/// Checks that a Registry's name can be its Service's name (a DNS-1035 label: at most 63
/// lowercase letters, digits and '-', starting with a letter, not ending with '-'); it is
/// also the `app.kubernetes.io/instance` label value.
pub fn check_name(name: &str) -> Option<Issue> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.last().is_some_and(|c| *c != b'-')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    (!ok).then(|| Issue {
        field: "metadata.name".into(),
        reason: INVALID_NAME,
        message: format!(
            "{name:?} cannot name the Registry's Service; use at most 63 lowercase letters, digits and '-', starting with a letter"
        ),
    })
}

static IMAGE_REFERENCE: LazyLock<Result<Regex, regex::Error>> = LazyLock::new(|| {
    let host = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let domain = format!(r"(?:{host}(?:\.{host})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?");
    let component = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*";
    let tag = r"[\w][\w.-]{0,127}";
    let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
    Regex::new(&format!(
        r"^(?:({domain})/)?({component}(?:/{component})*)(?::({tag}))?(?:@({digest}))?$"
    ))
});

/// Checks an image reference against the OCI distribution reference grammar
/// (`[host[:port]/]path[:tag][@algorithm:hex]`). Returns what is wrong.
pub fn check_image_reference(image: &str) -> Result<(), String> {
    let re = IMAGE_REFERENCE
        .as_ref()
        .map_err(|e| format!("internal: reference grammar: {e}"))?;
    let Some(caps) = re.captures(image) else {
        let hint = if image.chars().any(|c| c.is_ascii_uppercase()) {
            " (repository names must be lowercase)"
        } else {
            ""
        };
        return Err(format!(
            "{image:?} is not an image reference{hint}; use e.g. docker.io/library/registry:2.8.3 or registry@sha256:<64 hex digits>"
        ));
    };
    let name_len = caps.get(1).map_or(0, |d| d.as_str().len() + 1) + caps[2].len();
    if name_len > 255 {
        return Err(format!(
            "the repository name in {image:?} is longer than 255 characters"
        ));
    }
    if let Some(digest) = caps.get(4) {
        let (alg, hex) = digest.as_str().split_once(':').unwrap_or(("", ""));
        if alg == "sha256" && hex.len() != 64 {
            return Err(format!(
                "the sha256 digest in {image:?} must have 64 hex digits, it has {}",
                hex.len()
            ));
        }
    }
    Ok(())
}

fn check_url(field: &str, value: &str, issues: &mut Vec<Issue>) {
    match url::Url::parse(value) {
        Ok(u) if u.host_str().is_some() => {}
        Ok(_) => issues.push(Issue {
            field: field.into(),
            reason: INVALID_URL,
            message: format!("{field} {value:?} has no host; use e.g. https://host:port"),
        }),
        Err(e) => issues.push(Issue {
            field: field.into(),
            reason: INVALID_URL,
            message: format!("{field} {value:?} is not a URL ({e}); use e.g. https://host:port"),
        }),
    }
}

/// Validates what the schema cannot: image reference syntax, URLs, shared storage for several
/// replicas (also a CEL rule; repeated here so an older CRD cannot let it through).
pub fn validate(spec: &RegistrySpec) -> Vec<Issue> {
    let mut issues = Vec::new();
    if let Err(message) = check_image_reference(&spec.image) {
        issues.push(Issue {
            field: "spec.image".into(),
            reason: INVALID_IMAGE,
            message,
        });
    }
    let shared = spec.storage.s3.is_some()
        || spec
            .storage
            .filesystem
            .as_ref()
            .is_some_and(|f| f.access_mode == AccessMode::ReadWriteMany);
    if spec.replicas > 1 && !shared {
        issues.push(Issue {
            field: "spec.replicas".into(),
            reason: SHARED_STORAGE_REQUIRED,
            message: format!(
                "spec.replicas is {} but the storage cannot be shared; set spec.replicas to 1, or use spec.storage.s3, or spec.storage.filesystem with accessMode ReadWriteMany",
                spec.replicas
            ),
        });
    }
    if let Some(endpoint) = spec.storage.s3.as_ref().and_then(|s| s.endpoint.as_ref()) {
        check_url("spec.storage.s3.endpoint", endpoint, &mut issues);
    }
    if let Some(p) = &spec.proxy {
        check_url("spec.proxy.remoteURL", &p.remote_url, &mut issues);
    }
    if let Some(u) = &spec.external_url {
        check_url("spec.externalURL", u, &mut issues);
    }
    issues
}

/// Checks the Secret named by `spec.tls.secretName`: type `kubernetes.io/tls` with non-empty
/// `tls.crt` and `tls.key`.
pub fn check_tls_secret(secret: &Secret) -> Option<Issue> {
    let name = secret.metadata.name.as_deref().unwrap_or("");
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    let has = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .is_some_and(|v| !v.0.is_empty())
    };
    let problem = if type_ != "kubernetes.io/tls" {
        format!("Secret {name:?} has type {type_:?}")
    } else if !has("tls.crt") || !has("tls.key") {
        format!("Secret {name:?} lacks tls.crt or tls.key")
    } else {
        return None;
    };
    Some(Issue {
        field: "spec.tls.secretName".into(),
        reason: TLS_SECRET_INVALID,
        message: format!(
            "{problem}; spec.tls.secretName must name a kubernetes.io/tls Secret (kubectl create secret tls NAME --cert=... --key=...)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[test]
    fn image_references() {
        for ok in [
            "registry",
            "registry:2.8.3",
            "docker.io/library/registry:2.8.3",
            "localhost:5000/a/b_c__d-e.f:v1",
            "[::1]:5000/x",
            "ghcr.io/x/y@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "ghcr.io/x/y:t@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(check_image_reference(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Registry:2",
            "docker.io/library/registry:",
            "registry::2",
            "a b",
            "x/-y",
            "registry@sha256:abc",
            "registry@sha256:0123456789abcdef0123456789abcdef0",
        ] {
            assert!(check_image_reference(bad).is_err(), "{bad}");
        }
        assert!(
            check_image_reference("Registry:2")
                .unwrap_err()
                .contains("lowercase")
        );
    }

    #[test]
    fn issues_name_field_and_fix() {
        let spec: RegistrySpec = serde_json::from_value(serde_json::json!({
            "replicas": 3, "image": "BAD IMAGE",
            "storage": {"emptyDir": {}},
            "proxy": {"remoteURL": "https://"}}))
        .expect("spec");
        let issues = validate(&spec);
        let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.image", "spec.replicas", "spec.proxy.remoteURL"]
        );
        assert!(issues[1].message.contains("spec.storage.s3"));
        let good: RegistrySpec = serde_json::from_value(serde_json::json!({
            "replicas": 3, "storage": {"s3": {"bucket": "b", "endpoint": "http://minio:9000"}}}))
        .expect("spec");
        assert_eq!(validate(&good), []);
    }

    #[test]
    fn names() {
        assert_eq!(check_name("hq-1"), None);
        for bad in ["", "1hq", "hq.east", "hq-", "Hq", &"a".repeat(64)] {
            assert_eq!(
                check_name(bad).map(|i| i.reason),
                Some(INVALID_NAME),
                "{bad}"
            );
        }
    }

    #[test]
    fn tls_secret_type() {
        let mut s = Secret {
            type_: Some("Opaque".into()),
            ..Secret::default()
        };
        assert_eq!(
            check_tls_secret(&s).map(|i| i.reason),
            Some(TLS_SECRET_INVALID)
        );
        s.type_ = Some("kubernetes.io/tls".into());
        s.data = Some(BTreeMap::from([
            ("tls.crt".to_string(), ByteString(b"c".to_vec())),
            ("tls.key".to_string(), ByteString(b"k".to_vec())),
        ]));
        assert_eq!(check_tls_secret(&s), None);
    }
}
