//! Creates and destroys failing at each engine step, and what the next
//! start finds.

use std::sync::Arc;

use paddock_store::{BoxState, Store};

use crate::fake_engine::{FakeEngine, Fault, Step, assert_nothing_left, new_box, paddock};

/// The engine calls of a create, in order: the network, the container,
/// its files, its start. (A network made by this run needs no lookup of
/// its addresses; `NetworkAddresses` is for networks of an earlier run.)
const CREATE_STEPS: [Step; 5] = [
    Step::ImageCommand,
    Step::CreateNetwork,
    Step::CreateContainer,
    Step::UploadFiles,
    Step::StartContainer,
];

#[tokio::test]
async fn a_create_failing_at_any_step_leaves_nothing_behind() {
    for step in CREATE_STEPS {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let engine = Arc::new(FakeEngine::default());
        let service = paddock(&store, &engine);
        engine.fail(step, Fault::Once);
        let Err(err) = service.create(new_box("b1")).await else {
            panic!("a create whose {step:?} failed succeeded");
        };
        assert!(err.to_string().contains("injected"), "{step:?}: {err}");
        assert!(engine.faults.lock().is_empty(), "{step:?} was reached");
        assert_nothing_left(&store, &engine, &format!("create failing at {step:?}"));
        // The id is free again, and the next create works.
        let created = service.create(new_box("b1")).await.unwrap();
        assert_eq!(created.view.state, BoxState::Ready, "{step:?}");
        assert_eq!(engine.counts(), (1, 1));
        service.destroy("b1").await.unwrap();
        assert_nothing_left(&store, &engine, &format!("destroy after {step:?}"));
    }
}

#[tokio::test]
async fn a_destroy_failing_at_any_step_is_journalled_and_finished_at_the_next_start() {
    for step in [
        Step::ListLabelled,
        Step::RemoveContainer,
        Step::RemoveNetwork,
    ] {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let engine = Arc::new(FakeEngine::default());
        let service = paddock(&store, &engine);
        service.create(new_box("b1")).await.unwrap();
        engine.fail(step, Fault::Always);
        assert!(service.destroy("b1").await.is_err(), "{step:?}");
        let row = store
            .get_box("b1")
            .unwrap()
            .expect("the row is the journal");
        assert_eq!(row.state, BoxState::Destroying, "{step:?}");
        // paddock stops; the engine recovers; the next start finishes.
        drop(service);
        engine.heal();
        let restarted = paddock(&store, &engine);
        let report = restarted.reconcile().await.unwrap();
        assert_eq!(report.finished, vec!["b1".to_owned()], "{step:?}");
        assert_nothing_left(&store, &engine, &format!("restart after {step:?}"));
    }
}

#[tokio::test]
async fn a_failed_create_whose_teardown_fails_too_is_finished_at_the_next_start() {
    for (create_step, teardown_step) in [
        (Step::StartContainer, Step::RemoveContainer),
        (Step::UploadFiles, Step::ListLabelled),
        (Step::CreateContainer, Step::RemoveNetwork),
    ] {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let engine = Arc::new(FakeEngine::default());
        let service = paddock(&store, &engine);
        engine.fail(create_step, Fault::Once);
        engine.fail(teardown_step, Fault::Always);
        assert!(service.create(new_box("b1")).await.is_err());
        let row = store.get_box("b1").unwrap();
        assert!(
            row.is_some(),
            "{create_step:?}+{teardown_step:?}: the unfinished teardown keeps its row"
        );
        // Nobody can take the id while its objects may still exist.
        engine.heal();
        let again = service.create(new_box("b1")).await.unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        drop(service);
        let restarted = paddock(&store, &engine);
        restarted.reconcile().await.unwrap();
        assert_nothing_left(
            &store,
            &engine,
            &format!("restart after {create_step:?}+{teardown_step:?}"),
        );
    }
}

#[tokio::test]
async fn boxes_that_lost_their_container_are_dropped_and_strangers_reported() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let engine = Arc::new(FakeEngine::default());
    let service = paddock(&store, &engine);
    service.create(new_box("kept")).await.unwrap();
    service.create(new_box("lost")).await.unwrap();
    let lost = store
        .get_box("lost")
        .unwrap()
        .unwrap()
        .container_id
        .unwrap();
    engine.objects.lock().containers.remove(&lost);
    drop(service);
    let restarted = paddock(&store, &engine);
    let report = restarted.reconcile().await.unwrap();
    assert_eq!(report.restored, 1);
    assert_eq!(report.dropped, vec!["lost".to_owned()]);
    assert!(store.get_box("lost").unwrap().is_none());
    assert_eq!(engine.counts(), (1, 1), "the kept box keeps its objects");
}

#[tokio::test]
async fn an_image_the_engine_lacks_is_named_and_nothing_is_made() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let engine = Arc::new(FakeEngine::default());
    let service = paddock(&store, &engine);
    let mut req = new_box("b1");
    req.image = Some("missing:latest".into());
    let err = service.create(req).await.unwrap_err();
    assert!(
        matches!(&err, paddock_core::CoreError::ImageNotFound(i) if i == "missing:latest"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("docker pull missing:latest"),
        "{err}"
    );
    assert_nothing_left(&store, &engine, "a create of a missing image");
}

#[tokio::test]
async fn a_runtime_the_engine_lacks_is_named_and_nothing_is_made() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let engine = Arc::new(FakeEngine::default());
    let service = paddock(&store, &engine);
    let mut req = new_box("b1");
    req.runtime = Some("kata".into());
    let err = service.create(req).await.unwrap_err();
    assert!(
        matches!(&err, paddock_core::CoreError::RuntimeNotInstalled { runtime, known } if runtime == "kata" && known == "runc"),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"kata\""), "{err}");
    assert_nothing_left(&store, &engine, "a create under a missing runtime");

    // A runtime the engine knows is kept on the box and shown.
    let mut req = new_box("b2");
    req.runtime = Some("runc".into());
    req.read_only = Some(true);
    let made = service.create(req).await.unwrap();
    assert_eq!(made.view.runtime.as_deref(), Some("runc"));
    assert!(made.view.read_only);
    let row = store.get_box("b2").unwrap().unwrap();
    assert_eq!(
        (row.runtime.as_deref(), row.read_only),
        (Some("runc"), true)
    );
}

#[tokio::test]
async fn an_image_is_pulled_as_its_policy_says_before_anything_is_made() {
    use paddock_core::config::PullPolicy;
    let store = Arc::new(Store::open_in_memory().unwrap());
    let engine = Arc::new(FakeEngine::default());
    let service = paddock(&store, &engine);

    // `never`: missing stays missing, and nothing is made.
    let mut req = new_box("b1");
    req.image = Some("pullable:latest".into());
    req.pull = Some(PullPolicy::Never);
    let err = service.create(req).await.unwrap_err();
    assert!(
        matches!(err, paddock_core::CoreError::ImageNotFound(_)),
        "{err:?}"
    );
    assert!(engine.pulled.lock().is_empty());
    assert_nothing_left(&store, &engine, "a create that may not pull");

    // `missing` (the default): pulled once, with its progress told.
    let seen = std::sync::Mutex::new(Vec::new());
    let mut req = new_box("b2");
    req.image = Some("pullable:latest".into());
    service
        .create_reporting(req, &|p| seen.lock().unwrap().push(p))
        .await
        .unwrap();
    assert_eq!(*engine.pulled.lock(), vec!["pullable:latest".to_owned()]);
    assert_eq!(seen.lock().unwrap().len(), 1);

    // Present now: `missing` does not pull again, `always` does.
    let mut req = new_box("b3");
    req.image = Some("pullable:latest".into());
    service.create(req).await.unwrap();
    assert_eq!(engine.pulled.lock().len(), 1);
    let mut req = new_box("b4");
    req.image = Some("pullable:latest".into());
    req.pull = Some(PullPolicy::Always);
    service.create(req).await.unwrap();
    assert_eq!(engine.pulled.lock().len(), 2);
}
