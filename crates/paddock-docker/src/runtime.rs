//! The OCI runtimes the engine knows, and the resolver of a box whose
//! runtime brings its own network stack.

use std::net::Ipv4Addr;

use bollard::query_parameters::InspectContainerOptions;

use crate::{Engine, EngineError, Result};

impl Engine {
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
