//! Versions between the CLI and the server: both report theirs, and each
//! refuses, clearly, an API it cannot serve or read.

use axum::Router;
use axum::http::HeaderMap;

use crate::common::{Options, Paddock, paddock_bin};

#[tokio::test(flavor = "multi_thread")]
async fn the_server_names_its_version_and_refuses_an_api_it_does_not_serve() {
    let p = Paddock::start(Options::default());
    let get = |api: Option<&'static str>| {
        let mut request = p.http.get(format!("{}/api/v1/boxes", p.url));
        if let Some(api) = api {
            request = request.header("paddock-api", api);
        }
        request.send()
    };
    // curl and scripts say nothing, and are served.
    let plain = get(None).await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["paddock-api"], "1");
    assert_eq!(
        plain.headers()["paddock-version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(get(Some("1")).await.unwrap().status(), 200);
    for (api, says) in [("2", "upgrade the server"), ("0", "upgrade the client")] {
        let refused = get(Some(api)).await.unwrap();
        assert_eq!(refused.status(), 400);
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "version_skew", "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{body}"
        );
    }

    let out = p.cli(&["version"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    let mine = env!("CARGO_PKG_VERSION");
    assert!(
        said.contains(&format!("client: paddock {mine} (API 1)")),
        "{said}"
    );
    assert!(
        said.contains(&format!("server: paddock {mine} (API 1) at {}", p.url)),
        "{said}"
    );
}

/// A stand-in for a paddock older than the CLI (none exists to run): it
/// answers every request as the boxes list, with the API header it is
/// given, or none.
async fn older_server(api: Option<&'static str>) -> String {
    let app = Router::new().fallback(move || async move {
        let mut headers = HeaderMap::new();
        if let Some(api) = api {
            headers.insert("paddock-api", api.parse().unwrap());
            headers.insert("paddock-version", "0.0.1".parse().unwrap());
        }
        (headers, "{\"boxes\": []}")
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_refuses_a_server_whose_api_it_cannot_read() {
    for (api, says) in [
        (Some("0"), "is 0.0.1 (API 0); this CLI"),
        (None, "did not say which paddock API it speaks"),
    ] {
        let url = older_server(api).await;
        let out = std::process::Command::new(paddock_bin())
            .args(["box", "ls", "--url", &url, "--token", "t"])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains(says), "{said}");
    }
}
