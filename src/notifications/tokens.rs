//! The bearer tokens the receiver accepts, each with the identity of its holder.
//!
//! The Registry controller sets the token of each fleet it configures with notifications
//! (owned by the Registry's uid) and removes it when notifications are turned off; the
//! [`Revoker`] removes the tokens of Registries that are deleted. The operator-wide token for
//! external registries has no owner and stays for the process's life.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

/// The valid bearer tokens, each with the identity of its holder (e.g. `namespace/registry`).
/// Cheap to clone; the reconciler adds and removes tokens while the receiver runs. Only
/// SHA-256 hashes of the tokens are kept.
#[derive(Clone, Default)]
pub struct Tokens {
    inner: Arc<RwLock<Vec<TokenEntry>>>,
}

/// One accepted token.
struct TokenEntry {
    identity: String,
    /// uid of the object whose deletion revokes the token (`None`: the process's own).
    owner: Option<String>,
    hash: [u8; 32],
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("count", &self.len())
            .finish()
    }
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two digests in time independent of where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

impl Tokens {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<TokenEntry>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn put(&self, identity: &str, owner: Option<&str>, token: &str) {
        let mut v = self.write();
        v.retain(|e| e.identity != identity);
        v.push(TokenEntry {
            identity: identity.to_string(),
            owner: owner.map(str::to_string),
            hash: hash(token),
        });
    }

    /// Sets the token of `identity` (replacing its previous one), for the process's life.
    pub fn insert(&self, identity: &str, token: &str) {
        self.put(identity, None, token);
    }

    /// Sets the token of `identity` (replacing its previous one), revoked with
    /// [`Tokens::revoke_owner`] when the object with uid `owner` is deleted.
    pub fn insert_owned(&self, identity: &str, owner: &str, token: &str) {
        self.put(identity, Some(owner), token);
    }

    /// Forgets the token of `identity`.
    pub fn remove(&self, identity: &str) {
        self.write().retain(|e| e.identity != identity);
    }

    /// Forgets the tokens owned by the object with uid `owner`; returns how many.
    pub fn revoke_owner(&self, owner: &str) -> usize {
        let mut v = self.write();
        let before = v.len();
        v.retain(|e| e.owner.as_deref() != Some(owner));
        before - v.len()
    }

    /// Forgets the owned tokens whose owner is not in `live`; returns how many. Tokens without
    /// an owner stay.
    pub fn retain_owners(&self, live: &BTreeSet<String>) -> usize {
        let mut v = self.write();
        let before = v.len();
        v.retain(|e| e.owner.as_ref().is_none_or(|o| live.contains(o)));
        before - v.len()
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .map_or_else(|e| e.into_inner().len(), |v| v.len())
    }

    /// Whether no token is configured (then every post is rejected).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The identity holding `presented`, comparing against every token in constant time.
    pub fn verify(&self, presented: &str) -> Option<String> {
        let presented = hash(presented);
        let v = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut found = None;
        for entry in v.iter() {
            if constant_time_eq(&entry.hash, &presented) && found.is_none() {
                found = Some(entry.identity.clone());
            }
        }
        found
    }
}

/// What a watch of the token owners (Registries) reports, by uid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerEvent {
    /// The watch (re)starts listing every owner.
    ListStart,
    /// An owner exists (listed, added or changed).
    Present(String),
    /// The listing is complete.
    ListDone,
    /// An owner was deleted.
    Deleted(String),
}

/// Revokes the tokens of deleted owners: at once on a delete, and after each (re)listing for
/// the owners that went while the watch was down.
#[derive(Debug)]
pub struct Revoker {
    tokens: Tokens,
    listed: Option<BTreeSet<String>>,
}

impl Revoker {
    /// A revoker of `tokens`.
    pub fn new(tokens: Tokens) -> Self {
        Self {
            tokens,
            listed: None,
        }
    }

    /// Takes one watch event into account; returns how many tokens it revoked.
    pub fn observe(&mut self, event: OwnerEvent) -> usize {
        match event {
            OwnerEvent::ListStart => {
                self.listed = Some(BTreeSet::new());
                0
            }
            OwnerEvent::Present(uid) => {
                if let Some(listed) = &mut self.listed {
                    listed.insert(uid);
                }
                0
            }
            OwnerEvent::ListDone => self
                .listed
                .take()
                .map_or(0, |live| self.tokens.retain_owners(&live)),
            OwnerEvent::Deleted(uid) => self.tokens.revoke_owner(&uid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_identity() {
        let tokens = Tokens::default();
        assert_eq!(tokens.verify("a"), None);
        tokens.insert("fleet/hq", "secret-a");
        tokens.insert("fleet/east", "secret-b");
        assert_eq!(tokens.verify("secret-a").as_deref(), Some("fleet/hq"));
        assert_eq!(tokens.verify("secret-b").as_deref(), Some("fleet/east"));
        assert_eq!(tokens.verify("secret-"), None);
        assert_eq!(tokens.verify(""), None);
        tokens.insert("fleet/hq", "rotated");
        assert_eq!(tokens.verify("secret-a"), None);
        assert_eq!(tokens.len(), 2);
        tokens.remove("fleet/east");
        assert_eq!(tokens.verify("secret-b"), None);
        assert!(!format!("{tokens:?}").contains("rotated"));
    }

    #[test]
    fn a_deleted_owner_loses_its_token_at_once() {
        let tokens = Tokens::default();
        tokens.insert("external", "shared");
        tokens.insert_owned("registry/a/hq", "uid-hq", "hq-token");
        tokens.insert_owned("registry/a/east", "uid-east", "east-token");
        let mut revoker = Revoker::new(tokens.clone());
        assert_eq!(revoker.observe(OwnerEvent::Present("uid-hq".into())), 0);
        assert_eq!(revoker.observe(OwnerEvent::Deleted("uid-hq".into())), 1);
        assert_eq!(tokens.verify("hq-token"), None);
        assert_eq!(
            tokens.verify("east-token").as_deref(),
            Some("registry/a/east")
        );
        assert_eq!(tokens.verify("shared").as_deref(), Some("external"));
    }

    #[test]
    fn a_recreated_owner_keeps_the_token_of_its_new_incarnation() {
        let tokens = Tokens::default();
        tokens.insert_owned("registry/a/hq", "uid-old", "old-token");
        // The new Registry of the same name was reconciled before the old one's delete arrived.
        tokens.insert_owned("registry/a/hq", "uid-new", "new-token");
        let mut revoker = Revoker::new(tokens.clone());
        assert_eq!(revoker.observe(OwnerEvent::Deleted("uid-old".into())), 0);
        assert_eq!(tokens.verify("new-token").as_deref(), Some("registry/a/hq"));
    }

    #[test]
    fn owners_gone_while_the_watch_was_down_are_revoked_after_the_relist() {
        let tokens = Tokens::default();
        tokens.insert("external", "shared");
        tokens.insert_owned("registry/a/hq", "uid-hq", "hq-token");
        tokens.insert_owned("registry/a/east", "uid-east", "east-token");
        let mut revoker = Revoker::new(tokens.clone());
        revoker.observe(OwnerEvent::ListStart);
        revoker.observe(OwnerEvent::Present("uid-east".into()));
        assert_eq!(
            tokens.verify("hq-token").as_deref(),
            Some("registry/a/hq"),
            "not before the list is done"
        );
        assert_eq!(revoker.observe(OwnerEvent::ListDone), 1);
        assert_eq!(tokens.verify("hq-token"), None);
        assert!(tokens.verify("east-token").is_some() && tokens.verify("shared").is_some());
        // A second ListDone without a listing changes nothing.
        assert_eq!(revoker.observe(OwnerEvent::ListDone), 0);
    }
}
