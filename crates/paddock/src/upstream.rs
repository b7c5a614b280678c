//! A project's upstream: the forge its repository is imported from and
//! where its agent branches go home. paddock's own git reaches it through
//! the egress gateway (`paddock_egress::own`), as the project: the
//! project's rules decide, its secret bound to the forge is put on the
//! wire there, and every request is in the decision log.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use paddock_core::BoxFuture;
use paddock_egress::own::{OwnGrant, OwnProxy};
use paddock_gate::PushPolicy;
use paddock_http::{GitUpstream, UpstreamPushError};

/// The projects' upstreams of `[git]`, checked; None when no project has
/// one. An upstream is reached through the gateway, so it needs one.
pub fn from_config(
    git: &crate::extensions::gate::GitConfig,
    own: Option<Arc<OwnProxy>>,
    bundle: &std::path::Path,
    base: &std::path::Path,
) -> anyhow::Result<Option<Arc<Upstreams>>> {
    let mut urls = HashMap::new();
    let mut auto = Vec::new();
    for project in &git.projects {
        project.check().map_err(anyhow::Error::msg)?;
        if let Some(url) = &project.upstream {
            urls.insert(project.project.clone(), url.clone());
        }
        if project.push_upstream == crate::extensions::gate::PushUpstream::Auto {
            auto.push(project.project.clone());
        }
    }
    if urls.is_empty() {
        return Ok(None);
    }
    let own = own.ok_or_else(|| {
        anyhow::anyhow!(
            "[[git.projects]] upstream is reached through the egress gateway, which is disabled"
        )
    })?;
    let mut upstreams = Upstreams::new(
        own,
        bundle.to_owned(),
        base.to_owned(),
        urls,
        git.push.clone(),
    );
    upstreams.auto = auto;
    Ok(Some(Arc::new(upstreams)))
}

/// How often projects with `push_upstream = "auto"` are looked at.
const AUTO_PUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl Upstreams {
    /// Sends agent branches of `auto` projects upstream as they change in
    /// the gate (looked at every [`AUTO_PUSH_EVERY`]; a push that fails is
    /// tried again at the next look), until `stop`.
    pub fn push_automatically(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        if self.auto.is_empty() {
            return;
        }
        tokio::spawn(async move {
            let mut pushed: HashMap<(String, String), String> = HashMap::new();
            loop {
                for project in &self.auto {
                    for (name, object) in self.agent_refs(project).await {
                        let key = (project.clone(), name.clone());
                        if pushed.get(&key) == Some(&object) {
                            continue;
                        }
                        match self.push_ref(project, &name).await {
                            Ok(_) => {
                                tracing::info!(%project, git_ref = %name, "pushed to the upstream (auto)");
                                pushed.insert(key, object);
                            }
                            Err(e) => {
                                tracing::warn!(%project, git_ref = %name, error = %e, "cannot push to the upstream; trying again")
                            }
                        }
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(AUTO_PUSH_EVERY) => {}
                }
            }
        });
    }

    /// The project's refs agents may push, with the objects they name.
    async fn agent_refs(&self, project: &str) -> Vec<(String, String)> {
        let repo = self.base.join(format!("{project}.git"));
        let mut list = tokio::process::Command::new("git");
        list.arg("-C").arg(&repo).args([
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/",
        ]);
        let Ok(out) = paddock_children::global()
            .output("git", format!("list refs of {project}"), list)
            .await
        else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(name, _)| self.policy.allows_ref(name))
            .map(|(n, o)| (n.to_owned(), o.to_owned()))
            .collect()
    }
}

pub struct Upstreams {
    own: Arc<OwnProxy>,
    /// The host's roots plus the instance CA: what paddock's git trusts.
    bundle: PathBuf,
    base: PathBuf,
    urls: HashMap<String, String>,
    policy: PushPolicy,
    /// Projects whose agent branches go upstream without a person.
    auto: Vec<String>,
}

impl Upstreams {
    pub fn new(
        own: Arc<OwnProxy>,
        bundle: PathBuf,
        base: PathBuf,
        urls: HashMap<String, String>,
        policy: PushPolicy,
    ) -> Self {
        Self {
            own,
            bundle,
            base,
            urls,
            policy,
            auto: Vec::new(),
        }
    }

    pub fn url(&self, project: &str) -> Option<&str> {
        self.urls.get(project).map(String::as_str)
    }

    /// The environment a git process speaking for `project` runs with, and
    /// the credential it carries (lapses when dropped). Git reads it from
    /// the environment: a command line would show it to every user.
    pub fn git_env(&self, project: &str) -> (OwnGrant, Vec<(String, String)>) {
        let grant = self.own.grant(project);
        let settings = [("http.proxy", grant.proxy_url.clone())];
        // GIT_SSL_CAINFO, not http.sslCAInfo: Debian's git (libcurl with
        // GnuTLS) takes the variable and ignores the setting.
        let mut env = vec![
            ("GIT_CONFIG_NOSYSTEM".to_owned(), "1".to_owned()),
            ("GIT_TERMINAL_PROMPT".to_owned(), "0".to_owned()),
            (
                "GIT_SSL_CAINFO".to_owned(),
                self.bundle.display().to_string(),
            ),
            ("GIT_CONFIG_COUNT".to_owned(), settings.len().to_string()),
        ];
        for (i, (key, value)) in settings.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{i}"), key.to_owned()));
            env.push((format!("GIT_CONFIG_VALUE_{i}"), value));
        }
        (grant, env)
    }

    async fn push_ref(
        &self,
        project: &str,
        git_ref: &str,
    ) -> Result<(String, String), UpstreamPushError> {
        let url = self
            .url(project)
            .ok_or_else(|| UpstreamPushError::NoUpstream(project.to_owned()))?
            .to_owned();
        let full = if git_ref.starts_with("refs/") {
            git_ref.to_owned()
        } else {
            format!("refs/heads/{git_ref}")
        };
        let well_formed = full
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b))
            && !full.contains("..");
        if !well_formed || !self.policy.allows_ref(&full) {
            return Err(UpstreamPushError::Refused(format!(
                "{full} is not a ref the gate lets agents push ({}), so it does not go upstream either",
                self.policy.allowed_refs.join(", ")
            )));
        }
        let repo = self.base.join(format!("{project}.git"));
        let mut verify = tokio::process::Command::new("git");
        verify
            .arg("-C")
            .arg(&repo)
            .args(["rev-parse", "--verify", "--quiet", &full]);
        let exists = paddock_children::global()
            .output("git", format!("find {full} in {project}"), verify)
            .await
            .map_err(|e| UpstreamPushError::Failed(e.to_string()))?;
        if !exists.status.success() {
            return Err(UpstreamPushError::Refused(format!(
                "project {project}'s repository has no {full}"
            )));
        }
        let (grant, env) = self.git_env(project);
        let mut push = tokio::process::Command::new("git");
        push.arg("-C")
            .arg(&repo)
            .args(["push", "--porcelain", &url, &format!("{full}:{full}")])
            .envs(env);
        let out = paddock_children::global()
            .output("git", format!("push {full} of {project} upstream"), push)
            .await
            .map_err(|e| UpstreamPushError::Failed(e.to_string()))?;
        let token = grant.proxy_url.clone();
        drop(grant);
        if !out.status.success() {
            // The proxy's credential is never shown, not even expired.
            let said = String::from_utf8_lossy(&out.stderr);
            let said = paddock_secret::scrub(said.trim(), &token);
            return Err(UpstreamPushError::Failed(said));
        }
        Ok((full, url))
    }
}

impl GitUpstream for Upstreams {
    fn push<'a>(
        &'a self,
        project: &'a str,
        git_ref: &'a str,
    ) -> BoxFuture<'a, Result<(String, String), UpstreamPushError>> {
        Box::pin(self.push_ref(project, git_ref))
    }

    fn projects(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self.urls.clone().into_iter().collect();
        all.sort();
        all
    }
}
