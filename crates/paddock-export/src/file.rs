//! A file sink: records appended as lines and made durable before the
//! cursor moves; past its size the file is rotated (`path.1` the newest
//! of the old ones, up to `path.<keep_files>`).

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub(crate) struct FileSink {
    pub path: PathBuf,
    pub rotate_bytes: u64,
    pub keep_files: u32,
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl FileSink {
    /// Appends `lines` (each ending in a newline) and syncs them. A line a
    /// crash left half-written is ended first, so it spoils only itself.
    pub(crate) fn append(&self, lines: &[u8]) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let len = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        if len > 0 && len + lines.len() as u64 > self.rotate_bytes {
            self.rotate()?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .mode(0o640)
            .open(&self.path)?;
        if ends_mid_line(&mut file)? {
            file.write_all(b"\n")?;
        }
        file.write_all(lines)?;
        file.sync_data()
    }

    fn rotate(&self) -> std::io::Result<()> {
        if self.keep_files == 0 {
            return std::fs::remove_file(&self.path);
        }
        for n in (1..self.keep_files).rev() {
            match std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))
    }
}

fn ends_mid_line(file: &mut std::fs::File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_past_its_size_and_keeps_so_many() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink {
            path: dir.path().join("log/decisions.jsonl"),
            rotate_bytes: 100,
            keep_files: 2,
        };
        let line = |n: usize| format!("{{\"id\":{n},\"pad\":\"{}\"}}\n", "x".repeat(30));
        for n in 1..=10 {
            sink.append(line(n).as_bytes()).unwrap();
        }
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        // Two lines fit in 100 bytes; the newest two are current, the two
        // before in .1, then .2; older ones are gone.
        assert_eq!(read(sink.path.clone()), line(9) + &line(10));
        assert_eq!(read(numbered(&sink.path, 1)), line(7) + &line(8));
        assert_eq!(read(numbered(&sink.path, 2)), line(5) + &line(6));
        assert!(!numbered(&sink.path, 3).exists());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&sink.path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn a_half_written_line_spoils_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(&path, "{\"id\":1}\n{\"id\":2,\"cut").unwrap();
        let sink = FileSink {
            path: path.clone(),
            rotate_bytes: 1 << 20,
            keep_files: 1,
        };
        sink.append(b"{\"id\":2}\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let whole: Vec<&str> = text
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
            .collect();
        assert_eq!(whole, ["{\"id\":1}", "{\"id\":2}"]);
    }
}
