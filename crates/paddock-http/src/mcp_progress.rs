//! MCP progress notifications for a create whose image is being pulled:
//! sent when the client's request carried a progress token, in order (one
//! task forwards them), and only when the figure grew, as MCP asks.

use paddock_core::PullProgress;
use rmcp::model::ProgressNotificationParam;
use rmcp::service::{RequestContext, RoleServer};

/// A reporter for `create_reporting` that notifies the MCP client.
pub(crate) fn pull_reporter(
    context: &RequestContext<RoleServer>,
) -> impl Fn(PullProgress) + Send + Sync + use<> {
    let token = context.meta.get_progress_token();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PullProgress>();
    if let Some(token) = token {
        let peer = context.peer.clone();
        tokio::spawn(async move {
            let mut sent: Option<u64> = None;
            while let Some(p) = rx.recv().await {
                let figure = p.bytes_done + u64::from(p.layers_done);
                if sent.is_some_and(|s| figure <= s) {
                    continue;
                }
                sent = Some(figure);
                let mut note = ProgressNotificationParam::new(token.clone(), figure as f64);
                if p.bytes_total > 0 {
                    note.total = Some((p.bytes_total + u64::from(p.layers_total)) as f64);
                }
                note.message = Some(format!(
                    "pulling the image: {} of {} layers, {}",
                    p.layers_done, p.layers_total, p.status
                ));
                if peer.notify_progress(note).await.is_err() {
                    return;
                }
            }
        });
    }
    move |p: PullProgress| {
        let _ = tx.send(p);
    }
}
