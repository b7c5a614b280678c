//! The real agent image: Claude Code's and Codex's own logins, run by
//! paddock as their shipped profiles say, reach the activation page. This
//! machine reaches no identity provider, and the tests make sure nothing
//! tries: what the logins reach is held (nothing is allowed for them),
//! a person denies it, and the box and its page say why the login failed,
//! in the agent's own words.

use serde_json::{Value, json};

use crate::common::activation::{decide, held_to, page, send_code};
use crate::common::{Options, Paddock, agent_image, agent_profiles_held_toml, wait_for_state};

fn options() -> Options {
    Options {
        login_profile: false,
        extra_toml: agent_profiles_held_toml(),
        ..Options::default()
    }
}

async fn create(p: &Paddock, box_id: &str, image: &str) -> Value {
    let (status, body) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": box_id, "image": image}),
        )
        .await;
    assert_eq!(status, 201, "create: {body}; log:\n{}", p.log());
    assert_eq!(body["state"], "pending_activation", "{body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_codes_login_shows_its_url_and_takes_the_pasted_code() {
    let image = format!("{}:claude", agent_image());
    let p = Paddock::start(options());
    let created = create(&p, "claude-1", &image).await;
    let url = crate::common::activation_url(&created);

    let (status, _, html) = page(&p, &url).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("href=\"https://claude.ai/oauth/authorize?"),
        "{html}"
    );
    assert!(html.contains("name=\"code\""), "{html}");

    // The code goes to `claude auth login`, which trades it with its
    // provider: that connection is held, and a person denies it.
    let answer = send_code(&p, &url, "not-a-real-code#not-a-real-state").await;
    let html = answer.text().await.unwrap();
    assert!(html.contains("platform.claude.com:443"), "{html}");
    let held = held_to(&p, "claude-1", "platform.claude.com").await;
    decide(&p, "claude-1", &held, "deny").await;

    wait_for_state(&p, "claude-1", "failed").await;
    let (_, got) = p.get("/api/v1/boxes/claude-1").await;
    let error = got["error"].as_str().unwrap_or_default();
    assert!(
        // Its last line: the prompt it printed, then its answer.
        error.starts_with("the login command exited with 1: ")
            && error.contains("Couldn't log in: proxy refused the connection"),
        "{got}"
    );
    assert!(!error.contains("not-a-real-code"), "{error}");
    let (status, _, html) = page(&p, &url).await;
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("Couldn&#39;t log in") || html.contains("Couldn't log in"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn codexs_device_login_waits_on_its_provider_and_says_why_it_failed() {
    let image = format!("{}:codex", agent_image());
    let p = Paddock::start(options());
    let created = create(&p, "codex-1", &image).await;
    let url = crate::common::activation_url(&created);

    // Codex asks its provider for a user code before it prints anything:
    // the page says the login is starting, and what it waits for.
    let held = held_to(&p, "codex-1", "auth.openai.com").await;
    let (status, _, html) = page(&p, &url).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("login is starting"), "{html}");
    assert!(html.contains("auth.openai.com:443"), "{html}");
    decide(&p, "codex-1", &held, "deny").await;

    wait_for_state(&p, "codex-1", "failed").await;
    let (_, got) = p.get("/api/v1/boxes/codex-1").await;
    let error = got["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(
            "the login command exited with 1 before showing a sign-in URL: Error logging in"
        ),
        "{got}"
    );
    let (status, _, html) = page(&p, &url).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("Error logging in"), "{html}");
}
