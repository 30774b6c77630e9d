//! Why an artifact could not be copied to a destination: the error of the copy and of the
//! fan-out that streams its blobs (its own module, so that neither depends on the other).

use super::digest::Digest;
use super::manifest::ManifestError;
use super::store::StoreError;

/// Why an artifact could not be copied to a destination.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading from the feeder failed.
    #[error("reading {what} failed: {source}")]
    Read {
        /// What.
        what: String,
        /// Cause.
        source: StoreError,
    },
    /// A blob stream went on past the size its descriptor declared.
    #[error(
        "blob {digest} read from {from} is longer than the {size} bytes its descriptor declares; cut off, nothing was committed"
    )]
    Oversized {
        /// Feeder.
        from: String,
        /// Blob.
        digest: Digest,
        /// Declared size.
        size: u64,
    },
    /// A blob upload failed.
    #[error("upload to {destination} failed: {source}")]
    Upload {
        /// Destination.
        destination: String,
        /// Cause.
        source: StoreError,
    },
    /// Writing or checking a manifest at a destination failed.
    #[error("{what} at {destination} failed: {source}")]
    Write {
        /// Destination.
        destination: String,
        /// What.
        what: String,
        /// Cause.
        source: StoreError,
    },
    /// A blob's bytes do not match its digest.
    #[error(
        "digest mismatch for blob {expected} read from {from}: got {actual} ({actual_size} of {expected_size} bytes); nothing was committed"
    )]
    DigestMismatch {
        /// Feeder.
        from: String,
        /// Expected.
        expected: Digest,
        /// Computed.
        actual: Digest,
        /// Expected size.
        expected_size: u64,
        /// Read size.
        actual_size: u64,
    },
    /// A manifest's bytes do not match the digest it was fetched by.
    #[error("digest mismatch for manifest {expected} read from {from}: got {actual}")]
    ManifestDigest {
        /// Feeder.
        from: String,
        /// Expected.
        expected: Digest,
        /// Computed.
        actual: Digest,
    },
    /// A manifest could not be understood.
    #[error("manifest {digest}: {source}")]
    Manifest {
        /// Digest.
        digest: Digest,
        /// Cause.
        source: ManifestError,
    },
    /// The destination feeding this one failed or conflicts.
    #[error("not copied: its feeder {parent} does not hold the artifact ({reason})")]
    ParentFailed {
        /// Feeder.
        parent: String,
        /// Why.
        reason: String,
    },
    /// A bug or a panic.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CopyError {
    /// Whether the destination could not be reached (a connection error at the destination
    /// side, after the client's own retries of the request).
    pub(crate) fn is_unreachable(&self) -> bool {
        matches!(
            self,
            CopyError::Upload {
                source: StoreError::Client(super::client::ClientError::Connect { .. }),
                ..
            } | CopyError::Write {
                source: StoreError::Client(super::client::ClientError::Connect { .. }),
                ..
            }
        )
    }

    /// Whether trying again may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            CopyError::Read { source, .. }
            | CopyError::Upload { source, .. }
            | CopyError::Write { source, .. } => source.is_retryable(),
            _ => false,
        }
    }

    pub(crate) fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            CopyError::Read { source, .. }
            | CopyError::Upload { source, .. }
            | CopyError::Write { source, .. } => match source {
                StoreError::Client(c) => c.retry_after(),
                StoreError::Layout(_) => None,
            },
            _ => None,
        }
    }
}
