//! `paddock box …`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::http::{Client, Connection};
use super::table;
use super::table::cell as text;

#[derive(clap::Args)]
pub struct BoxArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: BoxCommand,
}

#[derive(Subcommand)]
enum BoxCommand {
    /// Create a box. On a terminal it says what it made; otherwise it
    /// prints only the box's id, as `docker run -d` does.
    Create {
        /// Project the box works on (a-z, 0-9, '-').
        #[arg(long)]
        project: String,
        /// Docker image (default: the server's `[boxes] default_image`).
        #[arg(long)]
        image: Option<String>,
        /// Box id (generated when omitted).
        #[arg(long = "id")]
        box_id: Option<String>,
        /// Free text shown in listings.
        #[arg(long)]
        description: Option<String>,
        /// Seconds the box may live; it is destroyed then.
        #[arg(long = "ttl", value_name = "SECS")]
        ttl_secs: Option<u64>,
        /// OCI runtime registered with Docker to run the box under
        /// (`runsc` for gVisor); default: the image profile's or `[boxes]
        /// runtime`.
        #[arg(long, value_name = "NAME")]
        runtime: Option<String>,
        /// Make the root filesystem read-only (the workspace volume and
        /// /tmp stay writable).
        #[arg(long)]
        read_only: bool,
        /// When to pull the image: never, missing or always (default: the
        /// image profile's or `[boxes] pull`); a pull shows its progress.
        #[arg(long, value_name = "POLICY", value_parser = ["never", "missing", "always"])]
        pull: Option<String>,
        /// The spoke to run the box on (`local`: the hub itself); default:
        /// the least loaded of the hub and its linked spokes.
        #[arg(long, value_name = "NAME")]
        spoke: Option<String>,
        /// Print the created box as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List boxes.
    Ls {
        /// Print the boxes as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one box.
    Get {
        /// The box's id.
        id: String,
        /// Print the box as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a box's processes, keeping its files.
    Stop {
        /// The box's id.
        id: String,
        /// Print the box as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a stopped or exited box again, guarded before it returns.
    Start {
        /// The box's id.
        id: String,
        /// Print the box as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a command in a box; exits with the command's exit code.
    Exec {
        /// The box's id.
        id: String,
        /// The command and its arguments, run as given (no shell; for one,
        /// say `-- sh -c '…'`).
        #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
        command: Vec<String>,
        /// Print stdout, stderr and the exit code as JSON (and exit 0).
        #[arg(long)]
        json: bool,
    },
    /// Print a box's recent console output.
    Logs {
        /// The box's id.
        id: String,
        /// How many of the last lines (at most 10000).
        #[arg(long, default_value_t = 100)]
        tail: u32,
    },
    /// A terminal in a running box: a login shell (bash where the image
    /// has it), or the given command; exits with its exit code.
    Shell {
        /// The box's id.
        id: String,
        /// A shell command line to run instead of a login shell.
        #[arg(long = "command", short = 'c')]
        command: Option<String>,
    },
    /// Publish a port of a box through paddock's listener (a service in
    /// the box reached at an authenticated URL; the box still dials
    /// nothing), list its published ports, or close one with --rm.
    Port {
        /// The box's id.
        id: String,
        /// The port inside the box (omit to list the published ones).
        port: Option<u16>,
        /// Close the port instead.
        #[arg(long, requires = "port")]
        rm: bool,
        /// Print the ports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What each running box uses: CPU share (over the interval), memory,
    /// processes.
    Top {
        /// Seconds between the two readings the CPU share comes from.
        #[arg(long = "interval", value_name = "SECS", default_value_t = 1.0)]
        interval_secs: f64,
        /// Print the readings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy files into or out of a box, as `docker cp` does: one side is
    /// ID:/absolute/path, the other a path here or `-` (a tar archive on
    /// stdin or stdout).
    Cp {
        /// Where from: a path here, ID:/path in a box, or `-`.
        source: String,
        /// Where to: a path here, ID:/path in a box, or `-`.
        dest: String,
    },
    /// Destroy a box.
    Rm {
        /// The box's id.
        id: String,
    },
}

/// A box's state as a person reads it: `exited (3)` carries the code.
fn state_cell(b: &Value) -> String {
    let state = match b["exit_code"].as_i64() {
        Some(code) => format!("{} ({code})", text(&b["state"])),
        None => text(&b["state"]),
    };
    if b["unreachable"] == true {
        format!("{state} (unreachable)")
    } else {
        state
    }
}

/// One box, as JSON or as a one-row table and its error.
fn print_box(b: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(b)?);
        return Ok(());
    }
    println!("{}", box_rows(std::slice::from_ref(b)));
    if let Some(e) = b["error"].as_str() {
        println!("error: {e}");
    }
    Ok(())
}

fn box_rows(boxes: &[Value]) -> String {
    let rows: Vec<Vec<String>> = boxes
        .iter()
        .map(|b| {
            vec![
                text(&b["box_id"]),
                text(&b["project"]),
                b["spoke"].as_str().unwrap_or("-").to_owned(),
                state_cell(b),
                b["shield"].as_str().unwrap_or("-").to_owned(),
                text(&b["image"]),
                text(&b["created_at"]),
                text(&b["description"]),
            ]
        })
        .collect();
    table::render(
        &[
            "ID",
            "PROJECT",
            "SPOKE",
            "STATE",
            "SHIELD",
            "IMAGE",
            "CREATED",
            "DESCRIPTION",
        ],
        &rows,
    )
}

pub(crate) fn path_id(id: &str) -> String {
    // Ids are validated server-side; this only keeps the URL well-formed.
    super::http::percent_encode(id, b"")
}

pub async fn run_box(args: BoxArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.conn)?;
    match args.command {
        BoxCommand::Create {
            project,
            image,
            box_id,
            description,
            ttl_secs,
            runtime,
            read_only,
            pull,
            spoke,
            json,
        } => {
            // indicatif draws on stderr only when it is a terminal.
            let body = json!({"project": project, "image": image, "box_id": box_id, "description": description, "ttl_secs": ttl_secs, "runtime": runtime, "read_only": read_only.then_some(true), "pull": pull, "spoke": spoke});
            let created = super::create::create_showing_progress(&client, &body).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else if !std::io::stdout().is_terminal() {
                // For `id=$(paddock box create …)`; the link, which a
                // script cannot follow, goes to stderr.
                println!("{}", text(&created["box_id"]));
                if let Some(url) = created["activation_url"].as_str() {
                    eprintln!("activate it at {url}");
                }
            } else {
                println!(
                    "created box {} ({})",
                    text(&created["box_id"]),
                    text(&created["state"])
                );
                if let Some(url) = created["activation_url"].as_str() {
                    println!("activate it at {url}");
                }
            }
        }
        BoxCommand::Ls { json } => {
            let list: Value = client.call(Method::GET, "/api/v1/boxes", None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list["boxes"])?);
            } else {
                let boxes = list["boxes"].as_array().cloned().unwrap_or_default();
                println!("{}", box_rows(&boxes));
            }
        }
        BoxCommand::Get { id, json } => {
            let b: Value = client
                .call(
                    Method::GET,
                    &format!("/api/v1/boxes/{}", path_id(&id)),
                    None,
                )
                .await?;
            print_box(&b, json)?;
        }
        BoxCommand::Stop { id, json } => {
            let b: Value = client
                .call(
                    Method::POST,
                    &format!("/api/v1/boxes/{}/stop", path_id(&id)),
                    None,
                )
                .await?;
            print_box(&b, json)?;
        }
        BoxCommand::Start { id, json } => {
            let b: Value = client
                .call(
                    Method::POST,
                    &format!("/api/v1/boxes/{}/start", path_id(&id)),
                    None,
                )
                .await?;
            print_box(&b, json)?;
        }
        BoxCommand::Exec { id, command, json } => {
            let body = json!({ "argv": command });
            let out: Value = client
                .call(
                    Method::POST,
                    &format!("/api/v1/boxes/{}/exec", path_id(&id)),
                    Some(&body),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(ExitCode::SUCCESS);
            }
            print!("{}", text(&out["stdout"]));
            eprint!("{}", text(&out["stderr"]));
            let code = out["exit_code"].as_i64().unwrap_or(1);
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        BoxCommand::Logs { id, tail } => {
            let out: Value = client
                .call(
                    Method::GET,
                    &format!("/api/v1/boxes/{}/logs?tail={tail}", path_id(&id)),
                    None,
                )
                .await?;
            print!("{}", text(&out["logs"]));
        }
        BoxCommand::Port { id, port, rm, json } => {
            let base = format!("/api/v1/boxes/{}/ports", path_id(&id));
            let ports: Value = match (port, rm) {
                (Some(port), true) => {
                    client
                        .call(Method::DELETE, &format!("{base}/{port}"), None)
                        .await?
                }
                (Some(port), false) => {
                    client
                        .call(Method::POST, &base, Some(&json!({ "port": port })))
                        .await?
                }
                (None, _) => client.call(Method::GET, &base, None).await?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&ports)?);
            } else {
                let shown: Vec<&Value> = ports["ports"]
                    .as_array()
                    .map(|all| {
                        all.iter()
                            .filter(|p| {
                                rm || port.is_none() || p["port"].as_u64() == port.map(u64::from)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                for p in shown {
                    println!("{}\t{}", p["port"], text(&p["url"]));
                }
            }
        }
        BoxCommand::Shell { id, command } => {
            return super::shell::shell(&client, &id, command.as_deref()).await;
        }
        BoxCommand::Top {
            interval_secs,
            json,
        } => super::top::top(&client, interval_secs, json).await?,
        BoxCommand::Cp { source, dest } => {
            super::copy::copy(&client, &source, &dest).await?;
        }
        BoxCommand::Rm { id } => {
            let _: Value = client
                .call(
                    Method::DELETE,
                    &format!("/api/v1/boxes/{}", path_id(&id)),
                    None,
                )
                .await?;
            println!("destroyed box {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
