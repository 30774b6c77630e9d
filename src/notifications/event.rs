//! Notification envelopes → the manifest events Flotilla acts on. Pure.
//!
//! The envelope must be `{"events": [...]}`; each event in it is read on its own, so one
//! malformed event (wrong shape, or a repository, tag or digest outside the Distribution
//! grammar) is skipped and counted, never a reason to refuse the others.

use serde::Deserialize;

/// Errors parsing an envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is not a notification envelope.
    #[error("malformed notification envelope: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// What happened to a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestAction {
    /// A manifest (or index) was pushed, with `tag` when pushed by tag.
    Push,
    /// A manifest was deleted by digest, or a tag was deleted (`tag` set).
    Delete,
}

/// One manifest event, as forwarded to the replication layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEvent {
    /// Identity of the token that authenticated the post (which Registry sent it).
    pub sender: String,
    /// Push or delete.
    pub action: ManifestAction,
    /// Repository, e.g. `team/app` (valid by the Distribution grammar).
    pub repository: String,
    /// Tag, when the event concerns one (valid by the Distribution grammar).
    pub tag: Option<String>,
    /// Manifest digest, when known (`algorithm:encoded`).
    pub digest: Option<String>,
    /// Manifest media type (pushes only; Distribution 2.8 sends none for deletes).
    pub media_type: Option<String>,
    /// URL of the manifest as the registry saw it.
    pub url: Option<String>,
    /// `request.host`: the host the client addressed.
    pub request_host: Option<String>,
    /// `source.addr`: the registry instance that emitted the event.
    pub source_addr: Option<String>,
    /// Event id (for logs and de-duplication).
    pub id: Option<String>,
}

/// The manifest events of an envelope and how many of its events were skipped as malformed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Manifest pushes and deletes, in envelope order.
    pub events: Vec<ManifestEvent>,
    /// Events that were not well-formed (wrong shape, invalid repository, tag or digest).
    pub malformed: usize,
}

#[derive(Deserialize)]
struct Envelope {
    events: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(default)]
    id: Option<String>,
    action: String,
    target: EventTarget,
    #[serde(default)]
    request: Option<Request>,
    #[serde(default)]
    source: Option<Source>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventTarget {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    repository: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    host: Option<String>,
}

#[derive(Deserialize)]
struct Source {
    #[serde(default)]
    addr: Option<String>,
}

/// Whether a media type is a manifest or index (as opposed to a blob: layer, config, or the
/// `application/octet-stream` Distribution 2.8 reports for every blob).
pub fn is_manifest_media_type(media_type: &str) -> bool {
    const MANIFESTS: [&str; 7] = [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.artifact.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    ];
    MANIFESTS.contains(&media_type)
}

/// Whether `repository` is a repository name by the Distribution grammar (the engine's check,
/// the one place that grammar lives).
pub fn valid_repository(repository: &str) -> bool {
    crate::engine::names::check_repository(repository).is_ok()
}

/// Whether `tag` is a tag by the Distribution grammar.
pub fn valid_tag(tag: &str) -> bool {
    crate::engine::names::is_tag(tag)
}

/// Whether `digest` is a digest (`algorithm:encoded`, at most 1 KiB).
pub fn valid_digest(digest: &str) -> bool {
    crate::engine::names::is_digest(digest)
}

/// One event of an envelope: `Ok(None)` when it is not a manifest push or delete, `Err(())`
/// when it is malformed.
fn event(value: serde_json::Value, sender: &str) -> Result<Option<ManifestEvent>, ()> {
    let e: RawEvent = serde_json::from_value(value).map_err(|_| ())?;
    let action = match e.action.as_str() {
        "push"
            if e.target
                .media_type
                .as_deref()
                .is_some_and(is_manifest_media_type) =>
        {
            ManifestAction::Push
        }
        "delete" => ManifestAction::Delete,
        _ => return Ok(None),
    };
    let tag = e.target.tag.filter(|t| !t.is_empty());
    let digest = e.target.digest.filter(|d| !d.is_empty());
    let well_formed = valid_repository(&e.target.repository)
        && tag.as_deref().is_none_or(valid_tag)
        && digest.as_deref().is_none_or(valid_digest);
    if !well_formed {
        return Err(());
    }
    Ok(Some(ManifestEvent {
        sender: sender.to_string(),
        action,
        repository: e.target.repository,
        tag,
        digest,
        media_type: e.target.media_type,
        url: e.target.url,
        request_host: e.request.and_then(|r| r.host),
        source_addr: e.source.and_then(|s| s.addr),
        id: e.id,
    }))
}

/// Parses an envelope and keeps its manifest pushes and deletes. Blob pushes, pulls and mounts
/// are dropped. Deletes are kept whatever their target (Distribution 2.8 does not tell a
/// manifest delete from a blob delete; a blob digest deleted at a destination is a no-op).
/// Malformed events are skipped and counted.
pub fn parse_envelope(body: &[u8], sender: &str) -> Result<Parsed, EnvelopeError> {
    let envelope: Envelope = serde_json::from_slice(body)?;
    let mut parsed = Parsed::default();
    for value in envelope.events {
        match event(value, sender) {
            Ok(Some(e)) => parsed.events.push(e),
            Ok(None) => {}
            Err(()) => parsed.malformed += 1,
        }
    }
    Ok(parsed)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    /// An envelope shaped like what Distribution 2.8.2 posts for a pushed 2-platform index.
    pub(crate) fn envelope() -> String {
        let event = |action: &str, media: &str, digest: &str, tag: Option<&str>| {
            let mut target = serde_json::json!({
                "mediaType": media, "size": 10, "digest": digest, "length": 10,
                "repository": "team/app",
                "url": format!("http://r:5000/v2/team/app/manifests/{digest}"),
            });
            if let Some(tag) = tag {
                target["tag"] = tag.into();
            }
            serde_json::json!({
                "id": format!("id-{digest}"), "timestamp": "2026-11-22T00:00:00Z",
                "action": action, "target": target,
                "request": {"id": "r", "addr": "10.0.0.1:1234", "host": "reg.example:5000",
                            "method": "PUT", "useragent": "skopeo"},
                "actor": {}, "source": {"addr": "pod-1:5000", "instanceID": "i"}
            })
        };
        serde_json::json!({"events": [
            event("push", "application/octet-stream", "sha256:blob", None),
            event("push", MANIFEST, "sha256:child1", None),
            event("push", MANIFEST, "sha256:child2", None),
            event("push", INDEX, "sha256:index", Some("v1")),
            event("pull", INDEX, "sha256:index", Some("v1")),
            event("mount", "application/octet-stream", "sha256:blob", None),
            {"action": "delete", "target": {"repository": "team/app", "digest": "sha256:gone"}},
            {"action": "delete", "target": {"repository": "team/app", "tag": "old"}},
        ]})
        .to_string()
    }
    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn push(repository: &str, tag: Option<&str>, digest: &str) -> serde_json::Value {
        let mut target =
            serde_json::json!({"mediaType": MANIFEST, "repository": repository, "digest": digest});
        if let Some(tag) = tag {
            target["tag"] = tag.into();
        }
        serde_json::json!({"action": "push", "target": target})
    }

    #[test]
    fn reduces_to_manifest_pushes_and_deletes() {
        let events = parse_envelope(envelope().as_bytes(), "fleet/hq").expect("parses");
        assert_eq!(events.malformed, 0);
        let events = events.events;
        let summary: Vec<(ManifestAction, Option<&str>, Option<&str>)> = events
            .iter()
            .map(|e| (e.action, e.digest.as_deref(), e.tag.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                (ManifestAction::Push, Some("sha256:child1"), None),
                (ManifestAction::Push, Some("sha256:child2"), None),
                (ManifestAction::Push, Some("sha256:index"), Some("v1")),
                (ManifestAction::Delete, Some("sha256:gone"), None),
                (ManifestAction::Delete, None, Some("old")),
            ]
        );
        let index = &events[2];
        assert_eq!(index.sender, "fleet/hq");
        assert_eq!(index.repository, "team/app");
        assert_eq!(index.media_type.as_deref(), Some(INDEX));
        assert_eq!(index.request_host.as_deref(), Some("reg.example:5000"));
        assert_eq!(index.source_addr.as_deref(), Some("pod-1:5000"));
        assert_eq!(
            index.url.as_deref(),
            Some("http://r:5000/v2/team/app/manifests/sha256:index")
        );
    }

    #[test]
    fn malformed_envelopes_are_errors() {
        for body in [&b""[..], b"{", b"[]", b"{\"events\": {}}", b"{}"] {
            assert!(parse_envelope(body, "x").is_err(), "{body:?}");
        }
        assert_eq!(
            parse_envelope(b"{\"events\": []}", "x").expect("ok"),
            Parsed::default()
        );
    }

    #[test]
    fn malformed_events_are_skipped_and_counted_and_the_others_kept() {
        let events = serde_json::json!({"events": [
            {"action": "push"},
            "not an event",
            push("apps/web", Some("v1"), D),
            push("../../etc", Some("v1"), D),
            push("Apps/Web", Some("v1"), D),
            push("apps/web", Some("v1/../../x"), D),
            push("apps/web", Some(&"t".repeat(129)), D),
            push("apps/web", Some("v2"), "sha256:../../x"),
            push("apps//web", None, D),
            push(&"a".repeat(256), None, D),
            push("apps/web", Some("v3"), D),
        ]});
        let parsed = parse_envelope(events.to_string().as_bytes(), "x").expect("parses");
        assert_eq!(parsed.malformed, 9);
        let tags: Vec<_> = parsed.events.iter().map(|e| e.tag.as_deref()).collect();
        assert_eq!(tags, [Some("v1"), Some("v3")]);
    }

    #[test]
    fn the_grammar() {
        for ok in ["a", "team/app", "a.b_c__d--e/f-0", "library/registry"] {
            assert!(valid_repository(ok), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a..b", "a/../b", "a b", "a%2f", "-a", "a-",
        ] {
            assert!(!valid_repository(bad), "{bad}");
        }
        for ok in ["v1", "_x", "1.2.3-rc.1", "latest"] {
            assert!(valid_tag(ok), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "a b"] {
            assert!(!valid_tag(bad), "{bad}");
        }
        assert!(valid_digest(D) && valid_digest("sha512+b64:AbC=_-"));
        for bad in ["sha256", ":abc", "sha256:", "sha256:a/b", "SHA256:ab"] {
            assert!(!valid_digest(bad), "{bad}");
        }
    }
}
