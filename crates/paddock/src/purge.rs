//! `paddock purge`: removes what an instance leaves on the machine once it
//! holds no box — its idle box networks, its host fence table, its git
//! hook directories and the hub socket terok's clients discover — for an instance that is gone for good, or a machine
//! to be left clean. Refused while that paddock is serving or still has
//! boxes: nothing a box uses is ever purged.

use std::process::ExitCode;

use anyhow::{Context, bail};
use paddock_docker::Engine;
use paddock_egress::host_guard::HostGuard;
use paddock_store::Store;

use crate::ServeArgs;
use crate::config;

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = config::load(&args)?;
    if tokio::net::UnixStream::connect(&config.clearance_socket)
        .await
        .is_ok()
    {
        bail!(
            "paddock serve is running with this configuration (its clearance socket {} answers); stop it first",
            config.clearance_socket.display()
        );
    }
    config.store.only_sqlite("paddock purge")?;
    let db = config.data_dir.join("paddock.db");
    if !db.exists() {
        bail!("no paddock store at {} (see --data-dir)", db.display());
    }
    let store =
        Store::open(&db).with_context(|| format!("cannot open the store at {}", db.display()))?;
    let instance = paddock_core::resolve_instance(&store, &config.core.instance)?;
    let boxes = store.list_boxes()?;
    if !boxes.is_empty() {
        bail!(
            "instance {instance} still has {} box(es); destroy them first (paddock box rm)",
            boxes.len()
        );
    }

    let engine = Engine::new(config.docker_host.clone());
    let owned = engine
        .list_labelled(&[("paddock.instance", &instance)])
        .await
        .context("cannot list the instance's Docker objects")?;
    for (container, _) in &owned.containers {
        engine.remove_container(container).await?;
    }
    let mut networks = 0;
    for (network, _) in &owned.networks {
        engine.remove_network(network).await?;
        networks += 1;
    }
    HostGuard::new(&instance, Vec::new(), 0, 0)
        .uninstall()
        .await;
    let mut hook_dirs = 0;
    for entry in std::fs::read_dir(&config.data_dir)?.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("paddock-gate-hooks-")
        {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
            hook_dirs += 1;
        }
    }
    // A paddock that was killed leaves its socket where terok's clients
    // look for hubs; they would keep trying it.
    let terok_socket = paddock_clearance::varlink::terok_socket_path(&instance);
    if let Some(dir) = terok_socket.parent().filter(|d| d.exists()) {
        let _ = std::fs::remove_file(&terok_socket);
        std::fs::remove_dir(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    println!(
        "purged instance {instance}: {} stray container(s), {networks} network(s), its host fence table, {hook_dirs} hook director(ies)",
        owned.containers.len()
    );
    Ok(ExitCode::SUCCESS)
}
