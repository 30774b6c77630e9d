//! Revokes the receiver tokens of deleted Registries: a watch of Registry metadata feeds the
//! [`Revoker`] (at once on a delete; after a relist for those deleted while the watch was
//! down). Turning notifications off is handled by the Registry reconciler itself.

use futures::StreamExt;
use kube::Api;
use kube::api::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher::watcher};

use crate::api::registry::Registry;
use crate::notifications::{OwnerEvent, Revoker, Tokens};

/// What a watch event says about token owners (`None`: an object without uid).
fn owner_event(event: Event<PartialObjectMeta<Registry>>) -> Option<OwnerEvent> {
    Some(match event {
        Event::Init => OwnerEvent::ListStart,
        Event::InitDone => OwnerEvent::ListDone,
        Event::InitApply(r) | Event::Apply(r) => OwnerEvent::Present(r.metadata.uid?),
        Event::Delete(r) => OwnerEvent::Deleted(r.metadata.uid?),
    })
}

/// Watches `registries` for ever, revoking the tokens of those deleted.
pub async fn run(registries: Api<PartialObjectMeta<Registry>>, tokens: Tokens) {
    let mut revoker = Revoker::new(tokens);
    let mut events = watcher(registries, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                if let Some(e) = owner_event(event) {
                    let revoked = revoker.observe(e);
                    if revoked > 0 {
                        tracing::info!(
                            revoked,
                            "revoked the receiver tokens of deleted Registries"
                        );
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "Registry watch for token revocation"),
        }
    }
}
