//! A problem with a resource that a user can act on: the field, a reason programs can match
//! and a message saying what is wrong and how to fix it. Shared by every validation step.

/// One problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Path of the offending field, e.g. `spec.destinations[city-1].from`.
    pub field: String,
    /// CamelCase reason for conditions, e.g. `CyclicDestinations`.
    pub reason: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}
