//! Performance: a bounded cache of access tokens that already passed every check, so that
//! a token presented again (a client uses one access token for many calls, steps C and D
//! repeat "until the access token expires", RFC 6749 §1.5) costs a SHA-256 and a lookup
//! instead of a signature verification (~80 µs for ES256).
//!
//! It changes no answer:
//! - only a token that passed every check is kept, and only the checks whose result
//!   cannot change for that token and that key set are skipped: size, header, key lookup,
//!   signature. `iss`, `aud`, `exp`, `nbf` and `iat` are checked again on every use,
//!   against the injected clock; a token found expired is dropped from the cache, so
//!   none is served past its `exp`;
//! - an entry names the key set (one JWKS fetch) that verified it: after a re-fetch the
//!   keys may differ (a retired key must stop verifying), so older entries are ignored;
//! - the key is the SHA-256 digest of the whole token.
//!
//! Bounded: [`SHARDS`] shards, each with two generations of at most
//! `capacity / SHARDS / 2` entries. When the young generation is full it becomes the old
//! one and the previous old one is dropped; a hit in the old generation moves the entry
//! back to the young one. A token used again and again stays; one-off tokens pass through.

use crate::keys::KeySetId;
use figure2_protocol::access_token::AccessTokenClaims;
use figure2_protocol::secret::TokenDigest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Shards, to keep the worker threads off each other's lock.
const SHARDS: usize = 16;

pub(crate) struct VerifiedTokens {
    shards: Vec<Mutex<Shard>>,
    per_generation: usize,
}

#[derive(Default)]
struct Shard {
    young: HashMap<TokenDigest, Entry>,
    old: HashMap<TokenDigest, Entry>,
}

#[derive(Clone)]
struct Entry {
    claims: Arc<AccessTokenClaims>,
    /// The key set (its fetch) that verified the signature.
    key_set: KeySetId,
}

impl VerifiedTokens {
    /// A cache of about `capacity` tokens; 0 turns it off.
    pub(crate) fn new(capacity: usize) -> Self {
        let per_generation = capacity.div_ceil(SHARDS * 2);
        let shards = if capacity == 0 { Vec::new() } else { (0..SHARDS).map(|_| Mutex::default()).collect() };
        Self { shards, per_generation }
    }

    fn shard(&self, digest: &TokenDigest) -> Option<std::sync::MutexGuard<'_, Shard>> {
        // A SHA-256 digest is uniform: its first byte picks a shard fairly.
        let shard = self.shards.get(usize::from(digest[0]) % self.shards.len().max(1))?;
        Some(shard.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The claims of a token verified with key set `key_set`, if cached.
    pub(crate) fn get(&self, digest: &TokenDigest, key_set: KeySetId) -> Option<Arc<AccessTokenClaims>> {
        let mut shard = self.shard(digest)?;
        if let Some(entry) = shard.young.get(digest) {
            return (entry.key_set == key_set).then(|| entry.claims.clone());
        }
        let entry = shard.old.remove(digest).filter(|e| e.key_set == key_set)?;
        let claims = entry.claims.clone();
        shard.insert(*digest, entry, self.per_generation);
        Some(claims)
    }

    pub(crate) fn insert(&self, digest: TokenDigest, claims: Arc<AccessTokenClaims>, key_set: KeySetId) {
        if let Some(mut shard) = self.shard(&digest) {
            shard.insert(digest, Entry { claims, key_set }, self.per_generation);
        }
    }

    pub(crate) fn remove(&self, digest: &TokenDigest) {
        if let Some(mut shard) = self.shard(digest) {
            shard.young.remove(digest);
            shard.old.remove(digest);
        }
    }
}

impl Shard {
    fn insert(&mut self, digest: TokenDigest, entry: Entry, per_generation: usize) {
        if self.young.len() >= per_generation && !self.young.contains_key(&digest) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(digest, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figure2_protocol::access_token::Audience;

    fn claims(sub: &str) -> Arc<AccessTokenClaims> {
        Arc::new(AccessTokenClaims {
            iss: "i".into(),
            sub: sub.into(),
            aud: Audience::One("a".into()),
            exp: 10.into(),
            iat: 0.into(),
            nbf: None,
            jti: "j".into(),
            client_id: "c".into(),
            scope: None,
            cnf: None,
        })
    }

    fn digest(i: u32) -> TokenDigest {
        figure2_protocol::secret::digest(&i.to_string())
    }

    #[test]
    fn hits_only_for_the_same_key_set() {
        let cache = VerifiedTokens::new(64);
        cache.insert(digest(1), claims("alice"), KeySetId::of(7));
        assert_eq!(cache.get(&digest(1), KeySetId::of(7)).map(|c| c.sub.clone()).as_deref(), Some("alice"));
        assert!(cache.get(&digest(1), KeySetId::of(8)).is_none(), "another key set");
        assert!(cache.get(&digest(2), KeySetId::of(7)).is_none());
        cache.remove(&digest(1));
        assert!(cache.get(&digest(1), KeySetId::of(7)).is_none());
    }

    #[test]
    fn stays_bounded_and_keeps_what_is_used() {
        let cache = VerifiedTokens::new(64);
        cache.insert(digest(0), claims("hot"), KeySetId::of(1));
        for i in 1..10_000 {
            cache.insert(digest(i), claims("cold"), KeySetId::of(1));
            assert!(cache.get(&digest(0), KeySetId::of(1)).is_some(), "the token in use stays cached");
        }
        let entries: usize = cache
            .shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap();
                s.young.len() + s.old.len()
            })
            .sum();
        assert!(entries <= 64 + SHARDS * 2, "{entries}");
    }

    #[test]
    fn zero_capacity_turns_it_off() {
        let cache = VerifiedTokens::new(0);
        cache.insert(digest(1), claims("alice"), KeySetId::of(1));
        assert!(cache.get(&digest(1), KeySetId::of(1)).is_none());
    }
}
