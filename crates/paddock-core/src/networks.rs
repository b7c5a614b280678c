//! Box networks: a warm pool of internal bridge networks.
//!
//! Creating a Docker network costs about as much as starting a container,
//! so paddock keeps a few ready (`boxes.spare_networks`) and hands one to
//! each new box; a destroyed box's network, emptied, goes back to the pool.
//! Because a pooled network outlives any one box, it cannot carry a
//! `paddock.box` label (Docker labels are immutable): the store's
//! `network_id` column is what ties a network to its box. Pool networks
//! carry `paddock.instance` and `paddock.role=box-network`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use paddock_docker::EngineError;
use tokio::sync::Notify;

use crate::subnet::{self, SubnetPool};
use crate::{BoxService, CoreError, Result, labels};

pub(crate) const ROLE: &str = "paddock.role";
pub(crate) const ROLE_BOX_NETWORK: &str = "box-network";

pub(crate) struct NetworkPool {
    subnets: SubnetPool,
    /// Where the next subnet search starts, so concurrent creates rarely
    /// race for one subnet (Docker refuses the loser, which moves on).
    cursor: AtomicU32,
    spares: Mutex<Vec<String>>,
    /// Host address on each known network.
    gateways: Mutex<HashMap<String, Ipv4Addr>>,
    target: usize,
    pub(crate) wanted: Notify,
}

impl NetworkPool {
    pub(crate) fn new(subnets: SubnetPool, target: usize) -> Self {
        Self {
            subnets,
            cursor: AtomicU32::new(0),
            spares: Mutex::new(Vec::new()),
            gateways: Mutex::new(HashMap::new()),
            target,
            wanted: Notify::new(),
        }
    }

    pub(crate) fn spares(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.spares.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Option<String> {
        let taken = self.spares().pop();
        self.wanted.notify_one();
        taken
    }

    /// Keeps `network` if the pool has room; hands it back otherwise. The
    /// pool takes back up to twice its refill target, so a steady rhythm of
    /// creates and destroys recycles networks instead of making and
    /// removing one each time.
    fn give_back(&self, network: String) -> Option<String> {
        let mut spares = self.spares();
        if spares.len() < self.target * 2 {
            spares.push(network);
            None
        } else {
            Some(network)
        }
    }

    fn missing(&self) -> usize {
        self.target.saturating_sub(self.spares().len())
    }

    fn gateways(&self) -> std::sync::MutexGuard<'_, HashMap<String, Ipv4Addr>> {
        self.gateways.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_spare(&self, network: &str) -> bool {
        self.spares().iter().any(|n| n == network)
    }
}

impl BoxService {
    fn network_labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (labels::INSTANCE.to_owned(), self.instance.clone()),
            (ROLE.to_owned(), ROLE_BOX_NETWORK.to_owned()),
        ])
    }

    /// Creates one pool network on the next free subnet.
    async fn make_network(&self) -> Result<String> {
        let pool = &self.networks.subnets;
        for _ in 0..pool.len() {
            let index = self.networks.cursor.fetch_add(1, Ordering::Relaxed) % pool.len();
            let subnet = pool.nth(index);
            let gateway = pool.gateway(index);
            let suffix = crate::secret::hash_token(&crate::secret::new_token());
            let name = format!("paddock-net-{}", &suffix[..12]);
            match self
                .engine
                .create_internal_network(
                    &name,
                    &subnet,
                    &gateway.to_string(),
                    self.network_labels(),
                )
                .await
            {
                Ok(id) => {
                    self.networks.gateways().insert(id.clone(), gateway);
                    for ext in &self.extensions {
                        ext.network_up(&id, gateway);
                    }
                    return Ok(id);
                }
                Err(EngineError::Api { message, .. }) | Err(EngineError::Conflict(message))
                    if message.contains("overlap") =>
                {
                    tracing::debug!(%subnet, "subnet in use; trying the next");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(subnet::exhausted(pool))
    }

    /// A network for a new box: a spare if one is ready, else a new one.
    pub(crate) async fn acquire_network(&self) -> Result<String> {
        match self.networks.take() {
            Some(network) => Ok(network),
            None => self.make_network().await,
        }
    }

    /// Returns an emptied box network to the pool, or removes it.
    pub(crate) async fn release_network(&self, network: String) -> Result<()> {
        if let Some(surplus) = self.networks.give_back(network) {
            self.remove_network(&surplus).await?;
        }
        Ok(())
    }

    async fn remove_network(&self, network: &str) -> Result<()> {
        self.engine.remove_network(network).await?;
        self.networks.gateways().remove(network);
        for ext in &self.extensions {
            ext.network_down(network);
        }
        Ok(())
    }

    /// The host's address on a box network.
    pub(crate) async fn gateway_of(&self, network: &str) -> Result<Ipv4Addr> {
        if let Some(gw) = self.networks.gateways().get(network) {
            return Ok(*gw);
        }
        let (subnet, gateway) = self.engine.network_addresses(network).await?;
        let gw = gateway
            .and_then(|g| g.parse().ok())
            .or_else(|| subnet.as_deref().and_then(subnet::first_host))
            .ok_or_else(|| CoreError::Engine(format!("network {network} has no IPv4 subnet")))?;
        self.networks.gateways().insert(network.to_owned(), gw);
        Ok(gw)
    }

    /// Tells the extensions about a network found at start.
    pub(crate) async fn register_network(&self, network: &str) -> Result<()> {
        let gw = self.gateway_of(network).await?;
        for ext in &self.extensions {
            ext.network_up(network, gw);
        }
        Ok(())
    }

    /// Tops the pool up to its target. Called by the maintenance loop.
    pub(crate) async fn refill_networks(&self) {
        for _ in 0..self.networks.missing() {
            match self.make_network().await {
                Ok(network) => self.networks.spares().push(network),
                Err(CoreError::EngineUnavailable(_)) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "could not prepare a spare box network");
                    return;
                }
            }
        }
    }

    /// After a restart: pool networks no box holds become spares again
    /// (up to the target); the rest are removed.
    pub(crate) async fn adopt_networks(&self, unheld: Vec<String>) -> Result<usize> {
        let mut removed = 0;
        for network in unheld {
            if self.networks.is_spare(&network) {
                continue;
            }
            match self.networks.give_back(network) {
                Some(surplus) => {
                    self.engine.remove_network(&surplus).await?;
                    removed += 1;
                }
                None => {
                    let adopted = self.networks.spares().last().cloned();
                    if let Some(adopted) = adopted {
                        self.register_network(&adopted).await?;
                    }
                }
            }
        }
        Ok(removed)
    }
}
