//! `GET /api/v1/worldview`: what an operator looks at first — every box
//! with its shield, the networks, requests waiting for a person, the hub's
//! subscribers and their queues, the processes paddock runs and which of
//! them crashed lately, and each component's health — in one
//! answer, so `paddock status` needs one request and no joining.
//!
//! A caller limited to some projects sees their boxes, networks and
//! requests only; subscribers and health name no project. Nothing in it
//! is a secret or a token: boxes are their public views, requests their
//! pending views.

use std::sync::OnceLock;
use std::time::Instant;

use axum::Json;
use axum::extract::{Extension, State};
use serde_json::{Value, json};

use crate::routes::Routes;
use crate::{ApiError, AppState, Caller};

pub(crate) fn routes(routes: Routes) -> Routes {
    routes.bind("GET /api/v1/worldview", worldview)
}

/// When this process began serving: the worldview's uptime.
static SERVING_SINCE: OnceLock<Instant> = OnceLock::new();

pub(crate) fn started() {
    SERVING_SINCE.get_or_init(Instant::now);
}

async fn worldview(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    // Health first: it waits on the engine and sockets, and everything
    // after it is read from memory and the store in a moment.
    let (up, components) = crate::health::components(&s).await;
    let mut boxes = s.boxes.list()?;
    boxes.retain(|b| caller.sees(&b.project));
    let mut networks = s.boxes.networks()?;
    let seen: std::collections::HashSet<&str> = boxes.iter().map(|b| b.box_id.as_str()).collect();
    networks.held.retain(|n| seen.contains(n.box_id.as_str()));
    let boxes: Vec<Value> = boxes
        .iter()
        .map(|b| crate::rest::with_shield(&s, b))
        .collect();
    let pending = crate::egress::visible_pending(&s, &caller);
    let subscribers = s.hub.subscriber_queues();
    let mut networks = serde_json::to_value(&networks).unwrap_or_default();
    if !caller.sees_every_project()
        && let Some(fields) = networks.as_object_mut()
    {
        // Spares belong to no project yet, but how many there are is the
        // instance's business.
        fields.remove("spare");
        fields.remove("making");
    }
    // What paddock runs as processes is named after projects (a
    // repository's import, an upstream push): the instance's business.
    let children = caller.sees_every_project().then(|| {
        let supervisor = paddock_children::global();
        json!({
            "running": supervisor.running(),
            "recent_crashes": supervisor.recent_crashes(),
        })
    });
    // Which machines are linked is the instance's business too.
    let spokes = match (&s.spokes, caller.sees_every_project()) {
        (Some(spokes), true) => Some(spokes.list()?),
        _ => None,
    };
    Ok(Json(json!({
        "at": at,
        "version": env!("CARGO_PKG_VERSION"),
        "instance": s.boxes.instance(),
        "uptime_secs": SERVING_SINCE.get().map_or(0, |t| t.elapsed().as_secs()),
        "status": if up { "ok" } else { "unavailable" },
        "components": components,
        "boxes": boxes,
        "networks": networks,
        "pending": pending,
        "subscribers": subscribers,
        "children": children,
        "spokes": spokes,
    })))
}
