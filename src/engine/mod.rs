//! The copy engine: exact, fan-out replication of OCI artifacts between registries.
//!
//! No Kubernetes types here: the same engine serves the controller and `flotilla sync`.
//!
//! - [`client`]: one registry (auth, retries, manifests as exact bytes, blobs as streams),
//!   one module a job (request building, bounded bodies, tokens, retries, listings,
//!   manifests, blobs, uploads); [`layout`]: an OCI layout directory; [`store`]: either.
//! - Pure parts: [`digest`], [`backoff`], [`auth`] (challenges, docker config), [`link`],
//!   [`manifest`], [`filter`], [`rewrite`], [`plan`], [`limit`], [`config`], [`feed_tree`]
//!   (who feeds whom, by level), [`verify`] (cosign signatures and attestations),
//!   [`referrers`] (which referrers travel).
//! - [`gate`]: reads the referrers of each artifact and holds back what does not verify.
//! - [`fanout`]: one read of a blob streamed to every destination needing it;
//!   [`copy`]: a manifest tree, children first, tag last (its blobs in `copy::blobs`);
//!   [`sync`]: a whole run, level by level of the [`FeedTree`];
//!   [`single`]: one artifact (`flotilla copy`); [`report`]: the summary; [`progress`]:
//!   live counters for a terminal.

pub mod auth;
pub mod backoff;
pub mod client;
pub mod config;
pub mod copy;
pub mod copy_error;
pub mod digest;
pub mod fanout;
pub mod feed_tree;
pub mod filter;
pub mod gate;
pub mod layout;
pub mod limit;
pub mod link;
pub mod locks;
pub mod manifest;
pub mod names;
pub mod plan;
pub mod progress;
pub mod referrers;
pub mod report;
pub mod rewrite;
pub mod scope;
pub mod single;
pub mod store;
pub mod sync;
#[cfg(test)]
mod test_stores;
pub mod verify;

pub use client::{EndpointConfig, RegistryClient};
pub use config::{DestinationConfig, SyncConfig, TagRules};
pub use feed_tree::{FeedTree, TreeProblem};
pub use report::Report;
pub use scope::{Named, SyncScope};
