//! The gate's HTTP side: authenticate, authorise, hand to the CGI.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cgi::{self, CgiCall};
use crate::commands;
use crate::hook::{ENV_AUDIT, ENV_POLICY, ENV_PRINCIPAL, ENV_PROJECT};
use crate::request::{self, Endpoint, GitRequest};
use crate::tokens::{Grant, TokenAuthority};
use crate::{GateError, PushPolicy};

pub(crate) type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

pub(crate) fn text(status: StatusCode, body: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(
            Full::new(Bytes::from(body.to_owned()))
                .map_err(|e| match e {})
                .boxed_unsync(),
        )
        .expect("static response")
}

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
    hooks: tempfile_dir::HooksDir,
}

mod tempfile_dir {
    //! The hooks directory: links to the paddock binary, which knows from
    //! its name which hook it is (no shell in between). Three sets, so a
    //! push runs only the hooks it needs: `full` (policy or refusals to
    //! audit, plus accepted updates to audit), `pre` (policy, no audit),
    //! `none` (admin, no audit).
    //!
    //! The directory's name is derived from the user and the binary, so
    //! every gate process of one binary shares it (an inetd gate is one
    //! process per connection) and a killed process leaves nothing new
    //! behind. Because the name is predictable, an existing directory is
    //! used only if it is ours, private, and its links point at our binary.

    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    use crate::hook::HookKind;

    const SETS: [(&str, &[HookKind]); 3] = [
        ("full", &[HookKind::PreReceive, HookKind::PostReceive]),
        ("pre", &[HookKind::PreReceive]),
        ("none", &[]),
    ];

    pub struct HooksDir(PathBuf);

    fn refuse(what: &Path, why: &str) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("refusing hooks directory {}: {why}", what.display()),
        )
    }

    fn private_dir(dir: &Path) -> std::io::Result<()> {
        match std::fs::create_dir(dir) {
            Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let meta = std::fs::symlink_metadata(dir)?;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o077 != 0 {
            return Err(refuse(dir, "not a private directory of this user"));
        }
        Ok(())
    }

    fn link(target: &Path, at: &Path) -> std::io::Result<()> {
        match std::os::unix::fs::symlink(target, at) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if std::fs::read_link(at)? != target {
            return Err(refuse(at, "a hook link points elsewhere"));
        }
        Ok(())
    }

    impl HooksDir {
        pub fn create(command: &Path, under: Option<&Path>) -> std::io::Result<Self> {
            let parent = under.map_or_else(std::env::temp_dir, Path::to_path_buf);
            let tag = hex::encode(&crate::tokens::hash_token(&command.display().to_string())[..6]);
            // SAFETY: geteuid has no preconditions.
            let dir = parent.join(format!("paddock-gate-hooks-{}-{tag}", unsafe {
                libc::geteuid()
            }));
            private_dir(&dir)?;
            for (set, kinds) in SETS {
                let set = dir.join(set);
                private_dir(&set)?;
                for kind in kinds {
                    link(command, &set.join(kind.name()))?;
                }
            }
            Ok(Self(dir))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }

        /// The hook set a push needs.
        pub fn set(&self, policy: bool, audit: bool) -> PathBuf {
            self.0.join(match (policy, audit) {
                (_, true) => "full",
                (true, false) => "pre",
                (false, false) => "none",
            })
        }
    }
}

/// What `git receive-pack --stateless-rpc` sends for a flush packet alone.
fn empty_push_result() -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::EXPIRES, "Fri, 01 Jan 1980 00:00:00 GMT")
        .header(header::PRAGMA, "no-cache")
        .header(
            header::CACHE_CONTROL,
            "no-cache, max-age=0, must-revalidate",
        )
        .header(
            header::CONTENT_TYPE,
            "application/x-git-receive-pack-result",
        )
        .body(
            Full::new(Bytes::new())
                .map_err(|e| match e {})
                .boxed_unsync(),
        )
        .expect("static response")
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
        let hooks =
            tempfile_dir::HooksDir::create(&config.hook_command, config.hooks_parent.as_deref())?;
        Ok(Arc::new(Self {
            config,
            base,
            backend,
            hooks,
        }))
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    fn unauthorized() -> Response<Body> {
        let mut r = text(
            StatusCode::UNAUTHORIZED,
            "a token is required (HTTP Basic, token as the user name)\n",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"paddock git gate\""),
        );
        r
    }

    fn not_found() -> Response<Body> {
        text(StatusCode::NOT_FOUND, "repository not found\n")
    }

    /// Answers one request; `tokens` decides who may see what.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        remote: Option<SocketAddr>,
        tokens: &dyn TokenAuthority,
    ) -> Response<Body> {
        let Some(git) = request::parse(req.method().as_str(), req.uri().path(), req.uri().query())
        else {
            return Self::not_found();
        };
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(grant) = request::basic_token(auth).and_then(|t| tokens.grant(&t)) else {
            return Self::unauthorized();
        };
        let (principal, policy) = match &grant {
            Grant::Admin => ("admin".to_owned(), None),
            Grant::Project { project, principal } => {
                // Another project's repository is "not found": its existence
                // is none of this token's business.
                if *project != git.project {
                    return Self::not_found();
                }
                (principal.clone(), Some(&self.config.policy))
            }
        };
        if request::repository(&self.base, &git.project).is_none() {
            return Self::not_found();
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.config.max_body_bytes) {
            return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        }
        tracing::debug!(project = %git.project, %principal, push = git.is_push(), "git request");
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
                return empty_push_result();
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
        let env = self.cgi_env(&parts, &git, &principal, policy, remote, &hooks);
        let call = CgiCall {
            program: self.backend.0.clone(),
            args: self.backend.1.clone(),
            env,
            max_body: self.config.max_body_bytes,
            stall: self.config.stall_timeout,
        };
        cgi::run(call, prefix, body).await
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
        req: &hyper::http::request::Parts,
        git: &GitRequest,
        principal: &str,
        policy: Option<&PushPolicy>,
        remote: Option<SocketAddr>,
        hooks: &Path,
    ) -> Vec<(String, String)> {
        let header = |name: header::HeaderName| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.len() <= 256 && v.bytes().all(|b| (0x20..0x7f).contains(&b)))
                .map(str::to_owned)
        };
        let mut env = vec![
            (
                "PATH".to_owned(),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            ),
            ("HOME".into(), self.hooks.path().display().to_string()),
            ("GIT_PROJECT_ROOT".into(), self.base.display().to_string()),
            ("GIT_HTTP_EXPORT_ALL".into(), "1".into()),
            ("PATH_INFO".into(), git.path_info()),
            ("REQUEST_METHOD".into(), req.method.as_str().to_owned()),
            (
                "QUERY_STRING".into(),
                req.uri.query().unwrap_or("").to_owned(),
            ),
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
        if let Some(v) = header(header::CONTENT_TYPE) {
            env.push(("CONTENT_TYPE".into(), v));
        }
        if let Some(v) = header(header::CONTENT_LENGTH).filter(|v| v.parse::<u64>().is_ok()) {
            env.push(("CONTENT_LENGTH".into(), v));
        }
        if let Some(v) = header(header::CONTENT_ENCODING) {
            env.push(("HTTP_CONTENT_ENCODING".into(), v));
        }
        if let Some(v) = header(header::HeaderName::from_static("git-protocol")) {
            env.push(("GIT_PROTOCOL".into(), v));
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

    /// Serves one connection (HTTP/1.1, keep-alive) to its end.
    pub async fn serve_connection<IO>(
        self: Arc<Self>,
        io: IO,
        remote: Option<SocketAddr>,
        tokens: Arc<dyn TokenAuthority>,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |req| {
            let gate = self.clone();
            let tokens = tokens.clone();
            async move { Ok::<_, Infallible>(gate.handle(req, remote, tokens.as_ref()).await) }
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
