//! Trusted public keys: PEM `PUBLIC KEY` blocks (SubjectPublicKeyInfo) of ECDSA P-256 keys,
//! as `cosign generate-key-pair` writes them to `cosign.pub`.

use p256::ecdsa::VerifyingKey;
use p256::pkcs8::DecodePublicKey;

/// The most PEM blocks read from one key reference.
pub const MAX_KEYS_PER_SOURCE: usize = 32;

const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const END: &str = "-----END PUBLIC KEY-----";

/// Why key material is unusable. Names where it came from; public keys are not secret, but
/// the message quotes none of the material anyway.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not UTF-8 text.
    #[error("{source_name}: not PEM text")]
    NotText {
        /// Where the key came from.
        source_name: String,
    },
    /// No `PUBLIC KEY` block.
    #[error("{source_name}: no \"-----BEGIN PUBLIC KEY-----\" block (cosign.pub is one)")]
    NoKey {
        /// Where the key came from.
        source_name: String,
    },
    /// More blocks than [`MAX_KEYS_PER_SOURCE`].
    #[error("{source_name}: more than {MAX_KEYS_PER_SOURCE} public keys")]
    TooMany {
        /// Where the key came from.
        source_name: String,
    },
    /// A block that is not an ECDSA P-256 public key.
    #[error(
        "{source_name}: public key {index} is not an ECDSA P-256 key in SubjectPublicKeyInfo PEM ({reason})"
    )]
    Invalid {
        /// Where the key came from.
        source_name: String,
        /// 1-based block number.
        index: usize,
        /// What the parser said.
        reason: String,
    },
}

/// One trusted key and where it came from (e.g. `Secret cosign/cosign.pub`).
#[derive(Clone, Debug)]
pub struct TrustedKey {
    /// Where it came from, for messages.
    pub source: String,
    /// The key.
    pub key: VerifyingKey,
}

/// Every `PUBLIC KEY` block of `pem` (one or more, e.g. a key being rotated in beside the old
/// one); `source_name` names where it came from.
pub fn parse_keys(source_name: &str, pem: &[u8]) -> Result<Vec<TrustedKey>, KeyError> {
    let text = std::str::from_utf8(pem).map_err(|_| KeyError::NotText {
        source_name: source_name.to_string(),
    })?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let block = &rest[start..start + len + END.len()];
        rest = &rest[start + len + END.len()..];
        if out.len() == MAX_KEYS_PER_SOURCE {
            return Err(KeyError::TooMany {
                source_name: source_name.to_string(),
            });
        }
        let key = VerifyingKey::from_public_key_pem(block).map_err(|e| KeyError::Invalid {
            source_name: source_name.to_string(),
            index: out.len() + 1,
            reason: e.to_string(),
        })?;
        out.push(TrustedKey {
            source: source_name.to_string(),
            key,
        });
    }
    if out.is_empty() {
        return Err(KeyError::NoKey {
            source_name: source_name.to_string(),
        });
    }
    Ok(out)
}
