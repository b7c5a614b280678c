//! Tar archives for copying hook-provided files into a container.

/// One file to place in a container before it starts.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// Absolute path inside the container.
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// Builds an archive rooted at `/`, so entries keep their absolute paths.
/// Parent directories are created implicitly by Docker's extractor.
pub(crate) fn build(files: &[FileEntry]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    // Written now, as far as tools that compare times can tell.
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(file.content.len() as u64);
        header.set_mode(file.mode);
        header.set_mtime(now_secs);
        header.set_entry_type(tar::EntryType::Regular);
        let relative = file.path.trim_start_matches('/');
        builder.append_data(&mut header, relative, file.content.as_slice())?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_keeps_paths_and_modes() {
        let bytes = build(&[FileEntry {
            path: "/etc/paddock/token".into(),
            content: b"abc".to_vec(),
            mode: 0o600,
        }])
        .unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str().unwrap(), "etc/paddock/token");
        assert_eq!(entry.header().mode().unwrap(), 0o600);
        assert_eq!(entry.header().size().unwrap(), 3);
    }
}
