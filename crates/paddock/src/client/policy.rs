//! `paddock policy apply|export|presets`: a project's rules, HTTP rules
//! and secret bindings as one TOML file, applied idempotently.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use paddock_policy::PolicyDoc;
use reqwest::Method;
use serde_json::Value;

use super::boxes::path_id;
use super::http::{Client, Connection};
use super::table;

#[derive(clap::Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Make the project's policy what the file says (rules not in it are
    /// removed; box rules, rules with a TTL and secret values are kept).
    Apply {
        /// The policy file (TOML; `paddock policy export` writes one).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// The project it is for.
        #[arg(long)]
        project: String,
        /// Print what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the project's policy as a file `apply` takes back unchanged.
    Export {
        /// The project whose policy is printed.
        #[arg(long)]
        project: String,
    },
    /// List the presets a policy can take by name.
    Presets {
        /// Print the presets, with their rules, as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run_policy(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.conn)?;
    match args.command {
        PolicyCommand::Apply {
            file,
            project,
            dry_run,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let doc: PolicyDoc = toml::from_str(&text)
                .with_context(|| format!("{} is not a policy file", file.display()))?;
            let path = format!(
                "/api/v1/projects/{}/policy?dry_run={dry_run}",
                path_id(&project)
            );
            let body = serde_json::to_value(&doc)?;
            let answer: Value = client.call(Method::PUT, &path, Some(&body)).await?;
            let changes: Vec<&str> = answer["changes"]
                .as_array()
                .map(|c| c.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for line in &changes {
                println!("{line}");
            }
            match (changes.is_empty(), dry_run) {
                (true, _) => println!("project {project}: nothing to change"),
                (false, true) => println!("(dry run: {} changes, none made)", changes.len()),
                (false, false) => println!("project {project}: {} changes made", changes.len()),
            }
        }
        PolicyCommand::Export { project } => {
            let path = format!("/api/v1/projects/{}/policy", path_id(&project));
            let doc: PolicyDoc = client.call(Method::GET, &path, None).await?;
            print!(
                "# paddock policy of project {project}\n{}",
                toml::to_string(&doc)?
            );
        }
        PolicyCommand::Presets { json } => {
            let answer: Value = client
                .call(Method::GET, "/api/v1/policy/presets", None)
                .await?;
            let presets = answer["presets"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&presets)?);
            } else {
                let rows: Vec<Vec<String>> = presets
                    .iter()
                    .map(|p| vec![table::cell(&p["name"]), table::cell(&p["description"])])
                    .collect();
                println!("{}", table::render(&["NAME", "DESCRIPTION"], &rows));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
