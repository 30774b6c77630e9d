//! Signature gate: which artifacts may be copied, from cosign signatures and attestations
//! found beside them (the OCI 1.1 referrers API or the `sha256-<hex>.sig/.att` tag scheme).
//! Pure: keys are parsed here, evidence is read by [`super::gate`], the verdict is decided
//! here. The cryptography is the RustCrypto `p256` crate's (ECDSA P-256, SHA-256).
//!
//! - [`keys`]: trusted public keys (PEM, SubjectPublicKeyInfo, as `cosign generate-key-pair`
//!   writes `cosign.pub`).
//! - [`evidence`]: signature and attestation layers of a referrer manifest; the simple-signing
//!   payload and DSSE envelope checks.

pub mod evidence;
pub mod keys;

pub use evidence::{Evidence, Layer};
pub use keys::{KeyError, TrustedKey, parse_keys};

use super::digest::Digest;

/// Media type of a cosign simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation of a simple-signing layer holding the base64 signature over the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Media type of a DSSE envelope layer (a cosign attestation).
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The `artifactType` cosign gives a signature pushed as an OCI 1.1 referrer.
pub const COSIGN_SIGNATURE_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// The most read of one signature payload or attestation envelope (cosign's own payloads are
/// well under 1 KiB; attestations carry an SBOM or provenance, so they get more).
pub const MAX_PAYLOAD_BYTES: usize = 4 << 20;
/// The most signature or attestation layers examined for one artifact.
pub const MAX_LAYERS: usize = 64;

/// What a policy requires of every artifact it copies.
#[derive(Clone, Debug, Default)]
pub struct VerifyConfig {
    /// Keys any one of which must have signed the artifact's digest.
    pub keys: Vec<TrustedKey>,
    /// Predicate types of in-toto attestations that must be present, each signed by one of
    /// `keys` for the artifact's digest.
    pub attestations: Vec<String>,
}

/// Why an artifact is held back; `None` from [`decide`] means it may be copied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No signature at all.
    #[error("unsigned: no cosign signature found (referrers API or sha256-<hex>.sig tag)")]
    Unsigned,
    /// Signatures exist, none verifies against the policy's keys.
    #[error(
        "untrusted: {found} signature(s) found, none verifies against the keys of spec.verify.keys"
    )]
    Untrusted {
        /// Signatures examined.
        found: usize,
    },
    /// A trusted key signed a payload for another digest (a copied or replayed signature).
    #[error("digest mismatch: the signed payload names {signed}, not this artifact ({artifact})")]
    DigestMismatch {
        /// What the payload names.
        signed: String,
        /// The artifact.
        artifact: String,
    },
    /// A required attestation is missing or not signed by a trusted key for this digest.
    #[error("missing attestation: no verified attestation of predicate type {0:?}")]
    MissingAttestation(String),
}

impl Refusal {
    /// A short stable code (report, status, metric label).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Unsigned => "unsigned",
            Refusal::Untrusted { .. } => "untrusted",
            Refusal::DigestMismatch { .. } => "digestMismatch",
            Refusal::MissingAttestation(_) => "missingAttestation",
        }
    }
}

/// The verdict on one artifact `subject` given the evidence found beside it.
pub fn decide(cfg: &VerifyConfig, subject: &Digest, ev: &Evidence) -> Option<Refusal> {
    if ev.signatures.is_empty() {
        return Some(Refusal::Unsigned);
    }
    let mut mismatch = None;
    let mut signed = false;
    for s in &ev.signatures {
        match evidence::check_signature(&cfg.keys, s, subject) {
            evidence::Check::Valid => {
                signed = true;
                break;
            }
            evidence::Check::OtherDigest(d) => mismatch = mismatch.or(Some(d)),
            evidence::Check::Invalid => {}
        }
    }
    if !signed {
        return Some(match mismatch {
            Some(signed) => Refusal::DigestMismatch {
                signed,
                artifact: subject.to_string(),
            },
            None => Refusal::Untrusted {
                found: ev.signatures.len(),
            },
        });
    }
    for wanted in &cfg.attestations {
        let ok = ev
            .attestations
            .iter()
            .any(|a| evidence::check_attestation(&cfg.keys, a, subject, wanted));
        if !ok {
            return Some(Refusal::MissingAttestation(wanted.clone()));
        }
    }
    None
}

#[cfg(test)]
mod tests;
