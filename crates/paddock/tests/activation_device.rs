//! The device-code login shape (Codex's `login --device-auth`): the page
//! shows the verification URL and the user code, nothing is pasted, and
//! the box is ready when the login notices the sign-in itself. And a
//! login that cannot reach its provider: held like any connection, then
//! the box and its page say why it failed, in the login's own words.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::activation::{decide, held_to, page, send_code};
use crate::common::egress_site::{add_rule, create_box};
use crate::common::{Options, Paddock, test_image, wait_for_state};

const USER_CODE: &str = "WXYZ-23456";

/// A stand-in identity provider on loopback: hands out `USER_CODE` and
/// answers the login's polls with 200 once `approve` is called (400
/// before, as a provider answers "authorization pending").
struct DeviceProvider {
    port: u16,
    approved: Arc<AtomicBool>,
    /// Requests that reached it.
    asked: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl DeviceProvider {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let approved = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(AtomicUsize::new(0));
        let flag = approved.clone();
        let count = asked.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let flag = flag.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 2048];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(n) if n > 0 => request.extend_from_slice(&buf[..n]),
                            _ => return,
                        }
                    }
                    let line = String::from_utf8_lossy(&request);
                    let (status, body) = if line.contains("/usercode ") {
                        ("200 OK", USER_CODE)
                    } else if flag.load(Ordering::SeqCst) {
                        ("200 OK", "signed in")
                    } else {
                        ("400 Bad Request", "authorization_pending")
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        Self {
            port,
            approved,
            asked,
            task,
        }
    }

    fn approve(&self) {
        self.approved.store(true, Ordering::SeqCst);
    }
}

impl Drop for DeviceProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A device-code profile for the test image, its provider reached as
/// `idp.test` (loopback); `destinations` is what the login may reach
/// while it runs.
fn device_login(port: u16, destinations: &str) -> Options {
    let image = test_image();
    Options {
        login_profile: false,
        extra_toml: format!(
            "[egress]\nhold_timeout_secs = 30\n[egress.hosts]\n\"idp.test\" = [\"127.0.0.1\"]\n\
             [[profiles]]\nimage = \"{image}\"\nlogin = \"device_code\"\n\
             login_command = [\"/bin/sh\", \"-c\", \"FAKE_IDP=http://idp.test:{port} exec /usr/local/bin/fake-device-login\"]\n\
             url_pattern = 'https://auth\\.paddock\\.test/codex/device\\S*'\n\
             user_code_pattern = 'one-time code[^\\n]*\\n\\s*(\\S+)'\n\
             login_destinations = [{destinations}]\n"
        ),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_code_login_shows_its_code_and_finishes_by_itself() {
    let idp = DeviceProvider::start().await;
    let p = Paddock::start(device_login(
        idp.port,
        &format!("\"127.0.0.1:{}\"", idp.port),
    ));
    let created = create_box(&p, "dev-1", "demo").await;
    assert_eq!(created["state"], "pending_activation", "{created}");
    let url = crate::common::activation_url(&created);

    // The page shows where to go and what to enter there, no form, and
    // follows the login by reloading itself.
    let (status, refresh, html) = page(&p, &url).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("https://auth.paddock.test/codex/device"),
        "{html}"
    );
    assert!(
        html.contains(&format!("id=\"user-code\">{USER_CODE}<")),
        "{html}"
    );
    assert!(!html.contains("name=\"code\""), "nothing to paste: {html}");
    assert_eq!(refresh.as_deref(), Some("3"));

    // A code posted anyway is refused, and spends nothing.
    let posted = send_code(&p, &url, "anything").await;
    assert_eq!(posted.status(), 400);
    assert!(posted.text().await.unwrap().contains("takes no code"));
    let (status, _, html) = page(&p, &url).await;
    assert_eq!(status, 200);
    assert!(html.contains(USER_CODE), "the link still works: {html}");

    // The person signs in at the provider; the login notices by itself.
    idp.approve();
    wait_for_state(&p, "dev-1", "ready").await;
    let (status, _, html) = page(&p, &url).await;
    assert_eq!(status, 200);
    assert!(html.contains("Box activated"), "{html}");

    // The code and the URL were for the page alone.
    let (_, got) = p.get("/api/v1/boxes/dev-1").await;
    let (_, list) = p.get("/api/v1/boxes").await;
    for text in [got.to_string(), list.to_string(), p.log()] {
        assert!(!text.contains(USER_CODE), "user code leaked: {text}");
        assert!(
            !text.contains("auth.paddock.test/codex"),
            "URL leaked: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_that_cannot_reach_its_provider_fails_the_box_in_its_own_words() {
    let idp = DeviceProvider::start().await;
    // Nothing allowed for the login: its first request is held.
    let p = Paddock::start(device_login(idp.port, ""));
    add_rule(
        &p,
        json!({"project": "demo", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    let created = create_box(&p, "dev-2", "demo").await;
    assert_eq!(
        created["state"], "pending_activation",
        "the box is handed over while its login waits: {created}"
    );
    let url = crate::common::activation_url(&created);

    // The page says the login is starting, and what it waits for.
    let held = held_to(&p, "dev-2", "idp.test").await;
    let (status, refresh, html) = page(&p, &url).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(refresh.as_deref(), Some("3"));
    assert!(html.contains("login is starting"), "{html}");
    assert!(html.contains(&format!("idp.test:{}", idp.port)), "{html}");

    // A person denies it: the login fails, and says why.
    decide(&p, "dev-2", &held, "deny").await;
    wait_for_state(&p, "dev-2", "failed").await;
    let (_, got) = p.get("/api/v1/boxes/dev-2").await;
    let error = got["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("exited with 1 before showing a sign-in URL")
            && error.contains("Error logging in: error sending request"),
        "{got}"
    );
    let (status, _, html) = page(&p, &url).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("Error logging in"), "{html}");
    assert_eq!(
        idp.asked.load(Ordering::SeqCst),
        0,
        "denied: nothing reached the provider"
    );
}
