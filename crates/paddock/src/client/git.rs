//! `paddock git push-upstream`: a project's agent branch goes home to the
//! project's upstream forge, through the gateway, when a person says so.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::boxes::path_id;
use super::http::{Client, Connection};

#[derive(clap::Args)]
pub struct GitArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: GitCommand,
}

#[derive(Subcommand)]
enum GitCommand {
    /// Push a branch of the project's gate repository to its upstream
    /// (`[[git.projects]] upstream`); only refs agents may push go.
    PushUpstream {
        /// The project whose repository it is.
        #[arg(long)]
        project: String,
        /// The branch: `agent/x` or `refs/heads/agent/x`.
        #[arg(long = "ref")]
        git_ref: String,
    },
}

pub async fn run_git(args: GitArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.conn)?;
    match args.command {
        GitCommand::PushUpstream { project, git_ref } => {
            let path = format!("/api/v1/projects/{}/git/push-upstream", path_id(&project));
            let body = json!({ "ref": git_ref });
            let pushed: Value = client.call(Method::POST, &path, Some(&body)).await?;
            println!(
                "pushed {} of project {project} to {}",
                pushed["ref"].as_str().unwrap_or(&git_ref),
                pushed["upstream"].as_str().unwrap_or("its upstream")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
