//! The spoke's side of the work: what the hub asks of its boxes, done by
//! the spoke's own box service (its engine, gateway, firewall and DNS),
//! and the hub's verdicts applied in the spoke's own clearance hub, which
//! holds the connections.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use paddock_clearance::{ClearanceEvent, Hub, Subscription};
use paddock_core::remote::{FailureKind, LOCAL, RemoteCall, RemoteFailure, RemoteReply, ShieldSet};
use paddock_core::{BoxService, CoreError, CreateBox};
use paddock_docker::{Chunk, InteractiveExec, TerminalSignal};
use paddock_egress::{BoxIdentity, Egress};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use paddock_store::{AuditRow, Store};

/// The most decisions one frame carries.
const AUDIT_BATCH: u32 = 500;

use crate::streams::{FRAME_BYTES, STREAM_BUFFER, Streams, encode};
use crate::wire::{SpokeMessage, SpokeVerdict};

pub struct Local {
    boxes: Arc<BoxService>,
    hub: Arc<Hub>,
    /// The spoke's gateway (its boxes' shields), when egress is on.
    egress: Option<Arc<Egress>>,
    /// Terminals' input, by the hub's stream id.
    pub(crate) streams: Streams,
    /// The spoke's store: its gateway's decision log.
    store: Arc<Store>,
}

impl Local {
    pub fn new(
        boxes: Arc<BoxService>,
        hub: Arc<Hub>,
        egress: Option<Arc<Egress>>,
        store: Arc<Store>,
    ) -> Arc<Self> {
        Arc::new(Self {
            boxes,
            hub,
            egress,
            streams: Streams::default(),
            store,
        })
    }

    /// The gateway's decisions after `after` (at most a batch), and the
    /// last one's id; None when there are none.
    pub(crate) fn decisions_after(&self, after: i64) -> Option<(Vec<AuditRow>, i64)> {
        let rows = match self.store.egress_audit_after(after, AUDIT_BATCH) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the decision log for the hub");
                return None;
            }
        };
        let through_id = rows.last()?.id;
        Some((rows, through_id))
    }

    /// How many boxes the spoke has now.
    pub(crate) fn box_count(&self) -> u32 {
        self.boxes
            .list()
            .map(|b| u32::try_from(b.len()).unwrap_or(u32::MAX))
            .unwrap_or(0)
    }

    pub(crate) async fn handle(&self, call: RemoteCall) -> Result<RemoteReply, RemoteFailure> {
        let failure = |e: CoreError| RemoteFailure::from(&e);
        match call {
            RemoteCall::Create { request } => {
                // Always here: a spoke places nothing further.
                let request = CreateBox {
                    spoke: Some(LOCAL.to_owned()),
                    ..request
                };
                let created = self.boxes.create(request).await.map_err(failure)?;
                Ok(RemoteReply::Created(Box::new(created)))
            }
            RemoteCall::Get { box_id } => {
                let view = self.boxes.get_with_usage(&box_id).await.map_err(failure)?;
                Ok(RemoteReply::View(Box::new(self.with_shield(view))))
            }
            RemoteCall::List => {
                let views = self.boxes.list_with_usage().await.map_err(failure)?;
                Ok(RemoteReply::Views(
                    views.into_iter().map(|v| self.with_shield(v)).collect(),
                ))
            }
            RemoteCall::Exec { box_id, argv } => Ok(RemoteReply::Exec(
                self.boxes.exec_argv(&box_id, argv).await.map_err(failure)?,
            )),
            RemoteCall::Logs { box_id, tail } => Ok(RemoteReply::Logs(
                self.boxes.logs(&box_id, tail).await.map_err(failure)?,
            )),
            RemoteCall::Destroy { box_id } => {
                self.boxes.destroy(&box_id).await.map_err(failure)?;
                Ok(RemoteReply::Done)
            }
            RemoteCall::Stop { box_id } => Ok(RemoteReply::View(Box::new(
                self.boxes.stop(&box_id).await.map_err(failure)?,
            ))),
            RemoteCall::Start { box_id } => Ok(RemoteReply::View(Box::new(
                self.boxes.start(&box_id).await.map_err(failure)?,
            ))),
            RemoteCall::Shield {
                box_id,
                state,
                ttl_secs,
                by,
            } => self.shield(&box_id, &state, ttl_secs, &by),
            // Opened with the link's outbox at hand (`open_terminal`).
            RemoteCall::OpenTerminal { .. } => Err(RemoteFailure {
                kind: FailureKind::Invalid,
                message: "a terminal is opened on a stream".into(),
            }),
            RemoteCall::ResizeTerminal {
                exec_id,
                cols,
                rows,
            } => {
                self.boxes
                    .resize_terminal(&exec_id, cols, rows)
                    .await
                    .map_err(failure)?;
                Ok(RemoteReply::Done)
            }
            RemoteCall::SignalTerminal { exec_id, signal } => {
                let signal = TerminalSignal::parse(&signal).ok_or_else(|| RemoteFailure {
                    kind: FailureKind::Invalid,
                    message: format!("no signal {signal:?}"),
                })?;
                self.boxes
                    .signal_terminal(&exec_id, signal)
                    .await
                    .map_err(failure)?;
                Ok(RemoteReply::Done)
            }
            RemoteCall::RenewActivation { box_id } => Ok(RemoteReply::ActivationUrl(
                self.boxes
                    .renew_activation_link(&box_id)
                    .await
                    .map_err(failure)?,
            )),
            RemoteCall::TerminalExit { exec_id } => Ok(RemoteReply::ExitCode(
                self.boxes
                    .terminal_exit_code(&exec_id)
                    .await
                    .map_err(failure)?,
            )),
        }
    }

    /// Opens a terminal in the box; its output goes to the hub on
    /// `stream` through `outbox`, and what arrives on it is typed in.
    pub(crate) async fn open_terminal(
        &self,
        call: RemoteCall,
        outbox: mpsc::Sender<SpokeMessage>,
    ) -> Result<RemoteReply, RemoteFailure> {
        let RemoteCall::OpenTerminal {
            box_id,
            command,
            term,
            cols,
            rows,
            stream,
        } = call
        else {
            return self.handle(call).await;
        };
        let exec = self
            .boxes
            .open_terminal(&box_id, command.as_deref(), &term, (cols, rows))
            .await
            .map_err(|e| RemoteFailure::from(&e))?;
        let InteractiveExec {
            exec_id,
            mut output,
            mut input,
        } = exec;
        let (typed, mut arriving) = mpsc::channel::<Bytes>(STREAM_BUFFER);
        self.streams.insert(stream, typed);
        tokio::spawn(async move {
            while let Some(bytes) = arriving.recv().await {
                if input.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = input.shutdown().await;
        });
        let streams = self.streams.clone();
        tokio::spawn(async move {
            while let Some(Ok(Chunk::Stdout(bytes) | Chunk::Stderr(bytes))) = output.next().await {
                for piece in bytes.chunks(FRAME_BYTES) {
                    let frame = SpokeMessage::StreamData {
                        stream,
                        data: encode(piece),
                    };
                    if outbox.send(frame).await.is_err() {
                        streams.end(stream);
                        return;
                    }
                }
            }
            let _ = outbox.send(SpokeMessage::StreamEnd { stream }).await;
            streams.end(stream);
        });
        Ok(RemoteReply::Terminal(exec_id))
    }

    /// The view with the shield this spoke's gateway has for the box.
    fn with_shield(&self, mut view: paddock_core::BoxView) -> paddock_core::BoxView {
        if let Some(egress) = &self.egress {
            let shield = egress.shield_of(&view.box_id);
            view.shield = Some(shield.as_str().to_owned());
            view.shield_until_ms = shield.until_ms();
        }
        view
    }

    fn shield(
        &self,
        box_id: &str,
        state: &str,
        ttl_secs: Option<u64>,
        by: &str,
    ) -> Result<RemoteReply, RemoteFailure> {
        let refused = |message: String| RemoteFailure {
            kind: FailureKind::Invalid,
            message,
        };
        let egress = self
            .egress
            .as_ref()
            .ok_or_else(|| refused("egress is disabled on this spoke".into()))?;
        let view = self
            .boxes
            .get_here(box_id)
            .map_err(|e| RemoteFailure::from(&e))?;
        let who = BoxIdentity {
            box_id: view.box_id,
            project: view.project,
        };
        let set = egress
            .set_shield(&who, state, ttl_secs.map(Duration::from_secs), by)
            .map_err(|e| refused(e.to_string()))?;
        Ok(RemoteReply::Shield(ShieldSet {
            state: set.as_str().to_owned(),
            until_ms: set.until_ms(),
        }))
    }

    /// Applies the hub's verdict to the request the spoke holds; the
    /// spoke's hub checks it as any other (the request must be held and
    /// the box and destination must be the ones it announced).
    pub(crate) async fn verdict(&self, v: SpokeVerdict) -> Result<(), String> {
        self.hub.apply_relayed(v, "hub").await
    }

    pub(crate) fn subscribe(&self) -> Subscription {
        self.hub.subscribe()
    }

    /// The requests the spoke holds now, as announced (a hub that
    /// reconnects learns of them again).
    pub(crate) fn held(&self) -> Vec<ClearanceEvent> {
        self.hub.pending().into_iter().map(|p| p.event).collect()
    }
}
