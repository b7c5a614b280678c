//! `paddock token create|ls|revoke`: API tokens. Through the server (an
//! `admin:tokens` token), or with `--data-dir` straight against the store,
//! which works with the server stopped or running (SQLite takes turns).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use paddock_iam::{Capabilities, NewToken, ProjectScope, TokenBook};
use reqwest::Method;
use serde_json::{Value, json};

use super::boxes::path_id;
use super::http::{Client, Connection};
use super::table;

#[derive(clap::Args)]
pub struct TokenArgs {
    #[command(flatten)]
    conn: Connection,
    /// Work on the store in this data dir instead of asking the server.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a token; its secret is printed once.
    Create {
        /// What the token is for (shown in listings and the audit).
        #[arg(long)]
        name: String,
        /// Capabilities or roles (admin, operator, agent, viewer); repeat
        /// or separate with commas.
        #[arg(
            long = "capability",
            short = 'c',
            value_delimiter = ',',
            required = true
        )]
        capabilities: Vec<String>,
        /// Limit the token to these projects (default: every project).
        #[arg(long = "project", value_delimiter = ',')]
        projects: Vec<String>,
        /// The token lapses after this many seconds.
        #[arg(long)]
        ttl: Option<u64>,
        /// Print the token (and its secret, once) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    Ls {
        /// Print the tokens as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; its open sockets close.
    Revoke {
        /// The token's id, as `paddock token ls` shows it.
        id: String,
    },
}

pub async fn run_token(args: TokenArgs) -> anyhow::Result<ExitCode> {
    match args.data_dir {
        Some(dir) => offline(&dir, args.command),
        None => online(&Client::new(&args.conn)?, args.command).await,
    }
}

fn print_created(token: &Value, secret: &str, json: bool) {
    if json {
        println!("{}", json!({ "token": token, "secret": secret }));
    } else {
        println!(
            "{secret}\n(token {} — shown once; only its hash is kept)",
            token["id"].as_str().unwrap_or("?")
        );
    }
}

fn print_list(tokens: &[Value], json: bool) {
    if json {
        println!("{}", json!({ "tokens": tokens }));
        return;
    }
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().unwrap_or("?").to_owned())
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                text(&t["id"]),
                text(&t["name"]),
                text(&t["capabilities"]),
                if t["projects"].is_null() {
                    "*".into()
                } else {
                    text(&t["projects"])
                },
                match (t["revoked_at"].is_null(), t["mcp_seen_at"].is_null()) {
                    (false, _) => "revoked".into(),
                    (true, false) => "active, used over MCP".into(),
                    (true, true) => "active".into(),
                },
            ]
        })
        .collect();
    println!(
        "{}",
        table::render(&["ID", "NAME", "CAPABILITIES", "PROJECTS", "STATE"], &rows)
    );
}

async fn online(client: &Client, command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create {
            name,
            capabilities,
            projects,
            ttl,
            json,
        } => {
            let mut body = json!({ "name": name, "capabilities": capabilities, "ttl_secs": ttl });
            if !projects.is_empty() {
                body["projects"] = json!(projects);
            }
            let created: Value = client
                .call(Method::POST, "/api/v1/tokens", Some(&body))
                .await?;
            print_created(
                &created["token"],
                created["secret"].as_str().unwrap_or(""),
                json,
            );
        }
        TokenCommand::Ls { json } => {
            let listed: Value = client.call(Method::GET, "/api/v1/tokens", None).await?;
            print_list(listed["tokens"].as_array().map_or(&[], Vec::as_slice), json);
        }
        TokenCommand::Revoke { id } => {
            let path = format!("/api/v1/tokens/{}", path_id(&id));
            let _: Value = client.call(Method::DELETE, &path, None).await?;
            println!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn offline(dir: &std::path::Path, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let db = dir.join("paddock.db");
    let store = paddock_store::Store::open(&db)
        .with_context(|| format!("cannot open the store at {}", db.display()))?;
    let book = TokenBook::new(Arc::new(store));
    match command {
        TokenCommand::Create {
            name,
            capabilities,
            projects,
            ttl,
            json,
        } => {
            let capabilities = Capabilities::parse(capabilities.iter().map(String::as_str))?;
            for p in &projects {
                paddock_core::validate::project(p)?;
            }
            let projects = if projects.is_empty() {
                ProjectScope::All
            } else {
                ProjectScope::only(projects)
            };
            let (info, secret) = book.create(&NewToken {
                name,
                capabilities,
                projects,
                ttl: ttl.map(std::time::Duration::from_secs),
            })?;
            print_created(&serde_json::to_value(info)?, &secret, json);
        }
        TokenCommand::Ls { json } => {
            let tokens: Vec<Value> = book
                .list()?
                .into_iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?;
            print_list(&tokens, json);
        }
        TokenCommand::Revoke { id } => {
            book.revoke(&id)?;
            println!("revoked {id} (sockets open on a running server close at their next check)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
