//! What `paddock serve` does before it serves: its log, the names its
//! host resources take, and the first reconcile with the engine.

use std::time::Duration;

use anyhow::Context;

use paddock_core::BoxService;
use paddock_store::Store;
use tracing_subscriber::EnvFilter;

/// How long the start waits for the engine before leaving the reconcile
/// to the maintenance loop.
const RECONCILE_AT_START: Duration = Duration::from_secs(30);

pub(crate) fn init_logging(format: &str) {
    let mut filter = EnvFilter::try_from_env("PADDOCK_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,paddock=info"));
    // The PostgreSQL client logs every statement's parameters at debug —
    // token hashes, sealed secrets — so it never says more than info,
    // whatever PADDOCK_LOG asks.
    for quiet in ["tokio_postgres=info", "postgres=info"] {
        if let Ok(directive) = quiet.parse() {
            filter = filter.add_directive(directive);
        }
    }
    use std::io::IsTerminal;
    // Colour only for a person at a terminal: a file or a pipe gets text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The reconcile before serving, within [`RECONCILE_AT_START`]; false
/// leaves it to the maintenance loop.
pub(crate) async fn reconcile_at_start(boxes: &BoxService) -> bool {
    match tokio::time::timeout(RECONCILE_AT_START, boxes.reconcile()).await {
        Ok(Ok(report)) => {
            tracing::info!(
                restored = report.restored,
                finished = ?report.finished,
                dropped = ?report.dropped,
                unknown_containers = ?report.unknown_containers,
                unknown_networks = ?report.unknown_networks,
                removed_unknown = report.removed_unknown,
                pruned_networks = report.pruned_networks,
                "restored boxes"
            );
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot reconcile with docker yet; boxes stay as stored until it answers");
            false
        }
        Err(_) => {
            tracing::warn!(
                "docker did not answer the start-up reconcile in time; retrying in the background"
            );
            false
        }
    }
}

/// What names this process's resources on the host — the host fence's
/// table and log group, the mark on its children, terok's socket: the
/// instance, or on a shared store (where several hubs are one instance,
/// perhaps on one machine) the instance and this hub's data dir, so one
/// hub's start never takes another's table or kills its children.
pub(crate) fn host_key(store: &Store, instance: &str, data_dir: &std::path::Path) -> String {
    if !store.is_shared() {
        return instance.to_owned();
    }
    let hub = paddock_secret::hash(&data_dir.display().to_string());
    format!("{instance}_{}", hub.get(..8).unwrap_or(&hub))
}

/// The CA the gateway signs intercepted hosts' certificates with. Hubs
/// on one PostgreSQL share one, sealed in the store (the first hub's,
/// its own existing one if it had one): a box made at one hub must trust
/// what another's gateway shows it after a takeover.
pub(crate) fn egress_ca(
    vault: &paddock_vault::Vault,
    store: &Store,
    tls_dir: &std::path::Path,
    instance: &str,
) -> anyhow::Result<paddock_egress::intercept::InstanceCa> {
    use paddock_egress::intercept::InstanceCa;
    if !store.is_shared() {
        return InstanceCa::load_or_create(tls_dir, instance).context("cannot load the egress CA");
    }
    let shared = vault
        .shared_key("egress-ca", paddock_store::clock::now_ms(), || {
            InstanceCa::existing_or_new(tls_dir, instance)
        })
        .context("cannot load the egress CA the hubs share")?;
    InstanceCa::from_pem(&shared.certificate, &shared.private_key)
        .context("the egress CA the hubs share")
}

/// The CA spokes' certificates come from, shared as the egress CA is: a
/// spoke enrolled at one hub links to any of them.
pub(crate) fn spoke_ca(
    vault: &paddock_vault::Vault,
    store: &Store,
    dir: &std::path::Path,
    instance: &str,
) -> anyhow::Result<paddock_tls::SpokeCa> {
    use paddock_tls::SpokeCa;
    if !store.is_shared() {
        return SpokeCa::open_or_create(dir, instance).context("the spoke CA");
    }
    let shared = vault
        .shared_key("spoke-ca", paddock_store::clock::now_ms(), || {
            SpokeCa::existing_or_new(dir, instance).map(|(certificate, private_key)| {
                paddock_vault::SharedKey {
                    certificate,
                    private_key,
                }
            })
        })
        .context("cannot load the spoke CA the hubs share")?;
    SpokeCa::from_pem(&shared.certificate, &shared.private_key)
        .context("the spoke CA the hubs share")
}
