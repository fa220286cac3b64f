//! Waiting for a condition with a generous bound, instead of sleeping for a guessed time: a
//! test asserts an outcome, and a busy machine only makes it take longer, never fail.
//!
//! Shared by the integration tests (through `tests/common`) and the crate's unit tests (lib.rs
//! includes this file under `cfg(test)`), so there is one definition of "eventually".
//! Under `tokio::time::pause` the async forms sleep in virtual time, so there they suit
//! conditions that only tasks of the same runtime can change.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

/// How often a condition is checked.
const STEP: Duration = Duration::from_millis(50);
/// How many checks before giving up: 60 s in all.
const ATTEMPTS: u32 = 1200;

/// Waits until `condition` holds; false if it never did within the bound.
pub async fn eventually<F: FnMut() -> bool>(mut condition: F) -> bool {
    for _ in 0..ATTEMPTS {
        if condition() {
            return true;
        }
        tokio::time::sleep(STEP).await;
    }
    condition()
}

/// Waits until `probe` yields a value (a request that must succeed, a reload that must be
/// seen); `None` if it never did within the bound.
pub async fn eventually_some<T, F, Fut>(mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..ATTEMPTS {
        if let Some(v) = probe().await {
            return Some(v);
        }
        tokio::time::sleep(STEP).await;
    }
    probe().await
}

/// [`eventually`] for code without a runtime (a child process, a server started by hand).
pub fn eventually_blocking<F: FnMut() -> bool>(mut condition: F) -> bool {
    for _ in 0..ATTEMPTS {
        if condition() {
            return true;
        }
        std::thread::sleep(STEP);
    }
    condition()
}
