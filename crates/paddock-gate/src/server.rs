//! The gate's HTTP side: authenticate, authorise, hand to the CGI.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::answers::{self, Body, text};
use crate::cgi::{self, CgiCall, CgiRequest};
use crate::commands;
use crate::forward::{Forward, Forwarded};
use crate::hook::{ENV_AUDIT, ENV_POLICY, ENV_PRINCIPAL, ENV_PROJECT};
use crate::hooks_dir::HooksDir;
use crate::request::{self, Endpoint, GitRequest};
use crate::spare::{Spare, SpareKey, SpareSlot};
use crate::tokens::{Grant, TokenAuthority};
use crate::{GateError, PushPolicy};

#[derive(Debug, Clone)]
pub struct GateConfig {
    pub base_path: PathBuf,
    /// The `git` binary that provides `http-backend`.
    pub git: String,
    /// Command the installed hooks run: `<this> gate-hook <kind>`.
    pub hook_command: PathBuf,
    pub policy: PushPolicy,
    pub audit_log: Option<PathBuf>,
    pub max_body_bytes: u64,
    pub stall_timeout: Duration,
    /// Where the private hooks directory is made (default: the temp dir).
    /// `paddock serve` uses its data dir, so a killed server leaves nothing
    /// behind outside it.
    pub hooks_parent: Option<PathBuf>,
}

impl GateConfig {
    pub fn new(base_path: PathBuf, hook_command: PathBuf) -> Self {
        Self {
            base_path,
            git: "git".into(),
            hook_command,
            policy: PushPolicy::default(),
            audit_log: None,
            max_body_bytes: 2 * 1024 * 1024 * 1024,
            stall_timeout: Duration::from_secs(60),
            hooks_parent: None,
        }
    }
}

pub struct Gate {
    config: GateConfig,
    base: PathBuf,
    /// How to start the CGI: `git-http-backend` itself when git's exec path
    /// has it (one exec per request instead of two), else `git http-backend`.
    backend: (String, Vec<String>),
    hooks: HooksDir,
    /// Set on a spoke: requests go on to the hub's gate.
    forward: OnceLock<Arc<dyn Forward>>,
}

fn find_backend(git: &str) -> (String, Vec<String>) {
    let exec_path = std::process::Command::new(git)
        .arg("--exec-path")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match exec_path
        .map(|p| p.join("git-http-backend"))
        .filter(|p| p.is_file())
    {
        Some(backend) => (backend.display().to_string(), Vec::new()),
        None => (git.to_owned(), vec!["http-backend".into()]),
    }
}

impl Gate {
    pub fn new(config: GateConfig) -> Result<Arc<Self>, GateError> {
        let base = config
            .base_path
            .canonicalize()
            .ok()
            .filter(|b| b.is_dir())
            .ok_or_else(|| GateError::BasePath(config.base_path.display().to_string()))?;
        let backend = find_backend(&config.git);
        let hooks = HooksDir::create(&config.hook_command, config.hooks_parent.as_deref())?;
        Ok(Arc::new(Self {
            config,
            base,
            backend,
            hooks,
            forward: OnceLock::new(),
        }))
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Answers one request; `tokens` decides who may see what, `spare`
    /// is the connection's spare backend for a push.
    async fn handle(
        &self,
        req: Request<Incoming>,
        remote: Option<SocketAddr>,
        tokens: &dyn TokenAuthority,
        spare: &Arc<SpareSlot>,
    ) -> Response<Body> {
        let path = req.uri().path();
        let Some(git) = request::parse(req.method().as_str(), path, req.uri().query()) else {
            return self.not_git(path);
        };
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let presented = request::basic_token(auth);
        let Some(grant) = presented.as_ref().and_then(|t| tokens.grant(t)) else {
            // git's first request carries no token unless told to: only a
            // token that was sent and refused is worth a record.
            if presented.is_some() {
                answers::record_refusal(
                    self.config.audit_log.as_deref(),
                    "",
                    &git.project,
                    path,
                    StatusCode::UNAUTHORIZED,
                    "unknown token",
                );
            }
            return answers::unauthorized();
        };
        let (principal, policy) = match self.principal(grant, &git, path) {
            Ok(granted) => granted,
            Err(refused) => return *refused,
        };
        if let Some(forward) = self.forward.get() {
            let to = Forwarded {
                project: git.project,
                principal,
            };
            return forward.forward(to, req).await;
        }
        self.serve_git(req, git, (principal, policy), remote, Some(spare))
            .await
    }

    /// Serves a request whose caller was vouched for elsewhere: the hub's
    /// spoke listener, for a box it placed on the spoke that asks. No
    /// spare backend: each such request comes on a connection of its own.
    pub async fn serve_granted(&self, req: Request<Incoming>, grant: Grant) -> Response<Body> {
        let path = req.uri().path();
        let Some(git) = request::parse(req.method().as_str(), path, req.uri().query()) else {
            return self.not_git(path);
        };
        match self.principal(grant, &git, path) {
            Ok(granted) => self.serve_git(req, git, granted, None, None).await,
            Err(refused) => *refused,
        }
    }

    /// Makes this gate hand every checked request on (see [`Forward`]).
    pub fn forward_to(&self, forward: Arc<dyn Forward>) {
        let _ = self.forward.set(forward);
    }

    /// Whether this gate hands requests on instead of serving them.
    pub fn forwards(&self) -> bool {
        self.forward.get().is_some()
    }

    fn not_git(&self, path: &str) -> Response<Body> {
        self.not_found("", "", path, "not a git smart-HTTP request")
    }

    /// "Not found", with why in the audit log.
    fn not_found(&self, principal: &str, project: &str, path: &str, why: &str) -> Response<Body> {
        answers::record_refusal(
            self.config.audit_log.as_deref(),
            principal,
            project,
            path,
            StatusCode::NOT_FOUND,
            why,
        );
        answers::not_found()
    }

    /// Who the grant makes the caller, and the push policy they are
    /// under; another project's repository is "not found": its existence
    /// is none of this grant's business.
    fn principal(
        &self,
        grant: Grant,
        git: &GitRequest,
        path: &str,
    ) -> Result<(String, Option<&PushPolicy>), Box<Response<Body>>> {
        match grant {
            Grant::Admin => Ok(("admin".to_owned(), None)),
            Grant::Project { project, principal } if project == git.project => {
                Ok((principal, Some(&self.config.policy)))
            }
            Grant::Project { project, principal } => Err(Box::new(self.not_found(
                &principal,
                &git.project,
                path,
                &format!("the token is for project {project}"),
            ))),
        }
    }

    /// Runs git's backend for a request already authorised.
    async fn serve_git(
        &self,
        req: Request<Incoming>,
        git: GitRequest,
        (principal, policy): (String, Option<&PushPolicy>),
        remote: Option<SocketAddr>,
        spare: Option<&Arc<SpareSlot>>,
    ) -> Response<Body> {
        let path = req.uri().path();
        if request::repository(&self.base, &git.project).is_none() {
            return self.not_found(&principal, &git.project, path, "no such repository");
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.config.max_body_bytes) {
            answers::record_refusal(
                self.config.audit_log.as_deref(),
                &principal,
                &git.project,
                path,
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            );
            return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        }
        tracing::debug!(project = %git.project, %principal, push = git.is_push(), "git request");
        // A push whose policy hooks git would skip must not begin: say so
        // in the advertisement, where git shows it ("remote error: …").
        if git.service == Some(Endpoint::ReceivePack) {
            let hooks = self
                .hooks
                .set(policy.is_some(), self.config.audit_log.is_some());
            if let Err(why) = self.hooks.runnable(&hooks) {
                answers::record_refusal(
                    self.config.audit_log.as_deref(),
                    &principal,
                    &git.project,
                    path,
                    StatusCode::SERVICE_UNAVAILABLE,
                    &why,
                );
                return answers::hooks_broken(&git.project, &why, true);
            }
        }
        // A push that only creates allowed branches needs no hook when
        // nothing is audited: decide that from its command list, and spare
        // receive-pack the hook process. Anything else runs the hooks,
        // which refuse with git's own messages.
        let reads_commands = git.endpoint == Endpoint::ReceivePack
            && policy.is_some()
            && self.config.audit_log.is_none()
            && !req.headers().contains_key(header::CONTENT_ENCODING);
        // git's probe before a large push: an empty command list, which
        // receive-pack would answer with nothing. Answer it here and spare
        // two processes.
        let probe = git.endpoint == Endpoint::ReceivePack
            && req
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() == b"4")
            && !req.headers().contains_key(header::CONTENT_ENCODING);
        let (parts, mut body) = req.into_parts();
        if probe {
            let (read, _) = match self.read_commands(body).await {
                Ok(read) => read,
                Err(status) => return text(status, "request body unusable\n"),
            };
            if read.as_ref() == b"0000" {
                return answers::empty_push_result();
            }
            return text(StatusCode::BAD_REQUEST, "malformed push request\n");
        }
        let mut hooks = self
            .hooks
            .set(policy.is_some(), self.config.audit_log.is_some());
        let mut prefix = Bytes::new();
        if reads_commands && let Some(policy) = policy {
            let (read, rest) = match self.read_commands(body).await {
                Ok(read) => read,
                Err(status) => return text(status, "request body unusable\n"),
            };
            body = rest;
            if let commands::Parsed::Done(updates) = commands::parse(&read)
                && !updates.is_empty()
                && updates
                    .iter()
                    .all(|u| u.creates() && policy.allows_ref(&u.name))
            {
                hooks = self.hooks.set(false, false);
            }
            prefix = read;
        }
        // Checked again for the POST itself (the advertisement may have
        // been long ago): no push runs without its hooks.
        if git.endpoint == Endpoint::ReceivePack
            && let Err(why) = self.hooks.runnable(&hooks)
        {
            answers::record_refusal(
                self.config.audit_log.as_deref(),
                &principal,
                &git.project,
                parts.uri.path(),
                StatusCode::SERVICE_UNAVAILABLE,
                &why,
            );
            return answers::hooks_broken(&git.project, &why, false);
        }
        let described = CgiRequest::of(&parts);
        let limits = cgi::Limits {
            max_body: self.config.max_body_bytes,
            stall: self.config.stall_timeout,
        };
        let key = SpareKey {
            project: git.project.clone(),
            principal: principal.clone(),
            protocol: described.protocol.clone(),
        };
        // Taken whatever happens next: a spare that does not fit this
        // POST would not fit a later one either.
        let spared = spare
            .filter(|_| git.endpoint == Endpoint::ReceivePack)
            .and_then(|spare| spare.take(&key));
        if described.fits_spare()
            && let Some(backend) = spared
        {
            if let Some(guard) = backend.hooks()
                && let Err(e) = guard.point(&hooks)
            {
                // The link still names the set with the hooks: slower, not
                // laxer.
                tracing::warn!(error = %e, "cannot re-point a spare's hooks");
            }
            tracing::debug!(project = %git.project, "push served by the spare backend");
            return cgi::serve(backend, limits, prefix, body).await;
        }
        let env = self.cgi_env(&described, &git, &principal, policy, remote, &hooks);
        let call = CgiCall {
            program: self.backend.0.clone(),
            args: self.backend.1.clone(),
            env,
            limits,
        };
        let response = cgi::run(call, prefix, body).await;
        if git.service == Some(Endpoint::ReceivePack)
            && response.status() == StatusCode::OK
            && let Some(spare) = spare
        {
            self.start_spare(spare, key, &git, &principal, policy, remote);
        }
        response
    }

    /// Starts the backend for the POST that follows a push's
    /// advertisement (see `spare`).
    fn start_spare(
        &self,
        slot: &Arc<SpareSlot>,
        key: SpareKey,
        git: &GitRequest,
        principal: &str,
        policy: Option<&PushPolicy>,
        remote: Option<SocketAddr>,
    ) {
        let post = GitRequest {
            project: git.project.clone(),
            endpoint: Endpoint::ReceivePack,
            service: None,
        };
        let described = CgiRequest::spare_post(key.protocol.clone());
        let hooks = self
            .hooks
            .set(policy.is_some(), self.config.audit_log.is_some());
        let link = match self.hooks.spare_link(&hooks) {
            Ok(link) => link,
            Err(e) => {
                tracing::debug!(error = %e, "no spare backend: cannot link its hooks");
                return;
            }
        };
        let env = self.cgi_env(&described, &post, principal, policy, remote, link.path());
        match cgi::Backend::spawn(&self.backend.0, &self.backend.1, &env) {
            Ok(mut backend) => {
                backend.keep_hooks(link);
                slot.put(Spare { key, backend });
            }
            Err(e) => {
                // Nothing was started that could follow the link.
                link.remove();
                tracing::debug!(error = %e, "no spare backend");
            }
        }
    }

    /// Reads the body until its command list is complete (or 64 KiB).
    async fn read_commands(&self, mut body: Incoming) -> Result<(Bytes, Incoming), StatusCode> {
        let mut buf = Vec::new();
        while buf.len() < 64 * 1024 && commands::parse(&buf) == commands::Parsed::Incomplete {
            match tokio::time::timeout(self.config.stall_timeout, body.frame()).await {
                Err(_) => return Err(StatusCode::REQUEST_TIMEOUT),
                Ok(None) => break,
                Ok(Some(Err(_))) => return Err(StatusCode::BAD_REQUEST),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
            }
        }
        Ok((Bytes::from(buf), body))
    }

    fn cgi_env(
        &self,
        req: &CgiRequest,
        git: &GitRequest,
        principal: &str,
        policy: Option<&PushPolicy>,
        remote: Option<SocketAddr>,
        hooks: &Path,
    ) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "PATH".to_owned(),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            ),
            ("HOME".into(), self.hooks.path().display().to_string()),
            ("GIT_PROJECT_ROOT".into(), self.base.display().to_string()),
            ("GIT_HTTP_EXPORT_ALL".into(), "1".into()),
            ("PATH_INFO".into(), git.path_info()),
            ("REQUEST_METHOD".into(), req.method.clone()),
            ("QUERY_STRING".into(), req.query.clone()),
            ("REMOTE_USER".into(), principal.to_owned()),
            (
                "REMOTE_ADDR".into(),
                remote.map(|r| r.ip().to_string()).unwrap_or_default(),
            ),
            ("GIT_CONFIG_COUNT".into(), "2".into()),
            ("GIT_CONFIG_KEY_0".into(), "core.hooksPath".into()),
            ("GIT_CONFIG_VALUE_0".into(), hooks.display().to_string()),
            ("GIT_CONFIG_KEY_1".into(), "http.receivepack".into()),
            ("GIT_CONFIG_VALUE_1".into(), "true".into()),
            (ENV_PROJECT.into(), git.project.clone()),
            (ENV_PRINCIPAL.into(), principal.to_owned()),
        ];
        for (name, value) in [
            ("CONTENT_TYPE", &req.content_type),
            ("CONTENT_LENGTH", &req.content_length),
            ("HTTP_CONTENT_ENCODING", &req.content_encoding),
            ("GIT_PROTOCOL", &req.protocol),
        ] {
            if let Some(value) = value {
                env.push((name.into(), value.clone()));
            }
        }
        if let Some(policy) = policy {
            env.push((
                ENV_POLICY.into(),
                serde_json::to_string(policy).unwrap_or_default(),
            ));
        }
        if let Some(audit) = &self.config.audit_log {
            env.push((ENV_AUDIT.into(), audit.display().to_string()));
        }
        env
    }

    /// Lets the spare backends this process dropped end, up to `limit`:
    /// for a process about to exit, so their hook links do not outlive it.
    pub async fn settle(&self, limit: Duration) {
        crate::spare::settle(limit).await;
    }

    /// Serves one connection (HTTP/1.1, keep-alive) to its end.
    pub async fn serve_connection<IO>(
        self: Arc<Self>,
        io: IO,
        remote: Option<SocketAddr>,
        tokens: Arc<dyn TokenAuthority>,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let spare = Arc::new(SpareSlot::default());
        let service = service_fn(move |req| {
            let gate = self.clone();
            let tokens = tokens.clone();
            let spare = spare.clone();
            async move { Ok::<_, Infallible>(gate.handle(req, remote, tokens.as_ref(), &spare).await) }
        });
        let served = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .max_buf_size(64 * 1024)
            .serve_connection(TokioIo::new(io), service)
            .await;
        if let Err(e) = served {
            tracing::debug!(error = %e, "git connection ended with an error");
        }
    }

    /// Accepts connections until `stop` is cancelled.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tokens: Arc<dyn TokenAuthority>,
        stop: CancellationToken,
    ) {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, remote)) => {
                    // Git's request/response turns are small writes; Nagle
                    // plus delayed ACKs would add ~40 ms to each.
                    let _ = stream.set_nodelay(true);
                    let gate = self.clone();
                    tokio::spawn(gate.serve_connection(stream, Some(remote), tokens.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}
