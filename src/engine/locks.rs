//! Locks of one run per destination and key (a blob digest, a repository and manifest): two
//! copies of the same thing to the same destination never overlap, while copies to other
//! destinations go on at once (the ten regions of a tree each feed their cities the same
//! blob at the same time).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

type Lock = Arc<tokio::sync::Mutex<()>>;

/// Locks by (destination id, key).
#[derive(Debug)]
pub struct TargetLocks<K> {
    map: Mutex<HashMap<(usize, K), Lock>>,
}

impl<K: Eq + Hash + Clone> Default for TargetLocks<K> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone> TargetLocks<K> {
    /// Takes the lock of `key` at every destination of `ids`, in ascending id order: two
    /// callers with overlapping destinations wait for each other without deadlock (neither
    /// holds a lock the other needs before one it waits for). Released when the guards drop.
    pub async fn lock(
        &self,
        key: &K,
        ids: impl IntoIterator<Item = usize>,
    ) -> Vec<OwnedMutexGuard<()>> {
        let mut ids: Vec<usize> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        let locks: Vec<Lock> = match self.map.lock() {
            Ok(mut m) => ids
                .iter()
                .map(|id| m.entry((*id, key.clone())).or_default().clone())
                .collect(),
            // A panic elsewhere poisoned the map: lock nothing rather than fail the copy.
            Err(_) => Vec::new(),
        };
        let mut guards = Vec::with_capacity(locks.len());
        for l in locks {
            guards.push(l.lock_owned().await);
        }
        guards
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn other_destinations_do_not_wait_the_same_ones_do() {
        let locks = TargetLocks::<&str>::default();
        let held = locks.lock(&"blob", [3, 1, 2]).await;
        let quick = tokio::time::timeout(Duration::from_secs(5), locks.lock(&"blob", [4, 5]));
        assert_eq!(quick.await.expect("disjoint destinations").len(), 2);
        let other_key = tokio::time::timeout(Duration::from_secs(5), locks.lock(&"other", [1]));
        assert_eq!(other_key.await.expect("another key").len(), 1);
        let blocked = tokio::time::timeout(Duration::from_millis(50), locks.lock(&"blob", [5, 2]));
        assert!(blocked.await.is_err(), "destination 2 is held");
        drop(held);
        let after = tokio::time::timeout(Duration::from_secs(5), locks.lock(&"blob", [2, 2, 5]));
        assert_eq!(after.await.expect("released").len(), 2, "ids deduplicated");
    }
}
