//! Resource-owner password checks (the password grant of step A, the login page before
//! the code grant) with bounded memory.
//!
//! argon2id is memory-hard on purpose: the default parameters fill 19 MiB per check. Run
//! on the runtime's blocking pool, a burst of logins spread the checks over hundreds of
//! threads, each leaving its buffer in an allocator arena of its own: the server stayed
//! at 1 GiB RSS long after the burst. Here a fixed pool of threads, one per core (at most
//! [`MAX_VERIFIERS`]), each keeps one argon2 buffer for its whole life and reuses it, so
//! the memory for password checks is at most `verifiers × m_cost` KiB, whatever comes in.
//! Checks wait in a queue; the HTTP shell's connection limit bounds the queue.

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use std::sync::{Arc, Mutex, mpsc};
use subtle::ConstantTimeEq;

/// The most verifier threads, whatever the core count.
pub const MAX_VERIFIERS: usize = 4;

/// The largest `m_cost` (KiB) a stored hash may ask for: 256 MiB. A larger one is refused
/// rather than allocated.
pub const MAX_M_COST_KIB: u32 = 256 * 1024;

struct Check {
    password: String,
    /// `None` for an unknown username: checked against [`crate::config::DUMMY_HASH`] so
    /// the answer takes as long as for a real one (no username enumeration by timing).
    phc: Option<String>,
    reply: tokio::sync::oneshot::Sender<bool>,
}

/// The pool. Dropping it stops the threads once the queue is empty.
pub struct PasswordVerifier {
    queue: mpsc::Sender<Check>,
}

impl PasswordVerifier {
    pub fn new() -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, MAX_VERIFIERS);
        let (queue, checks) = mpsc::channel::<Check>();
        let checks = Arc::new(Mutex::new(checks));
        for i in 0..threads {
            let checks = Arc::clone(&checks);
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                let mut memory: Vec<Block> = Vec::new();
                loop {
                    let next = checks.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(check) = next else { break };
                    let ok = match &check.phc {
                        Some(phc) => verify_with(&mut memory, &check.password, phc),
                        None => {
                            let _ = verify_with(&mut memory, &check.password, &crate::config::DUMMY_HASH);
                            false
                        }
                    };
                    let _ = check.reply.send(ok);
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password verifier thread");
            }
        }
        Self { queue }
    }

    /// Whether `password` matches the argon2 PHC string `phc` (`None`: unknown user,
    /// always false after the same work).
    pub async fn verify(&self, password: String, phc: Option<String>) -> bool {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.queue.send(Check { password, phc, reply }).is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

impl Default for PasswordVerifier {
    fn default() -> Self {
        Self::new()
    }
}

/// Verifies `password` against `phc`, reusing `memory` as argon2's working buffer.
pub fn verify_with(memory: &mut Vec<Block>, password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else { return false };
    let (Ok(algorithm), Ok(params), Some(expected), Some(salt)) =
        (Algorithm::try_from(hash.algorithm), Params::try_from(&hash), hash.hash, hash.salt)
    else {
        return false;
    };
    if params.m_cost() > MAX_M_COST_KIB {
        tracing::warn!(m_cost = params.m_cost(), "a stored password hash asks for too much memory; refused");
        return false;
    }
    let version = hash.version.and_then(|v| Version::try_from(v).ok()).unwrap_or_default();
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    if argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks]).is_err() {
        return false;
    }
    out.ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_like_the_argon2_crate_and_reuses_its_buffer() {
        let phc = crate::config::hash_password("alice-password").unwrap();
        let mut memory = Vec::new();
        assert!(verify_with(&mut memory, "alice-password", &phc));
        let size = memory.len();
        assert!(!verify_with(&mut memory, "alice-passwore", &phc));
        assert_eq!(memory.len(), size, "the buffer is reused, not grown");
        assert!(!verify_with(&mut memory, "x", "not a phc string"));
    }

    #[tokio::test]
    async fn the_pool_answers_and_unknown_users_never_match() {
        let pool = PasswordVerifier::new();
        let phc = crate::config::hash_password("pw").unwrap();
        assert!(pool.verify("pw".into(), Some(phc.clone())).await);
        assert!(!pool.verify("nope".into(), Some(phc)).await);
        assert!(!pool.verify("pw".into(), None).await);
    }
}
