use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use paddock_store::Store;

use super::*;

fn iam_with_tokens(settings: IamSettings) -> (Iam, TokenBook) {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let regime: Arc<dyn Regime> =
        Arc::new(TokenRegime::new(store.clone(), 0, Duration::from_secs(30)));
    (
        Iam::new(settings, vec![regime], Some(TokenBook::new(store.clone()))),
        TokenBook::new(store),
    )
}

fn new_token(caps: &[&str], projects: Option<&[&str]>) -> NewToken {
    NewToken {
        name: "t".into(),
        capabilities: Capabilities::parse(caps.iter().copied()).unwrap(),
        projects: projects.map_or(ProjectScope::All, |p| ProjectScope::only(p.iter().copied())),
        ttl: None,
    }
}

fn boxed(project: &str) -> Resource {
    Resource::Box {
        id: "b1".into(),
        project: project.into(),
    }
}

#[tokio::test]
async fn a_token_authenticates_and_is_held_to_its_capabilities_and_projects() {
    let (iam, book) = iam_with_tokens(IamSettings::default());
    let (info, secret) = book
        .create(&new_token(&["agent"], Some(&["alpha"])))
        .unwrap();
    assert!(secret.starts_with("pdk_") && secret.len() >= 40);
    let id = iam
        .authenticate(Some(&secret), Surface::Rest)
        .await
        .unwrap();
    assert_eq!(&*id.principal, format!("token:{}", info.id));
    assert!(
        iam.authorise(&id, Capability::BoxExec, &boxed("alpha"))
            .await
            .is_ok()
    );
    let other = iam
        .authorise(&id, Capability::BoxExec, &boxed("beta"))
        .await;
    assert!(other.unwrap_err().0.contains("beta"));
    assert!(
        iam.authorise(&id, Capability::EgressVerdict, &boxed("alpha"))
            .await
            .is_err()
    );
    assert!(
        iam.authorise(&id, Capability::AdminTokens, &Resource::Global)
            .await
            .is_err()
    );

    assert_eq!(
        iam.authenticate(None, Surface::Rest).await.unwrap_err(),
        AuthError::Missing
    );
    let wrong = iam
        .authenticate(Some("pdk_nope"), Surface::Rest)
        .await
        .unwrap_err();
    assert!(matches!(wrong, AuthError::Rejected(_)));
    assert!(!wrong.to_string().contains("pdk_nope"));
}

/// What belongs to no project (a rule of a box that is gone) is for a
/// credential of every project only; a project-restricted one cannot reach
/// it by naming nothing.
#[tokio::test]
async fn what_belongs_to_no_project_needs_every_project() {
    let (iam, book) = iam_with_tokens(IamSettings::default());
    let (_, restricted) = book
        .create(&new_token(&["operator"], Some(&["alpha"])))
        .unwrap();
    let (_, everywhere) = book.create(&new_token(&["operator"], None)).unwrap();
    for (secret, allowed) in [(restricted, false), (everywhere, true)] {
        let id = iam
            .authenticate(Some(&secret), Surface::Rest)
            .await
            .unwrap();
        let decided = iam
            .authorise(&id, Capability::EgressRules, &Resource::EveryProject)
            .await;
        assert_eq!(decided.is_ok(), allowed, "{decided:?}");
        assert!(
            iam.authorise(
                &id,
                Capability::EgressRules,
                &Resource::Project("alpha".into())
            )
            .await
            .is_ok()
        );
    }
}

/// Every capability on every surface, for an admin token once it has been
/// used over MCP: whatever would let a box's traffic through (a verdict, a
/// rule, a lowered shield, a secret's binding) is refused; everything else
/// still works.
#[tokio::test]
async fn a_token_used_over_mcp_decides_no_egress_on_any_surface() {
    let (iam, book) = iam_with_tokens(IamSettings::default());
    let (_, admin) = book.create(&new_token(&["admin"], None)).unwrap();
    iam.authenticate(Some(&admin), Surface::Mcp).await.unwrap();
    let deciding = [
        Capability::EgressVerdict,
        Capability::EgressRules,
        Capability::EgressShield,
        Capability::SecretWrite,
        Capability::GitUpstream,
    ];
    for surface in [
        Surface::Rest,
        Surface::Mcp,
        Surface::WebSocket,
        Surface::Varlink,
        Surface::Page,
    ] {
        let id = iam.authenticate(Some(&admin), surface).await.unwrap();
        for capability in Capability::ALL {
            let resource = if capability.needs_every_project() {
                Resource::Global
            } else {
                boxed("x")
            };
            let got = iam.authorise(&id, capability, &resource).await;
            assert_eq!(
                got.is_err(),
                deciding.contains(&capability),
                "{capability} over {surface:?}: {got:?}"
            );
            assert_eq!(capability.decides_egress(), deciding.contains(&capability));
        }
    }
}

#[tokio::test]
async fn scoped_tokens_never_administer_and_mcp_never_decides_egress() {
    let (iam, book) = iam_with_tokens(IamSettings::default());
    let (_, scoped) = book.create(&new_token(&["*"], Some(&["alpha"]))).unwrap();
    let id = iam
        .authenticate(Some(&scoped), Surface::Rest)
        .await
        .unwrap();
    assert!(
        iam.authorise(&id, Capability::AdminTokens, &Resource::Global)
            .await
            .is_err()
    );

    let (_, admin) = book.create(&new_token(&["admin"], None)).unwrap();
    let rest = iam.authenticate(Some(&admin), Surface::Rest).await.unwrap();
    let mcp = iam.authenticate(Some(&admin), Surface::Mcp).await.unwrap();
    assert!(
        iam.authorise(&rest, Capability::EgressVerdict, &boxed("x"))
            .await
            .is_ok()
    );
    let refused = iam
        .authorise(&mcp, Capability::EgressVerdict, &boxed("x"))
        .await;
    assert!(refused.unwrap_err().0.contains("person"));
    assert!(
        iam.authorise(&mcp, Capability::BoxCreate, &Resource::Project("x".into()))
            .await
            .is_ok()
    );
    // Once used over MCP the token is the chatbot's on every surface.
    let again = iam.authenticate(Some(&admin), Surface::Rest).await.unwrap();
    let refused = iam
        .authorise(&again, Capability::EgressVerdict, &boxed("x"))
        .await;
    assert!(refused.unwrap_err().0.contains("used over MCP"));
    assert!(
        iam.authorise(
            &again,
            Capability::BoxCreate,
            &Resource::Project("x".into())
        )
        .await
        .is_ok()
    );

    let (open, book) = iam_with_tokens(IamSettings {
        mcp_may_decide_egress: true,
        ..IamSettings::default()
    });
    let (_, admin) = book.create(&new_token(&["admin"], None)).unwrap();
    let mcp = open.authenticate(Some(&admin), Surface::Mcp).await.unwrap();
    assert!(
        open.authorise(&mcp, Capability::EgressVerdict, &boxed("x"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn revocation_and_expiry_end_a_token_and_its_cached_decisions() {
    let (iam, book) = iam_with_tokens(IamSettings::default());
    let (info, secret) = book.create(&new_token(&["admin"], None)).unwrap();
    let id = iam
        .authenticate(Some(&secret), Surface::Rest)
        .await
        .unwrap();
    assert!(
        iam.authorise(&id, Capability::BoxRead, &Resource::Global)
            .await
            .is_ok()
    );
    let mut revocations = iam.revocations();
    iam.revoke(&info.id).unwrap();
    assert_eq!(
        &*revocations.try_recv().unwrap(),
        format!("token:{}", info.id)
    );
    let refused = iam
        .authenticate(Some(&secret), Surface::Rest)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("revoked"));
    assert!(matches!(
        iam.revoke("tok_missing"),
        Err(IamError::NoSuchToken(_))
    ));

    let mut expired = new_token(&["admin"], None);
    expired.ttl = Some(Duration::ZERO);
    let (_, secret) = book.create(&expired).unwrap();
    let refused = iam
        .authenticate(Some(&secret), Surface::Rest)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("expired"));
}

#[tokio::test]
async fn first_start_mints_one_admin_and_supplied_tokens_are_adopted_once() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let book = TokenBook::new(store.clone());
    let first = book.first_admin().unwrap().expect("an admin token");
    assert!(book.first_admin().unwrap().is_none());
    assert_eq!(book.list().unwrap()[0].capabilities, vec!["*"]);
    assert!(
        book.list()
            .unwrap()
            .iter()
            .all(|t| !format!("{t:?}").contains(&first))
    );

    let supplied = "a-supplied-admin-token-of-enough-length";
    let admin = new_token(&["admin"], None);
    assert!(book.adopt(&admin, supplied).unwrap().is_some());
    assert!(book.adopt(&admin, supplied).unwrap().is_none());
    assert!(matches!(
        book.adopt(&admin, "short"),
        Err(IamError::Invalid(_))
    ));
    assert!(matches!(
        book.create(&new_token(&[], None)),
        Err(IamError::Invalid(_))
    ));
}

/// A regime that counts the questions it is asked: stands in for a remote
/// one so the cache's reuse and TTL can be observed.
struct Counting {
    asked: AtomicUsize,
    ttl: Duration,
    fail: bool,
}

#[async_trait]
impl Regime for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn claims(&self, _: &str) -> bool {
        true
    }
    async fn authenticate(&self, c: &Credential<'_>) -> Result<Identity, AuthError> {
        Ok(Identity {
            principal: "p".into(),
            projects: ProjectScope::All,
            source: Source::Introspection,
            via: c.via,
            expires_at: None,
            regime: 0,
            grants: Capabilities::all(),
            used_over_mcp: false,
        })
    }
    async fn authorise(
        &self,
        _: &Identity,
        _: Capability,
        _: &Resource,
    ) -> Result<Decision, AuthError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        if self.fail {
            return Err(AuthError::Unavailable("down".into()));
        }
        Ok(Decision::allow(self.ttl))
    }
}

#[tokio::test]
async fn decisions_are_reused_for_their_ttl_and_a_failing_regime_refuses() {
    let counting = Arc::new(Counting {
        asked: AtomicUsize::new(0),
        ttl: Duration::from_millis(300),
        fail: false,
    });
    let iam = Iam::new(IamSettings::default(), vec![counting.clone()], None);
    let id = iam.authenticate(Some("x"), Surface::Rest).await.unwrap();
    for _ in 0..5 {
        iam.authorise(&id, Capability::BoxRead, &Resource::Global)
            .await
            .unwrap();
    }
    assert_eq!(counting.asked.load(Ordering::SeqCst), 1);
    iam.authorise(&id, Capability::BoxExec, &Resource::Global)
        .await
        .unwrap();
    assert_eq!(counting.asked.load(Ordering::SeqCst), 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while counting.asked.load(Ordering::SeqCst) == 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the decision never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        iam.authorise(&id, Capability::BoxRead, &Resource::Global)
            .await
            .unwrap();
    }

    // The cache clamps a regime's generous TTL.
    let long = Arc::new(Counting {
        asked: AtomicUsize::new(0),
        ttl: Duration::from_secs(3600),
        fail: false,
    });
    let clamped = Iam::new(
        IamSettings {
            max_decision_ttl: Duration::from_millis(200),
            ..IamSettings::default()
        },
        vec![long.clone()],
        None,
    );
    let id = clamped
        .authenticate(Some("x"), Surface::Rest)
        .await
        .unwrap();
    clamped
        .authorise(&id, Capability::BoxRead, &Resource::Global)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while long.asked.load(Ordering::SeqCst) == 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the clamp was not applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        clamped
            .authorise(&id, Capability::BoxRead, &Resource::Global)
            .await
            .unwrap();
    }

    let failing = Arc::new(Counting {
        asked: AtomicUsize::new(0),
        ttl: Duration::from_secs(60),
        fail: true,
    });
    let iam = Iam::new(IamSettings::default(), vec![failing.clone()], None);
    let id = iam.authenticate(Some("x"), Surface::Rest).await.unwrap();
    for _ in 0..2 {
        let refused = iam
            .authorise(&id, Capability::BoxRead, &Resource::Global)
            .await;
        assert!(refused.unwrap_err().0.contains("down"));
    }
    assert_eq!(
        failing.asked.load(Ordering::SeqCst),
        2,
        "a failure is not cached"
    );
}

#[test]
fn jwt_shapes() {
    assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
    assert!(!looks_like_jwt("pdk_abc"));
    assert!(!looks_like_jwt("a..b"));
    assert!(!looks_like_jwt("a.b.c.d"));
}
