//! What the operator writes into a Registry's `<name>-access` Secret and the token service
//! reads: the rules and groups (`access.json`) and the users (`htpasswd`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::access::{AccessRule, Subjects};

/// Key of the access Secret holding the [`Bundle`] as JSON.
pub const BUNDLE_KEY: &str = "access.json";
/// Key of the access Secret holding the htpasswd file (the user's entries plus the operator's).
pub const USERS_KEY: &str = "htpasswd";

/// Everything the token service needs besides the users and its key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// The `service` the registry names in its challenge and expects as token audience.
    pub service: String,
    /// The token issuer the registry trusts.
    pub issuer: String,
    /// Token lifetime.
    pub expiry_seconds: i64,
    /// Ordered rules of `spec.access.rules`.
    pub rules: Vec<AccessRule>,
    /// Administrators (including Flotilla's own account).
    pub admins: Subjects,
    /// Group → member users.
    pub groups: BTreeMap<String, Vec<String>>,
}

/// A line of a groups file that is not `group: user1 user2`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} is not `group: user1 user2`")]
pub struct GroupsError {
    /// 1-based line number.
    pub line: usize,
}

/// Parses an htgroup file: `group: user1 user2` per line; blank lines and `#` comments skipped.
/// A group listed twice gets the members of both lines.
pub fn parse_groups(text: &str) -> Result<BTreeMap<String, Vec<String>>, GroupsError> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (group, users) = line.split_once(':').ok_or(GroupsError { line: i + 1 })?;
        let group = group.trim();
        if group.is_empty() || group.contains(char::is_whitespace) {
            return Err(GroupsError { line: i + 1 });
        }
        let members = groups.entry(group.to_string()).or_default();
        members.extend(users.split_whitespace().map(str::to_string));
    }
    Ok(groups)
}

/// Verifies `password` for `user` against an htpasswd file (bcrypt entries only, as
/// Distribution accepts). `false` for an unknown user or any other hash type.
pub fn verify_password(htpasswd: &str, user: &str, password: &str) -> bool {
    htpasswd
        .lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .find(|(u, _)| u.trim() == user)
        .is_some_and(|(_, hash)| bcrypt::verify(password, hash).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_parse_and_name_bad_lines() {
        let g = parse_groups("# teams\nteam-a: alice  bob\n\nci:robot\nteam-a: carol\n")
            .expect("parses");
        assert_eq!(g["team-a"], ["alice", "bob", "carol"]);
        assert_eq!(g["ci"], ["robot"]);
        assert_eq!(
            parse_groups("ok: a\nno colon here\n"),
            Err(GroupsError { line: 2 })
        );
        assert_eq!(parse_groups(" : a\n"), Err(GroupsError { line: 1 }));
    }

    #[test]
    fn passwords_are_checked_against_bcrypt_entries() {
        let file = format!(
            "alice:{}\nplain:secret\n",
            bcrypt::hash("wonderland", 4).expect("hash")
        );
        assert!(verify_password(&file, "alice", "wonderland"));
        assert!(!verify_password(&file, "alice", "wrong"));
        assert!(!verify_password(&file, "bob", "wonderland"));
        assert!(!verify_password(&file, "plain", "secret"), "only bcrypt");
    }
}
