//! `paddock secret set|ls|rm`: a project's secrets. A value is read from
//! standard input or a file, never from the command line (where `ps` and
//! shell history would keep it), and never printed back.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use paddock_vault::BindingSpec;
use reqwest::Method;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::boxes::path_id;
use super::http::{Client, Connection};
use super::table;

#[derive(clap::Args)]
pub struct SecretArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: SecretCommand,
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Set a secret's value (from standard input, or --from-file), its
    /// variable and its bindings. What is not given is kept.
    Set {
        /// The secret's name.
        name: String,
        /// The project whose boxes use it.
        #[arg(long)]
        project: String,
        /// Read the value from this file instead of standard input.
        #[arg(long)]
        from_file: Option<PathBuf>,
        /// Keep the value; change only the variable or bindings.
        #[arg(long, conflicts_with = "from_file")]
        keep_value: bool,
        /// The variable a box of the project finds its placeholder in
        /// (ANTHROPIC_API_KEY, GITHUB_TOKEN, …).
        #[arg(long)]
        env: Option<String>,
        /// Where the value goes: HOSTS=header:NAME: VALUE-WITH-{secret},
        /// HOSTS=basic:USER or HOSTS=query:PARAM (HOSTS: comma-separated
        /// names, `*.suffix`, `:port` when not 443). Repeat for several;
        /// replaces the bindings the secret had.
        #[arg(long = "bind")]
        bindings: Vec<String>,
        /// Remove every binding (the value then goes nowhere).
        #[arg(long, conflicts_with = "bindings")]
        no_bindings: bool,
    },
    /// List secrets: names, variables, bindings, last use — never values.
    Ls {
        /// Only this project's secrets.
        #[arg(long)]
        project: Option<String>,
        /// Print the secrets as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a secret: its placeholders are refused from the next request.
    Rm {
        /// The secret's name.
        name: String,
        /// The project it belongs to.
        #[arg(long)]
        project: String,
    },
}

/// The value, without the newline a file or `echo` ends with.
fn read_value(from_file: Option<&PathBuf>) -> anyhow::Result<Zeroizing<String>> {
    let mut raw = Zeroizing::new(String::new());
    match from_file {
        Some(path) => {
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_string(&mut raw))
                .with_context(|| format!("cannot read {}", path.display()))?;
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!(
                    "Type the value, then Enter and Ctrl-D (it is not echoed by paddock, but your terminal shows it; prefer a pipe or --from-file):"
                );
            }
            std::io::stdin()
                .read_to_string(&mut raw)
                .context("cannot read the value from standard input")?;
        }
    }
    let trimmed = raw.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        bail!("no value was given (pipe it in, or use --from-file)");
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}

fn when(ms: &Value) -> String {
    super::table::utc(ms.as_i64().map(|ms| ms / 1000)).unwrap_or_else(|| "never".into())
}

fn print_list(secrets: &[Value]) {
    let rows: Vec<Vec<String>> = secrets
        .iter()
        .map(|s| {
            let bindings = s["bindings"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|b| serde_json::from_value::<BindingSpec>(b.clone()).ok())
                        .map(|b| {
                            let how = b
                                .header
                                .map(|h| format!("header {h}"))
                                .or(b.basic.map(|u| format!("basic {u}")))
                                .or(b.query.map(|q| format!("query {q}")))
                                .unwrap_or_default();
                            format!("{} ({how})", b.hosts.join(","))
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| "-".into());
            vec![
                s["project"].as_str().unwrap_or("?").to_owned(),
                s["name"].as_str().unwrap_or("?").to_owned(),
                s["env"].as_str().unwrap_or("-").to_owned(),
                bindings,
                when(&s["last_used_ms"]),
            ]
        })
        .collect();
    println!(
        "{}",
        table::render(&["PROJECT", "NAME", "ENV", "BINDINGS", "LAST USED"], &rows)
    );
}

pub async fn run_secret(args: SecretArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.conn)?;
    match args.command {
        SecretCommand::Set {
            name,
            project,
            from_file,
            keep_value,
            env,
            bindings,
            no_bindings,
        } => {
            // Checked here too, so a typo is said before a value is asked for.
            let specs = bindings
                .iter()
                .map(|b| BindingSpec::parse_cli(b))
                .collect::<Result<Vec<_>, _>>()?;
            let mut body = json!({});
            if !keep_value {
                let value = read_value(from_file.as_ref())?;
                body["value"] = json!(value.as_str());
            }
            if let Some(env) = env {
                body["env"] = json!(env);
            }
            if !specs.is_empty() || no_bindings {
                body["bindings"] = json!(specs);
            }
            let path = format!(
                "/api/v1/projects/{}/secrets/{}",
                path_id(&project),
                path_id(&name)
            );
            let info: anyhow::Result<Value> = client.call(Method::PUT, &path, Some(&body)).await;
            // The body held the value: gone before anything else happens.
            if let Some(Value::String(value)) = body.get_mut("value") {
                zeroize::Zeroize::zeroize(value);
            }
            let info = info?;
            println!(
                "secret {} of project {} set{}",
                info["name"].as_str().unwrap_or(&name),
                info["project"].as_str().unwrap_or(&project),
                info["env"]
                    .as_str()
                    .map(|e| format!("; boxes made from now on find its placeholder in ${e}"))
                    .unwrap_or_default()
            );
        }
        SecretCommand::Ls { project, json } => {
            let path = match &project {
                Some(p) => format!("/api/v1/secrets?project={}", path_id(p)),
                None => "/api/v1/secrets".into(),
            };
            let listed: Value = client.call(Method::GET, &path, None).await?;
            let secrets = listed["secrets"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", json!({ "secrets": secrets }));
            } else {
                print_list(&secrets);
            }
        }
        SecretCommand::Rm { name, project } => {
            let path = format!(
                "/api/v1/projects/{}/secrets/{}",
                path_id(&project),
                path_id(&name)
            );
            let _: Value = client.call(Method::DELETE, &path, None).await?;
            println!("secret {name} of project {project} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
