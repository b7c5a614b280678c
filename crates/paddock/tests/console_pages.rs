//! The console's pages and forms over HTTP with a real session: every form
//! refuses a post without the session's CSRF token and changes nothing;
//! rules are added and checked exactly as REST checks them; a box's shield
//! is lowered and its log read; the audit log is filtered, paged and
//! exported as JSON Lines and CSV; tokens are revoked, ending the consoles
//! they opened.

use serde_json::Value;

use crate::common::console::{Session, session};
use crate::common::egress_site::create_box;
use crate::common::{Options, Paddock, raw_http};

async fn form(p: &Paddock, s: &Session, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let r = raw_http()
        .post(format!("{}{path}", p.url))
        .header("cookie", &s.cookie)
        .header("origin", &p.url)
        .form(fields)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn page(p: &Paddock, s: &Session, path: &str) -> (u16, String) {
    let r = raw_http()
        .get(format!("{}{path}", p.url))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn rules(p: &Paddock) -> Vec<Value> {
    let (_, body) = p.get("/api/v1/egress/rules").await;
    body["rules"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consoles_forms_do_what_the_api_does_and_only_from_the_page() {
    let p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    create_box(&p, "cp", "proj").await;
    let admin = session(&p, &p.admin_token).await;
    let csrf = admin.csrf.as_str();

    // Without the session's token: refused, nothing changes.
    let (status, _) = form(
        &p,
        &admin,
        "/console/rules",
        &[
            ("csrf", "forged"),
            ("target", "a.example"),
            ("action", "allow"),
            ("scope", "project"),
            ("subject", "proj"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    assert!(rules(&p).await.is_empty());
    // Checked as the API checks: a bad target changes nothing and says why.
    let (status, text) = form(
        &p,
        &admin,
        "/console/rules",
        &[
            ("csrf", csrf),
            ("target", "not a target"),
            ("action", "allow"),
            ("scope", "project"),
            ("subject", "proj"),
        ],
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("id=\"result\""), "{text}");
    assert!(rules(&p).await.is_empty());
    // A good one is there, credited to the session's token.
    let (status, _) = form(
        &p,
        &admin,
        "/console/rules",
        &[
            ("csrf", csrf),
            ("target", "api.example"),
            ("ports", "443"),
            ("action", "allow"),
            ("scope", "box"),
            ("subject", "cp"),
            ("ttl_secs", "600"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let added = rules(&p).await;
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["target"], "api.example");
    assert_eq!(added[0]["scope"], "box");
    assert!(added[0]["expires_at"].is_i64(), "{added:?}");
    assert!(
        added[0]["created_by"]
            .as_str()
            .unwrap()
            .starts_with("token:")
    );
    let (_, listed) = page(&p, &admin, "/console/rules").await;
    assert!(listed.contains("api.example"), "{listed}");
    let id = added[0]["id"].to_string();
    let (status, _) = form(
        &p,
        &admin,
        &format!("/console/rules/{id}/delete"),
        &[("csrf", "")],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = form(
        &p,
        &admin,
        &format!("/console/rules/{id}/delete"),
        &[("csrf", csrf)],
    )
    .await;
    assert_eq!(status, 303);
    assert!(rules(&p).await.is_empty());

    // A box's shield, and its log.
    let (status, _) = form(
        &p,
        &admin,
        "/console/boxes/cp/shield",
        &[("csrf", csrf), ("state", "down"), ("ttl_secs", "120")],
    )
    .await;
    assert_eq!(status, 303);
    let (_, boxes) = p.get("/api/v1/boxes/cp").await;
    assert_eq!(boxes["shield"], "down");
    let (status, text) = form(
        &p,
        &admin,
        "/console/boxes/cp/shield",
        &[("csrf", csrf), ("state", "sideways")],
    )
    .await;
    assert_eq!(status, 400, "{text}");
    let (status, listed) = page(&p, &admin, "/console/boxes").await;
    assert_eq!(status, 200);
    assert!(listed.contains("id=\"box-cp\""), "{listed}");
    let (status, _) = page(&p, &admin, "/console/boxes/cp/logs").await;
    assert_eq!(status, 200);

    // The audit log: the shield change is there, filtered and exported.
    let (status, audit) = page(&p, &admin, "/console/audit?box_id=cp&decision=shield_down").await;
    assert_eq!(status, 200);
    assert!(audit.contains("shield_down"), "{audit}");
    let (status, text) = page(&p, &admin, "/console/audit?decision=nonsense").await;
    assert_eq!(status, 400, "{text}");
    let (_, jsonl) = page(&p, &admin, "/console/audit/export?box_id=cp&format=jsonl").await;
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l["decision"] == "shield_down"),
        "{jsonl}"
    );
    let (_, csv) = page(&p, &admin, "/console/audit/export?box_id=cp&format=csv").await;
    assert!(csv.starts_with("id,at_ms,box_id,project,"), "{csv}");
    assert!(csv.contains(",cp,proj,"), "{csv}");

    // A token revoked from the page ends the consoles it opened.
    let (viewer_id, viewer) = p.mint(&["viewer"], None).await;
    let watching = session(&p, &viewer).await;
    let (status, _) = page(&p, &watching, "/console/rules").await;
    assert_eq!(status, 200);
    let (status, _) = page(&p, &watching, "/console/tokens").await;
    assert_eq!(status, 403, "a viewer has no admin:tokens");
    let (status, _) = form(
        &p,
        &admin,
        &format!("/console/tokens/{viewer_id}/revoke"),
        &[("csrf", csrf)],
    )
    .await;
    assert_eq!(status, 303);
    let (status, _) = page(&p, &watching, "/console/rules").await;
    assert_eq!(status, 401, "the revoked token's console lives on");
    let (_, tokens) = p.get("/api/v1/tokens").await;
    assert!(
        tokens["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == viewer_id.as_str() && t["revoked_at"].is_i64()),
        "{tokens}"
    );
}
