//! Stores for the engine's unit tests, without a network: OCI layouts in fresh temporary
//! directories (removed when dropped), and a registry on the loopback where nothing listens.

use std::path::PathBuf;
use std::sync::Arc;

use super::backoff::RetryConfig;
use super::client::{EndpointConfig, RegistryClient};
use super::layout::Layout;
use super::store::Store;

/// An OCI layout in a temporary directory of its own, removed on drop.
pub(crate) struct TempLayout {
    pub root: PathBuf,
    pub store: Store,
}

impl TempLayout {
    pub async fn new(name: &str) -> Self {
        let root = std::env::temp_dir().join(format!(
            "flotilla-test-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let layout = Layout::open(&root, true).await.expect("layout");
        Self {
            root,
            store: Store::Layout(Arc::new(layout)),
        }
    }

    /// Puts `content` at the blob path of `digest` (which need not be its digest).
    pub fn put_blob_as(&self, digest: &super::digest::Digest, content: &[u8]) {
        std::fs::write(self.root.join("blobs/sha256").join(digest.hex()), content)
            .expect("write blob");
    }
}

impl Drop for TempLayout {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A registry nobody answers for: port 9 of the loopback refuses at once; one attempt.
pub(crate) fn dead_registry() -> Store {
    Store::Registry(Arc::new(
        RegistryClient::new(
            &EndpointConfig {
                url: "http://127.0.0.1:9".into(),
                insecure: true,
                ..Default::default()
            },
            RetryConfig {
                max_attempts: 1,
                ..RetryConfig::default()
            },
        )
        .expect("client"),
    ))
}
