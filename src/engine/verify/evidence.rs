//! What a referrer manifest offers as evidence (signature and attestation layers), and the
//! checks of one piece of it: signature first, then what the signed bytes say.

use std::collections::BTreeMap;

use base64::Engine as _;
use p256::ecdsa::Signature;
use p256::ecdsa::signature::Verifier as _;

use super::keys::TrustedKey;
use super::{DSSE_ENVELOPE, SIGNATURE_ANNOTATION, SIMPLE_SIGNING};
use crate::engine::digest::Digest;

/// One layer of a referrer manifest that may hold evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Media type.
    pub media_type: String,
    /// Blob digest.
    pub digest: Digest,
    /// Blob size as the manifest says.
    pub size: u64,
    /// The layer's annotations.
    pub annotations: BTreeMap<String, String>,
}

impl Layer {
    /// A simple-signing payload with its signature annotation.
    pub fn is_signature(&self) -> bool {
        self.media_type == SIMPLE_SIGNING && self.annotations.contains_key(SIGNATURE_ANNOTATION)
    }
    /// A DSSE envelope (attestation).
    pub fn is_attestation(&self) -> bool {
        self.media_type == DSSE_ENVELOPE
    }
}

/// A signed simple-signing payload: the exact payload bytes and the base64 signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPayload {
    /// The payload blob, exactly as stored.
    pub payload: Vec<u8>,
    /// The `dev.cosignproject.cosign/signature` annotation (base64 DER ECDSA).
    pub signature: String,
}

/// Everything found beside one artifact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Simple-signing payloads with their signatures.
    pub signatures: Vec<SignedPayload>,
    /// DSSE envelopes (exact bytes).
    pub attestations: Vec<Vec<u8>>,
}

#[derive(serde::Deserialize)]
struct RawManifest {
    #[serde(default)]
    layers: Vec<RawLayer>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLayer {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The signature and attestation layers of a referrer manifest (others are ignored; a
/// manifest that is not JSON or has a bad layer digest offers none).
pub fn evidence_layers(manifest: &[u8]) -> Vec<Layer> {
    let Ok(raw) = serde_json::from_slice::<RawManifest>(manifest) else {
        return Vec::new();
    };
    raw.layers
        .into_iter()
        .filter_map(|l| {
            Some(Layer {
                digest: l.digest.parse().ok()?,
                media_type: l.media_type,
                size: l.size,
                annotations: l.annotations,
            })
        })
        .filter(|l| l.is_signature() || l.is_attestation())
        .collect()
}

/// The outcome of checking one signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// A trusted key signed a payload naming this digest.
    Valid,
    /// A trusted key signed a payload naming another digest.
    OtherDigest(String),
    /// No trusted key made this signature, or the signed bytes are not a cosign payload.
    Invalid,
}

fn decode_signature(b64: &str) -> Option<Signature> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    Signature::from_der(&raw)
        .ok()
        .or_else(|| Signature::from_slice(&raw).ok())
}

/// Whether any of `keys` made `signature` over `message`.
fn signed_by_any(keys: &[TrustedKey], message: &[u8], signature: &str) -> bool {
    let Some(sig) = decode_signature(signature) else {
        return false;
    };
    keys.iter().any(|k| k.key.verify(message, &sig).is_ok())
}

#[derive(serde::Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(serde::Deserialize)]
struct Critical {
    image: PayloadImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(serde::Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// The type every cosign simple-signing payload names.
const PAYLOAD_TYPE: &str = "cosign container image signature";

/// Checks one signature: does a trusted key verify it over the exact payload bytes, and
/// does the payload's `critical.image.docker-manifest-digest` name `subject`?
pub fn check_signature(keys: &[TrustedKey], s: &SignedPayload, subject: &Digest) -> Check {
    if !signed_by_any(keys, &s.payload, &s.signature) {
        return Check::Invalid;
    }
    let Ok(p) = serde_json::from_slice::<Payload>(&s.payload) else {
        return Check::Invalid;
    };
    if !p.critical.kind.eq_ignore_ascii_case(PAYLOAD_TYPE) {
        return Check::Invalid;
    }
    if p.critical.image.digest == subject.as_str() {
        Check::Valid
    } else {
        Check::OtherDigest(p.critical.image.digest)
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload_type: String,
    payload: String,
    #[serde(default)]
    signatures: Vec<EnvelopeSignature>,
}

#[derive(serde::Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    predicate_type: String,
    #[serde(default)]
    subject: Vec<StatementSubject>,
}

#[derive(serde::Deserialize)]
struct StatementSubject {
    #[serde(default)]
    digest: BTreeMap<String, String>,
}

/// DSSE's pre-authentication encoding of a payload: what its signatures sign.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Whether `envelope` is an in-toto statement of `predicate_type` about `subject`, signed
/// (DSSE) by one of `keys`.
pub fn check_attestation(
    keys: &[TrustedKey],
    envelope: &[u8],
    subject: &Digest,
    predicate_type: &str,
) -> bool {
    let Ok(env) = serde_json::from_slice::<Envelope>(envelope) else {
        return false;
    };
    let Ok(body) = base64::engine::general_purpose::STANDARD.decode(env.payload.trim()) else {
        return false;
    };
    let message = pae(&env.payload_type, &body);
    if !env
        .signatures
        .iter()
        .any(|s| signed_by_any(keys, &message, &s.sig))
    {
        return false;
    }
    let Ok(st) = serde_json::from_slice::<Statement>(&body) else {
        return false;
    };
    st.predicate_type == predicate_type
        && st
            .subject
            .iter()
            .any(|s| s.digest.get("sha256").map(String::as_str) == Some(subject.hex()))
}
