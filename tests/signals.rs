//! `server::shutdown_signal` installs its handlers when called, not when first polled.
//!
//! Its own test binary: the signal goes to this whole process. Before the fix the handler
//! was installed on first poll, so this SIGTERM killed the test binary (a failed test).

use std::time::Duration;

#[tokio::test]
async fn sigterm_between_call_and_first_poll_is_caught() {
    let signal = zweck::server::shutdown_signal();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(60), signal)
        .await
        .expect("the SIGTERM sent before the first poll completes the future");
}
