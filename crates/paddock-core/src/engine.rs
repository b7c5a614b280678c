//! What the box service asks of a container engine, as a trait: the real
//! one is `paddock_docker::Engine`; the tests put a fault-injecting fake
//! behind the same seam to fail every step of create and destroy in turn
//! and check the journal's promise (no container or network without its
//! row, no row without its work finished) without a Docker engine.

use std::collections::HashMap;
use std::pin::Pin;

use futures_util::Stream;
use paddock_docker::{
    ArchiveBody, ArchiveStream, ContainerEvent, ContainerSpec, Engine, EngineError, ExecOutput,
    FileEntry, ImageCommand, InteractiveExec, LabelledObjects, PathStat, PullProgress,
    RegistryLogin, TerminalSignal, Usage,
};

use crate::BoxFuture;

/// An engine call's future.
pub type EngineFuture<'a, T> = BoxFuture<'a, Result<T, EngineError>>;

/// The engine's stream of container starts and deaths.
pub type ContainerEvents = Pin<Box<dyn Stream<Item = Result<ContainerEvent, EngineError>> + Send>>;

/// Labels an engine object is found by, as `(key, value)` pairs.
pub type LabelFilter<'a> = &'a [(&'a str, &'a str)];

pub trait BoxEngine: Send + Sync {
    fn ping(&self) -> EngineFuture<'_, ()>;
    fn create_internal_network<'a>(
        &'a self,
        name: &'a str,
        subnet: &'a str,
        gateway: &'a str,
        labels: HashMap<String, String>,
    ) -> EngineFuture<'a, String>;
    /// `(subnet, gateway)` of a network.
    fn network_addresses<'a>(
        &'a self,
        network: &'a str,
    ) -> EngineFuture<'a, (Option<String>, Option<String>)>;
    /// Removing what is not there is not an error.
    fn remove_network<'a>(&'a self, network: &'a str) -> EngineFuture<'a, ()>;
    /// What the image runs; [`EngineError::NotFound`] when the engine has
    /// no such image.
    fn image_command<'a>(&'a self, image: &'a str) -> EngineFuture<'a, ImageCommand>;
    /// The OCI runtimes registered with the engine.
    fn runtimes(&self) -> EngineFuture<'_, Vec<String>>;
    /// Pulls `image`, telling `progress` how far it is.
    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        login: Option<&'a RegistryLogin>,
        progress: &'a (dyn Fn(PullProgress) + Send + Sync),
    ) -> EngineFuture<'a, ()>;
    /// Makes a started container resolve through `nameserver` directly
    /// (for runtimes with their own network stack).
    fn point_resolver<'a>(
        &'a self,
        container: &'a str,
        nameserver: std::net::Ipv4Addr,
    ) -> EngineFuture<'a, ()>;
    fn create_container<'a>(&'a self, spec: &'a ContainerSpec) -> EngineFuture<'a, String>;
    fn upload_files<'a>(
        &'a self,
        container: &'a str,
        files: &'a [FileEntry],
    ) -> EngineFuture<'a, ()>;
    fn start_container<'a>(&'a self, container: &'a str) -> EngineFuture<'a, ()>;
    /// SIGTERM, then SIGKILL after `grace_secs`; a stopped container is
    /// not an error.
    fn stop_container<'a>(&'a self, container: &'a str, grace_secs: u32) -> EngineFuture<'a, ()>;
    fn container_running<'a>(&'a self, container: &'a str) -> EngineFuture<'a, bool>;
    /// The container's IPv4 address on `network`, while it runs.
    fn container_address<'a>(
        &'a self,
        container: &'a str,
        network: &'a str,
    ) -> EngineFuture<'a, Option<std::net::Ipv4Addr>>;
    /// What a running container uses; None when it does not run.
    fn usage<'a>(&'a self, container: &'a str) -> EngineFuture<'a, Option<Usage>>;
    /// None when the path does not exist in the container.
    fn path_stat<'a>(
        &'a self,
        container: &'a str,
        path: &'a str,
    ) -> EngineFuture<'a, Option<PathStat>>;
    /// Unpacks a tar archive into the container's directory `dir`.
    fn upload_archive<'a>(
        &'a self,
        container: &'a str,
        dir: &'a str,
        tar: ArchiveBody,
    ) -> EngineFuture<'a, ()>;
    /// A tar archive of the container's `path`.
    fn download_archive<'a>(
        &'a self,
        container: &'a str,
        path: &'a str,
    ) -> EngineFuture<'a, ArchiveStream>;
    fn container_pid<'a>(&'a self, container: &'a str) -> EngineFuture<'a, u32>;
    /// The exit code of a container whose main process ended.
    fn exit_code<'a>(&'a self, container: &'a str) -> EngineFuture<'a, Option<i64>>;
    /// Removing what is not there is not an error.
    fn remove_container<'a>(&'a self, container: &'a str) -> EngineFuture<'a, ()>;
    fn list_labelled<'a>(&'a self, labels: LabelFilter<'a>) -> EngineFuture<'a, LabelledObjects>;
    fn logs<'a>(&'a self, container: &'a str, tail: u32) -> EngineFuture<'a, String>;
    fn exec<'a>(
        &'a self,
        container: &'a str,
        cmd: Vec<String>,
        limit: usize,
    ) -> EngineFuture<'a, ExecOutput>;
    fn exec_interactive<'a>(
        &'a self,
        container: &'a str,
        cmd: Vec<String>,
        env: Vec<String>,
    ) -> EngineFuture<'a, InteractiveExec>;
    fn exec_exit_code<'a>(&'a self, exec_id: &'a str) -> EngineFuture<'a, Option<i64>>;
    /// `cmd` on a pseudo-terminal of `cols`×`rows`.
    fn exec_terminal<'a>(
        &'a self,
        container: &'a str,
        cmd: Vec<String>,
        env: Vec<String>,
        size: (u16, u16),
    ) -> EngineFuture<'a, InteractiveExec>;
    fn resize_terminal<'a>(&'a self, exec_id: &'a str, size: (u16, u16)) -> EngineFuture<'a, ()>;
    /// A signal to an exec's process (and its process group).
    fn signal_exec<'a>(&'a self, exec_id: &'a str, signal: TerminalSignal) -> EngineFuture<'a, ()>;
    fn container_events<'a>(&'a self, labels: LabelFilter<'a>)
    -> EngineFuture<'a, ContainerEvents>;
}

impl BoxEngine for Engine {
    fn ping(&self) -> EngineFuture<'_, ()> {
        Box::pin(Engine::ping(self))
    }
    fn create_internal_network<'a>(
        &'a self,
        name: &'a str,
        subnet: &'a str,
        gateway: &'a str,
        labels: HashMap<String, String>,
    ) -> EngineFuture<'a, String> {
        Box::pin(Engine::create_internal_network(
            self, name, subnet, gateway, labels,
        ))
    }
    fn network_addresses<'a>(
        &'a self,
        network: &'a str,
    ) -> EngineFuture<'a, (Option<String>, Option<String>)> {
        Box::pin(Engine::network_addresses(self, network))
    }
    fn remove_network<'a>(&'a self, network: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(Engine::remove_network(self, network))
    }
    fn image_command<'a>(&'a self, image: &'a str) -> EngineFuture<'a, ImageCommand> {
        Box::pin(Engine::image_command(self, image))
    }
    fn runtimes(&self) -> EngineFuture<'_, Vec<String>> {
        Box::pin(Engine::runtimes(self))
    }
    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        login: Option<&'a RegistryLogin>,
        progress: &'a (dyn Fn(PullProgress) + Send + Sync),
    ) -> EngineFuture<'a, ()> {
        Box::pin(Engine::pull_image(self, image, login, progress))
    }
    fn point_resolver<'a>(
        &'a self,
        container: &'a str,
        nameserver: std::net::Ipv4Addr,
    ) -> EngineFuture<'a, ()> {
        Box::pin(Engine::point_resolver(self, container, nameserver))
    }
    fn create_container<'a>(&'a self, spec: &'a ContainerSpec) -> EngineFuture<'a, String> {
        Box::pin(Engine::create_container(self, spec))
    }
    fn upload_files<'a>(
        &'a self,
        container: &'a str,
        files: &'a [FileEntry],
    ) -> EngineFuture<'a, ()> {
        Box::pin(Engine::upload_files(self, container, files))
    }
    fn start_container<'a>(&'a self, container: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(Engine::start_container(self, container))
    }
    fn stop_container<'a>(&'a self, container: &'a str, grace_secs: u32) -> EngineFuture<'a, ()> {
        Box::pin(Engine::stop_container(self, container, grace_secs))
    }
    fn container_running<'a>(&'a self, container: &'a str) -> EngineFuture<'a, bool> {
        Box::pin(Engine::container_running(self, container))
    }
    fn container_pid<'a>(&'a self, container: &'a str) -> EngineFuture<'a, u32> {
        Box::pin(Engine::container_pid(self, container))
    }
    fn usage<'a>(&'a self, container: &'a str) -> EngineFuture<'a, Option<Usage>> {
        Box::pin(Engine::usage(self, container))
    }
    fn container_address<'a>(
        &'a self,
        container: &'a str,
        network: &'a str,
    ) -> EngineFuture<'a, Option<std::net::Ipv4Addr>> {
        Box::pin(Engine::container_address(self, container, network))
    }
    fn path_stat<'a>(
        &'a self,
        container: &'a str,
        path: &'a str,
    ) -> EngineFuture<'a, Option<PathStat>> {
        Box::pin(Engine::path_stat(self, container, path))
    }
    fn upload_archive<'a>(
        &'a self,
        container: &'a str,
        dir: &'a str,
        tar: ArchiveBody,
    ) -> EngineFuture<'a, ()> {
        Box::pin(Engine::upload_archive(self, container, dir, tar))
    }
    fn download_archive<'a>(
        &'a self,
        container: &'a str,
        path: &'a str,
    ) -> EngineFuture<'a, ArchiveStream> {
        Box::pin(Engine::download_archive(self, container, path))
    }
    fn exit_code<'a>(&'a self, container: &'a str) -> EngineFuture<'a, Option<i64>> {
        Box::pin(Engine::exit_code(self, container))
    }
    fn remove_container<'a>(&'a self, container: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(Engine::remove_container(self, container))
    }
    fn list_labelled<'a>(&'a self, labels: LabelFilter<'a>) -> EngineFuture<'a, LabelledObjects> {
        Box::pin(Engine::list_labelled(self, labels))
    }
    fn logs<'a>(&'a self, container: &'a str, tail: u32) -> EngineFuture<'a, String> {
        Box::pin(Engine::logs(self, container, tail))
    }
    fn exec<'a>(
        &'a self,
        container: &'a str,
        cmd: Vec<String>,
        limit: usize,
    ) -> EngineFuture<'a, ExecOutput> {
        Box::pin(Engine::exec(self, container, cmd, limit))
    }
    fn exec_interactive<'a>(
        &'a self,
        container: &'a str,
        cmd: Vec<String>,
        env: Vec<String>,
    ) -> EngineFuture<'a, InteractiveExec> {
        Box::pin(Engine::exec_interactive(self, container, cmd, env))
    }
    fn exec_exit_code<'a>(&'a self, exec_id: &'a str) -> EngineFuture<'a, Option<i64>> {
        Box::pin(Engine::exec_exit_code(self, exec_id))
    }
    fn exec_terminal<'a>(
        &'a self,
        container: &'a str,
        cmd: Vec<String>,
        env: Vec<String>,
        (cols, rows): (u16, u16),
    ) -> EngineFuture<'a, InteractiveExec> {
        Box::pin(Engine::exec_terminal(self, container, cmd, env, cols, rows))
    }
    fn resize_terminal<'a>(
        &'a self,
        exec_id: &'a str,
        (cols, rows): (u16, u16),
    ) -> EngineFuture<'a, ()> {
        Box::pin(Engine::resize_terminal(self, exec_id, cols, rows))
    }
    fn signal_exec<'a>(&'a self, exec_id: &'a str, signal: TerminalSignal) -> EngineFuture<'a, ()> {
        Box::pin(Engine::signal_exec(self, exec_id, signal))
    }
    fn container_events<'a>(
        &'a self,
        labels: LabelFilter<'a>,
    ) -> EngineFuture<'a, ContainerEvents> {
        Box::pin(async move {
            let stream = Engine::container_events(self, labels).await?;
            Ok(Box::pin(stream) as ContainerEvents)
        })
    }
}
