//! The token service's key: generated once by the operator (a P-256 key and a self-signed
//! certificate the registry trusts as `auth.token.rootcertbundle`), and ES256 JWTs signed
//! with it, the certificate in the `x5c` header as Distribution expects.

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey as _;

use super::rules::Granted;

/// Errors of the signing key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Generating the key or its certificate failed.
    #[error("cannot generate the token signing certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The key file is not a PKCS#8 P-256 key (its content is never shown).
    #[error("the token signing key is not a PKCS#8 P-256 private key in PEM")]
    Key,
    /// The certificate file has no PEM certificate.
    #[error("the token signing certificate is not a PEM certificate")]
    Certificate,
}

/// A key and its certificate, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// PKCS#8 private key.
    pub key_pem: String,
    /// Self-signed certificate of the key (not a CA: Distribution refuses CA leaves).
    pub cert_pem: String,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Generates a fresh key and self-signed certificate named `common_name`.
pub fn generate(common_name: &str) -> Result<KeyMaterial, KeyError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let cert = params.self_signed(&key)?;
    Ok(KeyMaterial {
        key_pem: key.serialize_pem(),
        cert_pem: cert.pem(),
    })
}

/// A loaded signing key and the `x5c` value of its certificate.
pub struct Signer {
    key: SigningKey,
    x5c: String,
}

/// The claims of one token.
#[derive(serde::Serialize)]
pub struct Claims<'a> {
    /// Issuer the registry trusts.
    pub iss: &'a str,
    /// The user, empty for anonymous.
    pub sub: &'a str,
    /// The registry's service name.
    pub aud: &'a str,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Not before.
    pub nbf: i64,
    /// Issued at.
    pub iat: i64,
    /// Unique token ID.
    pub jti: String,
    /// What the token grants.
    pub access: &'a [Granted],
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl Signer {
    /// Loads a key and certificate as [`generate`] writes them.
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Self, KeyError> {
        let key = SigningKey::from_pkcs8_pem(key_pem).map_err(|_| KeyError::Key)?;
        // The base64 body of a PEM certificate is the DER `x5c` carries.
        let x5c: String = cert_pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .map(str::trim)
            .collect();
        if x5c.is_empty() {
            return Err(KeyError::Certificate);
        }
        Ok(Self { key, x5c })
    }

    /// A signed ES256 JWT of `claims`.
    pub fn sign(&self, claims: &Claims<'_>) -> Result<String, serde_json::Error> {
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let input = format!(
            "{}.{}",
            b64url(&serde_json::to_vec(&header)?),
            b64url(&serde_json::to_vec(claims)?)
        );
        let signature: Signature = self.key.sign(input.as_bytes());
        Ok(format!("{input}.{}", b64url(&signature.to_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier as _;

    #[test]
    fn tokens_verify_with_the_generated_key_and_carry_the_certificate() {
        let m = generate("flotilla-token-test").expect("generated");
        assert!(m.key_pem.contains("BEGIN PRIVATE KEY") && m.cert_pem.contains("CERTIFICATE"));
        assert!(!format!("{m:?}").contains(&m.key_pem));
        let signer = Signer::from_pem(&m.key_pem, &m.cert_pem).expect("loads");
        let access = [Granted {
            type_: "repository",
            name: "a/b".into(),
            actions: vec!["pull"],
        }];
        let jwt = signer
            .sign(&Claims {
                iss: "i",
                sub: "u",
                aud: "s",
                exp: 2,
                nbf: 0,
                iat: 1,
                jti: "j".into(),
                access: &access,
            })
            .expect("signed");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let dec = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .expect("b64url")
        };
        let header: serde_json::Value = serde_json::from_slice(&dec(parts[0])).expect("json");
        assert_eq!(header["alg"], "ES256");
        let claims: serde_json::Value = serde_json::from_slice(&dec(parts[1])).expect("json");
        assert_eq!(claims["access"][0]["actions"][0], "pull");
        let sig = Signature::from_slice(&dec(parts[2])).expect("r||s");
        let vk = VerifyingKey::from(&signer.key);
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(vk.verify(input.as_bytes(), &sig).is_ok());
        assert!(Signer::from_pem("nope", &m.cert_pem).is_err());
        assert!(Signer::from_pem(&m.key_pem, "nope").is_err());
    }
}
