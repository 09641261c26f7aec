//! Password hashes (argon2id, PHC strings) and session tokens (random,
//! stored as a BLAKE2b hash). CPU-heavy work runs on the blocking pool.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use blake2::{Blake2b512, Digest};

use crate::error::{Error, Result};

fn hasher(memory_kib: u32) -> Result<Argon2<'static>> {
    let params =
        Params::new(memory_kib, 2, 1, None).map_err(|e| Error::Internal(format!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` into a PHC string (salt and parameters included).
pub async fn hash(password: String, memory_kib: u32) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| Error::Internal(format!("salt: {e}")))?;
        let h = hasher(memory_kib)?
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| Error::Internal(format!("argon2: {e}")))?;
        Ok(h.to_string())
    })
    .await
    .map_err(|e| Error::Internal(format!("hash task: {e}")))?
}

/// True when `password` matches the PHC string `phc`. The parameters come
/// from the string, so hashes made with other settings still verify.
pub async fn verify(password: String, phc: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed =
            PasswordHash::new(&phc).map_err(|e| Error::Internal(format!("stored hash unreadable: {e}")))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| Error::Internal(format!("verify task: {e}")))?
}

/// A new session token (256 random bits, hex).
pub fn new_token() -> String {
    hex(&rand::random::<[u8; 32]>())
}

/// What the database keeps of a token.
pub fn token_hash(token: &str) -> String {
    hex(&Blake2b512::digest(token.as_bytes())[..32])
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let h = hash("s3cret".into(), 64).await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("s3cret".into(), h.clone()).await.expect("verify"));
        assert!(!verify("wrong".into(), h).await.expect("verify"));
        let t = new_token();
        assert_eq!(t.len(), 64);
        assert_eq!(token_hash(&t), token_hash(&t));
        assert_ne!(token_hash(&t), token_hash(&new_token()));
    }
}
