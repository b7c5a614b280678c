//! The egress gateway as a box extension (beside the git gate's in
//! `gate.rs`): the gateway's listeners on every box network's
//! gateway address, the box's environment and resolver pointed at them,
//! the host-side fence of each box network in place before a box can start
//! on it, and the firewall applied in the box's namespace once it runs.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use paddock_core::{
    BoxExtension, BoxFuture, BoxSetup, BoxStarted, ContainerChange, Equipment, ExtensionError,
    LoginStarted,
};
use tokio_util::sync::CancellationToken;

use paddock_egress::host_guard::HostFence;
use paddock_egress::nflog::{NflogSocket, relay_attempts};
use paddock_egress::{
    Action, BoxIdentity, Egress, EgressError, PortRange, Scope, Target, dns, firewall::BoxFirewall,
    proxy,
};

/// Whether a network's fence is up (None while it is being put up).
type FenceState = tokio::sync::watch::Receiver<Option<Result<(), String>>>;

pub struct EmbeddedEgress {
    egress: Arc<Egress>,
    /// Other gateway ports a box may reach (the git gate's).
    extra_ports: Vec<u16>,
    networks: Mutex<HashMap<String, (Ipv4Addr, CancellationToken)>>,
    /// The boxes this process guards: the guard's stop and the pid of
    /// the container process it guards.
    guards: Mutex<HashMap<String, (CancellationToken, u32)>>,
    host: HostFence,
    fences: Mutex<HashMap<String, FenceState>>,
    /// Rules a login profile put in place for a login under way, by box.
    login_rules: Mutex<HashMap<String, Vec<i64>>>,
    stop: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    m.lock()
}

impl EmbeddedEgress {
    pub fn new(
        egress: Arc<Egress>,
        extra_ports: Vec<u16>,
        host: HostFence,
        stop: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            egress,
            extra_ports,
            networks: Mutex::new(HashMap::new()),
            guards: Mutex::new(HashMap::new()),
            host,
            fences: Mutex::new(HashMap::new()),
            login_rules: Mutex::new(HashMap::new()),
            stop,
        })
    }

    /// Waits for the box network's host-side fence; a box never starts on
    /// an unfenced network.
    async fn fenced(&self, network_id: &str, gateway: Ipv4Addr) -> Result<(), ExtensionError> {
        let guard = match &self.host {
            HostFence::Off => return Ok(()),
            HostFence::Failed(reason) => return Err(ExtensionError::new(reason.clone())),
            HostFence::Ready(guard) => guard,
        };
        let state = lock(&self.fences).get(network_id).cloned();
        if let Some(mut state) = state {
            let outcome = state
                .wait_for(Option::is_some)
                .await
                .map_err(|_| ExtensionError::new("the box network's fence was abandoned"))?;
            outcome
                .clone()
                .unwrap_or_else(|| Err("no fence".into()))
                .map_err(ExtensionError::new)?;
        }
        // Fenced when it joined the pool is not enough: the entry must be
        // in place now, as the box is about to start on it.
        let all: Vec<(String, Ipv4Addr)> = lock(&self.networks)
            .iter()
            .map(|(id, (gw, _))| (id.clone(), *gw))
            .collect();
        guard
            .ensure_network(network_id, gateway, &all)
            .await
            .map_err(|e| ExtensionError::new(e.to_string()))
    }

    /// The box network's fence, checked as a box is about to run on it
    /// (made or started again); from then on the network speaks for this
    /// box, before its container can say anything.
    async fn fence_and_bind(&self, setup: BoxSetup<'_>) -> Result<(), ExtensionError> {
        self.fenced(setup.network_id, setup.gateway).await?;
        self.egress.bind_network(
            setup.network_id,
            BoxIdentity {
                box_id: setup.box_id.to_owned(),
                project: setup.project.to_owned(),
            },
        );
        Ok(())
    }

    fn equipment(&self, setup: BoxSetup<'_>) -> Result<Equipment, ExtensionError> {
        let proxy = format!(
            "http://{}:{}",
            setup.gateway,
            self.egress.config().proxy_port
        );
        let no_proxy = format!("localhost,127.0.0.1,::1,{}", setup.gateway);
        let mut env = Vec::new();
        for key in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            env.push(format!("{key}={proxy}"));
            env.push(format!("{}={proxy}", key.to_ascii_lowercase()));
        }
        env.push(format!("NO_PROXY={no_proxy}"));
        env.push(format!("no_proxy={no_proxy}"));
        let mut read_only_binds = Vec::new();
        if let Some(interceptor) = self.egress.interceptor() {
            let given = interceptor
                .box_equipment(setup.box_id, setup.project)
                .map_err(|e| ExtensionError::new(e.to_string()))?;
            env.extend(given.env);
            read_only_binds = given.read_only_binds;
        }
        Ok(Equipment {
            env,
            dns: vec![setup.gateway],
            read_only_binds,
            ..Equipment::default()
        })
    }

    async fn guard(&self, started: BoxStarted<'_>) -> Result<(), ExtensionError> {
        let who = BoxIdentity {
            box_id: started.box_id.to_owned(),
            project: started.project.to_owned(),
        };
        let config = self.egress.config();
        let guarded_already = lock(&self.guards)
            .get(started.box_id)
            .is_some_and(|(stop, pid)| *pid == started.pid && !stop.is_cancelled());
        // A hub taking over from another (several on one database) finds
        // boxes it made itself among those it restores: their guard is in
        // place, and a second would be refused its log group.
        if config.firewall && !guarded_already {
            let gateway = lock(&self.networks)
                .get(started.network_id)
                .map(|(gw, _)| *gw)
                .ok_or_else(|| ExtensionError::new("the box's network has no egress listeners"))?;
            let mut ports = vec![config.proxy_port];
            ports.extend(&self.extra_ports);
            let firewall = BoxFirewall {
                gateway,
                tcp_ports: ports,
                nflog_group: config.nflog_group,
            };
            firewall
                .apply(started.pid)
                .await
                .map_err(|e| ExtensionError::new(e.to_string()))?;
            let socket = NflogSocket::open_in(started.pid, config.nflog_group)
                .await
                .map_err(|e| ExtensionError::new(e.to_string()))?;
            let stop = self.stop.child_token();
            if let Some((old, _)) =
                lock(&self.guards).insert(who.box_id.clone(), (stop.clone(), started.pid))
            {
                old.cancel();
            }
            tokio::spawn(report_raw_attempts(
                self.egress.clone(),
                who.clone(),
                socket,
                stop,
            ));
        }
        self.egress.bind_network(started.network_id, who.clone());
        self.egress.box_guarded(&who);
        Ok(())
    }
}

async fn report_raw_attempts(
    egress: Arc<Egress>,
    who: BoxIdentity,
    socket: NflogSocket,
    stop: CancellationToken,
) {
    let whose = format!("box {}", who.box_id);
    relay_attempts(socket, stop, &whose, |a| {
        egress.raw_attempt(&who, a.dest, a.port, a.proto)
    })
    .await;
}

/// `host` or `host:port` of a login profile, as a rule's target and ports.
fn login_destination(text: &str) -> Result<(Target, Option<PortRange>), EgressError> {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
            let port: u16 = port.parse().map_err(|_| {
                EgressError::Invalid(format!("login destination {text:?}: bad port"))
            })?;
            (host, Some(PortRange { lo: port, hi: port }))
        }
        _ => (text, None),
    };
    Ok((host.parse()?, port))
}

impl EmbeddedEgress {
    fn drop_rules(&self, ids: Vec<i64>) {
        for id in ids {
            if let Err(e) = self.egress.delete_rule(id, "paddock (the login ended)") {
                tracing::error!(rule = id, error = %e, "cannot remove a login's rule");
            }
        }
    }
}

impl BoxExtension for EmbeddedEgress {
    fn equip<'a>(
        &'a self,
        setup: BoxSetup<'a>,
    ) -> BoxFuture<'a, Result<Equipment, ExtensionError>> {
        Box::pin(async move {
            self.fence_and_bind(setup).await?;
            self.equipment(setup)
        })
    }

    fn starting<'a>(&'a self, setup: BoxSetup<'a>) -> BoxFuture<'a, Result<(), ExtensionError>> {
        Box::pin(self.fence_and_bind(setup))
    }

    fn started<'a>(&'a self, started: BoxStarted<'a>) -> BoxFuture<'a, Result<(), ExtensionError>> {
        Box::pin(self.guard(started))
    }

    fn login_started(&self, login: LoginStarted<'_>) {
        let by = format!("profile:{}", login.image);
        let mut ids = Vec::new();
        for destination in login.destinations {
            let made = login_destination(destination).and_then(|(target, ports)| {
                self.egress.put_rule(
                    Scope::Box(login.box_id.to_owned()),
                    target,
                    ports,
                    Action::Allow,
                    None,
                    &by,
                )
            });
            match made {
                Ok(rule) => ids.push(rule.id),
                Err(e) => {
                    tracing::error!(box_id = login.box_id, destination, error = %e, "cannot allow a login destination");
                }
            }
        }
        if let Some(old) = lock(&self.login_rules).insert(login.box_id.to_owned(), ids) {
            self.drop_rules(old);
        }
    }

    fn login_ended(&self, box_id: &str) {
        if let Some(ids) = lock(&self.login_rules).remove(box_id) {
            self.drop_rules(ids);
        }
    }

    fn removed(&self, box_id: &str, project: &str, reason: &str) {
        self.login_ended(box_id);
        if let Some((stop, _)) = lock(&self.guards).remove(box_id) {
            stop.cancel();
        }
        let who = BoxIdentity {
            box_id: box_id.to_owned(),
            project: project.to_owned(),
        };
        self.egress.box_gone(&who, reason);
        if let Some(interceptor) = self.egress.interceptor() {
            interceptor.vault().forget_box(box_id);
        }
    }

    fn container_changed(&self, box_id: &str, project: &str, change: &ContainerChange) {
        let who = BoxIdentity {
            box_id: box_id.to_owned(),
            project: project.to_owned(),
        };
        match change {
            ContainerChange::Started => self.egress.container_started(&who),
            ContainerChange::Died { exit_code } => self.egress.container_exited(&who, *exit_code),
        }
    }

    fn network_up(&self, network_id: &str, gateway: Ipv4Addr) {
        if lock(&self.networks).contains_key(network_id) {
            return;
        }
        if let HostFence::Ready(guard) = &self.host {
            let (tx, rx) = tokio::sync::watch::channel(None);
            lock(&self.fences).insert(network_id.to_owned(), rx);
            let (guard, id) = (guard.clone(), network_id.to_owned());
            tokio::spawn(async move {
                let done = guard.add_network(&id, gateway).await.map_err(|e| {
                    tracing::error!(network_id = %id, error = %e, "cannot fence a box network; its boxes will not start");
                    e.to_string()
                });
                let _ = tx.send(Some(done));
            });
        }
        let config = self.egress.config();
        let proxy_addr = SocketAddr::from((gateway, config.proxy_port));
        let dns_addr = SocketAddr::from((gateway, config.dns_port));
        let bound = std::net::TcpListener::bind(proxy_addr)
            .and_then(|l| {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
            })
            .and_then(|tcp| {
                let udp = std::net::UdpSocket::bind(dns_addr)?;
                udp.set_nonblocking(true)?;
                Ok((tcp, tokio::net::UdpSocket::from_std(udp)?))
            });
        let (tcp, udp) = match bound {
            Ok(pair) => pair,
            Err(e) => {
                tracing::error!(%proxy_addr, %dns_addr, error = %e, "cannot start the egress gateway for a box network; its boxes will fail to start");
                return;
            }
        };
        let stop = self.stop.child_token();
        lock(&self.networks).insert(network_id.to_owned(), (gateway, stop.clone()));
        tokio::spawn(proxy::serve(
            self.egress.clone(),
            tcp,
            network_id.to_owned(),
            stop.clone(),
        ));
        tokio::spawn(dns::serve(
            self.egress.clone(),
            udp,
            network_id.to_owned(),
            stop,
        ));
    }

    fn network_down(&self, network_id: &str) {
        self.egress.unbind_network(network_id);
        lock(&self.fences).remove(network_id);
        if let Some((gateway, stop)) = lock(&self.networks).remove(network_id) {
            stop.cancel();
            if let HostFence::Ready(guard) = &self.host {
                let (guard, id) = (guard.clone(), network_id.to_owned());
                tokio::spawn(async move { guard.remove_network(&id, gateway).await });
            }
        }
    }
}
