//! Components of `paddock serve`, started in order and stopped in reverse,
//! each under its own deadline so one stuck component cannot hold the rest.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Component {
    name: &'static str,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

pub struct Components {
    components: Vec<Component>,
    stop_timeout: Duration,
    /// Cancelled when any component ends on its own (a crash, in effect).
    failed: CancellationToken,
}

impl Components {
    pub fn new(stop_timeout: Duration) -> Self {
        Self {
            components: Vec::new(),
            stop_timeout,
            failed: CancellationToken::new(),
        }
    }

    /// Starts `run`, which must return when its token is cancelled.
    pub fn start<F, Fut>(&mut self, name: &'static str, run: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let fut = run(stop.clone());
        let failed = self.failed.clone();
        let watched = stop.clone();
        let handle = tokio::spawn(async move {
            fut.await;
            if !watched.is_cancelled() {
                tracing::error!(component = name, "component stopped unexpectedly");
                failed.cancel();
            }
        });
        tracing::debug!(component = name, "started");
        self.components.push(Component { name, stop, handle });
    }

    /// Resolves when a component ended without being asked to.
    pub fn failure(&self) -> CancellationToken {
        self.failed.clone()
    }

    /// Stops components newest first. A component past its deadline is
    /// aborted and named in the log.
    pub async fn shutdown(self) {
        for component in self.components.into_iter().rev() {
            component.stop.cancel();
            let mut handle = component.handle;
            match tokio::time::timeout(self.stop_timeout, &mut handle).await {
                Ok(_) => tracing::debug!(component = component.name, "stopped"),
                Err(_) => {
                    handle.abort();
                    tracing::warn!(
                        component = component.name,
                        timeout_secs = self.stop_timeout.as_secs(),
                        "did not stop in time; aborted"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stuck_component_cannot_hold_shutdown() {
        let mut sup = Components::new(Duration::from_millis(100));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        sup.start("polite", |stop| async move {
            stop.cancelled().await;
            let _ = tx.send(());
        });
        sup.start("stuck", |_stop| std::future::pending());
        tokio::time::timeout(Duration::from_secs(5), sup.shutdown())
            .await
            .expect("shutdown finished despite the stuck component");
        rx.await.expect("the polite component was stopped too");
    }

    #[tokio::test]
    async fn a_component_ending_early_is_reported() {
        let mut sup = Components::new(Duration::from_millis(100));
        sup.start("crashes", |_stop| async {});
        tokio::time::timeout(Duration::from_secs(5), sup.failure().cancelled())
            .await
            .expect("failure signalled");
    }
}
