//! The pure access decision: ordered rules, first match wins, default deny; a grant is the
//! intersection of what a client asks for and what the rules allow.

use std::collections::{BTreeMap, BTreeSet};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::bundle::Bundle;
use crate::api::access::{AccessRule, Action, Subjects};

/// Who asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject<'a> {
    /// No credentials.
    Anonymous,
    /// A user whose password was verified.
    User(&'a str),
}

/// A rule glob that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {glob:?} is not a valid glob ({reason})")]
pub struct RuleError {
    /// e.g. `spec.access.rules[3].repositories[0]`.
    pub field: String,
    /// The glob as written.
    pub glob: String,
    /// Why it does not compile.
    pub reason: String,
}

struct Compiled {
    repositories: GlobSet,
    rule: AccessRule,
}

/// Compiled rules, admins and group memberships.
pub struct Policy {
    rules: Vec<Compiled>,
    admins: Subjects,
    /// user → groups.
    memberships: BTreeMap<String, BTreeSet<String>>,
}

/// One requested scope (`type:name:actions`), parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `repository:NAME:a,b`.
    Repository {
        /// Repository name.
        name: String,
        /// Requested actions (unknown ones dropped; `*` is every action).
        actions: BTreeSet<Action>,
    },
    /// `registry:catalog:*`.
    Catalog,
}

/// One entry of a token's `access` claim.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Granted {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// Repository name, or `catalog`.
    pub name: String,
    /// Granted actions.
    pub actions: Vec<&'static str>,
}

/// The longest scope string considered (longer ones are ignored).
const MAX_SCOPE_LEN: usize = 512;

/// Parses one scope; `None` for anything this registry has no use for.
pub fn parse_scope(scope: &str) -> Option<Scope> {
    if scope.len() > MAX_SCOPE_LEN {
        return None;
    }
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    match kind {
        "registry" if name == "catalog" => Some(Scope::Catalog),
        "repository" if !name.is_empty() => {
            let mut set = BTreeSet::new();
            for a in actions.split(',') {
                match a {
                    "pull" => drop(set.insert(Action::Pull)),
                    "push" => drop(set.insert(Action::Push)),
                    "delete" => drop(set.insert(Action::Delete)),
                    "*" => set.extend([Action::Pull, Action::Push, Action::Delete]),
                    _ => {}
                }
            }
            Some(Scope::Repository {
                name: name.to_string(),
                actions: set,
            })
        }
        _ => None,
    }
}

/// Compiles one repository glob (`*` within a segment, `**` across).
fn compile(rule: &AccessRule, index: usize) -> Result<GlobSet, RuleError> {
    let mut set = GlobSetBuilder::new();
    for (j, glob) in rule.repositories.iter().enumerate() {
        let g = GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|e| RuleError {
                field: format!("spec.access.rules[{index}].repositories[{j}]"),
                glob: glob.clone(),
                reason: e.kind().to_string(),
            })?;
        set.add(g);
    }
    set.build().map_err(|e| RuleError {
        field: format!("spec.access.rules[{index}].repositories"),
        glob: rule.repositories.join(","),
        reason: e.to_string(),
    })
}

/// Checks every rule's globs, naming the first bad one of each rule.
pub fn check_rules(rules: &[AccessRule]) -> Vec<RuleError> {
    rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| compile(r, i).err())
        .collect()
}

impl Policy {
    /// Compiles a bundle's rules.
    pub fn new(bundle: &Bundle) -> Result<Self, RuleError> {
        let rules = bundle
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(Compiled {
                    repositories: compile(r, i)?,
                    rule: r.clone(),
                })
            })
            .collect::<Result<_, RuleError>>()?;
        let mut memberships: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (group, users) in &bundle.groups {
            for user in users {
                memberships
                    .entry(user.clone())
                    .or_default()
                    .insert(group.clone());
            }
        }
        Ok(Self {
            rules,
            admins: bundle.admins.clone(),
            memberships,
        })
    }

    fn groups_of(&self, user: &str) -> Option<&BTreeSet<String>> {
        self.memberships.get(user)
    }

    fn names(&self, subjects_users: &[String], subjects_groups: &[String], user: &str) -> bool {
        subjects_users.iter().any(|u| u == user || u == "*")
            || self
                .groups_of(user)
                .is_some_and(|g| subjects_groups.iter().any(|x| g.contains(x)))
    }

    /// Whether `subject` is an administrator.
    pub fn is_admin(&self, subject: Subject<'_>) -> bool {
        match subject {
            Subject::Anonymous => false,
            Subject::User(u) => self.names(&self.admins.users, &self.admins.groups, u),
        }
    }

    /// What `subject` may do on repository `repo`.
    pub fn allowed(&self, subject: Subject<'_>, repo: &str) -> BTreeSet<Action> {
        if self.is_admin(subject) {
            return BTreeSet::from([Action::Pull, Action::Push, Action::Delete]);
        }
        let matching = || self.rules.iter().filter(|c| c.repositories.is_match(repo));
        let anonymous: BTreeSet<Action> = matching()
            .find_map(|c| c.rule.anonymous.as_ref())
            .map(|a| a.iter().copied().collect())
            .unwrap_or_default();
        match subject {
            Subject::Anonymous => anonymous,
            Subject::User(u) => {
                let named = matching()
                    .find(|c| self.names(&c.rule.users, &c.rule.groups, u))
                    .map(|c| c.rule.actions.iter().copied().collect::<BTreeSet<_>>())
                    .unwrap_or_default();
                named.union(&anonymous).copied().collect()
            }
        }
    }

    /// The grant for one requested scope: requested ∩ allowed; `None` when nothing is left.
    pub fn grant(&self, subject: Subject<'_>, scope: &Scope) -> Option<Granted> {
        match scope {
            Scope::Catalog => self.is_admin(subject).then(|| Granted {
                type_: "registry",
                name: "catalog".into(),
                actions: vec!["*"],
            }),
            Scope::Repository { name, actions } => {
                let allowed = self.allowed(subject, name);
                let actions: Vec<&'static str> =
                    actions.intersection(&allowed).map(|a| a.as_str()).collect();
                (!actions.is_empty()).then(|| Granted {
                    type_: "repository",
                    name: name.clone(),
                    actions,
                })
            }
        }
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
