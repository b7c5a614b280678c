//! Writing an archive.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{FORMAT, MANIFEST, Manifest, ROOT};
use crate::config::Resolved;

/// A repository's files with its refs first: refs are written by rename
/// after the objects they name, so objects copied after the refs include
/// everything the refs point to, whatever a push does meanwhile.
fn repository_files(repo: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    collect(repo, &mut files)?;
    let rank = |p: &PathBuf| {
        let relative = p.strip_prefix(repo).unwrap_or(p);
        let first = relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_owned());
        match first.as_deref().and_then(|f| f.to_str()) {
            Some("packed-refs" | "refs" | "HEAD") => 0,
            Some("objects") => 2,
            _ => 1,
        }
    };
    files.sort_by_key(|p| (rank(p), p.clone()));
    Ok(files)
}

fn collect(dir: &Path, into: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(&entry.path(), into)?;
        } else if kind.is_file() {
            into.push(entry.path());
        }
    }
    Ok(())
}

/// Writes the archive; what it holds, as a line for the person.
pub fn write(config: &Resolved, output: &Path) -> anyhow::Result<String> {
    config.store.only_sqlite("paddock backup")?;
    let data = &config.data_dir;
    let db = data.join("paddock.db");
    anyhow::ensure!(
        db.is_file(),
        "no store at {}: nothing to back up (is --data-dir right?)",
        db.display()
    );
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(output)
        .with_context(|| {
            format!(
                "cannot create {} (an archive is never overwritten)",
                output.display()
            )
        })?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.mode(tar::HeaderMode::Complete);
    let key_source = if data.join(paddock_vault::KEY_FILE).is_file() {
        "the data dir's file (in this archive)".to_owned()
    } else {
        "outside the data dir (a systemd credential or PADDOCK_SECRETS_KEY): keep it, the secrets open only with it".to_owned()
    };
    let manifest = Manifest {
        format: FORMAT,
        paddock_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        secrets_key: key_source.clone(),
    };
    append_bytes(
        &mut tar,
        MANIFEST,
        &serde_json::to_vec_pretty(&manifest)?,
        0o600,
    )?;

    let staging =
        tempfile::tempdir_in(data).context("cannot make a staging directory in the data dir")?;
    let copy = staging.path().join("paddock.db");
    paddock_store::backup(&db, &copy).context("cannot copy the store")?;
    tar.append_path_with_name(&copy, format!("{ROOT}/paddock.db"))?;

    let mut parts = vec!["the store".to_owned()];
    for (name, what) in [
        (paddock_vault::KEY_FILE, "the secrets key"),
        ("git-audit.jsonl", "the git audit log"),
    ] {
        let path = data.join(name);
        if path.is_file() {
            tar.append_path_with_name(&path, format!("{ROOT}/{name}"))?;
            parts.push(what.to_owned());
        }
    }
    let tls = data.join("tls");
    for name in [
        paddock_egress::intercept::CA_CERT_FILE,
        paddock_egress::intercept::CA_KEY_FILE,
    ] {
        let path = tls.join(name);
        if path.is_file() {
            tar.append_path_with_name(&path, format!("{ROOT}/tls/{name}"))?;
        }
    }
    if tls.join(paddock_egress::intercept::CA_KEY_FILE).is_file() {
        parts.push("the egress CA".to_owned());
    }
    // Without it, every enrolled spoke would have to enrol again.
    let spoke_ca = data.join(crate::serve::SPOKE_CA_DIR);
    let mut spoke_files = 0;
    for name in paddock_tls::SPOKE_CA_FILES {
        let path = spoke_ca.join(name);
        if path.is_file() {
            let inside = format!("{ROOT}/{}/{name}", crate::serve::SPOKE_CA_DIR);
            tar.append_path_with_name(&path, inside)?;
            spoke_files += 1;
        }
    }
    if spoke_files == paddock_tls::SPOKE_CA_FILES.len() {
        parts.push("the spoke CA".to_owned());
    }
    let git = config
        .git
        .base_path
        .clone()
        .unwrap_or_else(|| data.join("git"));
    let mut repositories = 0;
    if git.is_dir() {
        for entry in std::fs::read_dir(&git)? {
            let repo = entry?.path();
            if !repo.is_dir() || repo.extension().is_none_or(|e| e != "git") {
                continue;
            }
            repositories += 1;
            for file in repository_files(&repo)? {
                let relative = file.strip_prefix(&git)?;
                tar.append_path_with_name(&file, Path::new(ROOT).join("git").join(relative))?;
            }
        }
    }
    parts.push(format!("{repositories} git repositories"));
    let mut out = tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    out.flush()?;
    out.sync_all()?;
    Ok(format!(
        "backed up {} to {} (0600: it holds the keys to every secret and the CA every box trusts); the secrets key is {key_source}",
        parts.join(", "),
        output.display()
    ))
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append_data(&mut header, format!("{ROOT}/{name}"), bytes)
}
