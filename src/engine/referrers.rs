//! Which referrers travel with their subject: rules on a referrer's artifact type and
//! annotations (e.g. signatures and SBOMs, but not scan reports). Pure.

use std::collections::BTreeMap;

use globset::GlobMatcher;

use super::filter::{FilterError, FilterField, GlobList, glob};
use super::verify::{COSIGN_SIGNATURE_TYPE, SIMPLE_SIGNING};

/// One rule: an `artifactType` glob and annotations that must all be present with these
/// values. An empty rule matches every referrer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReferrerRule {
    /// Glob on the artifact type (`*` stays within a `/` segment).
    pub artifact_type: Option<String>,
    /// Annotations the referrer's manifest must carry, with exactly these values.
    pub annotations: BTreeMap<String, String>,
}

/// The rules of a policy. A referrer travels when it matches an include rule (or there are
/// none) and no exclude rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReferrerRules {
    /// Referrers that travel (empty: all).
    pub include: Vec<ReferrerRule>,
    /// Referrers that never travel.
    pub exclude: Vec<ReferrerRule>,
}

impl ReferrerRules {
    /// Whether any rule is set (when none is, referrers are not read to be classified).
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

/// What a referrer is, read from its manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReferrerInfo {
    /// Its artifact type (see [`describe`]).
    pub artifact_type: String,
    /// Its manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

struct Compiled {
    artifact_type: Option<GlobMatcher>,
    annotations: BTreeMap<String, String>,
}

impl Compiled {
    fn matches(&self, r: &ReferrerInfo) -> bool {
        self.artifact_type
            .as_ref()
            .is_none_or(|g| g.is_match(&r.artifact_type))
            && self
                .annotations
                .iter()
                .all(|(k, v)| r.annotations.get(k) == Some(v))
    }
}

/// Compiled [`ReferrerRules`].
#[derive(Default)]
pub struct ReferrerFilter {
    include: Vec<Compiled>,
    exclude: Vec<Compiled>,
}

fn compile(list: GlobList, rules: &[ReferrerRule]) -> Result<Vec<Compiled>, FilterError> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let artifact_type = r
                .artifact_type
                .as_deref()
                .map(|t| {
                    glob(list, i, t)
                        .map(|g| g.compile_matcher())
                        .map_err(|mut e| {
                            e.field = FilterField::ReferrerType(list, i);
                            e
                        })
                })
                .transpose()?;
            Ok(Compiled {
                artifact_type,
                annotations: r.annotations.clone(),
            })
        })
        .collect()
}

impl ReferrerFilter {
    /// Compiles the rules; an error names the field (`spec.referrerFilter.include[0].artifactType`).
    pub fn new(rules: &ReferrerRules) -> Result<Self, FilterError> {
        Ok(Self {
            include: compile(GlobList::ReferrersInclude, &rules.include)?,
            exclude: compile(GlobList::ReferrersExclude, &rules.exclude)?,
        })
    }

    /// Whether the referrer travels with its subject.
    pub fn matches(&self, r: &ReferrerInfo) -> bool {
        (self.include.is_empty() || self.include.iter().any(|c| c.matches(r)))
            && !self.exclude.iter().any(|c| c.matches(r))
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReferrerJson {
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<ReferrerDescriptorJson>,
    #[serde(default)]
    layers: Vec<ReferrerDescriptorJson>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReferrerDescriptorJson {
    #[serde(default)]
    media_type: String,
}

/// The generic config media types that say nothing about what an artifact is.
const GENERIC_CONFIGS: [&str; 3] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.oci.empty.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// What a referrer manifest is: its `artifactType`; else its config's media type (the OCI
/// 1.1 rule) unless that is a generic image config, as cosign's tag-scheme signatures have;
/// then the cosign signature type when its layers are simple-signing payloads, else the first
/// layer's media type (an attestation: `application/vnd.dsse.envelope.v1+json`). A manifest
/// that is not JSON has the empty type (only rules without `artifactType` match it).
pub fn describe(manifest: &[u8]) -> ReferrerInfo {
    let Ok(raw) = serde_json::from_slice::<ReferrerJson>(manifest) else {
        return ReferrerInfo::default();
    };
    let config = raw.config.map(|c| c.media_type).unwrap_or_default();
    let artifact_type = match raw.artifact_type.filter(|t| !t.is_empty()) {
        Some(t) => t,
        None if !config.is_empty() && !GENERIC_CONFIGS.contains(&config.as_str()) => config,
        None => match raw.layers.first() {
            Some(l) if l.media_type == SIMPLE_SIGNING => COSIGN_SIGNATURE_TYPE.to_string(),
            Some(l) => l.media_type.clone(),
            None => config,
        },
    };
    ReferrerInfo {
        artifact_type,
        annotations: raw.annotations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(t: Option<&str>, ann: &[(&str, &str)]) -> ReferrerRule {
        ReferrerRule {
            artifact_type: t.map(Into::into),
            annotations: ann
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn info(t: &str, ann: &[(&str, &str)]) -> ReferrerInfo {
        ReferrerInfo {
            artifact_type: t.into(),
            annotations: rule(None, ann).annotations,
        }
    }

    #[test]
    fn include_and_exclude_by_type_and_annotations() {
        let f = ReferrerFilter::new(&ReferrerRules {
            include: vec![
                rule(Some("application/vnd.dev.cosign.*"), &[]),
                rule(Some("application/spdx+json"), &[]),
            ],
            exclude: vec![rule(None, &[("org.example.stage", "draft")])],
        })
        .expect("compiles");
        assert!(f.matches(&info(COSIGN_SIGNATURE_TYPE, &[])));
        assert!(f.matches(&info("application/spdx+json", &[("a", "b")])));
        assert!(!f.matches(&info("application/vnd.example.scan.v1+json", &[])));
        assert!(!f.matches(&info(
            "application/spdx+json",
            &[("org.example.stage", "draft")]
        )));
        assert!(ReferrerFilter::default().matches(&info("anything", &[])));
    }

    #[test]
    fn a_bad_glob_names_its_field() {
        let e = ReferrerFilter::new(&ReferrerRules {
            include: vec![rule(None, &[]), rule(Some("a/[b"), &[])],
            exclude: vec![],
        })
        .err()
        .expect("refused");
        assert!(
            e.to_string()
                .starts_with("spec.referrerFilter.include[1].artifactType"),
            "{e}"
        );
    }

    #[test]
    fn artifact_types_of_real_shapes() {
        let oras = br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json","config":{"mediaType":"application/vnd.oci.empty.v1+json"},"layers":[],"annotations":{"k":"v"}}"#;
        assert_eq!(describe(oras), info("application/spdx+json", &[("k", "v")]));
        let cosign_tag_sig = br#"{"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json"}]}"#;
        assert_eq!(
            describe(cosign_tag_sig).artifact_type,
            COSIGN_SIGNATURE_TYPE
        );
        let att = br#"{"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[{"mediaType":"application/vnd.dsse.envelope.v1+json"}]}"#;
        assert_eq!(
            describe(att).artifact_type,
            "application/vnd.dsse.envelope.v1+json"
        );
        let typed_config =
            br#"{"config":{"mediaType":"application/vnd.example.scan.config+json"},"layers":[]}"#;
        assert_eq!(
            describe(typed_config).artifact_type,
            "application/vnd.example.scan.config+json"
        );
        assert_eq!(describe(b"garbage"), ReferrerInfo::default());
    }
}
