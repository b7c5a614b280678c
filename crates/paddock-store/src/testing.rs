//! A PostgreSQL server of a test's own: Debian's binaries, a fresh
//! cluster in a temporary directory, listening on loopback on a free
//! port, gone (process and files) when dropped. For tests only; not
//! part of paddock.
//!
//! It listens on a second loopback address too, [`CUTTABLE_HOST`], so a
//! test can cut the clients it pointed there off in silence
//! ([`TempPostgres::cut`]) while others go on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts a PostgreSQL's programs.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|bin| bin.join("postgres").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

/// PostgreSQL refuses to run as root: its files and process belong to
/// this user when the test runs as root.
const RUN_AS: &str = "postgres";

/// The server's second address, for clients a test will cut off.
pub const CUTTABLE_HOST: &str = "127.0.0.2";

pub struct TempPostgres {
    dir: tempfile::TempDir,
    server: Option<Child>,
    pub port: u16,
    bin: PathBuf,
}

impl TempPostgres {
    /// None when PostgreSQL is not installed (the caller says why it
    /// skips; `scripts/test` installs it).
    pub fn start() -> Option<Self> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("paddock-test-pg-")
            .tempdir()
            .ok()?;
        let data = dir.path().join("data");
        let as_root = is_root();
        if as_root {
            let status = Command::new("chown")
                .args(["-R", RUN_AS])
                .arg(dir.path())
                .status()
                .ok()?;
            assert!(status.success(), "cannot give the cluster to {RUN_AS}");
        }
        let initdb = command(&bin.join("initdb"), as_root)
            .args([
                "-A",
                "trust",
                "-U",
                "paddock",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .expect("initdb runs");
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        // Clients of either loopback address are let in.
        let hba = data.join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).ok()?;
        rules.push_str("host all all 127.0.0.0/8 trust\n");
        std::fs::write(&hba, rules).ok()?;
        let mut pg = Self {
            dir,
            server: None,
            port: 0,
            bin,
        };
        pg.port = free_port();
        pg.launch();
        Some(pg)
    }

    /// Starts the server on the cluster and waits until it takes
    /// connections (again, after [`TempPostgres::stop`]).
    pub fn launch(&mut self) {
        let data = self.dir.path().join("data");
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        if is_root() {
            let _ = Command::new("chown")
                .arg(RUN_AS)
                .arg(self.dir.path().join("server.log"))
                .status();
        }
        let server = command(&self.bin.join("postgres"), is_root())
            .arg("-D")
            .arg(&data)
            .arg("-c")
            .arg(format!("listen_addresses=127.0.0.1,{CUTTABLE_HOST}"))
            .args(["-c", "fsync=off"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            .args(["-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        self.server = Some(server);
        let deadline = Instant::now() + Duration::from_secs(30);
        // On a thread of its own: the client blocks on a runtime, which
        // may not start inside a test's.
        let url = self.admin_url();
        let answers = || {
            let url = url.clone();
            std::thread::spawn(move || postgres::Client::connect(&url, postgres::NoTls).is_ok())
                .join()
                .unwrap_or(false)
        };
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() || !answers() {
            assert!(
                Instant::now() < deadline,
                "postgres did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            // SAFETY: signals our own child.
            unsafe { libc_kill(server.id() as i32, 2) };
            let _ = server.wait();
        }
    }

    fn admin_url(&self) -> String {
        format!(
            "postgres://paddock@127.0.0.1:{}/postgres?connect_timeout=5",
            self.port
        )
    }

    /// A new, empty database on this server, and its URL.
    pub fn database(&self, name: &str) -> String {
        let out = command(&self.bin.join("createdb"), false)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "paddock",
                name,
            ])
            .output()
            .expect("createdb runs");
        assert!(
            out.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://paddock@127.0.0.1:{}/{name}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl TempPostgres {
    /// Cuts every connection to [`CUTTABLE_HOST`] in silence, both ways:
    /// packets are dropped as they arrive, nothing is closed or refused,
    /// as when a cable is pulled. Mended when the cut is dropped. None
    /// when nftables cannot be changed here (not root).
    pub fn cut(&self) -> Option<SilentCut> {
        // `paddock_test_`: `scripts/sweep` removes one a killed test left.
        let table = format!("paddock_test_pgcut_{}", self.port);
        let rules = format!(
            "table inet {table} {{\n chain input {{\n  type filter hook input priority -10;\n  \
             ip daddr {CUTTABLE_HOST} tcp dport {port} drop\n  \
             ip saddr {CUTTABLE_HOST} tcp sport {port} drop\n }}\n}}\n",
            port = self.port
        );
        let mut nft = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        use std::io::Write;
        nft.stdin.take()?.write_all(rules.as_bytes()).ok()?;
        nft.wait().ok()?.success().then_some(SilentCut { table })
    }
}

/// A cut made by [`TempPostgres::cut`]; mended when dropped.
pub struct SilentCut {
    table: String,
}

impl Drop for SilentCut {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn command(program: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        // setpriv execs the program itself (runuser would stay as its
        // parent and not pass every signal on).
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={RUN_AS}"),
            &format!("--regid={RUN_AS}"),
            "--init-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

fn is_root() -> bool {
    // SAFETY: getuid cannot fail.
    unsafe { getuid() == 0 }
}

unsafe extern "C" {
    fn getuid() -> u32;
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}
