//! The web console in Debian's headless Chromium, driven by Selenium
//! (`fixtures/console_driver.py`), against a real box: a held request
//! shows up live in every open console, is allowed from one page and the
//! box's very connection completes, while the other page sees the row go
//! and who decided; a deny gives the box its 403; a viewer sees rows it
//! cannot decide; a dropped socket reconnects to the current list (no
//! stale buttons); no inline script runs; a console link works once and
//! leaves no secret in the address bar; revoking the token that opened a
//! console signs it out.

use crate::common::console::{Browsers, console_link, screenshots_dir};
use crate::common::egress_site::*;
use crate::common::{Options, Paddock, run_python};
use serde_json::{Value, json};

fn options() -> Options {
    Options {
        login_profile: false,
        extra_toml: "[egress]\nhold_timeout_secs = 120\n[egress.hosts]\n\"upstream.test\" = [\"127.0.0.1\"]\n".into(),
        ..Options::default()
    }
}

async fn first_pending(p: &Paddock) -> Value {
    let (_, pending) = p.get("/api/v1/egress/pending").await;
    pending["requests"][0].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn people_decide_held_requests_live_in_the_console() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(options());
    create_box(&p, "cb", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    let (viewer_id, viewer) = p.mint(&["viewer"], None).await;
    let mut browsers = Browsers::start(&p);

    let link = console_link(&p, &p.admin_token).await;
    let opened = browsers.ask(&format!("open ada {link}"));
    assert!(
        opened["url"].as_str().unwrap().ends_with("/console"),
        "the link's secret left the address bar: {opened}"
    );
    // The link worked once.
    let secret = link.split('#').nth(1).unwrap();
    let again = crate::common::http()
        .post(format!("{}/console/signin", p.url))
        .form(&[("link", secret)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        403,
        "a console link opened a second session"
    );
    browsers.ask(&format!(
        "open bob {}",
        console_link(&p, &p.admin_token).await
    ));
    browsers.ask(&format!("open val {}", console_link(&p, &viewer).await));

    // Held: the row is live in every console; the viewer's cannot decide.
    // The agent asked ahead, and what it said is shown as its words, as
    // text.
    let (_, agent) = p.mint(&["agent"], None).await;
    let said = "<img src=x id=injected> need the docs";
    let filed = run_python(
        "mcp_client.py",
        &json!({"url": format!("{}/mcp", p.url), "token": agent, "calls": [
            ["request_egress", {"box_id": "cb", "destination": "upstream.test", "port": upstream.port, "reason": said}],
        ]}),
    );
    assert_eq!(
        filed["results"][0]["structured"]["status"], "pending",
        "{filed}"
    );
    let url = format!("http://upstream.test:{}/", upstream.port);
    let run = exec_later(&p, "cb", &format!("wget -q -O - {url}"));
    let row = browsers.ask("row ada upstream.test");
    let id = row["id"].as_str().unwrap().to_owned();
    let text = row["text"].as_str().unwrap();
    assert!(text.contains("box cb"), "{row}");
    assert!(text.contains("project proj"), "{row}");
    assert!(text.contains(&format!("agent says: {said}")), "{row}");
    assert_eq!(
        browsers.ask("injected ada")["found"],
        false,
        "the reason became markup"
    );
    let shots = screenshots_dir();
    if let Some(dir) = &shots {
        browsers.ask(&format!(
            "shot ada {}/console-pending.png 1100 640",
            dir.display()
        ));
        browsers.ask(&format!(
            "shot bob {}/console-pending-phone.png 390 760",
            dir.display()
        ));
    }
    assert_eq!(browsers.ask("row bob upstream.test")["id"], id.as_str());
    let seen_by_viewer = browsers.ask("row val upstream.test");
    assert_eq!(
        seen_by_viewer["enabled"],
        json!([false, false]),
        "{seen_by_viewer}"
    );

    // Allowed from one page: the box's connection completes, and the row
    // leaves the other page saying who decided. The verdict waits for the
    // box's connection to have joined the request asked ahead (a `once`
    // given before it arrived would leave it to be held anew).
    crate::common::wait_for(
        "the box's connection to join the request",
        std::time::Duration::from_secs(30),
        || async { (first_pending(&p).await["times_blocked"].as_u64() >= Some(2)).then_some(()) },
    )
    .await;
    browsers.ask(&format!("decide ada {id} allow once"));
    let out = run.await.unwrap();
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(out["stdout"].as_str().unwrap().contains(UPSTREAM_BODY));
    let decided = browsers.ask(&format!("gone bob {id}"));
    let line = decided["decided"].as_str().unwrap();
    assert!(line.contains("allow by token:"), "{line}");
    browsers.ask(&format!("gone val {id}"));

    // Denied from the page: the box hears 403.
    let run = exec_later(&p, "cb", &format!("wget -S -O - {url} 2>&1"));
    let row = browsers.ask("row bob upstream.test");
    let id = row["id"].as_str().unwrap().to_owned();
    browsers.ask(&format!("decide bob {id} deny once"));
    let out = run.await.unwrap();
    assert_ne!(out["exit_code"], 0, "{out}");
    assert!(out["stdout"].as_str().unwrap().contains("403"), "{out}");
    browsers.ask(&format!("gone ada {id}"));

    // The keyboard decides too: `p` picks the project scope, `a` allows.
    let run = exec_later(&p, "cb", &format!("wget -q -O - {url}"));
    let id = browsers.ask("row ada upstream.test")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    browsers.ask(&format!("key ada {id} p"));
    browsers.ask(&format!("key ada {id} a"));
    assert_eq!(run.await.unwrap()["exit_code"], 0);
    let (_, rules) = p.get("/api/v1/egress/rules").await;
    let rule = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target"] == "upstream.test")
        .cloned()
        .unwrap_or_else(|| panic!("no project rule from the keyboard: {rules}"));
    assert_eq!(rule["scope"], "project");
    let (status, _) = p
        .delete(&format!("/api/v1/egress/rules/{}", rule["id"]))
        .await;
    assert_eq!(status, 204);

    // A hold that arrives while the console's tab is in the background
    // counts in its title, until the tab is in front again.
    browsers.ask("hide bob");
    let run = exec_later(&p, "cb", &format!("wget -q -O - {url}"));
    let title = browsers.ask("title bob (1) Pending");
    assert!(
        title["title"].as_str().unwrap().starts_with("(1) "),
        "{title}"
    );
    let pending = first_pending(&p).await;
    let (status, body) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "cb", "request_id": pending["request_id"], "dest": pending["dest"], "action": "allow", "scope": "once"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(run.await.unwrap()["exit_code"], 0);
    assert_eq!(browsers.ask("front bob")["title"], "Pending · paddock");

    // A console whose socket dropped shows no live buttons, and on its
    // return shows the list as it is now: decided elsewhere meanwhile,
    // the row is gone.
    let run = exec_later(&p, "cb", &format!("wget -q -O - {url}"));
    let id = browsers.ask("row ada upstream.test")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dropped = browsers.ask("drop ada");
    assert!(
        dropped["cards"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["enabled"] == json!([false, false])),
        "{dropped}"
    );
    let pending = first_pending(&p).await;
    assert_eq!(pending["request_id"], id.as_str());
    let (status, body) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "cb", "request_id": id, "dest": pending["dest"], "action": "allow", "scope": "once"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(run.await.unwrap()["exit_code"], 0);
    let back = browsers.ask("reconnect ada");
    assert_eq!(back["cards"], json!([]), "stale rows after reconnecting");

    // The CSP is in force: an inline script does not run.
    let inline = browsers.ask("inline ada");
    assert_eq!(inline["ran"], false, "{inline}");

    if let Some(dir) = &shots {
        for page in ["boxes", "rules", "audit", "tokens"] {
            browsers.ask(&format!("get ada /console/{page}"));
            browsers.ask(&format!(
                "shot ada {}/console-{page}.png 1100 640",
                dir.display()
            ));
        }
    }

    // Revoking the token behind a console signs that console out.
    let (status, _) = p.delete(&format!("/api/v1/tokens/{viewer_id}")).await;
    assert_eq!(status, 200);
    browsers.ask("status val signed out");
    drop(browsers);
}
