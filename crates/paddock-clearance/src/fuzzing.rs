//! Entry points for fuzzing what a client can send the clearance socket:
//! varlink frames, read by the same reader and dispatched by the same
//! service as on the socket, against a hub of the fuzzer's own. See
//! `paddock_egress::fuzzing` for how they are driven.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::varlink::codec::{Call, FrameReader};
use crate::{Hub, HubConfig};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    })
}

fn hub() -> &'static Arc<Hub> {
    static HUB: OnceLock<Arc<Hub>> = OnceLock::new();
    HUB.get_or_init(|| Hub::new(HubConfig::default()))
}

/// Bytes as a peer of the socket sends them: frames up to a small cap,
/// each a call the service answers.
pub fn varlink_frames(data: &[u8]) {
    let caller = paddock_iam::Identity::local_user(0, paddock_iam::Capabilities::all());
    runtime().block_on(async {
        let mut reader = FrameReader::new(data, 64 * 1024, Duration::from_millis(10));
        while let Ok(Some(frame)) = reader.next().await {
            let Ok(call) = serde_json::from_slice::<Call>(&frame) else {
                continue;
            };
            // A verdict waits for its holder's answer; the fuzzer's hub
            // holds nothing, so every verdict is refused at once.
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                crate::varlink::service::dispatch(hub(), "fuzz", &call, &caller),
            )
            .await;
        }
    });
}
