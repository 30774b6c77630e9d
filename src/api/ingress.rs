//! `Registry.spec.ingress` and `spec.httpRoute`: exposure of a fleet outside the cluster
//! through a `networking.k8s.io/v1` Ingress or a Gateway API `HTTPRoute`.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// An Ingress in front of the fleet's Service: `/v2` to the registry and, with
/// `spec.access`, `/token` to the token service, on one host. It carries the settings a
/// registry needs behind ingress-nginx (no body-size limit, no request buffering, 15-minute
/// read and send timeouts, HTTPS to the backends when `spec.tls` is set). Other controllers
/// need their own equivalents in `annotations`. The fleet's external URL (in status, and the
/// token realm clients are sent to) becomes `https://<host>` with `tls`, `http://<host>`
/// without, unless `spec.externalURL` says otherwise.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host name clients use, e.g. `registry.east.example.com` (a DNS name, no wildcard, no
    /// port).
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
        length(min = 1, max = 253)
    )]
    pub host: String,
    /// IngressClass of the controller that serves it, e.g. `nginx`. Unset: the cluster's
    /// default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(max = 253)
    )]
    pub class_name: Option<String>,
    /// HTTPS at the Ingress. Unset: plain HTTP (clients must then treat the host as an
    /// insecure registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTls>,
    /// Extra annotations of the Ingress. They win over Flotilla's own (`proxy-body-size`,
    /// timeouts, ...) where both set the same key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Where the Ingress's certificate comes from: exactly one of `secretName` or `certManager`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.secretName) != has(self.certManager)").message("set exactly one of spec.ingress.tls.secretName (an existing kubernetes.io/tls Secret) or spec.ingress.tls.certManager (cert-manager issues it)"))]
#[serde(rename_all = "camelCase")]
pub struct IngressTls {
    /// An existing `kubernetes.io/tls` Secret in the Registry's namespace whose certificate
    /// names `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
    /// Have cert-manager issue the certificate (its ingress-shim reads the annotation) into
    /// the Secret `<name>-ingress-tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<CertManagerIssuer>,
}

/// A cert-manager issuer: exactly one of `issuer` (in the Registry's namespace) or
/// `clusterIssuer`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.issuer) != has(self.clusterIssuer)").message("set exactly one of spec.ingress.tls.certManager.issuer or spec.ingress.tls.certManager.clusterIssuer"))]
#[serde(rename_all = "camelCase")]
pub struct CertManagerIssuer {
    /// Name of an `Issuer` in the Registry's namespace (annotation `cert-manager.io/issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub issuer: Option<String>,
    /// Name of a `ClusterIssuer` (annotation `cert-manager.io/cluster-issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub cluster_issuer: Option<String>,
}

/// A Gateway API `HTTPRoute` (`gateway.networking.k8s.io/v1`) in front of the fleet's
/// Service: `/v2` to the registry and, with `spec.access`, `/token` to the token service,
/// with no request timeout (`timeouts.request: 0s`). Needs the Gateway API CRDs in the cluster
/// (without them the Registry is `Ready=False`, reason `GatewayAPIMissing`). Body-size limits
/// and TLS are the Gateway's: TLS terminates at its listener, so set `spec.externalURL` (e.g.
/// `https://<hostname>`) for the status and the token realm.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// Gateways (or listeners of them) the route attaches to.
    #[schemars(length(min = 1, max = 32))]
    pub parent_refs: Vec<ParentRef>,
    /// Host names the route serves, e.g. `registry.east.example.com` (a leading `*.` allowed).
    /// Empty: those of the Gateway's listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            regex(
                pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
            ),
            length(min = 1, max = 253)
        )
    )]
    pub hostnames: Vec<String>,
}

/// A Gateway the route attaches to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// Name of the Gateway.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Gateway. Default: the Registry's (another one must allow routes from
    /// it in its listener's `allowedRoutes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// Name of one listener of the Gateway. Default: every listener that allows the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub section_name: Option<String>,
}
