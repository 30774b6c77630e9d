//! What a manifest refers to, read from its exact bytes (which are never re-serialised).

use super::digest::{Digest, DigestError};

/// Docker schema 2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Every manifest media type the engine reads (the `Accept` header).
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Errors understanding a manifest.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON.
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    /// A descriptor digest is invalid.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// Neither an image manifest nor an index.
    #[error("unsupported manifest media type {0:?}")]
    Unsupported(String),
}

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// `os/arch[/variant]` for index entries.
    pub platform: Option<String>,
    /// Whether the blob must not be copied: a foreign (Docker) or non-distributable (OCI)
    /// layer, whose blob lives at its `urls`.
    pub foreign: bool,
    /// Whether the descriptor lists `urls` where the blob may also be fetched. For an
    /// ordinary layer the blob is copied when the source holds it, and left at its URLs
    /// (like a foreign layer) when it does not.
    pub has_urls: bool,
}

/// A manifest's structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// An index or manifest list: child manifests.
    Index {
        /// The children.
        manifests: Vec<Descriptor>,
    },
    /// An image manifest or artifact: blobs.
    Image {
        /// Config blob (absent for some artifacts).
        config: Option<Descriptor>,
        /// Layers (artifact blobs).
        layers: Vec<Descriptor>,
    },
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<ManifestDescriptorJson>>,
    #[serde(default)]
    config: Option<ManifestDescriptorJson>,
    #[serde(default)]
    layers: Option<Vec<ManifestDescriptorJson>>,
    #[serde(default)]
    blobs: Option<Vec<ManifestDescriptorJson>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDescriptorJson {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    platform: Option<RawPlatform>,
}

#[derive(serde::Deserialize)]
struct RawPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl ManifestDescriptorJson {
    fn into_descriptor(self) -> Result<Descriptor, ManifestError> {
        let foreign =
            self.media_type.contains("nondistributable") || self.media_type.contains(".foreign.");
        let has_urls = !self.urls.is_empty();
        Ok(Descriptor {
            digest: self.digest.parse()?,
            size: self.size,
            platform: self.platform.map(|p| match p.variant {
                Some(v) if !v.is_empty() => format!("{}/{}/{}", p.os, p.architecture, v),
                _ => format!("{}/{}", p.os, p.architecture),
            }),
            media_type: self.media_type,
            foreign,
            has_urls,
        })
    }
}

/// Whether a media type names an index / manifest list.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// Reads the structure of a manifest. `content_type` is what the registry announced; the
/// document's own `mediaType` wins when present.
pub fn parse(content_type: &str, bytes: &[u8]) -> Result<Parsed, ManifestError> {
    let raw: ManifestJson =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    let mt = raw.media_type.as_deref().unwrap_or(content_type);
    if is_index(mt) || (raw.manifests.is_some() && raw.config.is_none()) {
        let manifests = raw
            .manifests
            .unwrap_or_default()
            .into_iter()
            .map(ManifestDescriptorJson::into_descriptor)
            .collect::<Result<_, _>>()?;
        return Ok(Parsed::Index { manifests });
    }
    if mt == OCI_MANIFEST
        || mt == DOCKER_MANIFEST
        || raw.config.is_some()
        || raw.layers.is_some()
        || raw.blobs.is_some()
    {
        let config = raw
            .config
            .map(ManifestDescriptorJson::into_descriptor)
            .transpose()?;
        let mut layers: Vec<Descriptor> = raw
            .layers
            .unwrap_or_default()
            .into_iter()
            .map(ManifestDescriptorJson::into_descriptor)
            .collect::<Result<_, _>>()?;
        for b in raw.blobs.unwrap_or_default() {
            layers.push(b.into_descriptor()?);
        }
        return Ok(Parsed::Image { config, layers });
    }
    Err(ManifestError::Unsupported(mt.to_string()))
}

/// The media type to send with a manifest: its own `mediaType`, else what the source said.
pub fn media_type_of(content_type: &str, bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Mt {
        #[serde(default)]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Mt>(bytes)
        .ok()
        .and_then(|m| m.media_type)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| content_type.to_string())
}

/// An index reduced to the children whose platform is in `wanted` (see
/// [`super::filter::platform_selected`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformSelection {
    /// Not an index, no filter, or every child selected: copy the original bytes.
    Whole,
    /// Some children left out: these are the bytes of a new index holding only the selected
    /// ones (every other field kept), to be pushed in place of the original.
    Filtered(Vec<u8>),
    /// No child is selected: nothing to copy.
    Nothing,
}

/// Selects the platforms of an index. The new document is compact JSON with the same fields
/// (object keys sorted), so the same source bytes always give the same filtered bytes and
/// digest: that is what makes a re-sync of a filtered index a no-op.
pub fn select_platforms(
    content_type: &str,
    bytes: &[u8],
    wanted: &[String],
) -> Result<PlatformSelection, ManifestError> {
    if wanted.is_empty() {
        return Ok(PlatformSelection::Whole);
    }
    let Parsed::Index { manifests } = parse(content_type, bytes)? else {
        return Ok(PlatformSelection::Whole);
    };
    let keep: Vec<bool> = manifests
        .iter()
        .map(|d| super::filter::platform_selected(wanted, d.platform.as_deref()))
        .collect();
    if keep.iter().all(|k| *k) {
        return Ok(PlatformSelection::Whole);
    }
    if !keep.iter().any(|k| *k) {
        return Ok(PlatformSelection::Nothing);
    }
    let mut doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    let Some(children) = doc.get_mut("manifests").and_then(|m| m.as_array_mut()) else {
        return Err(ManifestError::Json(
            "index without a manifests array".into(),
        ));
    };
    let mut flags = keep.into_iter();
    children.retain(|_| flags.next().unwrap_or(false));
    serde_json::to_vec(&doc)
        .map(PlatformSelection::Filtered)
        .map_err(|e| ManifestError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn parses_index_with_platforms() {
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":10,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D2}","size":10,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let Parsed::Index { manifests } = parse("", doc.as_bytes()).expect("parses") else {
            panic!("not an index")
        };
        assert_eq!(manifests[0].platform.as_deref(), Some("linux/arm64/v8"));
        assert_eq!(manifests[1].platform.as_deref(), Some("linux/amd64"));
    }

    #[test]
    fn parses_artifact_and_foreign_layers() {
        let doc = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"{D1}","size":3}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{D2}","size":5,"urls":["https://x"]}},
            {{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D1}","size":5,"urls":["https://x"]}}]}}"#
        );
        let Parsed::Image { config, layers } = parse(OCI_MANIFEST, doc.as_bytes()).expect("parses")
        else {
            panic!("not an image")
        };
        assert_eq!(config.map(|c| c.size), Some(3));
        assert!(layers[0].foreign && layers[0].has_urls);
        // An ordinary layer with urls is not foreign: copied when the source holds it.
        assert!(!layers[1].foreign && layers[1].has_urls);
        assert_eq!(media_type_of(OCI_MANIFEST, doc.as_bytes()), OCI_MANIFEST);
    }

    #[test]
    fn rejects_unknown() {
        assert!(parse("text/plain", b"{}").is_err());
        assert!(parse(OCI_MANIFEST, b"not json").is_err());
    }

    #[test]
    fn selects_platforms_of_an_index() {
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","annotations":{{"a":"b"}},"manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":10,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D2}","size":10,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let amd = vec!["linux/amd64".to_string()];
        let PlatformSelection::Filtered(f) =
            select_platforms("", doc.as_bytes(), &amd).expect("filters")
        else {
            panic!("not filtered")
        };
        let Parsed::Index { manifests } = parse("", &f).expect("parses") else {
            panic!("not an index")
        };
        assert_eq!(manifests.len(), 1);
        assert_eq!(manifests[0].digest.as_str(), D2);
        let v: serde_json::Value = serde_json::from_slice(&f).expect("json");
        assert_eq!(v["annotations"]["a"], "b", "other fields kept");
        assert_eq!(v["mediaType"], OCI_INDEX);
        // Deterministic, and filtering the filtered index again keeps it whole.
        assert_eq!(
            select_platforms("", doc.as_bytes(), &amd).expect("again"),
            PlatformSelection::Filtered(f.clone())
        );
        assert_eq!(
            select_platforms("", &f, &amd).expect("idempotent"),
            PlatformSelection::Whole
        );
        let both = vec!["linux/amd64".to_string(), "linux/arm64".to_string()];
        assert_eq!(
            select_platforms("", doc.as_bytes(), &both).expect("all"),
            PlatformSelection::Whole
        );
        assert_eq!(
            select_platforms("", doc.as_bytes(), &[]).expect("none wanted"),
            PlatformSelection::Whole
        );
        let s390 = vec!["linux/s390x".to_string()];
        assert_eq!(
            select_platforms("", doc.as_bytes(), &s390).expect("nothing"),
            PlatformSelection::Nothing
        );
        let image =
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"{D1}","size":1}},"layers":[]}}"#);
        assert_eq!(
            select_platforms(OCI_MANIFEST, image.as_bytes(), &amd).expect("image"),
            PlatformSelection::Whole
        );
    }
}
