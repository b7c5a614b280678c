//! The fake engine: containers and networks in memory, with a fault
//! injected at any step on demand, and the helpers the journal's tests
//! share.

use std::collections::HashMap;
use std::sync::Arc;

use paddock_core::{BoxEngine, BoxService, ContainerEvents, CoreConfig, CreateBox, EngineFuture};
use paddock_docker::{
    ArchiveBody, ArchiveStream, ContainerSpec, EngineError, ExecOutput, FileEntry, ImageCommand,
    InteractiveExec, LabelledObjects, PathStat, TerminalSignal, Usage,
};
use paddock_store::Store;
use parking_lot::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
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
pub enum Fault {
    /// The next call of the step fails; later ones work.
    Once,
    /// Every call fails until healed.
    Always,
}

pub struct Network {
    name: String,
    labels: HashMap<String, String>,
    subnet: String,
    gateway: String,
}

pub struct Container {
    labels: HashMap<String, String>,
    pub running: bool,
}

#[derive(Default)]
pub struct Objects {
    pub networks: HashMap<String, Network>,
    pub containers: HashMap<String, Container>,
    next_id: u64,
}

/// Containers and networks in memory, with faults injected per step.
#[derive(Default)]
pub struct FakeEngine {
    pub objects: Mutex<Objects>,
    pub faults: Mutex<HashMap<Step, Fault>>,
    /// Images pulled, in order.
    pub pulled: Mutex<Vec<String>>,
}

impl FakeEngine {
    pub fn fail(&self, step: Step, fault: Fault) {
        self.faults.lock().insert(step, fault);
    }

    pub fn heal(&self) {
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

    pub fn counts(&self) -> (usize, usize) {
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
            "pullable:latest" if !self.pulled.lock().iter().any(|p| p == image) => {
                Err(EngineError::NotFound(image.to_owned()))
            }
            _ => Ok(ImageCommand {
                entrypoint: Vec::new(),
                cmd: vec!["sh".to_owned()],
            }),
        });
        ready(found)
    }
    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        _login: Option<&'a paddock_docker::RegistryLogin>,
        progress: &'a (dyn Fn(paddock_docker::PullProgress) + Send + Sync),
    ) -> EngineFuture<'a, ()> {
        // Only `pullable:latest` is in the fake's registry.
        if image == "pullable:latest" {
            progress(paddock_docker::PullProgress {
                layers_total: 1,
                layers_done: 1,
                ..Default::default()
            });
            self.pulled.lock().push(image.to_owned());
            ready(Ok(()))
        } else {
            ready(Err(EngineError::NotFound(image.to_owned())))
        }
    }
    fn runtimes(&self) -> EngineFuture<'_, Vec<String>> {
        ready(Ok(vec!["runc".to_owned()]))
    }
    fn point_resolver<'a>(
        &'a self,
        _container: &'a str,
        _nameserver: std::net::Ipv4Addr,
    ) -> EngineFuture<'a, ()> {
        ready(Ok(()))
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
pub fn paddock(store: &Arc<Store>, engine: &Arc<FakeEngine>) -> Arc<BoxService> {
    let mut config = CoreConfig::default();
    config.boxes.spare_networks = 0;
    let engine: Arc<dyn BoxEngine> = engine.clone();
    BoxService::new(store.clone(), engine, config, Vec::new()).unwrap()
}

pub fn new_box(id: &str) -> CreateBox {
    CreateBox {
        project: "journal".into(),
        image: Some("busybox:latest".into()),
        box_id: Some(id.into()),
        description: None,
        ..CreateBox::default()
    }
}

/// No ghost, no orphan: no row, no container, no network.
pub fn assert_nothing_left(store: &Store, engine: &FakeEngine, after: &str) {
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
