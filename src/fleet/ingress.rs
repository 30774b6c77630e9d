//! `spec.ingress` → the fleet's Ingress, and the external URL clients use (status, token
//! realm).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::names::Names;
use crate::api::ingress::IngressSpec;
use crate::api::registry::RegistrySpec;

/// Path of the token endpoint on the external host (and in the token service).
pub const TOKEN_PATH: &str = "/token";
/// Seconds ingress-nginx waits between two reads from, or two writes to, the registry: a
/// registry answers a blob `PUT` only once it has verified (and, on S3, assembled) the whole
/// layer, which takes minutes for gigabytes; the default 60 s cuts such uploads.
pub const PROXY_TIMEOUT_SECONDS: u32 = 900;

const NGINX: &str = "nginx.ingress.kubernetes.io";

/// The annotations Flotilla puts on every Ingress it builds (ingress-nginx's names): no
/// body-size limit (layers are gigabytes), the body streamed to the registry as it arrives
/// and the answer streamed back (no buffering to the controller's disk), long timeouts, and
/// HTTPS to the backends when the registry serves HTTPS.
pub fn proxy_annotations(backend_tls: bool) -> BTreeMap<String, String> {
    let timeout = PROXY_TIMEOUT_SECONDS.to_string();
    let mut a: BTreeMap<String, String> = [
        ("proxy-body-size", "0"),
        ("proxy-request-buffering", "off"),
        ("proxy-buffering", "off"),
        ("proxy-read-timeout", timeout.as_str()),
        ("proxy-send-timeout", timeout.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{NGINX}/{k}"), v.to_string()))
    .collect();
    if backend_tls {
        a.insert(format!("{NGINX}/backend-protocol"), "HTTPS".into());
    }
    a
}

/// The Secret cert-manager issues the Ingress's certificate into.
pub fn cert_manager_secret(names: &Names) -> String {
    format!("{}-ingress-tls", names.instance)
}

/// The URL clients outside the cluster use: `spec.externalURL`, else `https://<host>` (or
/// `http://` without TLS) of `spec.ingress`; no trailing `/`.
pub fn external_url(spec: &RegistrySpec) -> Option<String> {
    if let Some(u) = &spec.external_url {
        return Some(u.trim_end_matches('/').to_string());
    }
    let i = spec.ingress.as_ref()?;
    let scheme = if i.tls.is_some() { "https" } else { "http" };
    Some(format!("{scheme}://{}", i.host))
}

fn path(path: &str, exact: bool, service: &str, port: &str) -> HTTPIngressPath {
    HTTPIngressPath {
        path: Some(path.into()),
        path_type: if exact { "Exact" } else { "Prefix" }.into(),
        backend: IngressBackend {
            service: Some(IngressServiceBackend {
                name: service.into(),
                port: Some(ServiceBackendPort {
                    name: Some(port.into()),
                    number: None,
                }),
            }),
            resource: None,
        },
    }
}

/// The Ingress of `spec.ingress`, with `metadata` (name, labels, owner) filled in by the
/// caller. `None` without `spec.ingress`.
pub fn ingress(spec: &RegistrySpec, names: &Names, mut metadata: ObjectMeta) -> Option<Ingress> {
    let i = spec.ingress.as_ref()?;
    let mut annotations = proxy_annotations(spec.tls.is_some());
    let secret = i.tls.as_ref().map(|t| {
        let issuer =
            t.cert_manager
                .as_ref()
                .and_then(|cm| match (&cm.issuer, &cm.cluster_issuer) {
                    (Some(issuer), _) => Some(("cert-manager.io/issuer", issuer)),
                    (None, cluster) => cluster
                        .as_ref()
                        .map(|c| ("cert-manager.io/cluster-issuer", c)),
                });
        if let Some((key, value)) = issuer {
            annotations.insert(key.into(), value.clone());
        }
        t.secret_name
            .clone()
            .unwrap_or_else(|| cert_manager_secret(names))
    });
    annotations.extend(i.annotations.clone());
    metadata.annotations = Some(annotations);
    let service = names.workload();
    let paths = std::iter::once(path("/v2", false, &service, "http"))
        .chain(
            spec.access
                .as_ref()
                .map(|_| path(TOKEN_PATH, true, &service, "token")),
        )
        .collect();
    Some(Ingress {
        metadata,
        spec: Some(spec_of(i, secret, paths)),
        status: None,
    })
}

fn spec_of(i: &IngressSpec, secret: Option<String>, paths: Vec<HTTPIngressPath>) -> K8sIngressSpec {
    K8sIngressSpec {
        ingress_class_name: i.class_name.clone(),
        tls: secret.map(|s| {
            vec![IngressTLS {
                hosts: Some(vec![i.host.clone()]),
                secret_name: Some(s),
            }]
        }),
        rules: Some(vec![IngressRule {
            host: Some(i.host.clone()),
            http: Some(HTTPIngressRuleValue { paths }),
        }]),
        default_backend: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> RegistrySpec {
        serde_json::from_value(v).expect("spec")
    }

    fn paths(i: &Ingress) -> Vec<(String, String, String)> {
        let rule = &i
            .spec
            .as_ref()
            .expect("spec")
            .rules
            .as_ref()
            .expect("rules")[0];
        rule.http
            .as_ref()
            .expect("http")
            .paths
            .iter()
            .map(|p| {
                let s = p.backend.service.as_ref().expect("service");
                (
                    p.path.clone().unwrap_or_default(),
                    s.name.clone(),
                    s.port
                        .as_ref()
                        .and_then(|p| p.name.clone())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn ingress_routes_v2_and_token_and_carries_the_proxy_settings() {
        let names = Names::new("hq", "fleet");
        let s = spec(
            serde_json::json!({"storage": {"emptyDir": {}}, "tls": {"secretName": "t"},
            "access": {"rules": [{"repositories": ["x/**"], "anonymous": ["pull"]}]},
            "ingress": {"host": "registry.example.com", "className": "nginx",
                "tls": {"certManager": {"clusterIssuer": "letsencrypt"}},
                "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "1800", "x": "y"}}}),
        );
        let i = ingress(&s, &names, ObjectMeta::default()).expect("ingress");
        let a = i.metadata.annotations.clone().expect("annotations");
        assert_eq!(a["nginx.ingress.kubernetes.io/proxy-body-size"], "0");
        assert_eq!(
            a["nginx.ingress.kubernetes.io/proxy-request-buffering"],
            "off"
        );
        assert_eq!(a["nginx.ingress.kubernetes.io/proxy-send-timeout"], "900");
        assert_eq!(
            a["nginx.ingress.kubernetes.io/proxy-read-timeout"], "1800",
            "the user wins"
        );
        assert_eq!(a["nginx.ingress.kubernetes.io/backend-protocol"], "HTTPS");
        assert_eq!(a["cert-manager.io/cluster-issuer"], "letsencrypt");
        assert_eq!(a["x"], "y");
        let k = i.spec.as_ref().expect("spec");
        assert_eq!(k.ingress_class_name.as_deref(), Some("nginx"));
        let tls = &k.tls.as_ref().expect("tls")[0];
        assert_eq!(tls.secret_name.as_deref(), Some("hq-ingress-tls"));
        assert_eq!(
            tls.hosts.as_deref(),
            Some(&["registry.example.com".to_string()][..])
        );
        assert_eq!(
            paths(&i),
            [
                ("/v2".to_string(), "hq".to_string(), "http".to_string()),
                ("/token".to_string(), "hq".to_string(), "token".to_string())
            ]
        );
        assert_eq!(
            external_url(&s).as_deref(),
            Some("https://registry.example.com")
        );
    }

    #[test]
    fn plain_ingress_without_access_has_no_token_path_and_http_url() {
        let names = Names::new("hq", "fleet");
        let s = spec(serde_json::json!({"storage": {"emptyDir": {}},
            "ingress": {"host": "r.example.com", "tls": {"secretName": "mine"}}}));
        let i = ingress(&s, &names, ObjectMeta::default()).expect("ingress");
        let a = i.metadata.annotations.clone().expect("annotations");
        assert!(!a.contains_key("nginx.ingress.kubernetes.io/backend-protocol"));
        assert!(!a.keys().any(|k| k.starts_with("cert-manager.io/")));
        assert_eq!(paths(&i).len(), 1);
        let tls = &i.spec.as_ref().and_then(|s| s.tls.clone()).expect("tls")[0];
        assert_eq!(tls.secret_name.as_deref(), Some("mine"));
        let plain = spec(serde_json::json!({"storage": {"emptyDir": {}},
            "ingress": {"host": "r.example.com", "tls": {"certManager": {"issuer": "ca"}}}}));
        let a = ingress(&plain, &names, ObjectMeta::default())
            .and_then(|i| i.metadata.annotations)
            .expect("annotations");
        assert_eq!(a["cert-manager.io/issuer"], "ca");
        let no_tls = spec(serde_json::json!({"storage": {"emptyDir": {}},
            "ingress": {"host": "r.example.com"}}));
        assert_eq!(
            external_url(&no_tls).as_deref(),
            Some("http://r.example.com")
        );
        let explicit = spec(serde_json::json!({"storage": {"emptyDir": {}},
            "externalURL": "https://other.example.com:8443/",
            "ingress": {"host": "r.example.com"}}));
        assert_eq!(
            external_url(&explicit).as_deref(),
            Some("https://other.example.com:8443"),
            "spec.externalURL wins"
        );
        assert!(external_url(&spec(serde_json::json!({"storage": {"emptyDir": {}}}))).is_none());
        assert!(ingress(&explicit, &names, ObjectMeta::default()).is_some());
    }

    #[test]
    fn the_built_ingress_is_owned_and_the_realm_points_outside() {
        use crate::api::registry::Registry;
        use crate::fleet::objects::{BuildContext, build};
        let mut r = Registry::new(
            "hq",
            spec(serde_json::json!({"storage": {"emptyDir": {}},
                "access": {"rules": [{"repositories": ["x/**"], "anonymous": []}]},
                "ingress": {"host": "r.example.com", "tls": {"secretName": "t"}}})),
        );
        r.metadata.namespace = Some("fleet".into());
        r.metadata.uid = Some("uid-1".into());
        let ctx = BuildContext {
            token_service_image: Some("img".into()),
            ..BuildContext::default()
        };
        let generated = crate::fleet::GeneratedSecrets {
            http_secret: "s".into(),
            notification_token: None,
            proxy_credentials: None,
            operator: Some(crate::fleet::operator_account::OperatorAccount {
                password: "p".into(),
                htpasswd: "flotilla-operator:HASH\n".into(),
            }),
            token_key: None,
            access_groups: Default::default(),
            tls_fingerprint: None,
        };
        let c = build(&r, &ctx, &generated).expect("build");
        let ingress = c.ingress.as_ref().expect("ingress");
        assert_eq!(ingress.metadata.name.as_deref(), Some("hq"));
        assert_eq!(
            ingress.metadata.owner_references.as_ref().map(Vec::len),
            Some(1)
        );
        let config: serde_yaml::Value =
            serde_yaml::from_str(&c.config_map.data.as_ref().expect("data")["config.yml"])
                .expect("yaml");
        assert_eq!(
            config["auth"]["token"]["realm"],
            "https://r.example.com/token"
        );
        assert_eq!(config["http"]["relativeurls"], true);
        r.spec.ingress = None;
        assert!(
            build(&r, &ctx, &generated)
                .expect("build")
                .ingress
                .is_none()
        );
    }
}
