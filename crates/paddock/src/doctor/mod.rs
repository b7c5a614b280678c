//! `paddock doctor`: what paddock needs from this machine, checked without
//! changing anything — the Docker engine and its runtimes, cgroups,
//! nftables, the privileges boxes' firewalls need, the ports boxes'
//! gateways listen on, the data dir — each with how to fix it. Exits 1
//! when anything fails, so provisioning can stop on it.

mod host;
mod ports;

use std::process::ExitCode;

use serde::Serialize;

use crate::ServeArgs;
use crate::config::Resolved;

#[derive(clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One check's answer: what was found, and how to fix it when it is not
/// right.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &'static str, detail: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

pub async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::load(&args.serve)?;
    let findings = examine(&config).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        print!("{}", render(&findings));
    }
    Ok(if findings.iter().any(|f| f.status == Status::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Every check, in the order a person would fix them.
async fn examine(config: &Resolved) -> Vec<Finding> {
    let mut findings = vec![host::privileges(), host::nftables(config)];
    findings.extend(host::docker(config).await);
    findings.push(host::cgroups());
    findings.push(ports::gateway_ports(config));
    findings.extend(host::data_dir(&config.data_dir));
    findings
}

fn render(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in findings {
        let status = match f.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        out.push_str(&format!("{status}  {:<width$}  {}\n", f.check, f.detail));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("      {:<width$}  fix: {fix}\n", ""));
        }
    }
    let failed = findings.iter().filter(|f| f.status == Status::Fail).count();
    let warned = findings.iter().filter(|f| f.status == Status::Warn).count();
    out.push_str(&match (failed, warned) {
        (0, 0) => "all good\n".to_owned(),
        (0, w) => format!("{w} warning(s); paddock can run\n"),
        (f, _) => {
            format!("{f} check(s) failed; paddock cannot guard boxes here until they are fixed\n")
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_read_with_their_fixes_and_a_verdict() {
        let text = render(&[
            Finding::ok("docker", "engine 26.1"),
            Finding::fail("nftables", "nft is missing", "apt install nftables"),
        ]);
        assert_eq!(
            text,
            "ok    docker    engine 26.1\n\
             FAIL  nftables  nft is missing\n\
             \x20               fix: apt install nftables\n\
             1 check(s) failed; paddock cannot guard boxes here until they are fixed\n"
        );
    }
}
