//! The remote regimes against a loopback identity provider we started
//! (fixtures/oidc_issuer.py, built on joserfc): OIDC bearer JWTs with
//! discovery, JWKS rotation and every way a JWT can be wrong; RFC 7662
//! introspection with client pinning, its cache TTL, and an endpoint that
//! is down, slow or garbled — each a refusal.

use std::time::{Duration, Instant};

use crate::common::issuer::Issuer;
use crate::common::{Options, Paddock};
use serde_json::{Value, json};

fn paddock_for(issuer: &Issuer) -> Paddock {
    Paddock::start(Options {
        login_profile: false,
        extra_toml: format!(
            "[iam.oidc]\nissuer = \"{base}\"\naudience = \"paddock\"\nprojects_claim = \"projects\"\n\
             jwks_min_refresh_secs = 5\n\
             [iam.introspection]\nendpoint = \"{base}/introspect\"\nclient_id = \"paddock\"\n\
             client_secret = \"introspection-s3cret\"\nrequire_client_id = \"agent-cli\"\n\
             cache_ttl_secs = 2\ntimeout_secs = 1\nprojects_claim = \"projects\"\n",
            base = issuer.base
        ),
        ..Options::default()
    })
}

async fn status(p: &Paddock, token: &str, method: &str, path: &str) -> u16 {
    let client = crate::common::http();
    let request = match method {
        "POST" => client
            .post(format!("{}{path}", p.url))
            .json(&json!({"project": "alpha", "box_id": "never-made"})),
        _ => client.get(format!("{}{path}", p.url)),
    };
    request
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn claims(issuer: &Issuer, extra: Value) -> Value {
    let mut c = json!({"iss": issuer.base, "aud": "paddock", "sub": "alice", "scope": "box:read"});
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_bearer_tokens_are_verified_and_every_bad_one_refused() {
    let issuer = Issuer::start();
    let p = paddock_for(&issuer);

    let good = issuer.mint(claims(&issuer, json!({})), json!({})).await;
    assert_eq!(status(&p, &good, "GET", "/api/v1/boxes").await, 200);
    let me: Value = p
        .client_as(&good)
        .get(format!("{}/api/v1/whoami", p.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["principal"], "oidc:alice");
    assert_eq!(
        status(&p, &good, "POST", "/api/v1/boxes").await,
        403,
        "scope lacks box:create"
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let refused = [
        (
            "expired",
            claims(&issuer, json!({"exp": now - 600, "iat": now - 900})),
            json!({}),
        ),
        (
            "not yet valid",
            claims(&issuer, json!({"nbf": now + 600})),
            json!({}),
        ),
        (
            "wrong audience",
            claims(&issuer, json!({"aud": "someone-else"})),
            json!({}),
        ),
        (
            "wrong issuer",
            claims(&issuer, json!({"iss": "http://127.0.0.1:1"})),
            json!({}),
        ),
        (
            "no subject",
            json!({"iss": issuer.base, "aud": "paddock", "scope": "box:read"}),
            json!({}),
        ),
        (
            "alg none",
            claims(&issuer, json!({})),
            json!({"alg": "none"}),
        ),
        ("HMAC", claims(&issuer, json!({})), json!({"alg": "HS256"})),
        (
            "forged with our kid",
            claims(&issuer, json!({})),
            json!({"unpublished": true, "kid": "k1"}),
        ),
        (
            "unknown kid",
            claims(&issuer, json!({})),
            json!({"unpublished": true, "kid": "nobody"}),
        ),
    ];
    for (what, c, extra) in refused {
        let token = issuer.mint(c, extra).await;
        assert_eq!(
            status(&p, &token, "GET", "/api/v1/boxes").await,
            401,
            "{what}"
        );
    }
    let log = p.log();
    assert!(
        log.contains("the JWT has expired") && log.contains("another audience"),
        "reasons are logged"
    );
    assert!(!log.contains(&good), "a token reached the log");

    // Forged key ids do not make paddock hammer the issuer. The tokens are
    // minted first (each under a fresh RSA key, slow on a loaded machine),
    // then sent in a burst; the window the limit allows is reckoned from
    // the burst's own duration, not assumed.
    let mut storm = Vec::new();
    for i in 0..20 {
        storm.push(
            issuer
                .mint(
                    claims(&issuer, json!({})),
                    json!({"unpublished": true, "kid": format!("storm-{i}")}),
                )
                .await,
        );
    }
    let fetches = issuer.stat("jwks_fetches").await;
    let started = Instant::now();
    for t in &storm {
        assert_eq!(status(&p, t, "GET", "/api/v1/boxes").await, 401);
    }
    // One refetch at once, then at most one per jwks_min_refresh_secs (5).
    let allowed = 2 + started.elapsed().as_secs() / 5;
    let fetched = issuer.stat("jwks_fetches").await - fetches;
    assert!(
        fetched <= allowed,
        "refetches are rate-limited: {fetched} for 20 forged key ids in {:?}",
        started.elapsed()
    );

    // The issuer rotates its key: a token under the new kid makes paddock
    // refetch the key set (once the rate limit allows) and is accepted.
    issuer.control(json!({"op": "rotate", "kid": "k2"})).await;
    let rotated = issuer.mint(claims(&issuer, json!({})), json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(&p, &rotated, "GET", "/api/v1/boxes").await != 200 {
        assert!(
            Instant::now() < deadline,
            "the rotated key was never fetched"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A projects claim scopes the caller.
    let scoped = issuer
        .mint(
            claims(&issuer, json!({"scope": "admin", "projects": ["alpha"]})),
            json!({}),
        )
        .await;
    assert_eq!(status(&p, &scoped, "GET", "/api/v1/tokens").await, 403);
    assert_eq!(status(&p, &scoped, "GET", "/api/v1/boxes").await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn introspected_tokens_are_pinned_cached_and_refused_when_the_endpoint_fails() {
    let issuer = Issuer::start();
    let p = paddock_for(&issuer);
    let answer = |client: &str| json!({"active": true, "client_id": client, "sub": "agent-7", "scope": "agent"});
    for (token, a) in [
        ("opaque-good-token", answer("agent-cli")),
        ("opaque-other-client", answer("someone-else")),
        ("opaque-inactive", json!({"active": false})),
        ("opaque-after-ttl", answer("agent-cli")),
    ] {
        issuer
            .control(json!({"op": "opaque", "token": token, "answer": a}))
            .await;
    }
    assert_eq!(
        status(&p, "opaque-good-token", "GET", "/api/v1/boxes").await,
        200
    );
    assert_eq!(
        status(&p, "opaque-other-client", "GET", "/api/v1/boxes").await,
        401,
        "pinned client id"
    );
    assert_eq!(
        status(&p, "opaque-inactive", "GET", "/api/v1/boxes").await,
        401
    );
    assert_eq!(
        status(&p, "never-issued", "GET", "/api/v1/boxes").await,
        401
    );
    // An inactive answer is remembered: asking again spares the endpoint.
    let asked = issuer.stat("introspections").await;
    assert_eq!(
        status(&p, "never-issued", "GET", "/api/v1/boxes").await,
        401
    );
    assert_eq!(issuer.stat("introspections").await, asked);

    // Cached for its TTL: a second request does not reach the endpoint…
    assert_eq!(
        status(&p, "opaque-after-ttl", "GET", "/api/v1/boxes").await,
        200
    );
    let asked = issuer.stat("introspections").await;
    assert_eq!(
        status(&p, "opaque-after-ttl", "GET", "/api/v1/boxes").await,
        200
    );
    assert_eq!(
        issuer.stat("introspections").await,
        asked,
        "served from the cache"
    );
    // …and after it, paddock asks again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert_eq!(
            status(&p, "opaque-after-ttl", "GET", "/api/v1/boxes").await,
            200
        );
        if issuer.stat("introspections").await > asked {
            break;
        }
        assert!(Instant::now() < deadline, "the cache never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // An endpoint that fails is a refusal, never an allow — and not a
    // verdict on the token either: 503, try again.
    for (mode, token) in [
        ("down", "opaque-d"),
        ("garbage", "opaque-g"),
        ("slow", "opaque-s"),
    ] {
        issuer
            .control(json!({"op": "opaque", "token": token, "answer": answer("agent-cli")}))
            .await;
        issuer.control(json!({"op": "mode", "mode": mode})).await;
        let started = Instant::now();
        assert_eq!(
            status(&p, token, "GET", "/api/v1/boxes").await,
            503,
            "{mode}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{mode} took {:?}",
            started.elapsed()
        );
        if mode == "down" {
            // Right after a failure the endpoint is left alone for a moment.
            let asked = issuer.stat("introspections").await;
            assert_eq!(status(&p, "opaque-x", "GET", "/api/v1/boxes").await, 503);
            assert_eq!(issuer.stat("introspections").await, asked, "backed off");
        }
        issuer.control(json!({"op": "mode", "mode": "ok"})).await;
        // Once the back-off is over a good token gets through again (so the
        // next mode really reaches the endpoint).
        let probe = format!("probe-after-{mode}");
        issuer
            .control(json!({"op": "opaque", "token": probe, "answer": answer("agent-cli")}))
            .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while status(&p, &probe, "GET", "/api/v1/boxes").await != 200 {
            assert!(
                Instant::now() < deadline,
                "the endpoint was never asked again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let log = p.log();
    assert!(
        log.contains("cannot verify the credential"),
        "the reason is logged"
    );
    for token in ["opaque-good-token", "opaque-d", "opaque-s"] {
        assert!(!log.contains(token), "{token} reached the log");
    }
}
