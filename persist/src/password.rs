//! Password hashes (argon2id, PHC strings) and session tokens (random,
//! stored as a BLAKE2b hash). CPU-heavy work runs on the blocking pool,
//! at most [`Hashes`]' bound at once: each hash costs a core and
//! `argon2_memory_kib` of memory, so anyone able to send logins could
//! otherwise spend both without limit. A hash that finds no place within
//! the queue deadline is refused with [`Error::Busy`] (RESOURCE_EXHAUSTED).

use std::sync::Arc;
use std::time::Duration;

use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use blake2::{Blake2b512, Digest};

use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// The bound on concurrent password hashes (hash and verify alike).
#[derive(Clone)]
pub struct Hashes {
    places: Arc<Semaphore>,
    queue: Duration,
    metrics: Arc<Metrics>,
}

/// A place to run one hash; the running gauge counts it while held.
struct Place {
    _permit: OwnedSemaphorePermit,
    running: IntGauge,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.running.dec();
    }
}

impl Hashes {
    pub fn new(max_concurrent: usize, queue: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            places: Arc::new(Semaphore::new(max_concurrent.max(1))),
            queue,
            metrics,
        }
    }

    /// Waits up to the queue deadline for a place.
    async fn place(&self) -> Result<Place> {
        let waiting = self.metrics.password_hashes.with_label_values(&["waiting"]);
        waiting.inc();
        let got = tokio::time::timeout(self.queue, self.places.clone().acquire_owned()).await;
        waiting.dec();
        match got {
            Ok(Ok(permit)) => {
                let running = self.metrics.password_hashes.with_label_values(&["running"]);
                running.inc();
                Ok(Place {
                    _permit: permit,
                    running,
                })
            }
            _ => {
                self.metrics.password_hashes_refused.inc();
                Err(Error::Busy(format!(
                    "too many password checks at once; retry in {} ms",
                    self.queue.as_millis()
                )))
            }
        }
    }
}

fn hasher(memory_kib: u32) -> Result<Argon2<'static>> {
    let params =
        Params::new(memory_kib, 2, 1, None).map_err(|e| Error::Internal(format!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` into a PHC string (salt and parameters included).
pub async fn hash(hashes: &Hashes, password: String, memory_kib: u32) -> Result<String> {
    let place = hashes.place().await?;
    tokio::task::spawn_blocking(move || {
        let _place = place;
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
pub async fn verify(hashes: &Hashes, password: String, phc: String) -> Result<bool> {
    let place = hashes.place().await?;
    tokio::task::spawn_blocking(move || {
        let _place = place;
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

    fn hashes(max: usize, queue_ms: u64) -> Hashes {
        Hashes::new(max, Duration::from_millis(queue_ms), Arc::new(Metrics::new()))
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let hs = hashes(2, 1000);
        let h = hash(&hs, "s3cret".into(), 64).await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&hs, "s3cret".into(), h.clone()).await.expect("verify"));
        assert!(!verify(&hs, "wrong".into(), h).await.expect("verify"));
        let t = new_token();
        assert_eq!(t.len(), 64);
        assert_eq!(token_hash(&t), token_hash(&t));
        assert_ne!(token_hash(&t), token_hash(&new_token()));
    }

    #[tokio::test]
    async fn a_hash_that_finds_no_place_in_time_is_refused_as_busy() {
        let hs = hashes(1, 50);
        let held = hs.place().await.expect("the one place");
        let refused = hash(&hs, "pw".into(), 64).await;
        assert!(matches!(refused, Err(Error::Busy(_))), "got {refused:?}");
        assert_eq!(hs.metrics.password_hashes_refused.get(), 1);
        assert_eq!(
            hs.metrics.password_hashes.with_label_values(&["running"]).get(),
            1
        );
        drop(held);
        assert!(hash(&hs, "pw".into(), 64).await.is_ok(), "a free place is used");
        assert_eq!(
            hs.metrics.password_hashes.with_label_values(&["running"]).get(),
            0
        );
    }
}
