//! Stop, start, exit and time to live through the same fake engine: a
//! stop the engine refuses, a stop a crash interrupted, a box that exited
//! while paddock was away, a box past its time to live.

use std::sync::Arc;

use paddock_store::{BoxState, Store};

use crate::fake_engine::{FakeEngine, Fault, Step, new_box, paddock};

fn state_of(store: &Store, id: &str) -> BoxState {
    store.get_box(id).unwrap().unwrap().state
}

#[tokio::test]
async fn a_stop_the_engine_refuses_leaves_the_box_ready() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let engine = Arc::new(FakeEngine::default());
    let service = paddock(&store, &engine);
    service.create(new_box("b1")).await.unwrap();
    engine.fail(Step::StopContainer, Fault::Once);
    let err = service.stop("b1").await.unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(state_of(&store, "b1"), BoxState::Ready);
    let stopped = service.stop("b1").await.unwrap();
    assert_eq!(stopped.state, BoxState::Stopped);
    assert_eq!(
        service.stop("b1").await.unwrap().state,
        BoxState::Stopped,
        "stopping a stopped box is not an error"
    );
    let err = service.exec("b1", "true").await.unwrap_err();
    assert!(
        err.to_string().contains("is stopped: start it first"),
        "{err}"
    );
}

#[tokio::test]
async fn a_stop_a_crash_interrupted_is_finished_and_the_box_starts_again() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let engine = Arc::new(FakeEngine::default());
    let service = paddock(&store, &engine);
    service.create(new_box("b1")).await.unwrap();
    // The journal said "stopped"; paddock died before the engine heard.
    store
        .set_box_state("b1", BoxState::Stopped, None, 1)
        .unwrap();
    drop(service);
    let restarted = paddock(&store, &engine);
    let report = restarted.reconcile().await.unwrap();
    assert_eq!(report.restored, 1);
    let container = store.get_box("b1").unwrap().unwrap().container_id.unwrap();
    assert!(!engine.objects.lock().containers[&container].running);
    assert_eq!(state_of(&store, "b1"), BoxState::Stopped);
    // A start that fails at the engine keeps it stopped; the next works.
    engine.fail(Step::StartContainer, Fault::Once);
    assert!(restarted.start("b1").await.is_err());
    assert_eq!(state_of(&store, "b1"), BoxState::Stopped);
    assert_eq!(restarted.start("b1").await.unwrap().state, BoxState::Ready);
    assert!(engine.objects.lock().containers[&container].running);
}

#[tokio::test]
async fn a_box_whose_container_stopped_while_paddock_was_away_is_exited() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let engine = Arc::new(FakeEngine::default());
    let service = paddock(&store, &engine);
    service.create(new_box("b1")).await.unwrap();
    let container = store.get_box("b1").unwrap().unwrap().container_id.unwrap();
    engine
        .objects
        .lock()
        .containers
        .get_mut(&container)
        .unwrap()
        .running = false;
    drop(service);
    let restarted = paddock(&store, &engine);
    restarted.reconcile().await.unwrap();
    let view = restarted.get("b1").unwrap();
    assert_eq!(view.state, BoxState::Exited);
    assert!(view.error.unwrap().contains("main process exited"));
    assert_eq!(restarted.start("b1").await.unwrap().state, BoxState::Ready);
    assert_eq!(restarted.get("b1").unwrap().error, None);
}

#[tokio::test]
async fn a_box_past_its_time_to_live_is_reaped() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let engine = Arc::new(FakeEngine::default());
    let service = paddock(&store, &engine);
    let mut short = new_box("short");
    short.ttl_secs = Some(1);
    let created = service.create(short).await.unwrap();
    assert!(created.view.expires_at.is_some());
    service.create(new_box("long")).await.unwrap();
    let mut bad = new_box("bad");
    bad.ttl_secs = Some(0);
    assert!(service.create(bad).await.is_err(), "a zero TTL is refused");
    assert!(service.reap_once().await.unwrap().is_empty(), "not yet");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let reaped = loop {
        let reaped = service.reap_once().await.unwrap();
        if !reaped.is_empty() || std::time::Instant::now() > deadline {
            break reaped;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(reaped, vec!["short".to_owned()]);
    assert!(store.get_box("short").unwrap().is_none());
    assert_eq!(state_of(&store, "long"), BoxState::Ready);
}
