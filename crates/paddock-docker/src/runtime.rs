//! The OCI runtimes the engine knows, and the resolver of a box whose
//! runtime brings its own network stack.

use std::net::Ipv4Addr;

use bollard::query_parameters::InspectContainerOptions;

use crate::{Engine, EngineError, Result};

/// What `paddock doctor` reports of the engine.
#[derive(Debug, Clone)]
pub struct EngineFacts {
    pub server_version: String,
    /// `1` or `2`.
    pub cgroup_version: String,
    pub cgroup_driver: String,
    pub runtimes: Vec<String>,
    pub root_dir: String,
}

impl Engine {
    /// The engine's version, cgroups, runtimes and data root, in one call.
    pub async fn facts(&self) -> Result<EngineFacts> {
        let info = self.client().await?.info().await?;
        let mut runtimes: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        runtimes.sort();
        Ok(EngineFacts {
            server_version: info.server_version.unwrap_or_default(),
            cgroup_version: info
                .cgroup_version
                .map(|v| v.to_string())
                .unwrap_or_default(),
            cgroup_driver: info
                .cgroup_driver
                .map(|d| d.to_string())
                .unwrap_or_default(),
            runtimes,
            root_dir: info.docker_root_dir.unwrap_or_default(),
        })
    }

    /// The names of the runtimes registered with the engine (`runc`,
    /// and `runsc` once gVisor is installed).
    pub async fn runtimes(&self) -> Result<Vec<String>> {
        let info = self.client().await?.info().await?;
        let mut names: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        names.sort();
        Ok(names)
    }

    /// Points a started container's `/etc/resolv.conf` at `nameserver`.
    /// Docker writes `nameserver 127.0.0.11` (its embedded resolver, reached
    /// through NAT rules in the container's namespace) at every start; a
    /// sandbox with its own network stack never passes those rules, so its
    /// file is rewritten on the host, where Docker keeps it. Needs the
    /// engine on this machine, as the box firewall does.
    pub async fn point_resolver(&self, container: &str, nameserver: Ipv4Addr) -> Result<()> {
        let inspected = self
            .client()
            .await?
            .inspect_container(container, None::<InspectContainerOptions>)
            .await?;
        let path = inspected
            .resolv_conf_path
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                EngineError::Other(format!("container {container} has no resolv.conf"))
            })?;
        let text = format!(
            "# written by paddock: the box resolves through its gateway\nnameserver {nameserver}\noptions ndots:0\n"
        );
        tokio::fs::write(&path, text).await.map_err(|e| {
            EngineError::Other(format!(
                "cannot write the box's resolver file {path} (the Docker engine must run on this machine): {e}"
            ))
        })
    }
}
