//! The git gate inside `paddock serve`: one listener on each box network's
//! gateway address, a token per box for its own project's repository, and
//! git in the box set up (through its environment) to use both.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use paddock_core::{BoxExtension, BoxFuture, BoxSetup, Equipment, ExtensionError};
use paddock_gate::{Gate, Grant, Import, TokenAuthority, ensure_repository};
use paddock_store::Store;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitConfig {
    pub enabled: bool,
    /// Port of the gate on every box network's gateway address.
    pub port: u16,
    /// Where the bare repositories live (default: `<data dir>/git`).
    pub base_path: Option<PathBuf>,
    pub push: paddock_gate::PushPolicy,
    /// Repositories imported (cloned bare) on first use instead of created empty.
    pub projects: Vec<ProjectImport>,
}

impl Default for GitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            port: 9418,
            base_path: None,
            push: paddock_gate::PushPolicy::default(),
            projects: Vec::new(),
        }
    }
}

/// A project's repository comes from somewhere: a path cloned on first
/// use (`import`), or a forge (`upstream`, an https URL) cloned through
/// the egress gateway and pushed back to (`paddock git push-upstream`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectImport {
    pub project: String,
    #[serde(default)]
    pub import: Option<PathBuf>,
    #[serde(default)]
    pub upstream: Option<String>,
    /// `manual` (a person runs `paddock git push-upstream`) or `auto`:
    /// agent branches go upstream as soon as they reach the gate.
    #[serde(default)]
    pub push_upstream: PushUpstream,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushUpstream {
    #[default]
    Manual,
    Auto,
}

impl ProjectImport {
    /// Exactly one source, and an upstream spoken to over TLS only.
    pub fn check(&self) -> Result<(), String> {
        match (&self.import, &self.upstream) {
            (Some(_), None) if self.push_upstream == PushUpstream::Auto => Err(format!(
                "[[git.projects]] {}: push_upstream = \"auto\" needs an upstream",
                self.project
            )),
            (Some(_), None) => Ok(()),
            (None, Some(url)) if url.starts_with("https://") && url.len() > "https://".len() => {
                Ok(())
            }
            (None, Some(url)) => Err(format!(
                "[[git.projects]] {}: upstream {url:?} is not an https:// URL",
                self.project
            )),
            _ => Err(format!(
                "[[git.projects]] {}: name exactly one of import and upstream",
                self.project
            )),
        }
    }
}

pub struct EmbeddedGate {
    gate: Arc<Gate>,
    store: Arc<Store>,
    port: u16,
    imports: HashMap<String, PathBuf>,
    /// Projects' upstreams, reached through the gateway.
    upstreams: Option<Arc<crate::upstream::Upstreams>>,
    /// Serialises repository creation, so two boxes of a new project
    /// cannot both try to make its repository.
    creating: tokio::sync::Mutex<()>,
    listeners: Mutex<HashMap<String, CancellationToken>>,
    stop: CancellationToken,
}

/// Tokens of boxes, valid only on the listener of the box's own network.
struct NetworkTokens {
    store: Arc<Store>,
    network_id: String,
}

impl TokenAuthority for NetworkTokens {
    fn grant(&self, token: &str) -> Option<Grant> {
        let hash = paddock_secret::hash(token);
        match self.store.git_grant(&hash, &self.network_id) {
            Ok(grant) => grant.map(|g| Grant::Project {
                project: g.project,
                principal: g.box_id,
            }),
            Err(e) => {
                tracing::error!(error = %e, "git token lookup failed; refusing");
                None
            }
        }
    }
}

impl EmbeddedGate {
    pub fn new(
        gate: Arc<Gate>,
        store: Arc<Store>,
        config: &GitConfig,
        upstreams: Option<Arc<crate::upstream::Upstreams>>,
        stop: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            gate,
            store,
            port: config.port,
            imports: config
                .projects
                .iter()
                .filter_map(|p| Some((p.project.clone(), p.import.clone()?)))
                .collect(),
            upstreams,
            creating: tokio::sync::Mutex::new(()),
            listeners: Mutex::new(HashMap::new()),
            stop,
        })
    }

    fn listeners(&self) -> parking_lot::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.listeners.lock()
    }

    /// Makes the project's repository on its first use: imported or
    /// cloned from its upstream if it has one, else empty.
    async fn ensure_repository(&self, project: &str) -> Result<(), ExtensionError> {
        let _one_at_a_time = self.creating.lock().await;
        let upstream = self
            .upstreams
            .as_ref()
            .and_then(|u| Some((u, u.url(project)?)));
        // The upstream's clone goes through the gateway as the project
        // (its credential lapses with the clone).
        let (grant, env) = match upstream {
            Some((u, _)) => {
                let (grant, env) = u.git_env(project);
                (Some(grant), env)
            }
            None => (None, Vec::new()),
        };
        let source = match (upstream, self.imports.get(project)) {
            (Some((_, url)), _) => Some(std::ffi::OsStr::new(url)),
            (None, Some(path)) => Some(path.as_os_str()),
            (None, None) => None,
        };
        let import = source.map(|source| Import { source, env: &env });
        let made = ensure_repository(self.gate.base(), project, import).await;
        drop(grant);
        if made.map_err(|e| ExtensionError::new(e.to_string()))? {
            tracing::info!(
                project,
                imported = source.is_some(),
                "created the project's repository"
            );
        }
        Ok(())
    }

    async fn equip_box(&self, setup: BoxSetup<'_>) -> Result<Equipment, ExtensionError> {
        // On a spoke the repository is the hub's (made there on first use).
        if !self.gate.forwards() {
            self.ensure_repository(setup.project).await?;
        }
        let token = paddock_secret::mint();
        self.store
            .put_git_token(setup.box_id, setup.project, &paddock_secret::hash(&token))
            .map_err(|e| ExtensionError::new(e.to_string()))?;
        let origin = format!("http://{}:{}", setup.gateway, self.port);
        let url = format!("{origin}/{}.git", setup.project);
        // Git reads configuration from the environment (GIT_CONFIG_COUNT,
        // git ≥ 2.31), so nothing has to be copied into the container: a
        // file upload would contend with the container's start.
        let helper =
            format!("!f() {{ test \"$1\" = get && echo username={token} && echo password=x; }}; f");
        let settings = [
            (format!("credential.{origin}.helper"), helper),
            (format!("url.{origin}/.insteadOf"), "paddock:".to_owned()),
            // git >= 2.46 sends the token with its first request instead of
            // after a 401 (older git ignores the key).
            (format!("http.{origin}.proactiveAuth"), "basic".to_owned()),
        ];
        let mut env = vec![
            format!("PADDOCK_GIT_URL={url}"),
            format!("GIT_CONFIG_COUNT={}", settings.len()),
        ];
        for (i, (key, value)) in settings.iter().enumerate() {
            env.push(format!("GIT_CONFIG_KEY_{i}={key}"));
            env.push(format!("GIT_CONFIG_VALUE_{i}={value}"));
        }
        Ok(Equipment {
            env,
            ..Equipment::default()
        })
    }
}

/// The hub's gate serving a box it placed on a spoke (the spoke's
/// listener checked which spoke asks, and that the box is on it).
impl paddock_spoke::GitForSpokes for EmbeddedGate {
    fn serve<'a>(
        &'a self,
        box_id: &'a str,
        project: &'a str,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = hyper::Response<paddock_gate::GateBody>> + Send + 'a>,
    > {
        Box::pin(async move {
            if let Err(e) = self.ensure_repository(project).await {
                tracing::error!(project, error = %e, "cannot make a repository for a spoke's box");
                return paddock_gate::text_answer(
                    hyper::StatusCode::SERVICE_UNAVAILABLE,
                    "the project's repository cannot be made\n",
                );
            }
            let grant = Grant::Project {
                project: project.to_owned(),
                principal: box_id.to_owned(),
            };
            self.gate.serve_granted(request, grant).await
        })
    }
}

impl BoxExtension for EmbeddedGate {
    fn equip<'a>(
        &'a self,
        setup: BoxSetup<'a>,
    ) -> BoxFuture<'a, Result<Equipment, ExtensionError>> {
        Box::pin(self.equip_box(setup))
    }

    fn network_up(&self, network_id: &str, gateway: Ipv4Addr) {
        if self.listeners().contains_key(network_id) {
            return;
        }
        let addr = SocketAddr::from((gateway, self.port));
        let listener = match std::net::TcpListener::bind(addr).and_then(|l| {
            l.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(l)
        }) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot start the git gate for a box network");
                return;
            }
        };
        let stop = self.stop.child_token();
        self.listeners().insert(network_id.to_owned(), stop.clone());
        let tokens = Arc::new(NetworkTokens {
            store: self.store.clone(),
            network_id: network_id.to_owned(),
        });
        tracing::debug!(%addr, "git gate listening for a box network");
        tokio::spawn(self.gate.clone().serve(listener, tokens, stop));
    }

    fn network_down(&self, network_id: &str) {
        if let Some(stop) = self.listeners().remove(network_id) {
            stop.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(import: Option<&str>, upstream: Option<&str>, push: PushUpstream) -> ProjectImport {
        ProjectImport {
            project: "p".into(),
            import: import.map(PathBuf::from),
            upstream: upstream.map(str::to_owned),
            push_upstream: push,
        }
    }

    #[test]
    fn a_project_names_one_source_and_an_upstream_is_https() {
        assert!(
            project(Some("/r"), None, PushUpstream::Manual)
                .check()
                .is_ok()
        );
        assert!(
            project(
                None,
                Some("https://forge.example/a.git"),
                PushUpstream::Auto
            )
            .check()
            .is_ok()
        );
        for bad in [
            project(None, None, PushUpstream::Manual),
            project(
                Some("/r"),
                Some("https://f.example/a.git"),
                PushUpstream::Manual,
            ),
            project(
                None,
                Some("http://forge.example/a.git"),
                PushUpstream::Manual,
            ),
            project(None, Some("https://"), PushUpstream::Manual),
            project(Some("/r"), None, PushUpstream::Auto),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
