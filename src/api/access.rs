//! `Registry.spec.access`: who may pull, push and delete what, enforced by Flotilla's token
//! service (Distribution's `auth: token`).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::SecretKeySelector;

/// An action on a repository, as Distribution's token scopes name them.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Read manifests, blobs and tags.
    Pull,
    /// Upload blobs and manifests (clients also ask for `pull` when they push).
    Push,
    /// Delete manifests and blobs (needs `spec.deleteEnabled`).
    Delete,
}

impl Action {
    /// The scope spelling: `pull`, `push`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

/// Access rules. With `spec.access` the registry uses token authentication: clients are sent
/// to Flotilla's token service (a sidecar of every registry pod) which grants what the rules
/// allow. Users are those of `spec.auth.htpasswd`. Changing the rules, users or groups takes
/// effect without restarting the registry (within about a minute, when the kubelet refreshes
/// the mounted Secret). Flotilla's own account (replication through `registryRef`) always
/// has every right.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessSpec {
    /// Ordered rules: for each repository the first rule that matches both the repository and
    /// the client decides; nothing matched means no access (default deny). A signed-in user
    /// whom no rule names gets what anonymous clients get, and never less.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub rules: Vec<AccessRule>,
    /// Administrators: every action on every repository, and the catalog
    /// (`registry:catalog:*`), which nobody else gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admins: Option<Subjects>,
    /// Groups, from a Secret key in htgroup format: one line per group, `group: user1 user2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_secret_ref: Option<SecretKeySelector>,
    /// Lifetime of the tokens the service issues, in seconds. A removed user or a narrowed
    /// rule takes effect for tokens issued before it at the latest after this time (plus
    /// the registry's clock-skew leeway of 60 s).
    #[serde(default = "default_expiry")]
    #[schemars(range(min = 30, max = 3600))]
    pub token_expiry_seconds: i64,
}

/// Users and groups.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subjects {
    /// User names of `spec.auth.htpasswd`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    pub users: Vec<String>,
    /// Group names of `spec.access.groupsSecretRef`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    pub groups: Vec<String>,
}

/// One rule: the repositories it covers, and what anonymous clients and the named users and
/// groups may do there.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.anonymous) || (has(self.users) && size(self.users) > 0) || (has(self.groups) && size(self.groups) > 0)").message("a rule applies to nobody: set anonymous, users or groups"))]
#[x_kube(validation = Rule::new("!has(self.actions) || size(self.actions) == 0 || (has(self.users) && size(self.users) > 0) || (has(self.groups) && size(self.groups) > 0)").message("actions are what the rule's users and groups may do: set users or groups (anonymous clients get the actions listed in anonymous)").field_path(".actions"))]
#[serde(rename_all = "camelCase")]
pub struct AccessRule {
    /// Repository globs: `*` stays within a path segment, `**` crosses them, e.g.
    /// `library/**`, `team-a/*`.
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 255)))]
    pub repositories: Vec<String>,
    /// What anonymous clients (no credentials) may do. Set (even to `[]`) the rule also
    /// matches anonymous clients; `[]` denies them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 3))]
    pub anonymous: Option<Vec<Action>>,
    /// Users the rule matches; `"*"` is every signed-in user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    pub users: Vec<String>,
    /// Groups the rule matches (of `spec.access.groupsSecretRef`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    pub groups: Vec<String>,
    /// What the matched users and groups may do. They also keep what anonymous clients may
    /// do (logging out would give them that anyway); `[]` gives them nothing more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub actions: Vec<Action>,
}

fn default_expiry() -> i64 {
    300
}
