//! `/console`: the pending list. The page is a frame; the rows come live
//! from `/console/events` (a snapshot, then changes), so a reload, a
//! reconnect and a verdict from elsewhere all show the same truth.

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{Frame, Section};
use crate::AppState;
use crate::auth::Caller;

pub(crate) async fn page(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let frame = Frame::new(&s, &headers, &caller, Section::Pending);
    frame.render(
        StatusCode::OK,
        "<div class=\"bar\"><span id=\"status\" class=\"status\" role=\"status\">connecting…</span>\
         <span id=\"count\" class=\"muted\"></span>\
         <button type=\"button\" class=\"quiet\" id=\"notify\" hidden>Desktop notifications</button></div>\
         <p class=\"muted keys\">Keys: <kbd>j</kbd>/<kbd>k</kbd> move, <kbd>a</kbd> allow, \
         <kbd>d</kbd> deny, <kbd>o</kbd>/<kbd>b</kbd>/<kbd>p</kbd> scope once/box/project.</p>\
         <p id=\"viewer\" class=\"muted\" hidden>You may watch; deciding needs <code>egress:verdict</code>.</p>\
         <div id=\"pending\" class=\"cards\" aria-live=\"polite\"></div>\
         <p id=\"empty\" class=\"muted\" hidden>Nothing is waiting for a decision.</p>\
         <h2>Just decided</h2><ol id=\"decided\" class=\"decided\"></ol>\
         <noscript><p class=\"bad\">The live list needs JavaScript; \
         <code>paddock clearance</code> works in a terminal.</p></noscript>",
    )
}
