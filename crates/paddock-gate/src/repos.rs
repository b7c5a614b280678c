//! Creating a project's bare repository on first use.

use std::ffi::OsStr;
use std::path::Path;

use crate::GateError;
use crate::request::valid_project;

/// Where a project's repository is cloned from: a path or URL, and the
/// environment git needs for it (a proxy, a trust bundle).
#[derive(Debug, Clone, Copy)]
pub struct Import<'a> {
    pub source: &'a OsStr,
    pub env: &'a [(String, String)],
}

/// Makes `<base>/<project>.git` exist: a clone of `import` when given, an
/// empty repository (default branch `main`) otherwise. Built under a
/// temporary name and renamed, so a half-made repository is never served.
pub async fn ensure_repository(
    base: &Path,
    project: &str,
    import: Option<Import<'_>>,
) -> Result<bool, GateError> {
    if !valid_project(project) {
        return Err(GateError::Config(format!(
            "{project:?} is not a valid project name"
        )));
    }
    let target = base.join(format!("{project}.git"));
    if target.join("HEAD").is_file() {
        return Ok(false);
    }
    tokio::fs::create_dir_all(base).await?;
    let staging = base.join(format!(".{project}.git.tmp-{}", std::process::id()));
    let _ = tokio::fs::remove_dir_all(&staging).await;
    let mut cmd = tokio::process::Command::new("git");
    match import {
        Some(import) => cmd
            .arg("clone")
            .arg("--bare")
            .arg("--quiet")
            .arg(import.source)
            .arg(&staging)
            .envs(import.env.iter().map(|(k, v)| (k, v)))
            .env("GIT_TERMINAL_PROMPT", "0"),
        None => cmd
            .args(["init", "--bare", "--quiet", "-b", "main"])
            .arg(&staging),
    };
    let out = paddock_children::global()
        .output("git", format!("create the repository of {project}"), cmd)
        .await
        .map_err(|e| GateError::Config(format!("creating the repository for {project}: {e}")))?;
    if !out.status.success() {
        let _ = tokio::fs::remove_dir_all(&staging).await;
        return Err(GateError::Config(format!(
            "creating the repository for {project} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    tokio::fs::rename(&staging, &target).await?;
    Ok(true)
}
