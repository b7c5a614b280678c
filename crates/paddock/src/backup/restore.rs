//! Reading an archive back into an empty data dir. The whole archive is
//! checked before anything is written — every path relative and under the
//! archive's root, only files and directories, a manifest of a format this
//! binary knows, a store in it — so a foreign or doctored archive changes
//! nothing; an extraction that fails midway removes what it wrote.

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::Context;

use super::{FORMAT, MANIFEST, Manifest, ROOT};
use crate::config::Resolved;

/// Where an archive path goes: under the data dir, or the git base path.
fn destination(relative: &Path, data: &Path, git: &Path) -> PathBuf {
    match relative.strip_prefix("git") {
        Ok(repo_path) => git.join(repo_path),
        Err(_) => data.join(relative),
    }
}

/// The path inside the root, if the entry's path is a plain relative one
/// under it; `None` for anything else (absolute, `..`, another root).
fn inside_root(path: &Path) -> Option<PathBuf> {
    let mut components = path.components();
    if components.next() != Some(Component::Normal(ROOT.as_ref())) {
        return None;
    }
    let rest: PathBuf = components.as_path().to_owned();
    rest.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(rest)
}

fn open(input: &Path) -> anyhow::Result<tar::Archive<std::fs::File>> {
    let file =
        std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    Ok(tar::Archive::new(file))
}

/// Checks the whole archive; its manifest.
fn check(input: &Path) -> anyhow::Result<Manifest> {
    let mut archive = open(input)?;
    let mut manifest = None;
    let mut store = false;
    for entry in archive.entries().context("not a tar archive")? {
        let mut entry = entry.context("the archive is damaged")?;
        let path = entry.path()?.into_owned();
        let Some(relative) = inside_root(&path) else {
            anyhow::bail!(
                "the archive holds {}, outside {ROOT}/: not a paddock backup",
                path.display()
            );
        };
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::GNUSparse => {}
            tar::EntryType::Directory => continue,
            other => anyhow::bail!(
                "the archive holds {} as {other:?}: only files are restored",
                path.display()
            ),
        }
        if relative == Path::new(MANIFEST) {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            manifest = Some(
                serde_json::from_str::<Manifest>(&text).context("the manifest is unreadable")?,
            );
        } else if relative == Path::new("paddock.db") {
            store = true;
        }
    }
    let manifest = manifest.context("the archive has no manifest: not a paddock backup")?;
    anyhow::ensure!(
        manifest.format <= FORMAT,
        "the archive's format {} is newer than this paddock ({}) reads: restore it with paddock {} or later",
        manifest.format,
        env!("CARGO_PKG_VERSION"),
        manifest.paddock_version
    );
    anyhow::ensure!(store, "the archive holds no store");
    Ok(manifest)
}

fn empty_or_missing(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

pub fn read(config: &Resolved, input: &Path) -> anyhow::Result<String> {
    config.store.only_sqlite("paddock restore")?;
    let data = &config.data_dir;
    let git = config
        .git
        .base_path
        .clone()
        .unwrap_or_else(|| data.join("git"));
    anyhow::ensure!(
        !data.join("paddock.db").exists(),
        "{} already holds a store: restore into an empty data dir (move this one away first)",
        data.display()
    );
    anyhow::ensure!(
        empty_or_missing(&git),
        "{} already holds repositories: restore where there are none",
        git.display()
    );
    let manifest = check(input)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data)?;
    let mut written: Vec<PathBuf> = Vec::new();
    let extracted = extract(input, data, &git, &mut written).and_then(|()| {
        // The restored store opens (and is brought up to this binary's
        // schema).
        paddock_store::Store::open(&data.join("paddock.db"))
            .map(drop)
            .context("the restored store does not open")
    });
    if let Err(e) = extracted {
        for path in written.iter().rev() {
            let _ = std::fs::remove_file(path);
        }
        for wal in ["paddock.db-wal", "paddock.db-shm"] {
            let _ = std::fs::remove_file(data.join(wal));
        }
        return Err(e.context("the restore was undone"));
    }
    Ok(format!(
        "restored {} files from a backup of paddock {} made {} into {}; the secrets key was {}",
        written.len(),
        manifest.paddock_version,
        manifest.created_at,
        data.display(),
        manifest.secrets_key
    ))
}

fn extract(
    input: &Path,
    data: &Path,
    git: &Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let mut archive = open(input)?;
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() == tar::EntryType::Directory {
            continue;
        }
        let path = entry.path()?.into_owned();
        let relative = inside_root(&path).context("checked above")?;
        if relative == Path::new(MANIFEST) {
            continue;
        }
        let to = destination(&relative, data, git);
        if let Some(parent) = to.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        // Nobody but the owner reads anything of a data dir; keys stay 0600.
        let mode = entry.header().mode().unwrap_or(0o600) & 0o700;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode.max(0o600))
            .open(&to)
            .with_context(|| format!("cannot write {}", to.display()))?;
        written.push(to.clone());
        std::io::copy(&mut entry, &mut out)?;
        out.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_under_the_root_are_taken() {
        assert_eq!(
            inside_root(Path::new("paddock-backup/git/p.git/HEAD")),
            Some(PathBuf::from("git/p.git/HEAD"))
        );
        assert_eq!(inside_root(Path::new("paddock-backup/../etc/passwd")), None);
        assert_eq!(inside_root(Path::new("/paddock-backup/x")), None);
        assert_eq!(inside_root(Path::new("other/x")), None);
        assert!(inside_root(Path::new("paddock-backup/a/./b")).is_some());
    }

    #[test]
    fn git_paths_go_to_the_base_path() {
        let (data, git) = (Path::new("/d"), Path::new("/srv/git"));
        assert_eq!(
            destination(Path::new("git/p.git/HEAD"), data, git),
            PathBuf::from("/srv/git/p.git/HEAD")
        );
        assert_eq!(
            destination(Path::new("tls/egress-ca.key"), data, git),
            PathBuf::from("/d/tls/egress-ca.key")
        );
    }
}
