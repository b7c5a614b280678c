//! Waiting until a long-lived child can serve, and not a moment past its
//! death: a child that dies while being waited on fails the wait at once
//! rather than when the timeout runs out.

use std::future::Future;
use std::time::Duration;

use crate::{Child, ChildrenError};

/// Polls `check` every `interval` until it says yes (Ok), `child` ends
/// (an error with its status) or `timeout` passes.
pub async fn wait_healthy<F, Fut>(
    child: &mut Child,
    name: &str,
    mut check: F,
    interval: Duration,
    timeout: Duration,
) -> Result<(), ChildrenError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return Ok(());
        }
        tokio::select! {
            status = child.ended() => {
                let status = match status {
                    Ok(s) => s.to_string(),
                    Err(e) => e.to_string(),
                };
                return Err(ChildrenError::EndedBeforeHealthy { name: name.to_owned(), status });
            }
            () = tokio::time::sleep_until(deadline) => {
                return Err(ChildrenError::NotHealthy {
                    name: name.to_owned(),
                    timeout_ms: timeout.as_millis() as u64,
                });
            }
            () = tokio::time::sleep(interval) => {}
        }
    }
}
