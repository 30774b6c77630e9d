//! Which policies a push or delete event concerns. Pure.

use std::collections::{BTreeSet, HashMap};

use crate::api::replication_policy::{Endpoint, ReplicationPolicySpec};
use crate::engine::scope::Named;
use crate::notifications::{ManifestAction, ManifestEvent};

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

/// What an event asks of a policy: an artifact to copy or a deletion to propagate, or
/// nothing. A push names a tag (pushes by digest alone, such as an index's children, need
/// none: the tagged push covers them); a delete names the manifest's digest (Distribution
/// deletes by digest) and is propagated only with `deletion: true`.
pub fn work(spec: &ReplicationPolicySpec, event: &ManifestEvent) -> Option<Named> {
    if spec.suspend || !spec.trigger.on_push {
        return None;
    }
    let repository = event.repository.clone();
    match event.action {
        ManifestAction::Push => Some(Named::Pushed {
            repository,
            tag: event.tag.clone()?,
        }),
        ManifestAction::Delete if spec.deletion => Some(Named::Deleted {
            repository,
            digest: event.digest.as_deref()?.parse().ok()?,
            tag: event.tag.clone(),
        }),
        ManifestAction::Delete => None,
    }
}

/// The key under which a policy's source is indexed: what the events of that source carry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKey {
    /// A Registry of this cluster, by its token's identity.
    Registry(String),
    /// An external registry, by the `host:port` of its URL.
    External(String),
}

/// The key of a policy's source (`None`: an endpoint without URL or reference).
pub fn source_key(source: &Endpoint, namespace: &str) -> Option<SourceKey> {
    if let Some(r) = &source.registry_ref {
        let ns = r.namespace.as_deref().unwrap_or(namespace);
        return Some(SourceKey::Registry(registry_identity(ns, &r.name)));
    }
    source
        .url
        .as_deref()
        .and_then(authority)
        .map(SourceKey::External)
}

/// The keys an event may match: its sender's identity, or for the shared token the
/// authorities it names (a `request.host` without port with either default port).
pub fn event_keys(event: &ManifestEvent) -> Vec<SourceKey> {
    if event.sender != EXTERNAL_IDENTITY {
        return vec![SourceKey::Registry(event.sender.clone())];
    }
    let mut keys: Vec<SourceKey> = event
        .url
        .as_deref()
        .and_then(authority)
        .into_iter()
        .chain(
            event
                .request_host
                .iter()
                .flat_map(|h| [host_port(h, 80), host_port(h, 443)]),
        )
        .map(SourceKey::External)
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Policies (`namespace/name`) by the key of their source, so that an event is matched
/// against the policies of its source only, not against every policy.
#[derive(Debug, Default)]
pub struct SourceIndex {
    by_source: HashMap<SourceKey, BTreeSet<String>>,
    /// Every policy indexed, with its key (`None`: a source that no event can name).
    of_policy: HashMap<String, Option<SourceKey>>,
}

impl SourceIndex {
    /// Records the source of `policy` (`None`: it has none to index), replacing its former one.
    pub fn set(&mut self, policy: &str, key: Option<SourceKey>) {
        if self.of_policy.get(policy) == Some(&key) {
            return;
        }
        self.remove(policy);
        if let Some(key) = &key {
            self.by_source
                .entry(key.clone())
                .or_default()
                .insert(policy.to_string());
        }
        self.of_policy.insert(policy.to_string(), key);
    }

    /// Makes the index hold exactly `policies` (key and source key each).
    pub fn rebuild(&mut self, policies: impl IntoIterator<Item = (String, Option<SourceKey>)>) {
        let policies: HashMap<String, Option<SourceKey>> = policies.into_iter().collect();
        let gone: Vec<String> = self
            .of_policy
            .keys()
            .filter(|k| !policies.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            self.remove(&k);
        }
        for (k, key) in policies {
            self.set(&k, key);
        }
    }

    /// Forgets `policy`.
    pub fn remove(&mut self, policy: &str) {
        if let Some(Some(old)) = self.of_policy.remove(policy)
            && let Some(set) = self.by_source.get_mut(&old)
        {
            set.remove(policy);
            if set.is_empty() {
                self.by_source.remove(&old);
            }
        }
    }

    /// The policies whose source `event` may come from (each still to be checked with
    /// [`from_source`], the rule of what a token may trigger).
    pub fn candidates(&self, event: &ManifestEvent) -> BTreeSet<String> {
        event_keys(event)
            .iter()
            .filter_map(|k| self.by_source.get(k))
            .flatten()
            .cloned()
            .collect()
    }

    /// Policies indexed.
    pub fn len(&self) -> usize {
        self.of_policy.len()
    }

    /// Whether no policy is indexed.
    pub fn is_empty(&self) -> bool {
        self.of_policy.is_empty()
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
        let digest = crate::engine::digest::Digest::of(b"m");
        let mut by_digest = del.clone();
        by_digest.tag = None;
        by_digest.digest = Some(digest.to_string());
        assert_eq!(
            work(&on, &by_digest),
            Some(Named::Deleted {
                repository: "apps/web".into(),
                digest,
                tag: None,
            })
        );
        assert_eq!(work(&on, &del), None, "sha256:00 is no digest");
        assert_eq!(
            work(
                &off,
                &event(EXTERNAL_IDENTITY, ManifestAction::Push, None, None)
            ),
            None
        );
    }

    #[test]
    fn the_index_finds_the_policies_of_an_events_source_only() {
        let by_ref = spec(serde_json::json!({"registryRef": {"name": "hq"}}), false);
        let by_url = spec(serde_json::json!({"url": "https://hq.example.com"}), false);
        let mut index = SourceIndex::default();
        index.set("fleet/a", source_key(&by_ref.source, "fleet"));
        index.set("fleet/b", source_key(&by_url.source, "fleet"));
        index.set("apps/c", source_key(&by_url.source, "apps"));
        let from_hq = event("registry/fleet/hq", ManifestAction::Push, Some("v1"), None);
        assert_eq!(
            index.candidates(&from_hq),
            BTreeSet::from(["fleet/a".into()])
        );
        let mut external = event(EXTERNAL_IDENTITY, ManifestAction::Push, Some("v1"), None);
        external.request_host = Some("hq.example.com".into());
        assert_eq!(
            index.candidates(&external),
            BTreeSet::from(["apps/c".into(), "fleet/b".into()])
        );
        // The index only narrows; the token rule still decides.
        let forged = event(EXTERNAL_IDENTITY, ManifestAction::Push, Some("v1"), None);
        assert!(index.candidates(&forged).is_empty());
        // A policy whose source changes moves; a deleted one goes.
        index.set("fleet/b", source_key(&by_ref.source, "fleet"));
        assert_eq!(
            index.candidates(&external),
            BTreeSet::from(["apps/c".into()])
        );
        assert_eq!(index.candidates(&from_hq).len(), 2);
        index.remove("fleet/a");
        index.remove("apps/c");
        assert!(index.candidates(&external).is_empty());
        assert_eq!(index.len(), 1);
        index.rebuild([
            ("apps/c".to_string(), source_key(&by_url.source, "apps")),
            ("apps/d".to_string(), None),
        ]);
        assert_eq!(
            index.len(),
            2,
            "fleet/b is gone, apps/d has no key but counts"
        );
        assert_eq!(
            index.candidates(&external),
            BTreeSet::from(["apps/c".into()])
        );
        assert!(index.candidates(&from_hq).is_empty());
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
