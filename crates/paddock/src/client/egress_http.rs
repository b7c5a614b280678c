//! `paddock egress http …`: rules at the HTTP level, for hosts the gateway
//! reads (methods, a path glob, a push's refs).

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::egress::Subject;
use super::http::Client;
use super::table;
use super::table::cell as text;

#[derive(clap::Args)]
pub(super) struct HttpRuleArgs {
    /// `api.github.com` or `*.example.com` (names only).
    host: String,
    /// `METHODS /path-glob`: `GET,HEAD /repos/acme/**` (`*` any method;
    /// `*` within a segment, `**` across).
    request: String,
    /// Only this port (default: any).
    #[arg(long)]
    port: Option<u16>,
    /// A git push matches only when it updates a ref matching this glob
    /// (`refs/heads/main`); repeat for several.
    #[arg(long = "ref")]
    refs: Vec<String>,
    #[command(flatten)]
    subject: Subject,
    /// The rule lapses after this many seconds.
    #[arg(long)]
    ttl: Option<u64>,
    /// Print the rule as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub(super) enum HttpCommand {
    /// Let matching requests through.
    Allow(HttpRuleArgs),
    /// Refuse matching requests.
    Deny(HttpRuleArgs),
    /// Hold matching requests until a person decides.
    Ask(HttpRuleArgs),
    /// List the HTTP rules.
    Rules {
        /// Print the rules as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an HTTP rule by its number.
    Rm {
        /// The rule's number, as `paddock egress http rules` shows it.
        id: i64,
    },
}

fn rows(rules: &[Value]) -> String {
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            let refs = r["refs"]
                .as_array()
                .filter(|a| !a.is_empty())
                .map(|a| a.iter().map(text).collect::<Vec<_>>().join(","))
                .unwrap_or_else(|| "-".into());
            vec![
                text(&r["id"]),
                text(&r["action"]),
                format!(
                    "{}{}",
                    text(&r["host"]),
                    r["port"]
                        .as_u64()
                        .map(|p| format!(":{p}"))
                        .unwrap_or_default()
                ),
                text(&r["request"]),
                refs,
                format!("{} {}", text(&r["scope"]), text(&r["subject"])),
            ]
        })
        .collect();
    table::render(&["#", "ACTION", "HOST", "REQUEST", "REFS", "FOR"], &rows)
}

async fn add(client: &Client, action: &str, args: HttpRuleArgs) -> anyhow::Result<()> {
    let body = json!({
        "host": args.host,
        "port": args.port,
        "request": args.request,
        "refs": args.refs,
        "action": action,
        "box_id": args.subject.box_id,
        "project": args.subject.project,
        "ttl_secs": args.ttl,
    });
    let rule: Value = client
        .call(Method::POST, "/api/v1/egress/http-rules", Some(&body))
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rule)?);
    } else {
        println!("{}", rows(std::slice::from_ref(&rule)));
    }
    Ok(())
}

pub(super) async fn run(client: &Client, command: HttpCommand) -> anyhow::Result<()> {
    match command {
        HttpCommand::Allow(a) => add(client, "allow", a).await,
        HttpCommand::Deny(a) => add(client, "deny", a).await,
        HttpCommand::Ask(a) => add(client, "ask", a).await,
        HttpCommand::Rules { json } => {
            let list: Value = client
                .call(Method::GET, "/api/v1/egress/http-rules", None)
                .await?;
            let rules = list["rules"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&rules)?);
            } else {
                println!("{}", rows(&rules));
            }
            Ok(())
        }
        HttpCommand::Rm { id } => {
            let _: Value = client
                .call(
                    Method::DELETE,
                    &format!("/api/v1/egress/http-rules/{id}"),
                    None,
                )
                .await?;
            println!("removed HTTP rule #{id}");
            Ok(())
        }
    }
}
