//! The Registry's exposure children: the Ingress of `spec.ingress` and the Gateway API
//! `HTTPRoute` of `spec.httpRoute` (whose CRDs the cluster may lack).

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::DynamicObject;
use kube::{Api, Client};

use super::Error;
use super::children::{apply_or_delete, foreign};
use crate::api::registry::{Registry, RegistrySpec};
use crate::fleet::http_route;
use crate::fleet::names::Names;
use crate::fleet::objects::Children;
use crate::fleet::ownership::Claimant;
use crate::fleet::validate::Issue;

fn http_routes(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &http_route::api_resource())
}

/// Reason: `spec.httpRoute` is set and the cluster serves no `HTTPRoute`.
const GATEWAY_API_MISSING: &str = "GatewayAPIMissing";

/// The problem with `spec.httpRoute` in this cluster: the Gateway API CRDs are not installed
/// (discovery, which needs no RBAC, serves no `httproutes` in `gateway.networking.k8s.io/v1`).
pub(super) async fn gateway_api_issue(
    client: &Client,
    spec: &RegistrySpec,
) -> Result<Option<Issue>, Error> {
    if spec.http_route.is_none() {
        return Ok(None);
    }
    let version = format!("{}/{}", http_route::GROUP, http_route::VERSION);
    let served = match client.list_api_group_resources(&version).await {
        Ok(list) => list.resources.iter().any(|r| r.name == "httproutes"),
        Err(kube::Error::Api(e)) if e.code == 404 => false,
        Err(e) => return Err(e.into()),
    };
    Ok((!served).then(|| Issue {
        field: "spec.httpRoute".into(),
        reason: GATEWAY_API_MISSING,
        message: format!("the cluster serves no HTTPRoute ({version}): install the Gateway API CRDs (standard channel, v1.0 or newer) or remove spec.httpRoute"),
    }))
}

/// The exposure children that exist and are not this Registry's, as issues.
pub(super) async fn not_owned(
    client: &Client,
    names: &Names,
    owner: Claimant<'_>,
    children: &Children,
) -> Result<Vec<Issue>, Error> {
    let ns = names.namespace.as_str();
    let mut issues = Vec::new();
    if children.ingress.is_some() {
        let ingresses: Api<Ingress> = Api::namespaced(client.clone(), ns);
        issues.extend(foreign(&ingresses, "Ingress", &names.workload(), owner).await?);
    }
    if children.http_route.is_some() {
        let routes = http_routes(client, ns);
        issues.extend(foreign(&routes, http_route::KIND, &names.workload(), owner).await?);
    }
    Ok(issues)
}

/// Applies the Ingress and the HTTPRoute, or deletes the Registry's own when no longer wanted.
pub(super) async fn apply(
    client: &Client,
    names: &Names,
    obj: &Registry,
    children: &Children,
) -> Result<(), Error> {
    let ns = names.namespace.as_str();
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), ns);
    apply_or_delete(&ingresses, children.ingress.as_ref(), names, obj).await?;
    let routes = http_routes(client, ns);
    match apply_or_delete(&routes, children.http_route.as_ref(), names, obj).await {
        // Without the Gateway API CRDs the read is a plain 404 (no Status, so no
        // `get_metadata_opt` None): there is no HTTPRoute to delete.
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 && children.http_route.is_none() => {
            Ok(())
        }
        other => other,
    }
}
