//! Configuration: a TOML file, then `PADDOCK_<SECTION>__<KEY>` environment
//! variables, then flags (and their `PADDOCK_*` env twins), each overriding
//! the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use paddock_core::CoreConfig;
use paddock_core::config::{
    ActivationConfig, BoxLimits, HookConfig, ImageProfile, ReconcileConfig,
};
use serde::Deserialize;

use crate::ServeArgs;
use crate::extensions::gate::GitConfig;
use crate::iam::IamConfig;
use paddock_clearance::HubConfig as ClearanceConfig;
use paddock_egress::EgressConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaddockConfig {
    pub server: ServerConfig,
    pub public_url: Option<String>,
    pub instance: String,
    pub boxes: BoxLimits,
    pub activation: ActivationConfig,
    pub profiles: Vec<ImageProfile>,
    pub hooks: Vec<HookConfig>,
    pub reconcile: ReconcileConfig,
    pub git: GitConfig,
    pub egress: EgressConfig,
    pub clearance: ClearanceConfig,
    pub iam: IamConfig,
    /// `[[webhooks]]`: endpoints told of every hold and its end.
    pub webhooks: Vec<paddock_webhook::WebhookConfig>,
    /// `[audit]`: retention and export sinks of the decision log.
    pub audit: paddock_export::AuditConfig,
    /// `[metrics]`: counting on (the default) or off.
    pub metrics: MetricsConfig,
    /// `[traces]`: spans to an OTLP collector, when one is named.
    pub traces: paddock_trace::TraceConfig,
    /// `[[registries]]`: logins for pulling box images.
    pub registries: Vec<paddock_core::config::RegistryConfig>,
    /// `[[pools]]`: warm boxes per project and image.
    pub pools: Vec<paddock_core::config::PoolConfig>,
    /// `[spokes]`: other machines that run boxes for this hub.
    pub spokes: SpokesConfig,
    /// `[store]`: where paddock keeps its state.
    pub store: StoreConfig,
}

/// `[store]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://user:password@host:port/database`: a PostgreSQL
    /// database that every hub naming it shares; unset: the embedded
    /// SQLite file in the data dir. It carries a password: set it as
    /// `PADDOCK_STORE__URL` rather than in a file others can read.
    pub url: Option<String>,
}

impl StoreConfig {
    /// Opens the store this names (PostgreSQL), or the data dir's SQLite.
    pub fn open(&self, data_dir: &std::path::Path) -> anyhow::Result<paddock_store::Store> {
        match &self.url {
            Some(url) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    anyhow::bail!("store.url must be a postgres:// URL");
                }
                // The error never carries the URL: it holds a password.
                paddock_store::Store::open_postgres(url)
                    .context("cannot open the PostgreSQL store (store.url)")
            }
            None => {
                let db = data_dir.join("paddock.db");
                paddock_store::Store::open(&db)
                    .with_context(|| format!("cannot open the store at {}", db.display()))
            }
        }
    }

    /// Refuses a command that works on the SQLite file only.
    pub fn only_sqlite(&self, what: &str) -> anyhow::Result<()> {
        if self.url.is_some() {
            anyhow::bail!(
                "{what} works on the embedded SQLite store; this configuration's store is PostgreSQL (store.url): use PostgreSQL's own tools (pg_dump, pg_restore)"
            );
        }
        Ok(())
    }
}

/// `[spokes]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpokesConfig {
    /// How long a spoke's client certificate is valid; it enrols again
    /// (with a new token) before then.
    pub cert_life_days: u64,
    /// Where spokes dial in (mutual TLS, certificates of the hub's spoke
    /// CA only); unset: no spoke listener.
    pub listen: Option<String>,
    /// The names spokes reach the listener by, put in its certificate
    /// (default: its address, and `localhost` when it is loopback).
    pub names: Vec<String>,
    /// Whether the hub runs boxes itself too; false: every box goes to a
    /// spoke (a create that finds none with room is refused).
    pub boxes_here: bool,
    /// How often each end of a hub–spoke link pings the other; an end
    /// that hears nothing for three pings counts the link cut and hangs
    /// up (the spoke then dials again). 1–300.
    pub ping_secs: u64,
}

impl Default for SpokesConfig {
    fn default() -> Self {
        Self {
            cert_life_days: 30,
            listen: None,
            names: Vec::new(),
            boxes_here: true,
            ping_secs: paddock_spoke::liveness::DEFAULT_PING.as_secs(),
        }
    }
}

impl SpokesConfig {
    /// `ping_secs`, checked: a ping rarer than every five minutes would
    /// leave a cut link shown as linked for a quarter of an hour.
    pub fn ping_every(&self) -> anyhow::Result<Duration> {
        if !(1..=300).contains(&self.ping_secs) {
            anyhow::bail!(
                "spokes.ping_secs = {} is out of range: 1 to 300",
                self.ping_secs
            );
        }
        Ok(Duration::from_secs(self.ping_secs))
    }

    /// The listener's address, checked, and the names for its
    /// certificate.
    pub fn listener(&self) -> anyhow::Result<Option<(SocketAddr, Vec<String>)>> {
        let Some(listen) = &self.listen else {
            return Ok(None);
        };
        let addr: SocketAddr = listen
            .parse()
            .with_context(|| format!("spokes.listen {listen:?} is not IP:PORT"))?;
        let mut names = self.names.clone();
        if names.is_empty() {
            if !addr.ip().is_unspecified() {
                names.push(addr.ip().to_string());
            }
            if addr.ip().is_loopback() || addr.ip().is_unspecified() {
                names.push("localhost".into());
                names.push("127.0.0.1".into());
            }
        }
        Ok(Some((addr, names)))
    }
}

impl Default for PaddockConfig {
    fn default() -> Self {
        let core = CoreConfig::default();
        Self {
            server: ServerConfig::default(),
            public_url: None,
            instance: core.instance,
            boxes: core.boxes,
            activation: core.activation,
            profiles: core.profiles,
            hooks: core.hooks,
            reconcile: core.reconcile,
            git: GitConfig::default(),
            egress: EgressConfig::default(),
            clearance: ClearanceConfig::default(),
            iam: IamConfig::default(),
            webhooks: Vec::new(),
            audit: paddock_export::AuditConfig::default(),
            metrics: MetricsConfig::default(),
            traces: paddock_trace::TraceConfig::default(),
            registries: core.registries,
            pools: core.pools,
            spokes: SpokesConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: Option<PathBuf>,
    pub docker_host: Option<String>,
    /// `text` or `json`.
    pub log_format: String,
    /// Per component: how long each may take to stop.
    pub shutdown_timeout_secs: u64,
    /// Extra `Host` values MCP accepts besides loopback and the public URL's.
    pub allowed_hosts: Vec<String>,
    pub clearance_socket: Option<PathBuf>,
    /// PEM certificate (leaf first, then its chain) for HTTPS on `listen`;
    /// with `tls_key`. Renewed files are taken up without a restart.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// How often the certificate's files are looked at for a renewal.
    pub tls_reload_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7878".into(),
            data_dir: None,
            docker_host: None,
            log_format: "text".into(),
            shutdown_timeout_secs: 10,
            allowed_hosts: Vec::new(),
            clearance_socket: None,
            tls_cert: None,
            tls_key: None,
            tls_reload_secs: 5,
        }
    }
}

/// Everything `serve` needs, resolved.
pub struct Resolved {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub docker_host: Option<String>,
    pub log_format: String,
    pub shutdown_timeout_secs: u64,
    pub allowed_hosts: Vec<String>,
    /// HTTPS on the API listener, when configured.
    pub tls: Option<paddock_tls::CertFiles>,
    pub tls_reload_secs: u64,
    /// False when `public_url` defaults to the listen address, which
    /// `serve` then replaces with the address actually bound (port 0).
    pub explicit_public_url: bool,
    pub core: CoreConfig,
    pub git: GitConfig,
    pub egress: EgressConfig,
    pub clearance: ClearanceConfig,
    pub clearance_socket: PathBuf,
    pub iam: IamConfig,
    pub webhooks: Vec<paddock_webhook::WebhookConfig>,
    pub audit: paddock_export::AuditConfig,
    pub metrics: MetricsConfig,
    pub traces: paddock_trace::TraceConfig,
    pub spokes: SpokesConfig,
    pub store: StoreConfig,
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Off, nothing is counted and `/metrics` says so (404).
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

pub fn load(args: &ServeArgs) -> anyhow::Result<Resolved> {
    let mut table = match &args.config {
        Some(path) => read_file(path)?,
        None => toml::Table::new(),
    };
    apply_env(&mut table, std::env::vars())?;
    let mut config: PaddockConfig = toml::Value::Table(table)
        .try_into()
        .context("invalid configuration")?;
    if let Some(v) = &args.listen {
        config.server.listen = v.clone();
    }
    if let Some(v) = &args.data_dir {
        config.server.data_dir = Some(v.clone());
    }
    if let Some(v) = &args.public_url {
        config.public_url = Some(v.clone());
    }
    if let Some(v) = &args.docker_host {
        config.server.docker_host = Some(v.clone());
    }
    if let Some(v) = &args.clearance_socket {
        config.server.clearance_socket = Some(v.clone());
    }
    resolve(config)
}

/// The `[[profiles]]` shipped for the images `scripts/build-agent-image`
/// makes (Claude Code's and Codex's logins).
const SHIPPED_PROFILES: &str = include_str!("agent_profiles.toml");

/// The configured profiles, then each shipped one whose image none of
/// them names: a configured profile replaces a shipped one.
fn with_shipped_profiles(mut configured: Vec<ImageProfile>) -> anyhow::Result<Vec<ImageProfile>> {
    #[derive(Deserialize)]
    struct Shipped {
        profiles: Vec<ImageProfile>,
    }
    let shipped: Shipped =
        toml::from_str(SHIPPED_PROFILES).context("the shipped agent profiles")?;
    for profile in shipped.profiles {
        if !configured.iter().any(|p| p.image == profile.image) {
            configured.push(profile);
        }
    }
    Ok(configured)
}

fn read_file(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    text.parse::<toml::Table>()
        .with_context(|| format!("config file {} is not valid TOML", path.display()))
}

/// `PADDOCK_BOXES__MAX_BOXES=8` sets `boxes.max_boxes`. Values are read as
/// TOML (numbers, booleans, arrays) and fall back to plain strings.
fn apply_env(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<()> {
    for (name, value) in vars {
        let Some(path) = name.strip_prefix("PADDOCK_") else {
            continue;
        };
        if !path.contains("__") {
            continue;
        }
        let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(value.clone()));
        let mut node = &mut *table;
        for key in &keys[..keys.len() - 1] {
            let entry = node
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = entry
                .as_table_mut()
                .with_context(|| format!("{name}: {key} is not a table"))?;
        }
        node.insert(keys[keys.len() - 1].clone(), parsed);
    }
    Ok(())
}

/// A path as given, made absolute against the directory paddock started
/// in: the data dir's paths go to processes with other working
/// directories (Docker's bind mounts, git's hooks), where a relative one
/// would mean something else or nothing.
fn absolute(path: PathBuf) -> anyhow::Result<PathBuf> {
    std::path::absolute(&path)
        .map_err(|e| anyhow::anyhow!("cannot make {} absolute: {e}", path.display()))
}

fn default_data_dir() -> PathBuf {
    let is_root = std::env::var("USER").is_ok_and(|u| u == "root")
        || std::fs::metadata("/proc/self").is_ok_and(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 0
        });
    if is_root {
        return PathBuf::from("/var/lib/paddock");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("paddock");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/share/paddock")
}

fn resolve(config: PaddockConfig) -> anyhow::Result<Resolved> {
    let listen: SocketAddr = config
        .server
        .listen
        .parse()
        .with_context(|| format!("listen address {:?} is not IP:PORT", config.server.listen))?;
    config.iam.check(listen)?;
    config.spokes.ping_every()?;
    if !matches!(config.server.log_format.as_str(), "text" | "json") {
        bail!("server.log_format must be \"text\" or \"json\"");
    }
    let tls = match (config.server.tls_cert, config.server.tls_key) {
        (Some(cert), Some(key)) => Some(paddock_tls::CertFiles {
            cert: absolute(cert)?,
            key: absolute(key)?,
        }),
        (None, None) => None,
        _ => {
            bail!("server.tls_cert and server.tls_key go together: set both for HTTPS, or neither")
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let explicit_public_url = config.public_url.is_some();
    let public_url = config
        .public_url
        .unwrap_or_else(|| format!("{scheme}://{listen}"));
    let mut allowed_hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = public_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .filter(|h| !h.is_empty())
    {
        allowed_hosts.push(host.to_owned());
    }
    allowed_hosts.extend(config.server.allowed_hosts);
    let core = CoreConfig {
        public_url,
        instance: config.instance,
        boxes: config.boxes,
        activation: config.activation,
        profiles: with_shipped_profiles(config.profiles)?,
        hooks: config.hooks,
        reconcile: config.reconcile,
        registries: config.registries,
        pools: config.pools,
    };
    core.check()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let mut git = config.git;
    git.base_path = git.base_path.map(absolute).transpose()?;
    Ok(Resolved {
        listen,
        data_dir: absolute(config.server.data_dir.unwrap_or_else(default_data_dir))?,
        docker_host: config.server.docker_host,
        log_format: config.server.log_format,
        shutdown_timeout_secs: config.server.shutdown_timeout_secs,
        allowed_hosts,
        tls,
        tls_reload_secs: config.server.tls_reload_secs.max(1),
        explicit_public_url,
        core,
        git,
        egress: config.egress,
        clearance: config.clearance,
        clearance_socket: absolute(
            config
                .server
                .clearance_socket
                .unwrap_or_else(paddock_clearance::varlink::default_socket_path),
        )?,
        iam: config.iam,
        webhooks: config.webhooks,
        audit: config.audit,
        metrics: config.metrics,
        traces: config.traces,
        spokes: config.spokes,
        store: config.store,
    })
}

#[cfg(test)]
mod tests;
