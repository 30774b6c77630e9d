//! Server-side apply of a Registry's children, and the ownership checks before it.

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;
use crate::api::FIELD_MANAGER;
use crate::api::registry::Registry;
use crate::fleet::names::Names;
use crate::fleet::ownership::{self, Claimant};
use crate::fleet::validate::Issue;

/// Applies an optional child named like the workload, or deletes it (only if it is this
/// Registry's) when it is no longer wanted.
pub(super) async fn apply_or_delete<K>(
    api: &Api<K>,
    child: Option<&K>,
    names: &Names,
    obj: &Registry,
) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    match child {
        Some(c) => apply(api, c).await,
        None => {
            if api
                .get_metadata_opt(&names.workload())
                .await?
                .is_some_and(|p| owned_by(&p, obj))
            {
                api.delete(&names.workload(), &DeleteParams::default())
                    .await?;
            }
            Ok(())
        }
    }
}

/// The problem with applying over `kind` `name` as it exists now, if any.
pub(super) async fn foreign<K>(
    api: &Api<K>,
    kind: &str,
    name: &str,
    claimant: Claimant<'_>,
) -> Result<Option<Issue>, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let existing = api.get_metadata_opt(name).await?;
    Ok(ownership::check(
        kind,
        name,
        existing.as_ref().map(|m| &m.metadata),
        claimant,
    ))
}

pub(super) fn owned_by<K: Resource>(child: &K, owner: &Registry) -> bool {
    let uid = owner.meta().uid.as_deref();
    child
        .meta()
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| Some(r.uid.as_str()) == uid))
}

pub(super) async fn apply<K>(api: &Api<K>, obj: &K) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or_else(|| Error::MissingMetadata("a built object".into(), "name"))?;
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await?;
    Ok(())
}
