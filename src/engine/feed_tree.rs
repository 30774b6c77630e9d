//! The destination tree of a policy: who feeds whom (`from`), by depth, and what hangs below
//! each destination. One type for validation, the engine's relay order and the pictures of
//! the CLI, instead of a walk of `from` links in each. Pure.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use super::config::{ConfigError, DestinationConfig};

/// A problem of the `from` links, by destination index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeProblem {
    /// No destination at all.
    NoDestinations,
    /// Destination `index` has the name of an earlier one.
    Duplicate {
        /// Index of the later one.
        index: usize,
    },
    /// The `from` of destination `index` names no destination.
    UnknownFrom {
        /// Index.
        index: usize,
    },
    /// These destinations feed each other in a cycle, in the order the links run: each is
    /// fed by the next, the last by the first (one member: it names itself).
    Cycle {
        /// Indexes.
        members: Vec<usize>,
    },
}

/// Who feeds whom among the destinations of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedTree {
    /// The destination each one is fed by (`None`: the source, or a `from` naming nothing).
    parents: Vec<Option<usize>>,
    /// The destinations each one feeds, in spec order.
    children: Vec<Vec<usize>>,
    /// The destinations fed (through their parents) from the source, by depth: level 0 is fed
    /// by the source, level n by level n-1; spec order within a level.
    levels: Vec<Vec<usize>>,
}

impl FeedTree {
    /// The tree of a valid list of destinations; the first problem otherwise.
    pub fn new(dests: &[DestinationConfig]) -> Result<Self, ConfigError> {
        let (tree, problems) =
            Self::from_links(dests.iter().map(|d| (d.name.as_str(), d.from.as_deref())));
        match problems.into_iter().next() {
            None => Ok(tree),
            Some(p) => Err(match p {
                TreeProblem::NoDestinations => ConfigError::NoDestinations,
                TreeProblem::Duplicate { index } => {
                    ConfigError::Duplicate(dests[index].name.clone())
                }
                TreeProblem::UnknownFrom { index } => ConfigError::UnknownFrom {
                    name: dests[index].name.clone(),
                    from: dests[index].from.clone().unwrap_or_default(),
                },
                TreeProblem::Cycle { members } => ConfigError::Cycle(
                    members
                        .iter()
                        .map(|&i| dests[i].name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            }),
        }
    }

    /// The tree of whatever `(name, from)` links resolve, with every problem of them: each
    /// duplicate name, each unknown `from` (such a destination is placed as if fed by the
    /// source), each cycle once (its members and what they feed are in no level). A `from`
    /// resolves to the first destination of that name.
    pub fn from_links<'a>(
        links: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> (Self, Vec<TreeProblem>) {
        let links: Vec<(&str, Option<&str>)> = links.into_iter().collect();
        let mut problems = Vec::new();
        if links.is_empty() {
            problems.push(TreeProblem::NoDestinations);
        }
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, (name, _)) in links.iter().enumerate() {
            match first.entry(name) {
                Entry::Occupied(_) => problems.push(TreeProblem::Duplicate { index: i }),
                Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
        let mut parents = Vec::with_capacity(links.len());
        for (i, (_, from)) in links.iter().enumerate() {
            let parent = from.map(|f| first.get(f).copied());
            if parent == Some(None) {
                problems.push(TreeProblem::UnknownFrom { index: i });
            }
            parents.push(parent.flatten());
        }
        let mut children = vec![Vec::new(); links.len()];
        for (i, p) in parents.iter().enumerate() {
            if let Some(p) = p {
                children[*p].push(i);
            }
        }
        problems.extend(cycles(&parents));
        let levels = levels(&parents, &children);
        (
            Self {
                parents,
                children,
                levels,
            },
            problems,
        )
    }

    /// How many destinations.
    pub fn len(&self) -> usize {
        self.parents.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.parents.is_empty()
    }

    /// The destinations by depth, fed level after level (see [`FeedTree::new`]).
    pub fn levels(&self) -> &[Vec<usize>] {
        &self.levels
    }

    /// The destination feeding `i`; `None`: the source (or an unknown `from`).
    pub fn parent(&self, i: usize) -> Option<usize> {
        self.parents.get(i).copied().flatten()
    }

    /// The destinations `i` feeds, in spec order.
    pub fn children(&self, i: usize) -> &[usize] {
        self.children.get(i).map_or(&[], Vec::as_slice)
    }

    /// Every destination below `i` (fed by it, directly or through others), nearest first,
    /// `i` itself never (even in a cycle).
    pub fn descendants(&self, i: usize) -> Vec<usize> {
        let mut seen = vec![false; self.len()];
        if let Some(s) = seen.get_mut(i) {
            *s = true;
        }
        let mut out = Vec::new();
        let mut queue: VecDeque<usize> = self.children(i).iter().copied().collect();
        while let Some(c) = queue.pop_front() {
            if std::mem::replace(&mut seen[c], true) {
                continue;
            }
            out.push(c);
            queue.extend(self.children(c));
        }
        out
    }

    /// Whether `i` is fed from the source (it is in a level): not in a cycle, nor below one.
    pub fn is_fed(&self, i: usize) -> bool {
        self.levels.iter().any(|l| l.contains(&i))
    }
}

/// Every cycle of the parent links, once each, in the order the links run from the first
/// member met walking up from the destinations in spec order.
fn cycles(parents: &[Option<usize>]) -> Vec<TreeProblem> {
    let mut reported = vec![false; parents.len()];
    let mut out = Vec::new();
    for start in 0..parents.len() {
        let mut path = vec![start];
        let mut at = start;
        while let Some(next) = parents[at] {
            if let Some(pos) = path.iter().position(|&n| n == next) {
                let cycle = &path[pos..];
                if cycle.iter().all(|&n| !reported[n]) {
                    for &n in cycle {
                        reported[n] = true;
                    }
                    out.push(TreeProblem::Cycle {
                        members: cycle.to_vec(),
                    });
                }
                break;
            }
            if reported[next] {
                break;
            }
            path.push(next);
            at = next;
        }
    }
    out
}

/// The destinations reachable from the roots (no parent), by depth, spec order in a level.
fn levels(parents: &[Option<usize>], children: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut levels = Vec::new();
    let mut level: Vec<usize> = (0..parents.len())
        .filter(|&i| parents[i].is_none())
        .collect();
    let mut placed = vec![false; parents.len()];
    while !level.is_empty() {
        for &i in &level {
            placed[i] = true;
        }
        let mut next: Vec<usize> = level
            .iter()
            .flat_map(|&i| children[i].iter().copied())
            .filter(|&c| !placed[c])
            .collect();
        next.sort_unstable();
        next.dedup();
        levels.push(std::mem::replace(&mut level, next));
    }
    levels
}

#[cfg(test)]
#[path = "feed_tree_tests.rs"]
mod tests;
