//! `paddock`: the server (`serve`) and its command-line clients.

mod api_listener;
mod backup;
mod clearance;
mod client;
mod components;
mod config;
mod data_lock;
mod doctor;
mod drain;
mod extensions;
mod gate;
mod iam;
mod lifetime;
mod notify;
mod purge;
mod reload;
mod retention;
mod serve;
mod startup;
mod systemd;
mod upstream;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes: 0 done; 1 paddock (or the server) refused or failed, with
/// the reason on stderr; 2 the command line itself is wrong; `box exec`
/// exits with the command's own code.
#[derive(Parser)]
#[command(
    name = "paddock",
    version,
    about = "A control plane for AI coding agents in sandboxed boxes",
    after_help = "Exit codes: 0 done; 1 refused or failed (the reason is on stderr); 2 a wrong command line; `paddock box exec` exits with the command's own code."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the paddock server: REST, MCP, the activation page, the reaper.
    Serve(ServeArgs),
    /// Create, list, inspect, run commands in and remove boxes.
    #[command(name = "box")]
    Boxes(client::BoxArgs),
    /// Egress rules, the decision log and box shields.
    Egress(client::EgressArgs),
    /// Mint, list and revoke API tokens.
    Token(client::TokenArgs),
    /// Spokes (machines that run boxes for this hub): enrolment tokens,
    /// the list, revocation; `enroll` on the spoke's machine.
    Spoke(client::SpokeArgs),
    /// Set, list and remove a project's secrets (values are never shown).
    Secret(client::SecretArgs),
    /// A project's rules, HTTP rules and secret bindings as one file:
    /// apply (idempotent, --dry-run), export, presets.
    Policy(client::PolicyArgs),
    /// Projects' repositories and their upstreams: push an agent branch home.
    Git(client::GitArgs),
    /// What this paddock is doing: health, boxes, networks, held requests,
    /// subscribers (exits 1 when a component is down).
    Status(client::StatusArgs),
    /// This CLI's version and API, and the server's.
    Version(client::VersionArgs),
    /// Print a one-time link that opens the web console as this token.
    Console(client::ConsoleArgs),
    /// Show held connections as desktop pop-ups, decided from the pop-up.
    Notify(notify::NotifyArgs),
    /// Allow or deny held connections from a terminal.
    Clearance(clearance::ClearanceArgs),
    /// Serve git repositories over smart HTTP behind per-project tokens.
    Gate(gate::GateArgs),
    /// Write the store (online), the git repositories, the egress CA and
    /// the secrets key to one archive, while paddock runs.
    Backup(backup::BackupArgs),
    /// Restore a `paddock backup` archive into an empty data dir.
    Restore(backup::RestoreArgs),
    /// Check what paddock needs from this machine (Docker, runtimes,
    /// cgroups, nftables, privileges, ports, the data dir) and how to fix it.
    Doctor(doctor::DoctorArgs),
    /// Remove what a stopped instance with no boxes leaves on the machine:
    /// its idle box networks, host fence table and git hook directories.
    Purge(ServeArgs),
    /// Print a shell completion script: `paddock completions bash >
    /// /etc/bash_completion.d/paddock` (or zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Run by the git gate's hooks inside `git receive-pack`.
    #[command(name = "gate-hook", hide = true)]
    GateHook(gate::HookArgs),
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "PADDOCK_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the store (default: XDG data dir, /var/lib/paddock as root).
    #[arg(long, env = "PADDOCK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address for HTTP (default 127.0.0.1:7878).
    #[arg(long, env = "PADDOCK_LISTEN")]
    listen: Option<String>,
    /// Base URL put in activation links (default: http:// and the listen address).
    #[arg(long, env = "PADDOCK_PUBLIC_URL")]
    public_url: Option<String>,
    /// Docker engine address (default: DOCKER_HOST or the local socket).
    #[arg(long, env = "PADDOCK_DOCKER_HOST")]
    docker_host: Option<String>,
    /// The clearance hub's varlink socket (default: $XDG_RUNTIME_DIR/paddock/clearance.sock, /run/paddock/clearance.sock as root).
    #[arg(long, env = "PADDOCK_CLEARANCE_SOCKET")]
    clearance_socket: Option<PathBuf>,
    /// Exit cleanly once no box has existed for this many seconds (for a
    /// paddock that socket activation starts on demand).
    #[arg(long, env = "PADDOCK_EXIT_WHEN_IDLE", value_name = "SECS")]
    exit_when_idle: Option<u64>,
}

fn main() -> ExitCode {
    // The git gate links its hooks to this binary: called by git as
    // `pre-receive` or `post-receive`, it is that hook.
    if let Some(kind) = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .and_then(|name| paddock_gate::HookKind::parse(&name))
    {
        return gate::run_hook_kind(kind);
    }
    // One TLS crypto provider for every HTTPS client in the process (the
    // CLI's, and the IAM regimes' when they reach an issuer).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        // The gate builds its own runtime: `--detach` must fork first.
        Command::Gate(args) => gate::run(args),
        Command::GateHook(args) => return gate::run_hook(args),
        Command::Serve(args) => {
            // Before the runtime starts threads: it edits the environment.
            match systemd::passed_listener() {
                Ok(passed) => in_runtime(async {
                    serve::run(args, passed, None)
                        .await
                        .map(|()| ExitCode::SUCCESS)
                }),
                Err(e) => Err(e),
            }
        }
        Command::Boxes(args) => in_runtime(client::run_box(args)),
        Command::Egress(args) => in_runtime(client::run_egress(args)),
        Command::Token(args) => in_runtime(client::run_token(args)),
        Command::Spoke(args) => in_runtime(client::run_spoke(args)),
        Command::Secret(args) => in_runtime(client::run_secret(args)),
        Command::Policy(args) => in_runtime(client::run_policy(args)),
        Command::Git(args) => in_runtime(client::run_git(args)),
        Command::Console(args) => in_runtime(client::run_console(args)),
        Command::Status(args) => in_runtime(client::run_status(args)),
        Command::Version(args) => in_runtime(client::run_version(args)),
        Command::Clearance(args) => in_runtime(clearance::run(args)),
        Command::Notify(args) => in_runtime(notify::run(args)),
        Command::Purge(args) => in_runtime(purge::run(args)),
        Command::Doctor(args) => in_runtime(doctor::run(args)),
        Command::Backup(args) => in_runtime(backup::backup(args)),
        Command::Restore(args) => in_runtime(backup::restore(args)),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            use std::io::Write;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "paddock", &mut script);
            // A closed pipe (`| head`) is the reader's choice, not an error.
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("paddock: error: {e:#}");
        ExitCode::FAILURE
    })
}

fn in_runtime(
    work: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    let result = runtime.block_on(work);
    // Without waiting for blocking reads that never end by themselves (a
    // terminal's stdin in `box shell`).
    runtime.shutdown_background();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command and every flag says what it is for in `--help`.
    #[test]
    fn every_command_and_flag_has_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && !sub.is_hide_set() {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "paddock", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }
}
