//! Time, injected. RFC 6749 §1.5's whole story is about time passing ("steps (C) and (D)
//! repeat until the access token expires"), so every role takes its `now` from a [`Clock`]
//! handed to it, and the rules in this crate take `now` as an argument.
//!
//! In production the roles share [`SystemClock`]; in scenarios and tests they share one
//! [`SimulatedClock`] that the runner advances to expire tokens without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Seconds since the Unix epoch: the unit of JWT `exp`/`iat`/`nbf` (RFC 7519 §2 NumericDate).
pub type UnixTime = u64;

/// A source of the current time, shared by all three roles.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> UnixTime;
}

/// The machine's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct SimulatedClock {
    now: Arc<AtomicU64>,
}

/// When simulated runs (scenarios, in-process conformance checks) start:
/// 2026-01-01T00:00:00Z, so that their traces are reproducible.
pub const SIMULATION_EPOCH: UnixTime = 1_767_225_600;

impl SimulatedClock {
    pub fn starting_at(now: UnixTime) -> Self {
        Self { now: Arc::new(AtomicU64::new(now)) }
    }

    /// Moves time forward by `seconds` and returns the new time.
    pub fn advance(&self, seconds: u64) -> UnixTime {
        self.now.fetch_add(seconds, Ordering::SeqCst) + seconds
    }
}

impl Clock for SimulatedClock {
    fn now(&self) -> UnixTime {
        self.now.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clock_clones_share_time() {
        let a = SimulatedClock::starting_at(1_000);
        let b = a.clone();
        assert_eq!(a.advance(60), 1_060);
        assert_eq!(b.now(), 1_060);
    }
}
