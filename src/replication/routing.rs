//! Which policies a push or delete event concerns. Pure.

use crate::api::replication_policy::{Endpoint, ReplicationPolicySpec};
use crate::webhook::{ManifestAction, ManifestEvent};

/// Identity of the events a Registry of this cluster sends (its token's holder).
pub fn registry_identity(namespace: &str, name: &str) -> String {
    format!("registry/{namespace}/{name}")
}

/// Identity of events sent with the operator-wide token by registries Flotilla does not run.
pub const EXTERNAL_IDENTITY: &str = "external";

/// `host[:port]` of a URL, lower-cased, with the scheme's default port made explicit.
pub fn authority(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?.to_ascii_lowercase();
    Some(format!("{host}:{}", u.port_or_known_default()?))
}

fn host_port(host: &str, default_port: u16) -> String {
    let h = host.to_ascii_lowercase();
    if h.rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        h
    } else {
        format!("{h}:{default_port}")
    }
}

/// Whether `event` was sent by the source of a policy in `namespace`.
///
/// What a token can trigger (the trust boundary of the receiver): a Registry's own token only
/// policies whose source is that Registry by `registryRef`, whatever URL or host the event
/// claims; the shared token for external registries (sender [`EXTERNAL_IDENTITY`]) only
/// policies whose source is a `url` with the host and port the event names, never a
/// `registryRef` source. So one external registry holding the shared token can speak for
/// another external one; that is accepted because an event is only a hint: the policy copies
/// what its source serves for the named repository and tag, within its filters, as its next
/// scheduled sync would.
pub fn from_source(source: &Endpoint, namespace: &str, event: &ManifestEvent) -> bool {
    if let Some(r) = &source.registry_ref {
        return event.sender
            == registry_identity(r.namespace.as_deref().unwrap_or(namespace), &r.name);
    }
    let (Some(url), true) = (&source.url, event.sender == EXTERNAL_IDENTITY) else {
        return false;
    };
    let Some(want) = authority(url) else {
        return false;
    };
    let default_port = if url.starts_with("https://") { 443 } else { 80 };
    event
        .url
        .as_deref()
        .and_then(authority)
        .is_some_and(|a| a == want)
        || event
            .request_host
            .as_deref()
            .is_some_and(|h| host_port(h, default_port) == want)
}

/// What an event asks of a policy: a tag to copy, a tag to delete, or nothing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Work {
    /// Copy `repository:tag`.
    Copy { repository: String, tag: String },
    /// Propagate the deletion of `repository:tag` (only with `deletion: true`).
    Delete { repository: String, tag: String },
}

/// The work an event gives a policy, if any. Events without a tag (child manifests, deletes
/// by digest) need none: the tagged push or the scheduled sync covers them.
pub fn work(spec: &ReplicationPolicySpec, event: &ManifestEvent) -> Option<Work> {
    if spec.suspend || !spec.trigger.on_push {
        return None;
    }
    let (repository, tag) = (event.repository.clone(), event.tag.clone()?);
    match event.action {
        ManifestAction::Push => Some(Work::Copy { repository, tag }),
        ManifestAction::Delete if spec.deletion => Some(Work::Delete { repository, tag }),
        ManifestAction::Delete => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        sender: &str,
        action: ManifestAction,
        tag: Option<&str>,
        url: Option<&str>,
    ) -> ManifestEvent {
        ManifestEvent {
            sender: sender.into(),
            action,
            repository: "apps/web".into(),
            tag: tag.map(str::to_string),
            digest: Some("sha256:00".into()),
            media_type: None,
            url: url.map(str::to_string),
            request_host: None,
            source_addr: None,
            id: None,
        }
    }

    fn spec(source: serde_json::Value, deletion: bool) -> ReplicationPolicySpec {
        serde_json::from_value(serde_json::json!({
            "source": source,
            "destinations": [{"name": "a", "url": "https://a.example.com"}],
            "deletion": deletion,
        }))
        .expect("valid spec")
    }

    #[test]
    fn registry_ref_sources_match_their_registry_identity() {
        let s = spec(serde_json::json!({"registryRef": {"name": "hq"}}), false);
        assert!(from_source(
            &s.source,
            "fleet",
            &event("registry/fleet/hq", ManifestAction::Push, Some("v1"), None)
        ));
        assert!(!from_source(
            &s.source,
            "fleet",
            &event("registry/other/hq", ManifestAction::Push, Some("v1"), None)
        ));
        assert!(!from_source(
            &s.source,
            "fleet",
            &event(EXTERNAL_IDENTITY, ManifestAction::Push, Some("v1"), None)
        ));
    }

    #[test]
    fn url_sources_match_external_events_by_authority() {
        let s = spec(
            serde_json::json!({"url": "http://127.0.0.1:5000", "insecure": true}),
            false,
        );
        let url = Some("http://127.0.0.1:5000/v2/apps/web/manifests/sha256:00");
        assert!(from_source(
            &s.source,
            "ns",
            &event(EXTERNAL_IDENTITY, ManifestAction::Push, Some("v1"), url)
        ));
        let other = Some("http://127.0.0.1:5001/v2/apps/web/manifests/sha256:00");
        assert!(!from_source(
            &s.source,
            "ns",
            &event(EXTERNAL_IDENTITY, ManifestAction::Push, Some("v1"), other)
        ));
        let mut by_host = event(EXTERNAL_IDENTITY, ManifestAction::Push, Some("v1"), None);
        by_host.request_host = Some("127.0.0.1:5000".into());
        assert!(from_source(&s.source, "ns", &by_host));
        assert!(!from_source(
            &s.source,
            "ns",
            &event("registry/ns/hq", ManifestAction::Push, Some("v1"), url)
        ));
    }

    #[test]
    fn what_one_token_can_trigger() {
        let by_ref = spec(serde_json::json!({"registryRef": {"name": "hq"}}), true);
        let by_url = spec(serde_json::json!({"url": "https://hq.example.com"}), true);
        let hq_url = Some("https://hq.example.com/v2/apps/web/manifests/sha256:00");
        let mut claims_hq = event(EXTERNAL_IDENTITY, ManifestAction::Push, Some("v1"), hq_url);
        claims_hq.request_host = Some("hq.fleet.svc:5000".into());
        // The shared token: only url sources whose authority the event names.
        assert!(from_source(&by_url.source, "fleet", &claims_hq));
        assert!(!from_source(&by_ref.source, "fleet", &claims_hq));
        let elsewhere = event(
            EXTERNAL_IDENTITY,
            ManifestAction::Push,
            Some("v1"),
            Some("https://other.example.com/v2/apps/web/manifests/sha256:00"),
        );
        assert!(!from_source(&by_url.source, "fleet", &elsewhere));
        // A Registry's token: only its own registryRef, whatever URL or host it claims.
        for sender in [
            "registry/fleet/hq",
            "registry/fleet/east",
            "registry/other/hq",
        ] {
            let mut e = claims_hq.clone();
            e.sender = sender.into();
            assert!(!from_source(&by_url.source, "fleet", &e), "{sender}");
            assert_eq!(
                from_source(&by_ref.source, "fleet", &e),
                sender == "registry/fleet/hq",
                "{sender}"
            );
        }
    }

    #[test]
    fn deletes_propagate_only_with_deletion_sync() {
        let off = spec(serde_json::json!({"url": "https://hq.example.com"}), false);
        let on = spec(serde_json::json!({"url": "https://hq.example.com"}), true);
        let del = event(EXTERNAL_IDENTITY, ManifestAction::Delete, Some("v1"), None);
        assert_eq!(work(&off, &del), None);
        assert_eq!(
            work(&on, &del),
            Some(Work::Delete {
                repository: "apps/web".into(),
                tag: "v1".into()
            })
        );
        assert_eq!(
            work(
                &off,
                &event(EXTERNAL_IDENTITY, ManifestAction::Push, None, None)
            ),
            None
        );
    }

    #[test]
    fn authorities() {
        assert_eq!(
            authority("https://Reg.example.com/v2/x").as_deref(),
            Some("reg.example.com:443")
        );
        assert_eq!(
            authority("http://127.0.0.1:5000").as_deref(),
            Some("127.0.0.1:5000")
        );
    }
}
