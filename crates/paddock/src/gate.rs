//! `paddock gate` (the standalone git gate) and `paddock gate-hook` (what
//! its git hooks run).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use paddock_gate::{Gate, GateConfig, HookKind, PushPolicy, RefAction, TokenAuthority, TokenFile};

#[derive(clap::Args)]
pub struct GateArgs {
    /// Directory holding the repositories, `<project>.git`.
    #[arg(long)]
    base_path: PathBuf,
    /// JSON `{"<token>": {"project": "<id>"}}`, reloaded when it changes.
    #[arg(long)]
    token_file: PathBuf,
    /// Serve the one connection on fd 0 (systemd `Accept=yes`), then exit.
    #[arg(long, conflicts_with = "detach", required_unless_present = "detach")]
    inetd: bool,
    /// Fork into the background and serve on --bind/--port.
    #[arg(long)]
    detach: bool,
    /// Where a detached gate writes its process id.
    #[arg(long, requires = "detach")]
    pid_file: Option<PathBuf>,
    /// Where a detached gate writes its log (default: nowhere).
    #[arg(long, requires = "detach")]
    log_file: Option<PathBuf>,
    /// Address a detached gate listens on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port a detached gate listens on.
    #[arg(long, default_value_t = 9418)]
    port: u16,
    /// Token that reaches every repository (not limited by push policy).
    #[arg(long, env = "PADDOCK_GATE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Append every push decision here (JSON lines).
    #[arg(long)]
    audit_log: Option<PathBuf>,
    /// Ref pattern project tokens may push (repeatable; default refs/heads/agent/*).
    #[arg(long = "allow-ref")]
    allow_ref: Vec<String>,
    /// Non-fast-forward pushes: refuse, or allow after backing up the old tip.
    #[arg(long, default_value = "refuse", value_parser = parse_action)]
    force: RefAction,
    /// Ref deletions: refuse, or allow after backing up the old tip.
    #[arg(long, default_value = "refuse", value_parser = parse_action)]
    delete: RefAction,
    /// The git binary whose `http-backend` serves requests.
    #[arg(long, default_value = "git")]
    git: String,
    /// Largest request body accepted, in MiB.
    #[arg(long, default_value_t = 2048)]
    max_body_mib: u64,
    /// Seconds a request or answer may stall before it is cut off.
    #[arg(long, default_value_t = 60)]
    stall_timeout_secs: u64,
}

fn parse_action(s: &str) -> Result<RefAction, String> {
    match s {
        "refuse" => Ok(RefAction::Refuse),
        "backup" => Ok(RefAction::Backup),
        _ => Err("expected refuse or backup".into()),
    }
}

fn gate(args: &GateArgs) -> anyhow::Result<(Arc<Gate>, Arc<dyn TokenAuthority>)> {
    let mut policy = PushPolicy::default();
    if !args.allow_ref.is_empty() {
        policy.allowed_refs = args.allow_ref.clone();
    }
    policy.force = args.force;
    policy.delete = args.delete;
    let exe =
        // The program this process runs, whatever became of its path
        // since (see paddock_gate's hooks directory).
        std::path::PathBuf::from("/proc/self/exe");
    let mut config = GateConfig::new(args.base_path.clone(), exe);
    config.policy = policy;
    config.audit_log = args.audit_log.clone();
    config.git = args.git.clone();
    config.max_body_bytes = args.max_body_mib * 1024 * 1024;
    config.stall_timeout = std::time::Duration::from_secs(args.stall_timeout_secs.max(1));
    let tokens: Arc<dyn TokenAuthority> = Arc::new(TokenFile::new(
        args.token_file.clone(),
        args.admin_token.as_deref(),
    ));
    Ok((Gate::new(config)?, tokens))
}

fn init_logging() {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PADDOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs before any runtime exists: `--detach` forks, and a process with
/// threads must not.
pub fn run(args: GateArgs) -> anyhow::Result<ExitCode> {
    if args.detach {
        let addr = SocketAddr::new(args.bind, args.port);
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;
        if !args.base_path.is_dir() {
            bail!("base path {} is not a directory", args.base_path.display());
        }
        // SAFETY: single-threaded here (no runtime yet); the child only
        // continues with plain Rust.
        match unsafe { libc::fork() } {
            -1 => bail!("fork failed: {}", std::io::Error::last_os_error()),
            0 => {
                detach_stdio(args.log_file.as_deref())?;
                // SAFETY: plain syscall in the child.
                unsafe { libc::setsid() };
                init_logging();
                let rt = runtime()?;
                rt.block_on(async {
                    let (gate, tokens) = gate(&args)?;
                    listener.set_nonblocking(true)?;
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    tracing::info!(%addr, base = %gate.base().display(), "git gate serving");
                    let stop = tokio_util::sync::CancellationToken::new();
                    let on_term = stop.clone();
                    tokio::spawn(async move {
                        use tokio::signal::unix::{SignalKind, signal};
                        if let Ok(mut term) = signal(SignalKind::terminate()) {
                            term.recv().await;
                        }
                        on_term.cancel();
                    });
                    gate.serve(listener, tokens, stop).await;
                    Ok::<_, anyhow::Error>(())
                })?;
                Ok(ExitCode::SUCCESS)
            }
            child => {
                if let Some(pid_file) = &args.pid_file {
                    std::fs::write(pid_file, format!("{child}\n"))
                        .with_context(|| format!("cannot write {}", pid_file.display()))?;
                }
                println!("paddock gate: listening on {addr} (pid {child})");
                Ok(ExitCode::SUCCESS)
            }
        }
    } else {
        init_logging();
        let rt = runtime()?;
        rt.block_on(async {
            let (gate, tokens) = gate(&args)?;
            serve_stdin(gate, tokens).await
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// A daemon keeps none of its parent's terminal or pipes: stdin and stdout
/// go to /dev/null, stderr (the log) to `log_file` or /dev/null.
fn detach_stdio(log_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let log = match log_file {
        Some(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the log file {}", path.display()))?,
        None => null.try_clone()?,
    };
    for (from, to) in [
        (null.as_raw_fd(), 0),
        (null.as_raw_fd(), 1),
        (log.as_raw_fd(), 2),
    ] {
        // SAFETY: dup2 on descriptors we own.
        if unsafe { libc::dup2(from, to) } == -1 {
            bail!("dup2 failed: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// fd 0 is the accepted connection: TCP from systemd, or a unix socket.
async fn serve_stdin(gate: Arc<Gate>, tokens: Arc<dyn TokenAuthority>) -> anyhow::Result<()> {
    // SAFETY: fd 0 is ours for the life of the process.
    let tcp = unsafe { std::net::TcpStream::from_raw_fd(0) };
    match tcp.peer_addr() {
        Ok(remote) => {
            tcp.set_nonblocking(true)?;
            let _ = tcp.set_nodelay(true);
            let stream = tokio::net::TcpStream::from_std(tcp)?;
            gate.clone()
                .serve_connection(stream, Some(remote), tokens)
                .await;
        }
        Err(_) => {
            // SAFETY: the same fd, now as a unix stream.
            let unix = unsafe { std::os::unix::net::UnixStream::from_raw_fd(tcp.into_raw_fd()) };
            unix.set_nonblocking(true)
                .context("fd 0 is not a socket (run under inetd or systemd Accept=yes)")?;
            let stream = tokio::net::UnixStream::from_std(unix)?;
            gate.clone().serve_connection(stream, None, tokens).await;
        }
    }
    // A spare backend the connection left unused ends as soon as it sees
    // its input close; let it, so its hook link goes with it.
    gate.settle(std::time::Duration::from_secs(10)).await;
    Ok(())
}

#[derive(clap::Args)]
pub struct HookArgs {
    /// pre-receive or post-receive
    kind: String,
}

pub fn run_hook(args: HookArgs) -> ExitCode {
    let Some(kind) = HookKind::parse(&args.kind) else {
        eprintln!("paddock: unknown hook {:?}", args.kind);
        return ExitCode::FAILURE;
    };
    run_hook_kind(kind)
}

pub fn run_hook_kind(kind: HookKind) -> ExitCode {
    let stdin = std::io::stdin();
    let mut stderr = std::io::stderr();
    let code = paddock_gate::run_hook(kind, stdin.lock(), &mut stderr);
    let _ = stderr.flush();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
