//! `paddock`: the server (`serve`) and its command-line clients.

mod client;
mod config;
mod serve;
mod supervisor;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "paddock",
    version,
    about = "A control plane for AI coding agents in sandboxed boxes"
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
    /// Base URL put in activation links (default http://<listen>).
    #[arg(long, env = "PADDOCK_PUBLIC_URL")]
    public_url: Option<String>,
    /// Docker engine address (default: DOCKER_HOST or the local socket).
    #[arg(long, env = "PADDOCK_DOCKER_HOST")]
    docker_host: Option<String>,
    /// Clearance socket path (reserved for the clearance hub).
    #[arg(long, env = "PADDOCK_CLEARANCE_SOCKET")]
    clearance_socket: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paddock: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Boxes(args) => client::run_box(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("paddock: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
