//! The path of a field in a resource, as `kubectl` prints it without the leading dot:
//! `spec.tags.semver`, `spec.repositories.include[1]`, `spec.destinations[east].url` (list
//! items keyed by name show the name, other list items their index).

use std::fmt;

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Segment {
    /// An object field.
    Field(String),
    /// A list item by position.
    Index(usize),
    /// A list item by its key (a list-map such as `destinations`, keyed by `name`).
    Key(String),
}

/// A field path, e.g. `spec.destinations[east].from`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The empty path (the document itself).
    pub fn root() -> Self {
        Self::default()
    }

    /// `spec`.
    pub fn spec() -> Self {
        Self::root().field("spec")
    }

    /// This path followed by an object field.
    pub fn field(mut self, name: impl Into<String>) -> Self {
        self.0.push(Segment::Field(name.into()));
        self
    }

    /// This path followed by a list index.
    pub fn index(mut self, i: usize) -> Self {
        self.0.push(Segment::Index(i));
        self
    }

    /// This path followed by a list-map key.
    pub fn key(mut self, k: impl Into<String>) -> Self {
        self.0.push(Segment::Key(k.into()));
        self
    }

    /// The steps.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// Whether this is the document itself.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<document>");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Field(name) if i == 0 => f.write_str(name)?,
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Key(k) => write!(f, "[{k}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_kubectl_does() {
        assert_eq!(
            FieldPath::spec().field("tags").field("semver").to_string(),
            "spec.tags.semver"
        );
        assert_eq!(
            FieldPath::spec()
                .field("repositories")
                .field("include")
                .index(1)
                .to_string(),
            "spec.repositories.include[1]"
        );
        assert_eq!(
            FieldPath::spec()
                .field("destinations")
                .key("east")
                .field("url")
                .to_string(),
            "spec.destinations[east].url"
        );
        assert_eq!(FieldPath::root().to_string(), "<document>");
    }
}
