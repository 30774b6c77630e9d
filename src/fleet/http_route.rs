//! `spec.httpRoute` → the fleet's Gateway API `HTTPRoute` (`gateway.networking.k8s.io/v1`),
//! as a dynamic object: Flotilla carries no Gateway API types, and the CRDs may be absent.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject, TypeMeta};

use super::ingress::TOKEN_PATH;
use super::names::{Names, TOKEN_PORT};
use crate::api::registry::RegistrySpec;

/// API group of the Gateway API.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// The `HTTPRoute` version Flotilla writes (standard channel since Gateway API v1.0).
pub const VERSION: &str = "v1";
/// Kind.
pub const KIND: &str = "HTTPRoute";

/// The resource, for dynamic API calls and discovery.
pub fn api_resource() -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: VERSION.into(),
        api_version: format!("{GROUP}/{VERSION}"),
        kind: KIND.into(),
        plural: "httproutes".into(),
    }
}

fn rule(kind: &str, path: &str, service: &str, port: i32) -> serde_json::Value {
    serde_json::json!({
        "matches": [{"path": {"type": kind, "value": path}}],
        "backendRefs": [{"name": service, "port": port}],
        // No request timeout: a layer upload takes as long as it takes ("0s" disables it).
        "timeouts": {"request": "0s"},
    })
}

/// The HTTPRoute of `spec.httpRoute`, with `metadata` (name, labels, owner) from the caller.
/// `None` without `spec.httpRoute`.
pub fn http_route(
    spec: &RegistrySpec,
    names: &Names,
    metadata: ObjectMeta,
) -> Option<DynamicObject> {
    let route = spec.http_route.as_ref()?;
    let service = names.workload();
    let port = spec.service.as_ref().map_or(5000, |s| s.port);
    let rules: Vec<serde_json::Value> = std::iter::once(rule("PathPrefix", "/v2", &service, port))
        .chain(
            spec.access
                .as_ref()
                .map(|_| rule("Exact", TOKEN_PATH, &service, TOKEN_PORT)),
        )
        .collect();
    let parents: Vec<serde_json::Value> = route
        .parent_refs
        .iter()
        .map(|p| {
            let mut v = serde_json::json!({"group": GROUP, "kind": "Gateway", "name": p.name});
            if let Some(ns) = &p.namespace {
                v["namespace"] = ns.clone().into();
            }
            if let Some(section) = &p.section_name {
                v["sectionName"] = section.clone().into();
            }
            v
        })
        .collect();
    let mut body = serde_json::json!({"parentRefs": parents, "rules": rules});
    if !route.hostnames.is_empty() {
        body["hostnames"] = route.hostnames.clone().into();
    }
    Some(DynamicObject {
        types: Some(TypeMeta {
            api_version: format!("{GROUP}/{VERSION}"),
            kind: KIND.into(),
        }),
        metadata,
        data: serde_json::json!({ "spec": body }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_sends_v2_and_token_to_the_service_ports() {
        let spec: RegistrySpec = serde_json::from_value(serde_json::json!({
            "storage": {"emptyDir": {}}, "service": {"port": 443},
            "access": {"rules": [{"repositories": ["x/**"], "anonymous": ["pull"]}]},
            "httpRoute": {"parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": "https"}],
                          "hostnames": ["r.example.com"]}}))
        .expect("spec");
        let r =
            http_route(&spec, &Names::new("hq", "fleet"), ObjectMeta::default()).expect("route");
        assert_eq!(r.types.as_ref().map(|t| t.kind.as_str()), Some("HTTPRoute"));
        let s = &r.data["spec"];
        assert_eq!(s["hostnames"][0], "r.example.com");
        assert_eq!(s["parentRefs"][0]["namespace"], "infra");
        assert_eq!(s["parentRefs"][0]["sectionName"], "https");
        assert_eq!(s["rules"][0]["matches"][0]["path"]["value"], "/v2");
        assert_eq!(s["rules"][0]["backendRefs"][0]["port"], 443);
        assert_eq!(s["rules"][1]["matches"][0]["path"]["type"], "Exact");
        assert_eq!(s["rules"][1]["backendRefs"][0]["port"], TOKEN_PORT);
        assert_eq!(s["rules"][0]["timeouts"]["request"], "0s");
        let plain: RegistrySpec = serde_json::from_value(serde_json::json!({
            "storage": {"emptyDir": {}}, "httpRoute": {"parentRefs": [{"name": "gw"}]}}))
        .expect("spec");
        let p =
            http_route(&plain, &Names::new("hq", "fleet"), ObjectMeta::default()).expect("route");
        assert_eq!(p.data["spec"]["rules"].as_array().map(Vec::len), Some(1));
        assert!(p.data["spec"].get("hostnames").is_none());
        assert_eq!(p.data["spec"]["rules"][0]["backendRefs"][0]["port"], 5000);
    }
}
