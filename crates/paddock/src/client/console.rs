//! `paddock console`: a one-time link that opens the web console signed
//! in as this token (its capabilities and projects, no more), for a
//! machine without `[iam.signin]`. The link works once, within minutes;
//! it is printed, or handed to the desktop's browser with `--open`.

use std::process::ExitCode;

use anyhow::Context;
use reqwest::Method;
use serde::Deserialize;

use super::http::{Client, Connection};

#[derive(clap::Args)]
pub struct ConsoleArgs {
    #[command(flatten)]
    conn: Connection,
    /// Open the link in the desktop's browser (`xdg-open`) instead of
    /// printing it.
    #[arg(long)]
    open: bool,
}

#[derive(Deserialize)]
struct Link {
    url: String,
    expires_in_secs: u64,
}

pub async fn run_console(args: ConsoleArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.conn)?;
    let link: Link = client
        .call(Method::POST, "/api/v1/console/links", None)
        .await?;
    if args.open {
        let status = std::process::Command::new("xdg-open")
            .arg(&link.url)
            .status()
            .context("cannot run xdg-open; run without --open and open the link yourself")?;
        if !status.success() {
            anyhow::bail!(
                "xdg-open failed ({status}); run without --open and open the link yourself"
            );
        }
        eprintln!("opened the console in your browser");
    } else {
        println!("{}", link.url);
        eprintln!(
            "Open this link within {} s; it works once.",
            link.expires_in_secs
        );
    }
    Ok(ExitCode::SUCCESS)
}
