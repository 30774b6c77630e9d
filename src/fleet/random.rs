//! Fresh secrets for a fleet: the shared `http.secret`, notification tokens, the operator's
//! own password. 32 bytes from the OS-seeded CSPRNG, hex encoded.

/// A fresh random `http.secret`.
pub fn generate_http_secret() -> String {
    random_hex()
}

/// A fresh random bearer token (notifications) or password (the operator's account).
pub fn generate_token() -> String {
    random_hex()
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}
