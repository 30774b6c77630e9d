//! `spec.access` → what the fleet needs for token authentication: the issues the schema cannot
//! find, the bundle of the `<name>-access` Secret, Distribution's `auth.token`, and the token
//! service sidecar with its volumes.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, Probe, ResourceRequirements, SecretVolumeSource,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::TokenAuth;
use super::ingress::TOKEN_PATH;
use super::mounts::{key_to_path, mount};
use super::names::{
    ACCESS_DIR, Names, OPERATOR_USERNAME, TLS_DIR, TOKEN_CERT_DIR, TOKEN_CERT_KEY, TOKEN_KEY_DIR,
    TOKEN_KEY_KEY, TOKEN_PORT,
};
use crate::access::bundle::{BUNDLE_KEY, Bundle, USERS_KEY, parse_groups};
use crate::access::rules::check_rules;
use crate::api::access::AccessSpec;
use crate::api::registry::RegistrySpec;
use crate::issue::Issue;

/// Reason: a rule cannot be used as written.
pub const INVALID_ACCESS_RULE: &str = "InvalidAccessRule";
/// Reason: the groups Secret is not in htgroup format.
pub const GROUPS_INVALID: &str = "GroupsInvalid";
/// Reason: the operator does not know which image runs the token service.
pub const TOKEN_SERVICE_IMAGE_UNKNOWN: &str = "TokenServiceImageUnknown";
/// Field of the groups Secret reference.
pub const GROUPS_FIELD: &str = "spec.access.groupsSecretRef";

fn issue(field: String, reason: &'static str, message: String) -> Issue {
    Issue {
        field,
        reason,
        message,
    }
}

/// What the schema cannot check about `spec.access`: globs, groups without a groups Secret,
/// the reserved operator user, an operator that knows no token service image.
pub fn validate(spec: &RegistrySpec, token_service_image: Option<&str>) -> Vec<Issue> {
    let Some(access) = &spec.access else {
        return Vec::new();
    };
    let mut issues: Vec<Issue> = check_rules(&access.rules)
        .into_iter()
        .map(|e| {
            let message = format!(
                "{} (globs: `*` within a path segment, `**` across segments, `?`, `[abc]`, `{{a,b}}`)",
                e
            );
            issue(e.field, INVALID_ACCESS_RULE, message)
        })
        .collect();
    let admins = access.admins.clone().unwrap_or_default();
    let mut named = vec![(
        "spec.access.admins".to_string(),
        &admins.users,
        &admins.groups,
    )];
    for (i, r) in access.rules.iter().enumerate() {
        named.push((format!("spec.access.rules[{i}]"), &r.users, &r.groups));
    }
    for (field, users, groups) in named {
        if users.iter().any(|u| u == OPERATOR_USERNAME) {
            issues.push(issue(
                format!("{field}.users"),
                INVALID_ACCESS_RULE,
                format!("{OPERATOR_USERNAME:?} is Flotilla's own account, which always has every right; remove it"),
            ));
        }
        if !groups.is_empty() && access.groups_secret_ref.is_none() {
            issues.push(issue(
                format!("{field}.groups"),
                INVALID_ACCESS_RULE,
                format!("{field} names groups but no groups are defined; set {GROUPS_FIELD} to a Secret key in htgroup format (`group: user1 user2`)"),
            ));
        }
    }
    if token_service_image.is_none() {
        issues.push(issue(
            "spec.access".into(),
            TOKEN_SERVICE_IMAGE_UNKNOWN,
            "the operator was started without --token-service-image (the Helm chart sets it to the operator's own image); restart it with the flag".into(),
        ));
    }
    issues
}

/// Parses the groups Secret's value, as an issue naming the line when it is not htgroup.
pub fn groups(text: &str) -> Result<BTreeMap<String, Vec<String>>, Issue> {
    parse_groups(text).map_err(|e| {
        issue(
            GROUPS_FIELD.into(),
            GROUPS_INVALID,
            format!("the groups Secret's {e}; write one group per line as `group: user1 user2`"),
        )
    })
}

/// The bundle the token service reads: the rules, the admins plus Flotilla's own account.
pub fn bundle(access: &AccessSpec, names: &Names, groups: BTreeMap<String, Vec<String>>) -> Bundle {
    let mut admins = access.admins.clone().unwrap_or_default();
    admins.users.insert(0, OPERATOR_USERNAME.to_string());
    Bundle {
        service: names.token_service(),
        issuer: names.token_issuer(),
        expiry_seconds: access.token_expiry_seconds,
        rules: access.rules.clone(),
        admins,
        groups,
    }
}

/// Data of the `<name>-access` Secret: the bundle and the htpasswd file.
pub fn secret_data(
    bundle: &Bundle,
    htpasswd: &str,
) -> Result<BTreeMap<String, ByteString>, serde_json::Error> {
    Ok(BTreeMap::from([
        (
            BUNDLE_KEY.to_string(),
            ByteString(serde_json::to_vec_pretty(bundle)?),
        ),
        (
            USERS_KEY.to_string(),
            ByteString(htpasswd.as_bytes().to_vec()),
        ),
    ]))
}

/// The token service as clients in the cluster reach it: the token port of the fleet's own
/// Service host, over HTTPS when the registry serves HTTPS.
pub fn in_cluster_realm(names: &Names, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!(
        "{scheme}://{}:{TOKEN_PORT}{TOKEN_PATH}",
        names.token_service()
    )
}

/// Distribution's `auth.token` for the fleet: clients are sent to `<external>/token` when the
/// fleet has an external URL (the Ingress routes it to the token port), else to the token
/// port of the fleet's own Service host, over HTTPS when the registry serves HTTPS.
pub fn token_auth(names: &Names, tls: bool, external: Option<&str>) -> TokenAuth {
    let realm = match external {
        Some(url) => format!("{url}{TOKEN_PATH}"),
        None => in_cluster_realm(names, tls),
    };
    TokenAuth {
        realm,
        service: names.token_service(),
        issuer: names.token_issuer(),
        rootcertbundle: format!("{TOKEN_CERT_DIR}/{TOKEN_CERT_KEY}"),
    }
}

fn secret_volume(name: &str, secret: String, items: Option<&[&str]>) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            items: items.map(|keys| keys.iter().map(|k| key_to_path(k)).collect()),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The pod's token volumes, the registry container's mount (the certificate only) and the
/// sidecar's mounts (rules, users, key; the registry's `tls` volume when `tls`). The access
/// Secret is mounted whole, without `subPath`, so the kubelet refreshes it in place.
pub fn volumes(names: &Names, tls: bool) -> (Vec<Volume>, VolumeMount, Vec<VolumeMount>) {
    let generated = names.generated_secret();
    (
        vec![
            secret_volume("token-cert", generated.clone(), Some(&[TOKEN_CERT_KEY])),
            secret_volume(
                "token-key",
                generated,
                Some(&[TOKEN_KEY_KEY, TOKEN_CERT_KEY]),
            ),
            secret_volume("access", names.access_secret(), None),
        ],
        mount("token-cert", TOKEN_CERT_DIR),
        std::iter::once(mount("access", ACCESS_DIR))
            .chain([mount("token-key", TOKEN_KEY_DIR)])
            .chain(tls.then(|| mount("tls", TLS_DIR)))
            .collect(),
    )
}

/// The token service sidecar: `flotilla token-service` from `image`, serving HTTPS with the
/// registry's certificate when `tls`.
pub fn sidecar(
    image: &str,
    tls: bool,
    mounts: Vec<VolumeMount>,
    security: k8s_openapi::api::core::v1::SecurityContext,
) -> Container {
    let mut args = vec![
        "token-service".to_string(),
        format!("--listen=0.0.0.0:{TOKEN_PORT}"),
        format!("--access-dir={ACCESS_DIR}"),
        format!("--key-dir={TOKEN_KEY_DIR}"),
    ];
    if tls {
        args.push(format!("--tls-dir={TLS_DIR}"));
    }
    Container {
        name: "token-service".into(),
        image: Some(image.into()),
        args: Some(args),
        ports: Some(vec![ContainerPort {
            name: Some("token".into()),
            container_port: TOKEN_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".into()),
                port: IntOrString::String("token".into()),
                scheme: Some(if tls { "HTTPS" } else { "HTTP" }.into()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(5),
            timeout_seconds: Some(3),
            ..Probe::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("10m".into())),
                ("memory".to_string(), Quantity("32Mi".into())),
            ])),
            ..ResourceRequirements::default()
        }),
        volume_mounts: Some(mounts),
        security_context: Some(security),
        ..Container::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> RegistrySpec {
        serde_json::from_value(v).expect("spec")
    }

    #[test]
    fn issues_name_the_rule() {
        let s = spec(
            serde_json::json!({"storage": {"emptyDir": {}}, "access": {"rules": [
                {"repositories": ["library/**"], "anonymous": ["pull"]},
                {"repositories": ["a/[x"], "users": ["u"], "actions": ["pull"]},
                {"repositories": ["b/**"], "groups": ["team"], "actions": ["pull"]},
                {"repositories": ["c/**"], "users": ["flotilla-operator"], "actions": ["pull"]}
            ]}}),
        );
        let issues = validate(&s, Some("img"));
        let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.access.rules[1].repositories[0]",
                "spec.access.rules[2].groups",
                "spec.access.rules[3].users"
            ]
        );
        assert!(issues[1].message.contains(GROUPS_FIELD));
        let unknown = validate(&s, None);
        assert!(
            unknown
                .iter()
                .any(|i| i.reason == TOKEN_SERVICE_IMAGE_UNKNOWN)
        );
        assert_eq!(
            validate(
                &spec(serde_json::json!({"storage": {"emptyDir": {}}})),
                None
            ),
            []
        );
    }

    #[test]
    fn the_bundle_makes_the_operator_an_admin() {
        let s = spec(serde_json::json!({"storage": {"emptyDir": {}}, "access": {
            "admins": {"users": ["root"]}, "tokenExpirySeconds": 60,
            "rules": [{"repositories": ["library/**"], "anonymous": ["pull"]}]}}));
        let names = Names::new("hq", "fleet");
        let b = bundle(s.access.as_ref().expect("access"), &names, BTreeMap::new());
        assert_eq!(b.admins.users, [OPERATOR_USERNAME, "root"]);
        assert_eq!(b.service, "hq.fleet.svc");
        assert_eq!(b.issuer, "flotilla/fleet/hq");
        assert_eq!(b.expiry_seconds, 60);
        let t = token_auth(&names, false, None);
        assert_eq!(t.realm, "http://hq.fleet.svc:5002/token");
        assert_eq!(
            token_auth(&names, true, None).realm,
            "https://hq.fleet.svc:5002/token"
        );
        assert_eq!(
            token_auth(&names, true, Some("https://r.example.com")).realm,
            "https://r.example.com/token",
            "outside clients get a realm they can reach"
        );
        assert_eq!(t.service, b.service);
        assert!(groups("bad line").is_err_and(|i| i.message.contains("line 1")));
    }

    #[test]
    fn with_tls_the_sidecar_serves_https_with_the_registry_certificate() {
        let names = Names::new("hq", "fleet");
        let (_, _, mounts) = volumes(&names, true);
        assert!(
            mounts
                .iter()
                .any(|m| m.name == "tls" && m.mount_path == TLS_DIR)
        );
        let c = sidecar("img", true, mounts, Default::default());
        let args = c.args.expect("args");
        assert!(args.contains(&format!("--tls-dir={TLS_DIR}")), "{args:?}");
        let probe = c.readiness_probe.and_then(|p| p.http_get).expect("probe");
        assert_eq!(probe.scheme.as_deref(), Some("HTTPS"));
        let (_, _, plain) = volumes(&names, false);
        assert!(!plain.iter().any(|m| m.name == "tls"));
    }
}
