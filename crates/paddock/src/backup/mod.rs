//! `paddock backup` and `paddock restore`: everything a paddock needs to
//! come back on a fresh machine, in one tar archive — the store (through
//! SQLite's online backup, so the server keeps running), the git
//! repositories and the gate's audit log, the egress CA and the secrets
//! key — and nothing else (hook directories, sockets and the box trust
//! bundle are made again at start). The archive holds the keys that open
//! every secret and that every box trusts: it is written 0600, and the
//! README says to keep it like the data dir.

mod make;
mod restore;

use std::path::PathBuf;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::ServeArgs;

/// Every path in an archive is under this directory.
const ROOT: &str = "paddock-backup";
/// The archive's layout version; a restore refuses a newer one.
const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";

/// What the archive says of itself, first in it.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    paddock_version: String,
    created_at: String,
    /// Where the secrets key came from when the backup was made: when it
    /// is not the data dir's file, the archive cannot open the secrets
    /// without it.
    secrets_key: String,
}

#[derive(clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// The archive to write (a tar file; made 0600, never overwritten).
    #[arg(long, short)]
    output: PathBuf,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// The archive `paddock backup` wrote.
    #[arg(long, short)]
    input: PathBuf,
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::load(&args.serve)?;
    let made = tokio::task::spawn_blocking(move || make::write(&config, &args.output)).await??;
    println!("{made}");
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::load(&args.serve)?;
    let restored =
        tokio::task::spawn_blocking(move || restore::read(&config, &args.input)).await??;
    println!("{restored}");
    Ok(ExitCode::SUCCESS)
}
