//! `paddock egress …`: rules, the decision log and shields.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::boxes::path_id;
use super::http::{Client, Connection};
use super::table;
use super::table::cell as text;

#[derive(clap::Args)]
pub struct EgressArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: EgressCommand,
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub(super) struct Subject {
    /// The rule is for this box only.
    #[arg(long = "box")]
    pub box_id: Option<String>,
    /// The rule is for every box of this project.
    #[arg(long)]
    pub project: Option<String>,
}

#[derive(clap::Args)]
struct RuleArgs {
    /// `example.com`, `*.example.com` or a CIDR (`10.0.0.0/8`, `192.0.2.7`).
    target: String,
    /// A port or range, `P` or `P-Q` (default: any port).
    #[arg(long)]
    port: Option<String>,
    #[command(flatten)]
    subject: Subject,
    /// The rule lapses after this many seconds.
    #[arg(long)]
    ttl: Option<u64>,
    /// Print the rule as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ShieldArgs {
    /// The box whose shield changes.
    #[arg(long = "box")]
    box_id: String,
}

#[derive(clap::Args)]
struct DownArgs {
    /// The box whose shield goes down.
    #[arg(long = "box")]
    box_id: String,
    /// Seconds until the shield goes back up by itself (default 3600,
    /// capped by the server's `max_down_secs`).
    #[arg(long)]
    ttl: Option<u64>,
}

#[derive(Subcommand)]
enum EgressCommand {
    /// Let matching connections through.
    Allow(RuleArgs),
    /// Refuse matching connections.
    Deny(RuleArgs),
    /// Hold matching connections until a person decides.
    Ask(RuleArgs),
    /// List the rules.
    Rules {
        /// Print the rules as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a rule by its number.
    Rm {
        /// The rule's number, as `paddock egress rules` shows it.
        id: i64,
    },
    /// Show egress decisions, oldest first.
    Log {
        /// Only this box's decisions.
        #[arg(long = "box")]
        box_id: Option<String>,
        /// Only this project's decisions.
        #[arg(long)]
        project: Option<String>,
        /// How many decisions, at most.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print the decisions as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Raise a box's shield: the rules decide again.
    Up(ShieldArgs),
    /// Lower a box's shield for a while: every public destination allowed.
    Down(DownArgs),
    /// Block all of a box's egress.
    Block(ShieldArgs),
    /// Rules at the HTTP level (methods, paths, a push's refs) for hosts
    /// the gateway reads.
    Http {
        #[command(subcommand)]
        command: super::egress_http::HttpCommand,
    },
}

fn rule_rows(rules: &[Value]) -> String {
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            vec![
                text(&r["id"]),
                text(&r["action"]),
                text(&r["target"]),
                r["ports"].as_str().unwrap_or("any").to_owned(),
                format!("{} {}", text(&r["scope"]), text(&r["subject"])),
                text(&r["created_by"]),
            ]
        })
        .collect();
    table::render(&["#", "ACTION", "TARGET", "PORTS", "FOR", "BY"], &rows)
}

async fn add_rule(client: &Client, action: &str, args: RuleArgs) -> anyhow::Result<()> {
    let body = json!({
        "target": args.target,
        "action": action,
        "ports": args.port,
        "box_id": args.subject.box_id,
        "project": args.subject.project,
        "ttl_secs": args.ttl,
    });
    let rule: Value = client
        .call(Method::POST, "/api/v1/egress/rules", Some(&body))
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rule)?);
    } else {
        println!("{}", rule_rows(std::slice::from_ref(&rule)));
        if let Some(replaced) = rule["replaced_action"].as_str() {
            println!(
                "(this replaces the {replaced} rule #{} for the same target and ports)",
                text(&rule["id"])
            );
        }
    }
    Ok(())
}

/// Milliseconds since the epoch as a UTC time a person reads.
fn when(ms: &Value) -> String {
    ms.as_i64()
        .and_then(|ms| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
        })
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| text(ms))
}

async fn set_shield(
    client: &Client,
    state: &str,
    box_id: &str,
    ttl: Option<u64>,
) -> anyhow::Result<()> {
    let body = json!({"state": state, "ttl_secs": ttl});
    let out: Value = client
        .call(
            Method::PUT,
            &format!("/api/v1/boxes/{}/shield", path_id(box_id)),
            Some(&body),
        )
        .await?;
    match out["until_ms"].as_i64() {
        Some(_) => println!(
            "box {box_id}: shield {} until {}{}",
            text(&out["state"]),
            when(&out["until_ms"]),
            if ttl.is_none() {
                " (the default hour; --ttl to choose)"
            } else {
                ""
            }
        ),
        None => println!("box {box_id}: shield {}", text(&out["state"])),
    }
    Ok(())
}

pub async fn run_egress(args: EgressArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.conn)?;
    match args.command {
        EgressCommand::Allow(a) => add_rule(&client, "allow", a).await?,
        EgressCommand::Deny(a) => add_rule(&client, "deny", a).await?,
        EgressCommand::Ask(a) => add_rule(&client, "ask", a).await?,
        EgressCommand::Rules { json } => {
            let list: Value = client
                .call(Method::GET, "/api/v1/egress/rules", None)
                .await?;
            let rules = list["rules"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&rules)?);
            } else {
                println!("{}", rule_rows(&rules));
            }
        }
        EgressCommand::Rm { id } => {
            let _: Value = client
                .call(Method::DELETE, &format!("/api/v1/egress/rules/{id}"), None)
                .await?;
            println!("removed rule #{id}");
        }
        EgressCommand::Log {
            box_id,
            project,
            limit,
            json,
        } => {
            let mut query = format!("limit={limit}");
            if let Some(b) = box_id {
                query.push_str(&format!("&box_id={}", path_id(&b)));
            }
            if let Some(p) = project {
                query.push_str(&format!("&project={}", path_id(&p)));
            }
            let log: Value = client
                .call(Method::GET, &format!("/api/v1/egress/log?{query}"), None)
                .await?;
            let entries = log["entries"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|e| {
                        vec![
                            when(&e["at"]),
                            text(&e["box_id"]),
                            format!("{}:{}", text(&e["dest"]), text(&e["port"])),
                            text(&e["decision"]),
                            text(&e["decided_by"]),
                            text(&e["reason"]),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table::render(
                        &["AT (UTC)", "BOX", "DESTINATION", "DECISION", "BY", "REASON"],
                        &rows
                    )
                );
            }
        }
        EgressCommand::Up(a) => set_shield(&client, "up", &a.box_id, None).await?,
        EgressCommand::Down(a) => set_shield(&client, "down", &a.box_id, a.ttl).await?,
        EgressCommand::Block(a) => set_shield(&client, "block", &a.box_id, None).await?,
        EgressCommand::Http { command } => super::egress_http::run(&client, command).await?,
    }
    Ok(ExitCode::SUCCESS)
}
