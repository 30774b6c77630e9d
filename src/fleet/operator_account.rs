//! The account Flotilla keeps for itself at a Registry with htpasswd auth, so that a
//! ReplicationPolicy can name the Registry by `registryRef` without a hand-made Secret.
//!
//! The pods mount an htpasswd file from the generated Secret: the user's entries followed by
//! one line for [`OPERATOR_USERNAME`]. The password and that line are kept across reconciles
//! (a fresh bcrypt salt would change the file, the checksum and roll the pods every time).

use super::names::OPERATOR_USERNAME;
use crate::issue::Issue;

/// bcrypt cost of the operator's entry: the minimum. The password is 256 random bits, so a
/// higher cost protects nothing, while Distribution runs bcrypt on every request the operator
/// makes (cost 10 would add tens of milliseconds of registry CPU to each one).
const COST: u32 = 4;

/// The operator's credentials and the htpasswd file the pods mount.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorAccount {
    /// Random password of [`OPERATOR_USERNAME`].
    pub password: String,
    /// The user's htpasswd entries plus the operator's line.
    pub htpasswd: String,
}

impl std::fmt::Debug for OperatorAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorAccount")
            .field("password", &"<redacted>")
            .field("htpasswd_lines", &self.htpasswd.lines().count())
            .finish()
    }
}

fn user_of(line: &str) -> Option<&str> {
    line.split_once(':').map(|(user, _)| user.trim())
}

/// A problem when the user's htpasswd defines the reserved operator user.
pub fn check_reserved(user_file: &str, field: &str) -> Option<Issue> {
    user_file
        .lines()
        .any(|l| user_of(l) == Some(OPERATOR_USERNAME))
        .then(|| Issue {
            field: field.to_string(),
            reason: "ReservedUsername",
            message: format!(
                "the htpasswd file defines user {OPERATOR_USERNAME:?}, which Flotilla reserves for its own replication account; rename that user"
            ),
        })
}

/// The account for a Registry: `existing_password` and the operator's line of
/// `existing_htpasswd` (both from the generated Secret) are kept when they still match,
/// anything missing is generated, and the user's entries are taken from `user_file` as they
/// are now.
pub fn account(
    user_file: &str,
    existing_password: Option<String>,
    existing_htpasswd: Option<&str>,
) -> Result<OperatorAccount, bcrypt::BcryptError> {
    let password = existing_password.unwrap_or_else(super::random::generate_token);
    let kept = existing_htpasswd.and_then(|file| {
        file.lines()
            .find(|l| user_of(l) == Some(OPERATOR_USERNAME))
            .filter(|l| {
                l.split_once(':')
                    .is_some_and(|(_, hash)| bcrypt::verify(&password, hash).unwrap_or(false))
            })
            .map(str::to_string)
    });
    let entry = match kept {
        Some(line) => line,
        None => format!("{OPERATOR_USERNAME}:{}", bcrypt::hash(&password, COST)?),
    };
    let mut htpasswd: String = user_file
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && user_of(l) != Some(OPERATOR_USERNAME))
        .flat_map(|l| [l, "\n"])
        .collect();
    htpasswd.push_str(&entry);
    htpasswd.push('\n');
    Ok(OperatorAccount { password, htpasswd })
}

#[cfg(test)]
mod tests {
    use super::*;

    const USERS: &str =
        "alice:$2y$05$abcdefghijklmnopqrstuu5UDdOxkQEPSpgd0eYWJV7mbiAzfYEwm\r\n\nbob:$2y$05$x\n";

    fn operator_hash(file: &str) -> String {
        file.lines()
            .find_map(|l| l.strip_prefix(&format!("{OPERATOR_USERNAME}:")))
            .expect("operator line")
            .to_string()
    }

    #[test]
    fn the_file_keeps_user_entries_and_adds_a_verifiable_operator_line() {
        let a = account(USERS, None, None).expect("hashed");
        let lines: Vec<&str> = a.htpasswd.lines().collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("alice:") && !lines[0].ends_with('\r'));
        assert!(lines[1].starts_with("bob:"));
        let hash = operator_hash(&a.htpasswd);
        assert!(hash.starts_with("$2") && hash.contains("$04$"), "{hash}");
        assert!(bcrypt::verify(&a.password, &hash).expect("valid hash"));
        assert_eq!(a.password.len(), 64);
        assert!(!format!("{a:?}").contains(&a.password));
    }

    #[test]
    fn password_and_line_survive_reconciles_and_user_edits() {
        let first = account(USERS, None, None).expect("hashed");
        let again =
            account(USERS, Some(first.password.clone()), Some(&first.htpasswd)).expect("hashed");
        assert_eq!(again, first, "a second reconcile must not change the file");
        let edited = account(
            "carol:$2y$05$y\n",
            Some(first.password.clone()),
            Some(&first.htpasswd),
        )
        .expect("hashed");
        assert_eq!(
            operator_hash(&edited.htpasswd),
            operator_hash(&first.htpasswd)
        );
        assert!(edited.htpasswd.starts_with("carol:") && !edited.htpasswd.contains("alice"));
    }

    #[test]
    fn a_line_that_no_longer_matches_the_password_is_rehashed() {
        let first = account(USERS, None, None).expect("hashed");
        let other = account(USERS, Some("another".into()), Some(&first.htpasswd)).expect("hashed");
        assert!(bcrypt::verify("another", &operator_hash(&other.htpasswd)).expect("valid hash"));
    }

    #[test]
    fn the_operator_user_is_reserved() {
        let field = "spec.auth.htpasswd.secretRef";
        assert_eq!(check_reserved(USERS, field), None);
        let issue = check_reserved("flotilla-operator:$2y$05$z\n", field).expect("reserved");
        assert_eq!(issue.reason, "ReservedUsername");
        assert!(issue.message.contains("rename"));
    }
}
