//! The documents of a `flotilla sync -f` file: one ReplicationPolicy and the Secrets it
//! refers to. Unknown fields are refused ([`super::strict`]); every error names the document
//! and the field path, and never quotes a Secret's value.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde_yaml::Value;

use super::strict::{Shape, UnknownField, unknown_fields};
use crate::api::ReplicationPolicySpec;
use crate::field_path::FieldPath;
use crate::sync_config::SecretData;

/// The kinds a policy file may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `kind: ReplicationPolicy`.
    ReplicationPolicy,
    /// `kind: Secret`.
    Secret,
    /// `kind: ConfigMap` (public keys of `spec.verify`).
    ConfigMap,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::ReplicationPolicy => "ReplicationPolicy",
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
        })
    }
}

/// Unknown fields, printed `a: unknown field (did you mean b?); c: unknown field`.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownFields(pub Vec<UnknownField>);

impl fmt::Display for UnknownFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, u) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{u}")?;
        }
        Ok(())
    }
}

/// Why a policy file cannot be read. Documents are numbered from 1.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    /// Not YAML.
    #[error("document {document} is not valid YAML: {source}")]
    Yaml {
        /// Which.
        document: usize,
        /// Why.
        source: serde_yaml::Error,
    },
    /// No `kind`.
    #[error("document {document} has no kind (expected kind: ReplicationPolicy)")]
    NoKind {
        /// Which.
        document: usize,
    },
    /// A kind other than ReplicationPolicy and Secret.
    #[error(
        "document {document} has kind {kind:?}; only ReplicationPolicy, Secret and ConfigMap are read"
    )]
    OtherKind {
        /// Which.
        document: usize,
        /// Its kind.
        kind: String,
    },
    /// Fields the API does not have (a typo would otherwise be silently ignored).
    #[error("document {document} ({kind}): {fields}")]
    UnknownFields {
        /// Which.
        document: usize,
        /// Its kind.
        kind: Kind,
        /// The fields.
        fields: UnknownFields,
    },
    /// A ReplicationPolicy without `spec`.
    #[error("document {document} (ReplicationPolicy): spec is missing")]
    NoSpec {
        /// Which.
        document: usize,
    },
    /// A field of the spec has the wrong type or a required one is missing.
    #[error("document {document} (ReplicationPolicy): {field}: {source}")]
    Spec {
        /// Which.
        document: usize,
        /// The innermost field the deserializer reached.
        field: FieldPath,
        /// Why.
        source: serde_yaml::Error,
    },
    /// A Secret (or ConfigMap) that cannot be used.
    #[error("document {document} ({kind}{}): {field}: {problem}", name.as_ref().map(|n| format!(" {n:?}")).unwrap_or_default())]
    Secret {
        /// Which.
        document: usize,
        /// `Secret` or `ConfigMap`.
        kind: Kind,
        /// `metadata.name`, when it has one.
        name: Option<String>,
        /// Where, e.g. `data.password`.
        field: FieldPath,
        /// What.
        problem: SecretProblem,
    },
    /// No policy.
    #[error("no kind: ReplicationPolicy document found")]
    NoPolicy,
    /// More than one policy.
    #[error("{0} ReplicationPolicy documents found; put one per file")]
    ManyPolicies(usize),
}

/// What is wrong with a Secret document (never its value).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretProblem {
    /// No `metadata.name`.
    #[error("is missing (policies refer to Secrets by name)")]
    NoName,
    /// `data` or `stringData` that is not a map of keys to values.
    #[error("must be a map of keys to values")]
    NotMap,
    /// A value (or key) that is not a string.
    #[error("must be a string")]
    NotString,
    /// A `data` value that is not base64.
    #[error("is not base64 (use stringData for plain text)")]
    NotBase64,
}

/// The one ReplicationPolicy of a multi-document YAML stream, its Secrets and its
/// ConfigMaps.
#[derive(Debug)]
pub struct Documents {
    /// The policy's spec.
    pub spec: ReplicationPolicySpec,
    /// Secrets by name.
    pub secrets: SecretData,
    /// ConfigMaps by name (`data` and `binaryData` together).
    pub config_maps: SecretData,
}

/// Reads the documents of a policy file.
pub fn parse_documents(text: &str) -> Result<Documents, PolicyFileError> {
    let mut specs = Vec::new();
    let mut secrets = SecretData::new();
    let mut config_maps = SecretData::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let value = <Value as serde::Deserialize>::deserialize(doc)
            .map_err(|source| PolicyFileError::Yaml { document, source })?;
        if value.is_null() {
            continue;
        }
        let kind = match value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "ReplicationPolicy" => Kind::ReplicationPolicy,
            "Secret" => Kind::Secret,
            "ConfigMap" => Kind::ConfigMap,
            "" => return Err(PolicyFileError::NoKind { document }),
            other => {
                return Err(PolicyFileError::OtherKind {
                    document,
                    kind: other.to_string(),
                });
            }
        };
        let shape = match kind {
            Kind::ReplicationPolicy => Shape::replication_policy(),
            Kind::Secret => Shape::secret(),
            Kind::ConfigMap => Shape::config_map(),
        };
        let unknown = unknown_fields(&value, &shape);
        if !unknown.is_empty() {
            return Err(PolicyFileError::UnknownFields {
                document,
                kind,
                fields: UnknownFields(unknown),
            });
        }
        match kind {
            Kind::ReplicationPolicy => specs.push(spec(document, &value)?),
            Kind::Secret => {
                let (name, data) = secret(document, &value, kind, SECRET_SECTIONS)?;
                secrets.insert(name, data);
            }
            Kind::ConfigMap => {
                let (name, data) = secret(document, &value, kind, CONFIG_MAP_SECTIONS)?;
                config_maps.insert(name, data);
            }
        }
    }
    match specs.len() {
        1 => Ok(Documents {
            spec: specs.remove(0),
            secrets,
            config_maps,
        }),
        0 => Err(PolicyFileError::NoPolicy),
        n => Err(PolicyFileError::ManyPolicies(n)),
    }
}

fn spec(document: usize, value: &Value) -> Result<ReplicationPolicySpec, PolicyFileError> {
    let spec = value
        .get("spec")
        .cloned()
        .ok_or(PolicyFileError::NoSpec { document })?;
    serde_path_to_error::deserialize(spec).map_err(|e| PolicyFileError::Spec {
        document,
        field: field_path(FieldPath::spec(), e.path()),
        source: e.into_inner(),
    })
}

/// The deserializer's path as a field path under `base`.
fn field_path(base: FieldPath, path: &serde_path_to_error::Path) -> FieldPath {
    use serde_path_to_error::Segment as S;
    path.iter().fold(base, |at, s| match s {
        S::Seq { index } => at.index(*index),
        S::Map { key } => at.field(key.clone()),
        S::Enum { variant } => at.field(variant.clone()),
        S::Unknown => at,
    })
}

/// The data sections of a Secret, and whether each is base64.
const SECRET_SECTIONS: &[(&str, bool)] = &[("data", true), ("stringData", false)];
/// The data sections of a ConfigMap, and whether each is base64.
const CONFIG_MAP_SECTIONS: &[(&str, bool)] = &[("data", false), ("binaryData", true)];

/// The name and data of a Secret or ConfigMap document (`sections`: which maps hold data).
fn secret(
    document: usize,
    value: &Value,
    kind: Kind,
    sections: &[(&str, bool)],
) -> Result<(String, BTreeMap<String, Vec<u8>>), PolicyFileError> {
    let fail = |name: Option<&str>, field: FieldPath, problem| PolicyFileError::Secret {
        document,
        kind,
        name: name.map(str::to_string),
        field,
        problem,
    };
    let name_field = FieldPath::root().field("metadata").field("name");
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| fail(None, name_field, SecretProblem::NoName))?;
    let mut data = BTreeMap::new();
    for &(section, encoded) in sections {
        let Some(section_value) = value.get(section).filter(|v| !v.is_null()) else {
            continue;
        };
        let map = section_value.as_mapping().ok_or_else(|| {
            fail(
                Some(name),
                FieldPath::root().field(section),
                SecretProblem::NotMap,
            )
        })?;
        for (k, v) in map {
            let key = k.as_str().ok_or_else(|| {
                fail(
                    Some(name),
                    FieldPath::root().field(section),
                    SecretProblem::NotString,
                )
            })?;
            let field = FieldPath::root().field(section).field(key);
            let text = v
                .as_str()
                .ok_or_else(|| fail(Some(name), field.clone(), SecretProblem::NotString))?;
            let bytes = if encoded {
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|_| fail(Some(name), field, SecretProblem::NotBase64))?
            } else {
                text.as_bytes().to_vec()
            };
            data.insert(key.to_string(), bytes);
        }
    }
    Ok((name.to_string(), data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_policy_and_secrets() {
        let text = r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {username: u, password: p}
---
apiVersion: v1
kind: Secret
metadata: {name: b64}
data: {username: dQ==}
---
apiVersion: flotilla.dev/v1alpha1
kind: ReplicationPolicy
metadata: {name: p}
spec:
  source: {url: "https://src", credentialsSecretRef: {name: creds}}
  destinations: [{name: a, url: "https://a"}]
"#;
        let Documents { spec, secrets, .. } = parse_documents(text).expect("parses");
        assert_eq!(spec.destinations[0].name, "a");
        assert_eq!(secrets["creds"]["password"], b"p".to_vec());
        assert_eq!(secrets["b64"]["username"], b"u".to_vec());
    }

    fn error(text: &str) -> String {
        parse_documents(text).expect_err("refused").to_string()
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        assert!(error("kind: Deployment\n").contains("kind \"Deployment\""));
        assert!(error("a: [\n").starts_with("document 1 is not valid YAML"));
        assert_eq!(
            error("kind: Secret\nmetadata: {labels: {}}\n"),
            "document 1 (Secret): metadata.name: is missing (policies refer to Secrets by name)"
        );
        assert_eq!(
            error("kind: Secret\nmetadata: {name: x}\n"),
            "no kind: ReplicationPolicy document found"
        );
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_path_and_the_nearest_field() {
        let e = error(
            "kind: ReplicationPolicy\nspec:\n  source: {url: 'https://s'}\n  destinations: [{name: a, url: 'https://a'}]\n  bandwith: 5\n",
        );
        assert_eq!(
            e,
            "document 1 (ReplicationPolicy): spec.bandwith: unknown field (did you mean spec.bandwidthLimit?)"
        );
        let e = error(
            "kind: Secret\nmetadata: {name: c}\nstringdata: {password: hunter2}\n---\nkind: ReplicationPolicy\n",
        );
        assert_eq!(
            e,
            "document 1 (Secret): stringdata: unknown field (did you mean stringData?)"
        );
    }

    #[test]
    fn type_errors_name_the_field() {
        let e = error("kind: ReplicationPolicy\nspec: {source: 3}\n");
        assert!(
            e.starts_with("document 1 (ReplicationPolicy): spec.source: invalid type"),
            "{e}"
        );
        let e = error(
            "kind: ReplicationPolicy\nspec:\n  source: {url: 'https://s'}\n  destinations: [{name: a, url: 'https://a'}, {url: 'https://b'}]\n",
        );
        assert!(
            e.starts_with(
                "document 1 (ReplicationPolicy): spec.destinations[1]: missing field `name`"
            ),
            "{e}"
        );
        let e = error(
            "kind: ReplicationPolicy\nspec:\n  source: {url: 'https://s'}\n  destinations: []\n  concurrency: many\n",
        );
        assert!(
            e.starts_with("document 1 (ReplicationPolicy): spec.concurrency: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn secret_errors_never_quote_the_value() {
        let e = error("kind: Secret\nmetadata: {name: c}\ndata: {password: 'hunter2!'}\n");
        assert_eq!(
            e,
            "document 1 (Secret \"c\"): data.password: is not base64 (use stringData for plain text)"
        );
        let e = error("kind: Secret\nmetadata: {name: c}\nstringData: {password: [hunter2]}\n");
        assert_eq!(
            e,
            "document 1 (Secret \"c\"): stringData.password: must be a string"
        );
        // A missing space makes `password:hunter2` one string instead of a key and value.
        let e = error("kind: Secret\nmetadata: {name: c}\nstringData:\n  password:hunter2\n");
        assert_eq!(
            e,
            "document 1 (Secret \"c\"): stringData: must be a map of keys to values"
        );
        assert!(!e.contains("hunter2"));
    }
}
