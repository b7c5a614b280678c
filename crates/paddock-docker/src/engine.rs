//! Containers and networks, always labelled and always found by label.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HostConfig, Ipam, IpamConfig, Mount, MountType, NetworkCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::sync::OnceCell;

use crate::{EngineError, FileEntry, Result, archive};

/// Everything needed to create one box container.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub hostname: String,
    pub labels: HashMap<String, String>,
    pub env: Vec<String>,
    /// None keeps the image's own command.
    pub cmd: Option<Vec<String>>,
    /// None keeps the image's own entrypoint; an empty list clears it.
    pub entrypoint: Option<Vec<String>>,
    /// The OCI runtime Docker starts the container with (None: its
    /// default, runc).
    pub runtime: Option<String>,
    pub network: String,
    pub memory_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids_limit: Option<i64>,
    pub cap_drop: Vec<String>,
    /// Resolvers Docker's embedded DNS forwards to (empty: the host's).
    pub dns: Vec<String>,
    /// A read-only root filesystem; `workspace` (an anonymous volume,
    /// removed with the container) and /tmp (a tmpfs) stay writable.
    pub read_only: bool,
    pub workspace: String,
    /// Host files shown read-only inside (host path, path inside): what
    /// every box trusts, kept on the host so a read-only root still gets it.
    pub read_only_binds: Vec<(String, String)>,
}

fn mounts(spec: &ContainerSpec) -> Vec<Mount> {
    let workspace = spec.read_only.then(|| Mount {
        target: Some(spec.workspace.clone()),
        typ: Some(MountType::VOLUME),
        ..Default::default()
    });
    let binds = spec.read_only_binds.iter().map(|(host, inside)| Mount {
        source: Some(host.clone()),
        target: Some(inside.clone()),
        typ: Some(MountType::BIND),
        read_only: Some(true),
        ..Default::default()
    });
    workspace.into_iter().chain(binds).collect()
}

/// Objects carrying a label, as found by [`Engine::list_labelled`].
#[derive(Debug, Clone, Default)]
pub struct LabelledObjects {
    /// (container id, its labels)
    pub containers: Vec<(String, HashMap<String, String>)>,
    /// (network id, its labels)
    pub networks: Vec<(String, HashMap<String, String>)>,
    /// Network id → name.
    pub network_names: HashMap<String, String>,
}

/// A handle on the Docker engine. Connecting is lazy and retried on every
/// call until it succeeds, so paddock can start (and report itself degraded)
/// while the engine is down, and recover when it comes back.
pub struct Engine {
    socket: Option<String>,
    client: OnceCell<Docker>,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

impl Engine {
    /// `socket` is a `unix://` path or host URL; None uses `DOCKER_HOST` or
    /// the platform default.
    pub fn new(socket: Option<String>) -> Self {
        Self {
            socket,
            client: OnceCell::new(),
        }
    }

    pub(crate) async fn client(&self) -> Result<&Docker> {
        self.client
            .get_or_try_init(|| async {
                let docker = match &self.socket {
                    Some(host) => Docker::connect_with_host(host),
                    None => Docker::connect_with_local_defaults(),
                }
                .map_err(|e| EngineError::Unavailable(e.to_string()))?
                .with_timeout(REQUEST_TIMEOUT);
                // Older engines (Debian's docker.io) refuse newer API
                // versions, so agree on one before the first real call.
                docker
                    .negotiate_version()
                    .await
                    .map_err(|e| match EngineError::from(e) {
                        EngineError::Other(m) => EngineError::Unavailable(m),
                        other => other,
                    })
            })
            .await
    }

    pub async fn ping(&self) -> Result<()> {
        self.client().await?.ping().await?;
        Ok(())
    }

    /// Creates a bridge network no traffic can leave the host through, on
    /// the given IPv4 subnet, with the host side at `gateway`.
    pub async fn create_internal_network(
        &self,
        name: &str,
        subnet: &str,
        gateway: &str,
        labels: HashMap<String, String>,
    ) -> Result<String> {
        let created = self
            .client()
            .await?
            .create_network(NetworkCreateRequest {
                name: name.to_owned(),
                driver: Some("bridge".into()),
                internal: Some(true),
                labels: Some(labels),
                ipam: Some(Ipam {
                    driver: Some("default".into()),
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet.to_owned()),
                        gateway: Some(gateway.to_owned()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await?;
        Ok(created.id)
    }

    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let host_config = HostConfig {
            memory: spec.memory_bytes,
            nano_cpus: spec.nano_cpus,
            pids_limit: spec.pids_limit,
            cap_drop: Some(spec.cap_drop.clone()),
            cap_add: Some(Vec::new()),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            network_mode: Some(spec.network.clone()),
            init: Some(true),
            dns: (!spec.dns.is_empty()).then(|| spec.dns.clone()),
            runtime: spec.runtime.clone(),
            readonly_rootfs: spec.read_only.then_some(true),
            mounts: Some(mounts(spec)).filter(|m| !m.is_empty()),
            tmpfs: spec
                .read_only
                .then(|| HashMap::from([("/tmp".to_owned(), "rw,nosuid,nodev".to_owned())])),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            hostname: Some(spec.hostname.clone()),
            labels: Some(spec.labels.clone()),
            env: Some(spec.env.clone()),
            cmd: spec.cmd.clone(),
            entrypoint: spec.entrypoint.clone(),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = self
            .client()
            .await?
            .create_container(Some(options), body)
            .await?;
        Ok(created.id)
    }

    /// Copies files into a created (not yet started) container.
    pub async fn upload_files(&self, container: &str, files: &[FileEntry]) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let tar = archive::build(files).map_err(|e| EngineError::Other(e.to_string()))?;
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        self.client()
            .await?
            .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
            .await?;
        Ok(())
    }

    pub async fn start_container(&self, container: &str) -> Result<()> {
        self.client()
            .await?
            .start_container(container, None)
            .await?;
        Ok(())
    }

    /// Stops a container's main process: SIGTERM, then SIGKILL after
    /// `grace_secs`. Stopping a stopped container is not an error.
    pub async fn stop_container(&self, container: &str, grace_secs: u32) -> Result<()> {
        let options = StopContainerOptionsBuilder::default()
            .t(i32::try_from(grace_secs).unwrap_or(i32::MAX))
            .build();
        match self
            .client()
            .await?
            .stop_container(container, Some(options))
            .await
        {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// True when the container exists and is running.
    pub async fn container_running(&self, container: &str) -> Result<bool> {
        match self
            .client()
            .await?
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => Ok(c.state.and_then(|s| s.running).unwrap_or(false)),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    /// The host pid of a running container's first process: the way into
    /// its namespaces.
    pub async fn container_pid(&self, container: &str) -> Result<u32> {
        let c = self
            .client()
            .await?
            .inspect_container(container, None::<InspectContainerOptions>)
            .await?;
        match c.state.and_then(|s| s.pid) {
            Some(pid) if pid > 0 => Ok(pid as u32),
            _ => Err(EngineError::Other(format!(
                "container {container} is not running"
            ))),
        }
    }

    /// The container's IPv4 address on `network` (its id or name), while
    /// it runs.
    pub async fn container_address(
        &self,
        container: &str,
        network: &str,
    ) -> Result<Option<std::net::Ipv4Addr>> {
        let c = self
            .client()
            .await?
            .inspect_container(container, None::<InspectContainerOptions>)
            .await?;
        let networks = c
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default();
        Ok(networks
            .iter()
            .find(|(name, endpoint)| {
                *name == network || endpoint.network_id.as_deref() == Some(network)
            })
            .and_then(|(_, endpoint)| endpoint.ip_address.as_deref()?.parse().ok()))
    }

    /// The exit code of a container whose main process has ended; `None`
    /// while it runs (or has not been started).
    pub async fn exit_code(&self, container: &str) -> Result<Option<i64>> {
        let c = self
            .client()
            .await?
            .inspect_container(container, None::<InspectContainerOptions>)
            .await?;
        Ok(c.state.and_then(|s| {
            let ended =
                s.running == Some(false) && s.finished_at.is_some_and(|f| !f.starts_with("0001-"));
            if ended { s.exit_code } else { None }
        }))
    }

    /// The last `tail` lines of the container's output, both streams.
    pub async fn logs(&self, container: &str, tail: u32) -> Result<String> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let docker = self.client().await?;
        let mut stream = docker.logs(container, Some(options));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            out.extend_from_slice(&item?.into_bytes());
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Removes a container and its anonymous volumes; a missing one is fine.
    pub async fn remove_container(&self, container: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self
            .client()
            .await?
            .remove_container(container, Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(()),
                // "removal already in progress": someone else is finishing it.
                EngineError::Conflict(m) if m.contains("in progress") => Ok(()),
                other => Err(other),
            },
        }
    }

    /// The first IPAM subnet and gateway of a network, as configured.
    pub async fn network_addresses(
        &self,
        network: &str,
    ) -> Result<(Option<String>, Option<String>)> {
        let inspected = self
            .client()
            .await?
            .inspect_network(
                network,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await?;
        let first = inspected
            .ipam
            .and_then(|i| i.config)
            .and_then(|c| c.into_iter().next());
        Ok(first.map_or((None, None), |c| (c.subnet, c.gateway)))
    }

    /// Removes a network; a missing one is fine.
    pub async fn remove_network(&self, network: &str) -> Result<()> {
        match self.client().await?.remove_network(network).await {
            Ok(()) => Ok(()),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Every container (running or not) and network carrying all of the
    /// given `label=value` pairs.
    pub async fn list_labelled(&self, labels: &[(&str, &str)]) -> Result<LabelledObjects> {
        let wanted = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let filters = HashMap::from([("label", wanted)]);
        let docker = self.client().await?;
        let containers = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await?
            .into_iter()
            .filter_map(|c| Some((c.id?, c.labels.unwrap_or_default())))
            .collect();
        let listed = docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await?;
        let mut network_names = HashMap::new();
        let mut networks = Vec::new();
        for n in listed {
            let Some(id) = n.id else { continue };
            if let Some(name) = n.name {
                network_names.insert(id.clone(), name);
            }
            networks.push((id, n.labels.unwrap_or_default()));
        }
        Ok(LabelledObjects {
            containers,
            networks,
            network_names,
        })
    }
}
