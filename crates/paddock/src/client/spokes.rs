//! `paddock spoke token create|ls|revoke` (an `admin:spokes` token) and
//! `paddock spoke enroll`, run on the spoke's machine: a new key pair made
//! there (its private half never leaves), a signing request traded with
//! the single-use token for a client certificate from the hub's spoke CA.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::boxes::path_id;
use super::http::{Client, Connection};
use super::table;

/// Without a subcommand, with `--hub`: run this machine as a spoke of the
/// hub, linked over mutual TLS with the certificate `enroll` got.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SpokeArgs {
    #[command(flatten)]
    conn: Connection,
    /// The hub's spoke listener (https://host:port, its `[spokes] listen`).
    #[arg(long)]
    hub: Option<String>,
    /// The directory `paddock spoke enroll` wrote.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// How many boxes this spoke offers to run.
    #[arg(long, default_value_t = 32)]
    max_boxes: u32,
    /// The spoke's own paddock (its store, Docker engine, gateway), as
    /// `paddock serve` takes it.
    #[command(flatten)]
    serve: crate::ServeArgs,
    #[command(subcommand)]
    command: Option<SpokeCommand>,
}

#[derive(Subcommand)]
enum SpokeCommand {
    /// Enrolment tokens for new spokes.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// List enrolled spokes.
    Ls {
        /// Print the spokes as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a spoke: its certificate is refused from now on (enrolling
    /// again with a new token issues another).
    Revoke {
        /// The spoke's name.
        name: String,
    },
    /// On the spoke's machine: trade an enrolment token for this
    /// machine's client certificate.
    Enroll {
        /// The hub's address (https://…; --ca-file if a private CA issued
        /// its certificate).
        #[arg(long)]
        hub: String,
        /// The enrolment token `paddock spoke token create` printed.
        #[arg(long, env = "PADDOCK_SPOKE_TOKEN", hide_env_values = true)]
        token: String,
        /// Where the spoke keeps its key, certificate and the hub's CA.
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a single-use enrolment token for a spoke's name (printed once).
    Create {
        /// The spoke's name: how boxes are placed on it.
        #[arg(long)]
        name: String,
        /// The token lapses unused after this many seconds (default 3600).
        #[arg(long)]
        ttl: Option<u64>,
        /// Print the token as JSON.
        #[arg(long)]
        json: bool,
    },
}

use paddock_spoke::dial::{CERT_FILE as SPOKE_CERT, HUB_CA_FILE as HUB_CA, KEY_FILE as SPOKE_KEY};

/// Links this machine to the hub until SIGTERM or Ctrl-C.
/// Runs this machine's own paddock (boxes, gateway, clearance) linked
/// to the hub as its spoke.
async fn run_as_spoke(
    serve: crate::ServeArgs,
    role: crate::serve::SpokeRole,
) -> anyhow::Result<ExitCode> {
    crate::serve::run(serve, None, Some(role)).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn run_spoke(args: SpokeArgs) -> anyhow::Result<ExitCode> {
    let Some(command) = args.command else {
        let (Some(hub), Some(dir)) = (args.hub, args.dir) else {
            return Err(anyhow!(
                "run as a spoke with --hub https://… --dir <what enroll wrote>, or give a subcommand (token, ls, revoke, enroll)"
            ));
        };
        let role = crate::serve::SpokeRole {
            hub,
            dir,
            max_boxes: args.max_boxes,
        };
        return run_as_spoke(args.serve, role).await;
    };
    match command {
        SpokeCommand::Enroll { hub, token, dir } => {
            let conn = Connection {
                url: hub,
                token: None,
                ca_file: args.conn.ca_file,
            };
            enroll(&Client::new(&conn)?, &token, &dir).await
        }
        command => admin(&Client::new(&args.conn)?, command).await,
    }
}

async fn admin(client: &Client, command: SpokeCommand) -> anyhow::Result<ExitCode> {
    match command {
        SpokeCommand::Token {
            command: TokenCommand::Create { name, ttl, json },
        } => {
            let body = json!({ "name": name, "ttl_secs": ttl });
            let made: Value = client
                .call(Method::POST, "/api/v1/spokes/tokens", Some(&body))
                .await?;
            if json {
                println!("{made}");
            } else {
                println!(
                    "{}\n(enrolment token for spoke {name}, single use, valid {} s — shown once)\non the spoke: paddock spoke enroll --hub {} --token <this token> --dir <its data dir>",
                    made["token"].as_str().unwrap_or(""),
                    made["expires_in_secs"],
                    client.base()
                );
            }
        }
        SpokeCommand::Ls { json } => {
            let listed: Value = client.call(Method::GET, "/api/v1/spokes", None).await?;
            let spokes = listed["spokes"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", json!({ "spokes": spokes }));
            } else {
                let rows: Vec<Vec<String>> = spokes.iter().map(row).collect();
                println!(
                    "{}",
                    table::render(&["NAME", "ENROLLED", "CERTIFICATE UNTIL", "STATE"], &rows)
                );
            }
        }
        SpokeCommand::Revoke { name } => {
            let path = format!("/api/v1/spokes/{}", path_id(&name));
            let _: Value = client.call(Method::DELETE, &path, None).await?;
            println!("revoked spoke {name}");
        }
        // Run by run_spoke against the hub it names, with no API token.
        SpokeCommand::Enroll { .. } => return Err(anyhow!("enroll is not an admin command")),
    }
    Ok(ExitCode::SUCCESS)
}

fn when(secs: &Value) -> String {
    table::utc(secs.as_i64()).unwrap_or_else(|| "-".into())
}

fn row(spoke: &Value) -> Vec<String> {
    vec![
        spoke["name"].as_str().unwrap_or("?").to_owned(),
        when(&spoke["enrolled_at_secs"]),
        when(&spoke["cert_not_after_secs"]),
        if spoke["revoked"] == true {
            "revoked".into()
        } else {
            "enrolled".into()
        },
    ]
}

/// Writes `text` to `dir/name` through a new file renamed into place, so a
/// crash leaves the old file or the new one, never half of one.
fn write_file(dir: &Path, name: &str, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.new"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &target).with_context(|| format!("cannot write {}", target.display()))
}

/// Enrolment sends a secret: over https://, or plain http:// only to this
/// machine.
fn check_hub_url(hub: &str) -> anyhow::Result<()> {
    let Some(rest) = hub.strip_prefix("http://") else {
        return Ok(());
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(anyhow!(
            "enrolment sends a secret: use https:// for the hub (plain http:// only to this machine)"
        ))
    }
}

async fn enroll(client: &Client, token: &str, dir: &Path) -> anyhow::Result<ExitCode> {
    use std::os::unix::fs::DirBuilderExt;
    check_hub_url(client.base())?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot make {}", dir.display()))?;
    // The name is the token's; the request's is only a label.
    let (key_pem, csr_pem) = paddock_tls::spoke_request("spoke")?;
    let enrolled: Value = client
        .call(
            Method::POST,
            "/api/v1/spokes/enroll",
            Some(&json!({ "token": token, "csr": csr_pem })),
        )
        .await?;
    let field = |name: &str| {
        enrolled[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the hub's answer has no {name}"))
    };
    let (name, cert, hub_ca) = (field("name")?, field("certificate")?, field("hub_ca")?);
    write_file(dir, SPOKE_KEY, &key_pem, 0o600)?;
    write_file(dir, SPOKE_CERT, &cert, 0o644)?;
    write_file(dir, HUB_CA, &hub_ca, 0o644)?;
    println!(
        "enrolled as spoke {name}; certificate until {} in {}",
        when(&enrolled["not_after_secs"]),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::check_hub_url;

    #[test]
    fn the_token_goes_in_the_clear_only_to_this_machine() {
        for ok in [
            "https://hub.example:7878",
            "http://127.0.0.1:7878",
            "http://localhost:7878/",
            "http://[::1]:7878",
        ] {
            assert!(check_hub_url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://hub.example:7878",
            "http://10.0.0.1",
            "http://127.0.0.1.evil.test",
        ] {
            assert!(check_hub_url(refused).is_err(), "{refused}");
        }
    }
}
