//! The journal's promise, step by step: whatever engine call of a create
//! or a destroy fails, paddock leaves no container or network the store
//! does not account for (no orphan) and no row whose work is not finished
//! by the next start (no ghost).
//!
//! A FAKE engine: failing Docker on demand at an exact step is not
//! something a real engine can be made to do from a test. The real-engine
//! tests of the same promise (an interrupted create, a SIGKILLed paddock,
//! Docker down) stay in `crates/paddock/tests/`; this one covers every
//! step in turn, hermetically, in milliseconds.

use std::collections::HashMap;
use std::sync::Arc;

use paddock_core::{BoxEngine, BoxService, ContainerEvents, CoreConfig, CreateBox, EngineFuture};
use paddock_docker::{
    ArchiveBody, ArchiveStream, ContainerSpec, EngineError, ExecOutput, FileEntry, ImageCommand,
    InteractiveExec, LabelledObjects, PathStat, TerminalSignal, Usage,
};
use paddock_store::{BoxState, Store};
use parking_lot::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    ImageCommand,
    CreateNetwork,
    NetworkAddresses,
    CreateContainer,
    UploadFiles,
    StartContainer,
    StopContainer,
    ListLabelled,
    RemoveContainer,
    RemoveNetwork,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The next call of the step fails; later ones work.
    Once,
    /// Every call fails until healed.
    Always,
}

struct Network {
    name: String,
    labels: HashMap<String, String>,
    subnet: String,
    gateway: String,
}

struct Container {
    labels: HashMap<String, String>,
    running: bool,
}

#[derive(Default)]
struct Objects {
    networks: HashMap<String, Network>,
    containers: HashMap<String, Container>,
    next_id: u64,
}

/// Containers and networks in memory, with faults injected per step.
#[derive(Default)]
struct FakeEngine {
    objects: Mutex<Objects>,
    faults: Mutex<HashMap<Step, Fault>>,
}

impl FakeEngine {
    fn fail(&self, step: Step, fault: Fault) {
        self.faults.lock().insert(step, fault);
    }

    fn heal(&self) {
        self.faults.lock().clear();
    }

    fn check(&self, step: Step) -> Result<(), EngineError> {
        let mut faults = self.faults.lock();
        match faults.get(&step) {
            None => Ok(()),
            Some(Fault::Once) => {
                faults.remove(&step);
                Err(EngineError::Other(format!("injected failure at {step:?}")))
            }
            Some(Fault::Always) => Err(EngineError::Other(format!("injected failure at {step:?}"))),
        }
    }

    fn new_id(objects: &mut Objects, kind: &str) -> String {
        objects.next_id += 1;
        format!("{kind}{:04}", objects.next_id)
    }

    fn counts(&self) -> (usize, usize) {
        let objects = self.objects.lock();
        (objects.containers.len(), objects.networks.len())
    }
}

fn matches(labels: &HashMap<String, String>, filter: &[(&str, &str)]) -> bool {
    filter
        .iter()
        .all(|(k, v)| labels.get(*k).is_some_and(|l| l == v))
}

fn ready<'a, T: Send + 'a>(value: Result<T, EngineError>) -> EngineFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

fn not_here<T>(what: &str) -> Result<T, EngineError> {
    Err(EngineError::Other(format!(
        "the fake engine runs no processes ({what})"
    )))
}

impl BoxEngine for FakeEngine {
    fn ping(&self) -> EngineFuture<'_, ()> {
        ready(Ok(()))
    }
    fn create_internal_network<'a>(
        &'a self,
        name: &'a str,
        subnet: &'a str,
        gateway: &'a str,
        labels: HashMap<String, String>,
    ) -> EngineFuture<'a, String> {
        let made = self.check(Step::CreateNetwork).map(|()| {
            let mut objects = self.objects.lock();
            let id = Self::new_id(&mut objects, "net");
            objects.networks.insert(
                id.clone(),
                Network {
                    name: name.to_owned(),
                    labels,
                    subnet: subnet.to_owned(),
                    gateway: gateway.to_owned(),
                },
            );
            id
        });
        ready(made)
    }
    fn network_addresses<'a>(
        &'a self,
        network: &'a str,
    ) -> EngineFuture<'a, (Option<String>, Option<String>)> {
        let found = self.check(Step::NetworkAddresses).and_then(|()| {
            let objects = self.objects.lock();
            let net = objects
                .networks
                .get(network)
                .ok_or_else(|| EngineError::NotFound(network.to_owned()))?;
            Ok((Some(net.subnet.clone()), Some(net.gateway.clone())))
        });
        ready(found)
    }
    fn remove_network<'a>(&'a self, network: &'a str) -> EngineFuture<'a, ()> {
        let removed = self.check(Step::RemoveNetwork).map(|()| {
            self.objects.lock().networks.remove(network);
        });
        ready(removed)
    }
    fn image_command<'a>(&'a self, image: &'a str) -> EngineFuture<'a, ImageCommand> {
        let found = self.check(Step::ImageCommand).and_then(|()| match image {
            "missing:latest" => Err(EngineError::NotFound(image.to_owned())),
            _ => Ok(ImageCommand {
                entrypoint: Vec::new(),
                cmd: vec!["sh".to_owned()],
            }),
        });
        ready(found)
    }
    fn create_container<'a>(&'a self, spec: &'a ContainerSpec) -> EngineFuture<'a, String> {
        let made = self.check(Step::CreateContainer).and_then(|()| {
            let mut objects = self.objects.lock();
            if !objects.networks.contains_key(&spec.network) {
                return Err(EngineError::NotFound(spec.network.clone()));
            }
            let id = Self::new_id(&mut objects, "ctr");
            objects.containers.insert(
                id.clone(),
                Container {
                    labels: spec.labels.clone(),
                    running: false,
                },
            );
            Ok(id)
        });
        ready(made)
    }
    fn upload_files<'a>(
        &'a self,
        container: &'a str,
        _files: &'a [FileEntry],
    ) -> EngineFuture<'a, ()> {
        let done = self.check(Step::UploadFiles).and_then(|()| {
            match self.objects.lock().containers.contains_key(container) {
                true => Ok(()),
                false => Err(EngineError::NotFound(container.to_owned())),
            }
        });
        ready(done)
    }
    fn start_container<'a>(&'a self, container: &'a str) -> EngineFuture<'a, ()> {
        let done = self.check(Step::StartContainer).and_then(|()| {
            match self.objects.lock().containers.get_mut(container) {
                Some(c) => {
                    c.running = true;
                    Ok(())
                }
                None => Err(EngineError::NotFound(container.to_owned())),
            }
        });
        ready(done)
    }
    fn stop_container<'a>(&'a self, container: &'a str, _grace_secs: u32) -> EngineFuture<'a, ()> {
        let done = self.check(Step::StopContainer).and_then(|()| {
            match self.objects.lock().containers.get_mut(container) {
                Some(c) => {
                    c.running = false;
                    Ok(())
                }
                None => Err(EngineError::NotFound(container.to_owned())),
            }
        });
        ready(done)
    }
    fn container_running<'a>(&'a self, container: &'a str) -> EngineFuture<'a, bool> {
        let running = self
            .objects
            .lock()
            .containers
            .get(container)
            .is_some_and(|c| c.running);
        ready(Ok(running))
    }
    fn usage<'a>(&'a self, _container: &'a str) -> EngineFuture<'a, Option<Usage>> {
        ready(Ok(None))
    }
    fn container_address<'a>(
        &'a self,
        _container: &'a str,
        _network: &'a str,
    ) -> EngineFuture<'a, Option<std::net::Ipv4Addr>> {
        ready(Ok(None))
    }
    fn path_stat<'a>(
        &'a self,
        _container: &'a str,
        _path: &'a str,
    ) -> EngineFuture<'a, Option<PathStat>> {
        ready(not_here("files"))
    }
    fn upload_archive<'a>(
        &'a self,
        _container: &'a str,
        _dir: &'a str,
        _tar: ArchiveBody,
    ) -> EngineFuture<'a, ()> {
        ready(not_here("files"))
    }
    fn download_archive<'a>(
        &'a self,
        _container: &'a str,
        _path: &'a str,
    ) -> EngineFuture<'a, ArchiveStream> {
        ready(not_here("files"))
    }
    fn container_pid<'a>(&'a self, _container: &'a str) -> EngineFuture<'a, u32> {
        ready(not_here("pid"))
    }
    fn exit_code<'a>(&'a self, _container: &'a str) -> EngineFuture<'a, Option<i64>> {
        ready(Ok(None))
    }
    fn remove_container<'a>(&'a self, container: &'a str) -> EngineFuture<'a, ()> {
        let removed = self.check(Step::RemoveContainer).map(|()| {
            self.objects.lock().containers.remove(container);
        });
        ready(removed)
    }
    fn list_labelled<'a>(
        &'a self,
        labels: &'a [(&'a str, &'a str)],
    ) -> EngineFuture<'a, LabelledObjects> {
        let listed = self.check(Step::ListLabelled).map(|()| {
            let objects = self.objects.lock();
            let containers = objects
                .containers
                .iter()
                .filter(|(_, c)| matches(&c.labels, labels))
                .map(|(id, c)| (id.clone(), c.labels.clone()))
                .collect();
            let networks: Vec<_> = objects
                .networks
                .iter()
                .filter(|(_, n)| matches(&n.labels, labels))
                .map(|(id, n)| (id.clone(), n.labels.clone()))
                .collect();
            let network_names = objects
                .networks
                .iter()
                .map(|(id, n)| (id.clone(), n.name.clone()))
                .collect();
            LabelledObjects {
                containers,
                networks,
                network_names,
            }
        });
        ready(listed)
    }
    fn logs<'a>(&'a self, _container: &'a str, _tail: u32) -> EngineFuture<'a, String> {
        ready(not_here("logs"))
    }
    fn exec<'a>(
        &'a self,
        _container: &'a str,
        _cmd: Vec<String>,
        _limit: usize,
    ) -> EngineFuture<'a, ExecOutput> {
        ready(not_here("exec"))
    }
    fn exec_interactive<'a>(
        &'a self,
        _container: &'a str,
        _cmd: Vec<String>,
        _env: Vec<String>,
    ) -> EngineFuture<'a, InteractiveExec> {
        ready(not_here("exec"))
    }
    fn exec_exit_code<'a>(&'a self, _exec_id: &'a str) -> EngineFuture<'a, Option<i64>> {
        ready(not_here("exec"))
    }
    fn exec_terminal<'a>(
        &'a self,
        _container: &'a str,
        _cmd: Vec<String>,
        _env: Vec<String>,
        _size: (u16, u16),
    ) -> EngineFuture<'a, InteractiveExec> {
        ready(not_here("exec"))
    }
    fn resize_terminal<'a>(&'a self, _exec_id: &'a str, _size: (u16, u16)) -> EngineFuture<'a, ()> {
        ready(not_here("exec"))
    }
    fn signal_exec<'a>(
        &'a self,
        _exec_id: &'a str,
        _signal: TerminalSignal,
    ) -> EngineFuture<'a, ()> {
        ready(not_here("exec"))
    }
    fn container_events<'a>(
        &'a self,
        _labels: &'a [(&'a str, &'a str)],
    ) -> EngineFuture<'a, ContainerEvents> {
        ready(not_here("events"))
    }
}

/// A paddock on an in-memory store and the fake engine, keeping no spare
/// networks so that "nothing left" is exactly nothing.
fn paddock(store: &Arc<Store>, engine: &Arc<FakeEngine>) -> Arc<BoxService> {
    let mut config = CoreConfig::default();
    config.boxes.spare_networks = 0;
    let engine: Arc<dyn BoxEngine> = engine.clone();
    BoxService::new(store.clone(), engine, config, Vec::new()).unwrap()
}

fn new_box(id: &str) -> CreateBox {
    CreateBox {
        project: "journal".into(),
        image: Some("busybox:latest".into()),
        box_id: Some(id.into()),
        description: None,
        ttl_secs: None,
    }
}

/// No ghost, no orphan: no row, no container, no network.
fn assert_nothing_left(store: &Store, engine: &FakeEngine, after: &str) {
    let rows: Vec<_> = store
        .list_boxes()
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.state))
        .collect();
    assert!(rows.is_empty(), "{after}: rows left: {rows:?}");
    assert_eq!(
        engine.counts(),
        (0, 0),
        "{after}: (containers, networks) left"
    );
}

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
