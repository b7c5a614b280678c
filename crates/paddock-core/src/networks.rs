//! Box networks: a warm pool of internal bridge networks.
//!
//! Creating a Docker network costs about as much as starting a container,
//! so paddock keeps a few ready (`boxes.spare_networks`) and hands one to
//! each new box; a destroyed box's network, emptied, goes back to the pool.
//! Because a pooled network outlives any one box, it cannot carry a
//! `paddock.box` label (Docker labels are immutable): the store's
//! `network_id` column is what ties a network to its box. Pool networks
//! carry `paddock.instance` and `paddock.role=box-network`.
//!
//! Every pool network is, at any instant, exactly one of: held by a box
//! (store), spare (ledger), or being made (ledger, by name). The ledger and
//! the store are changed together under the ledger's lock, so the
//! collector (`collect_networks`) can tell a true orphan — say, one Docker
//! finished making after paddock was killed — from one in use.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

use paddock_docker::EngineError;
use tokio::sync::Notify;

use crate::subnet::{self, SubnetPool};
use crate::{BoxService, CoreError, Result, labels};

pub(crate) const ROLE: &str = "paddock.role";
pub(crate) const ROLE_BOX_NETWORK: &str = "box-network";

#[derive(Default)]
struct Ledger {
    spares: Vec<String>,
    /// Names of networks being created right now.
    making: HashSet<String>,
}

pub(crate) struct NetworkPool {
    subnets: SubnetPool,
    /// Where the next subnet search starts, so concurrent creates rarely
    /// race for one subnet (Docker refuses the loser, which moves on).
    cursor: AtomicU32,
    ledger: Mutex<Ledger>,
    /// Host address on each known network.
    gateways: Mutex<HashMap<String, Ipv4Addr>>,
    /// Networks this process has announced to the extensions (their
    /// listeners and fences exist). Only these may become spares.
    announced: Mutex<HashSet<String>>,
    target: usize,
    pub(crate) wanted: Notify,
}

impl NetworkPool {
    pub(crate) fn new(subnets: SubnetPool, target: usize) -> Self {
        Self {
            subnets,
            cursor: AtomicU32::new(0),
            ledger: Mutex::new(Ledger::default()),
            gateways: Mutex::new(HashMap::new()),
            announced: Mutex::new(HashSet::new()),
            target,
            wanted: Notify::new(),
        }
    }

    fn ledger(&self) -> parking_lot::MutexGuard<'_, Ledger> {
        self.ledger.lock()
    }

    fn gateways(&self) -> parking_lot::MutexGuard<'_, HashMap<String, Ipv4Addr>> {
        self.gateways.lock()
    }

    fn announced(&self) -> parking_lot::MutexGuard<'_, HashSet<String>> {
        self.announced.lock()
    }

    /// Keeps `network` if the pool has room, else hands it back for
    /// removal. The pool takes back up to twice its refill target, so a
    /// steady rhythm of creates and destroys recycles networks instead of
    /// making and removing one each time.
    fn give_back(ledger: &mut Ledger, target: usize, network: String) -> Option<String> {
        if ledger.spares.len() < target * 2 {
            ledger.spares.push(network);
            None
        } else {
            Some(network)
        }
    }

    fn missing(&self) -> usize {
        self.target.saturating_sub(self.ledger().spares.len())
    }
}

/// A network Docker has made that is not yet held or spare.
struct Made {
    id: String,
    name: String,
}

impl BoxService {
    fn network_labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (labels::INSTANCE.to_owned(), self.instance.clone()),
            (ROLE.to_owned(), ROLE_BOX_NETWORK.to_owned()),
        ])
    }

    /// Creates one pool network on the next free subnet. Until the caller
    /// settles it (held or spare), its name stays in the ledger's `making`.
    async fn make_network(&self) -> Result<Made> {
        let pool = &self.networks.subnets;
        for _ in 0..pool.len() {
            let index = self.networks.cursor.fetch_add(1, Ordering::Relaxed) % pool.len();
            let subnet = pool.nth(index);
            let gateway = pool.gateway(index);
            let name = format!("paddock-net-{}", paddock_secret::random_id(6));
            self.networks.ledger().making.insert(name.clone());
            let created = self
                .engine
                .create_internal_network(
                    &name,
                    &subnet,
                    &gateway.to_string(),
                    self.network_labels(),
                )
                .await;
            match created {
                Ok(id) => {
                    self.networks.gateways().insert(id.clone(), gateway);
                    self.announce(&id, gateway);
                    return Ok(Made { id, name });
                }
                Err(e) => {
                    self.networks.ledger().making.remove(&name);
                    match e {
                        EngineError::Api { message, .. } | EngineError::Conflict(message)
                            if message.contains("overlap") =>
                        {
                            tracing::debug!(%subnet, "subnet in use; trying the next");
                        }
                        e => return Err(e.into()),
                    }
                }
            }
        }
        Err(subnet::exhausted(pool))
    }

    /// Gives the box a network (a spare if one is ready) and records it in
    /// the store in the same step, under the ledger's lock.
    pub(crate) async fn acquire_network(&self, box_id: &str) -> Result<String> {
        {
            let mut ledger = self.networks.ledger();
            if let Some(network) = ledger.spares.pop() {
                let recorded = self.store.set_box_network(box_id, &network);
                if recorded.is_err() {
                    ledger.spares.push(network.clone());
                }
                drop(ledger);
                self.networks.wanted.notify_one();
                recorded?;
                return Ok(network);
            }
        }
        self.networks.wanted.notify_one();
        let made = self.make_network().await?;
        let mut ledger = self.networks.ledger();
        ledger.making.remove(&made.name);
        if let Err(e) = self.store.set_box_network(box_id, &made.id) {
            // Not held, so it is a spare now; the collector trims surplus.
            ledger.spares.push(made.id);
            return Err(e.into());
        }
        Ok(made.id)
    }

    fn announce(&self, network: &str, gateway: Ipv4Addr) {
        for ext in &self.extensions {
            ext.network_up(network, gateway);
        }
        self.networks.announced().insert(network.to_owned());
    }

    /// Returns an emptied box network to the pool, or removes it. A
    /// network this process has not announced (a box of a previous run,
    /// torn down at start) is announced first, which also proves it still
    /// exists; one that is gone is simply forgotten.
    pub(crate) async fn release_network(&self, network: String) -> Result<()> {
        if !self.networks.announced().contains(&network) {
            match self.engine.network_addresses(&network).await {
                Err(EngineError::NotFound(_)) => {
                    self.forget_network(&network);
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
                Ok((subnet, gateway)) => {
                    let gw = self.remember_gateway(&network, subnet, gateway)?;
                    self.announce(&network, gw);
                }
            }
        }
        let surplus =
            NetworkPool::give_back(&mut self.networks.ledger(), self.networks.target, network);
        if let Some(surplus) = surplus {
            self.remove_network(&surplus).await?;
        }
        Ok(())
    }

    /// Removes a box's network rather than pooling it: after a failed
    /// create the network itself may be what failed, and a pool that hands
    /// it out again fails every create after.
    pub(crate) async fn discard_network(&self, network: &str) -> Result<()> {
        self.remove_network(network).await
    }

    async fn remove_network(&self, network: &str) -> Result<()> {
        self.engine.remove_network(network).await?;
        self.forget_network(network);
        Ok(())
    }

    fn forget_network(&self, network: &str) {
        self.networks.gateways().remove(network);
        self.networks.announced().remove(network);
        self.networks.ledger().spares.retain(|n| n != network);
        for ext in &self.extensions {
            ext.network_down(network);
        }
    }

    /// The host's address on a box network.
    pub(crate) async fn gateway_of(&self, network: &str) -> Result<Ipv4Addr> {
        if let Some(gw) = self.networks.gateways().get(network) {
            return Ok(*gw);
        }
        let (subnet, gateway) = self.engine.network_addresses(network).await?;
        self.remember_gateway(network, subnet, gateway)
    }

    /// The host's address on a network, from what the engine said of it.
    fn remember_gateway(
        &self,
        network: &str,
        subnet: Option<String>,
        gateway: Option<String>,
    ) -> Result<Ipv4Addr> {
        let gw = gateway
            .and_then(|g| g.parse().ok())
            .or_else(|| subnet.as_deref().and_then(subnet::first_host))
            .ok_or_else(|| CoreError::Engine(format!("network {network} has no IPv4 subnet")))?;
        self.networks.gateways().insert(network.to_owned(), gw);
        Ok(gw)
    }

    /// Tells the extensions about a network found rather than made.
    pub(crate) async fn register_network(&self, network: &str) -> Result<()> {
        let gw = self.gateway_of(network).await?;
        self.announce(network, gw);
        Ok(())
    }

    /// Removes every spare network (a clean stop).
    pub(crate) async fn drop_spares(&self) {
        let spares = std::mem::take(&mut self.networks.ledger().spares);
        for network in spares {
            if let Err(e) = self.remove_network(&network).await {
                tracing::warn!(network, error = %e, "cannot remove a spare box network");
            }
        }
    }

    /// Tops the pool up to its target. Called by the maintenance loop.
    pub(crate) async fn refill_networks(&self) {
        for _ in 0..self.networks.missing() {
            match self.make_network().await {
                Ok(made) => {
                    let mut ledger = self.networks.ledger();
                    ledger.making.remove(&made.name);
                    ledger.spares.push(made.id);
                }
                Err(CoreError::EngineUnavailable(_)) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "could not prepare a spare box network");
                    return;
                }
            }
        }
    }

    /// Finds pool networks that are neither held, spare nor being made —
    /// left by a crash, or finished by Docker after paddock was killed —
    /// and adopts them as spares (up to the pool's room) or removes them.
    /// Networks held by boxes are announced to the extensions when
    /// `announce_held` (at start). Returns how many were removed.
    pub(crate) async fn collect_networks(&self, announce_held: bool) -> Result<usize> {
        let owned = self
            .engine
            .list_labelled(&[(labels::INSTANCE, &self.instance), (ROLE, ROLE_BOX_NETWORK)])
            .await?;
        let (held, orphans) = {
            let ledger = self.networks.ledger();
            let held: HashSet<String> = self
                .store
                .list_boxes()?
                .into_iter()
                .filter_map(|r| r.network_id)
                .collect();
            let orphans: Vec<String> = owned
                .networks
                .iter()
                .map(|(id, _)| id)
                .filter(|id| !held.contains(*id) && !ledger.spares.contains(*id))
                .filter(|id| {
                    owned
                        .network_names
                        .get(*id)
                        .is_none_or(|name| !ledger.making.contains(name))
                })
                .cloned()
                .collect();
            (held, orphans)
        };
        if announce_held {
            for (id, _) in &owned.networks {
                if held.contains(id) {
                    self.register_network(id).await?;
                }
            }
        }
        let mut removed = 0;
        for network in orphans {
            let surplus = NetworkPool::give_back(
                &mut self.networks.ledger(),
                self.networks.target,
                network.clone(),
            );
            match surplus {
                Some(surplus) => {
                    self.remove_network(&surplus).await?;
                    removed += 1;
                }
                None => self.register_network(&network).await?,
            }
        }
        Ok(removed)
    }
}

/// The box networks as they stand, for the worldview.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NetworksView {
    /// Networks held by boxes (warm ones too), by box.
    pub held: Vec<HeldNetwork>,
    /// Spare networks, ready for the next box.
    pub spare: Vec<String>,
    /// Networks being made right now.
    pub making: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HeldNetwork {
    pub box_id: String,
    pub network: String,
    /// paddock's address on it, where the box's traffic goes; absent until
    /// this process has looked it up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

impl BoxService {
    /// Which box holds which network, and the spares. The store is read
    /// under the ledger's lock, as both are changed, so no network shows
    /// as both held and spare, or as neither.
    pub fn networks(&self) -> Result<NetworksView> {
        let (rows, spare, making) = {
            let ledger = self.networks.ledger.lock();
            let rows = self.store.list_boxes()?;
            (rows, ledger.spares.clone(), ledger.making.len())
        };
        let gateways = self.networks.gateways().clone();
        let held = rows
            .into_iter()
            .filter_map(|row| {
                let network = row.network_id?;
                Some(HeldNetwork {
                    gateway: gateways.get(&network).map(ToString::to_string),
                    box_id: row.id,
                    network,
                })
            })
            .collect();
        Ok(NetworksView {
            held,
            spare,
            making,
        })
    }
}
