//! Unknown fields in a policy file are refused, as `kubectl apply --validate=strict` refuses
//! them: serde would drop a typo such as `bandwith: 5` and the limit would silently not apply.
//! The known fields come from the generated CRD schema (the one `kubectl` validates against)
//! and the Kubernetes schemas of `Secret` and `ObjectMeta`, so they cannot drift from the API
//! types; each unknown field is named by its path with the nearest known field.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResourceExt as _;
use serde_yaml::Value;

use crate::api::ReplicationPolicy;
use crate::field_path::{FieldPath, Segment};

/// The fields a document may have.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// Anything (scalars, free-form values).
    Any,
    /// An object with these fields only.
    Object(BTreeMap<String, Shape>),
    /// An object with free keys, each value of one shape.
    Map(Box<Shape>),
    /// A list; `key` names the field identifying an item (a list-map such as `destinations`,
    /// whose items paths then show by name).
    List {
        /// Shape of each item.
        item: Box<Shape>,
        /// The list-map key.
        key: Option<String>,
    },
}

impl Shape {
    /// The shape an OpenAPI v3 (structural) schema allows.
    pub fn from_schema(s: &JSONSchemaProps) -> Shape {
        if s.x_kubernetes_preserve_unknown_fields == Some(true) {
            return Shape::Any;
        }
        if let Some(props) = &s.properties {
            return Shape::Object(
                props
                    .iter()
                    .map(|(k, v)| (k.clone(), Shape::from_schema(v)))
                    .collect(),
            );
        }
        match (&s.additional_properties, &s.items) {
            (Some(JSONSchemaPropsOrBool::Schema(inner)), _) => {
                Shape::Map(Box::new(Shape::from_schema(inner)))
            }
            (Some(JSONSchemaPropsOrBool::Bool(true)), _) => Shape::Map(Box::new(Shape::Any)),
            (_, Some(JSONSchemaPropsOrArray::Schema(inner))) => Shape::List {
                item: Box::new(Shape::from_schema(inner)),
                key: (s.x_kubernetes_list_type.as_deref() == Some("map"))
                    .then(|| s.x_kubernetes_list_map_keys.as_ref()?.first().cloned())
                    .flatten(),
            },
            // An object without properties keeps none (the API server prunes them).
            _ if s.type_.as_deref() == Some("object") => Shape::Object(BTreeMap::new()),
            _ => Shape::Any,
        }
    }

    /// A `kind: ReplicationPolicy` document.
    pub fn replication_policy() -> Shape {
        let crd = ReplicationPolicy::crd();
        let schema = crd
            .spec
            .versions
            .first()
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref());
        let mut shape = schema.map_or(Shape::Any, Shape::from_schema);
        // The CRD schema leaves out what every object has.
        if let Shape::Object(fields) = &mut shape {
            fields.insert("apiVersion".into(), Shape::Any);
            fields.insert("kind".into(), Shape::Any);
            fields.insert("metadata".into(), object_meta());
        }
        shape
    }

    /// A `kind: Secret` document.
    pub fn secret() -> Shape {
        data_document(schemars::schema_for!(Secret), ["data", "stringData"])
    }

    /// A `kind: ConfigMap` document.
    pub fn config_map() -> Shape {
        data_document(schemars::schema_for!(ConfigMap), ["data", "binaryData"])
    }
}

/// A Secret or ConfigMap: its top-level fields, `metadata`, and the `free` maps of data
/// whose keys are the user's.
fn data_document(schema: schemars::Schema, free: [&str; 2]) -> Shape {
    let mut fields = top_level_fields(schema);
    fields.insert("metadata".into(), object_meta());
    for f in free {
        fields.insert(f.into(), Shape::Map(Box::new(Shape::Any)));
    }
    Shape::Object(fields)
}

/// `metadata`: the fields of `ObjectMeta`, each free-form.
fn object_meta() -> Shape {
    Shape::Object(top_level_fields(schemars::schema_for!(ObjectMeta)))
}

fn top_level_fields(schema: schemars::Schema) -> BTreeMap<String, Shape> {
    schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().map(|k| (k.clone(), Shape::Any)).collect())
        .unwrap_or_default()
}

/// A field the shape does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownField {
    /// Where, e.g. `spec.bandwith`.
    pub path: FieldPath,
    /// The nearest known field at that place, if one is near.
    pub nearest: Option<FieldPath>,
}

impl fmt::Display for UnknownField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: unknown field", self.path)?;
        if let Some(n) = &self.nearest {
            write!(f, " (did you mean {n}?)")?;
        }
        Ok(())
    }
}

/// Every field of `value` that `shape` does not allow, in document order.
pub fn unknown_fields(value: &Value, shape: &Shape) -> Vec<UnknownField> {
    let mut out = Vec::new();
    walk(value, shape, &FieldPath::root(), &mut out);
    out
}

fn walk(value: &Value, shape: &Shape, at: &FieldPath, out: &mut Vec<UnknownField>) {
    match (shape, value) {
        (_, Value::Tagged(t)) => walk(&t.value, shape, at, out),
        (Shape::Object(fields), Value::Mapping(m)) => {
            for (k, v) in m {
                let name = key_text(k);
                match fields.get(&name) {
                    Some(s) => walk(v, s, &at.clone().field(name), out),
                    None => out.push(UnknownField {
                        nearest: nearest(&name, fields.keys()).map(|n| at.clone().field(n)),
                        path: at.clone().field(name),
                    }),
                }
            }
        }
        (Shape::Map(item), Value::Mapping(m)) => {
            for (k, v) in m {
                walk(v, item, &at.clone().field(key_text(k)), out);
            }
        }
        (Shape::List { item, key }, Value::Sequence(items)) => {
            for (i, v) in items.iter().enumerate() {
                let id = key
                    .as_deref()
                    .and_then(|k| v.get(k))
                    .and_then(Value::as_str)
                    .map_or(Segment::Index(i), |k| Segment::Key(k.to_string()));
                let path = match id {
                    Segment::Key(k) => at.clone().key(k),
                    _ => at.clone().index(i),
                };
                walk(v, item, &path, out);
            }
        }
        // Wrong types are for the deserializer to report.
        _ => {}
    }
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "null".into(),
        _ => "<non-scalar key>".into(),
    }
}

/// The known name most like `name` (case-insensitive Jaro-Winkler similarity, which favours
/// a shared beginning: `bandwith` → `bandwidthLimit`), if similar enough to be a typo.
fn nearest<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    const THRESHOLD: f64 = 0.8;
    let name = name.to_lowercase();
    known
        .map(|k| (strsim::jaro_winkler(&name, &k.to_lowercase()), k))
        .filter(|(score, _)| *score >= THRESHOLD)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(yaml: &str, shape: &Shape) -> Vec<String> {
        let v: Value = serde_yaml::from_str(yaml).expect("yaml");
        unknown_fields(&v, shape)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const POLICY: &str = "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {name: p, labels: {a: b}}\n";

    #[test]
    fn a_complete_policy_has_no_unknown_fields() {
        let yaml = format!(
            "{POLICY}spec:
  source: {{url: 'https://s', credentialsSecretRef: {{name: c}}, caSecretRef: {{name: c, key: ca}}, insecure: false}}
  destinations:
    - {{name: east, url: 'https://e'}}
    - {{name: city, url: 'https://c', from: east}}
  repositories: {{include: ['a/**'], exclude: []}}
  tags: {{include: ['v*'], exclude: [], regex: 'v.*', semver: '>=1'}}
  platforms: [linux/amd64]
  referrers: true
  rewrite: {{prefix: m/, stripPrefix: library/}}
  trigger: {{onPush: true, schedule: '*/5 * * * *'}}
  deletion: false
  overwrite: true
  concurrency: 4
  bandwidthLimit: 50Mi
  retry: {{maxAttempts: 3, initialBackoffMillis: 100}}
  suspend: false
status: {{conditions: [{{type: Ready, status: 'True'}}]}}
"
        );
        assert_eq!(
            unknown(&yaml, &Shape::replication_policy()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_typo_is_named_with_the_nearest_field() {
        let yaml = format!(
            "{POLICY}spec:\n  source: {{url: 'https://s'}}\n  destinations: [{{name: a, url: 'https://a'}}]\n  bandwith: 5\n"
        );
        assert_eq!(
            unknown(&yaml, &Shape::replication_policy()),
            vec!["spec.bandwith: unknown field (did you mean spec.bandwidthLimit?)"]
        );
    }

    #[test]
    fn nested_list_and_metadata_typos_are_found() {
        let yaml = "apiVersion: v1\nkind: ReplicationPolicy\nmetadata: {nmae: p}\nspec:
  source: {url: 'https://s', credentialSecretRef: {name: c}}
  destinations:
    - {name: east, url: 'https://e', form: hq}
    - {url: 'https://x', insecur: true}
  tags: {semvar: '>=1'}
  zzzzzz: 1
";
        assert_eq!(
            unknown(yaml, &Shape::replication_policy()),
            vec![
                "metadata.nmae: unknown field (did you mean metadata.name?)",
                "spec.source.credentialSecretRef: unknown field (did you mean spec.source.credentialsSecretRef?)",
                "spec.destinations[east].form: unknown field (did you mean spec.destinations[east].from?)",
                "spec.destinations[1].insecur: unknown field (did you mean spec.destinations[1].insecure?)",
                "spec.tags.semvar: unknown field (did you mean spec.tags.semver?)",
                "spec.zzzzzz: unknown field",
            ]
        );
    }

    #[test]
    fn secrets_are_checked_too_and_their_data_keys_are_free() {
        let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: c}\ntype: kubernetes.io/basic-auth\nstringData: {username: u, password: p}\ndata: {x: eA==}\nstrngData: {a: b}\n";
        assert_eq!(
            unknown(yaml, &Shape::secret()),
            vec!["strngData: unknown field (did you mean stringData?)"]
        );
    }
}
