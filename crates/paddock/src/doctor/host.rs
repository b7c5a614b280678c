//! Checks of the host: privileges, nftables, the Docker engine and its
//! runtimes, cgroups, the data dir.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::Finding;
use crate::config::Resolved;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// The effective capability set, from `/proc/self/status`.
fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

pub fn privileges() -> Finding {
    let Some(caps) = effective_capabilities() else {
        return Finding::fail(
            "privileges",
            "cannot read this process's capabilities",
            "run on Linux with /proc mounted",
        );
    };
    let missing: Vec<&str> = [
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    ]
    .into_iter()
    .filter(|(bit, _)| caps & (1 << bit) == 0)
    .map(|(_, name)| name)
    .collect();
    if missing.is_empty() {
        Finding::ok(
            "privileges",
            "CAP_SYS_ADMIN and CAP_NET_ADMIN: boxes' network namespaces can be entered and firewalled",
        )
    } else {
        Finding::fail(
            "privileges",
            format!("without {}", missing.join(" and ")),
            "run paddock as root (see contrib/systemd/paddock.service): each box's firewall is written inside its network namespace",
        )
    }
}

pub fn nftables(config: &Resolved) -> Finding {
    if !config.egress.enabled {
        return Finding::warn(
            "nftables",
            "the egress gateway is disabled: boxes are not firewalled",
            "set [egress] enabled = true",
        );
    }
    let version = match Command::new("nft").arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => {
            return Finding::fail(
                "nftables",
                "nft is not installed",
                "install nftables (Debian: apt install nftables); paddock makes its host-side table with it",
            );
        }
    };
    match Command::new("nft").args(["list", "tables"]).output() {
        Ok(out) if out.status.success() => Finding::ok("nftables", version),
        Ok(out) => Finding::fail(
            "nftables",
            format!(
                "{version}, but listing tables failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "run as root, with the nf_tables kernel module available",
        ),
        Err(e) => Finding::fail(
            "nftables",
            format!("cannot run nft: {e}"),
            "install nftables",
        ),
    }
}

/// The runtimes the configuration names (`[boxes] runtime`, profiles').
fn runtimes_named(config: &Resolved) -> Vec<String> {
    let mut named: Vec<String> = std::iter::once(config.core.boxes.runtime.clone())
        .chain(
            config
                .core
                .profiles
                .iter()
                .filter_map(|p| p.runtime.clone()),
        )
        .filter(|r| !r.is_empty())
        .collect();
    named.sort();
    named.dedup();
    named
}

pub async fn docker(config: &Resolved) -> Vec<Finding> {
    let engine = paddock_docker::Engine::new(config.docker_host.clone());
    let at = config
        .docker_host
        .clone()
        .or_else(|| std::env::var("DOCKER_HOST").ok())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
    let facts = match tokio::time::timeout(Duration::from_secs(5), engine.facts()).await {
        Ok(Ok(facts)) => facts,
        Ok(Err(e)) => {
            return vec![Finding::fail(
                "docker",
                format!("cannot reach the engine at {at}: {e}"),
                "start it (systemctl start docker; Debian's package is docker.io), or point --docker-host at it",
            )];
        }
        Err(_) => {
            return vec![Finding::fail(
                "docker",
                format!("the engine at {at} did not answer within 5 s"),
                "check the engine (systemctl status docker)",
            )];
        }
    };
    let mut findings = vec![Finding::ok(
        "docker",
        format!(
            "engine {} at {at}, cgroup v{} ({} driver), data root {}",
            facts.server_version, facts.cgroup_version, facts.cgroup_driver, facts.root_dir
        ),
    )];
    let missing: Vec<String> = runtimes_named(config)
        .into_iter()
        .filter(|r| !facts.runtimes.contains(r))
        .collect();
    findings.push(if missing.is_empty() {
        Finding::ok("runtimes", facts.runtimes.join(", "))
    } else {
        Finding::fail(
            "runtimes",
            format!(
                "the configuration names {} but the engine knows only {}",
                missing.join(", "),
                facts.runtimes.join(", ")
            ),
            "register it in /etc/docker/daemon.json (\"runtimes\") and restart the engine; for gVisor: scripts/ensure-env --runsc",
        )
    });
    findings
}

pub fn cgroups() -> Finding {
    let controllers =
        std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
    if controllers.is_empty() {
        let v1: Vec<&str> = ["cpu", "memory", "pids"]
            .into_iter()
            .filter(|c| Path::new("/sys/fs/cgroup").join(c).is_dir())
            .collect();
        if v1.len() == 3 {
            return Finding::warn(
                "cgroups",
                "v1: box limits hold, but a box's memory reading includes page cache",
                "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1)",
            );
        }
        return Finding::fail(
            "cgroups",
            "neither cgroup v2 nor v1's cpu, memory and pids controllers under /sys/fs/cgroup",
            "mount the cgroup hierarchy (a box's limits use it)",
        );
    }
    let missing: Vec<&str> = ["cpu", "memory", "pids"]
        .into_iter()
        .filter(|c| !controllers.split_whitespace().any(|have| have == *c))
        .collect();
    if missing.is_empty() {
        Finding::ok("cgroups", format!("v2: {}", controllers.trim()))
    } else {
        Finding::fail(
            "cgroups",
            format!("v2 without the {} controller(s)", missing.join(", ")),
            "enable them for the engine's cgroup (a box's memory, CPU and process limits use them)",
        )
    }
}

fn free_bytes(dir: &Path) -> Option<u64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes only into the struct we pass.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

fn mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(std::fs::metadata(path).ok()?.permissions().mode() & 0o777)
}

const GIB: u64 = 1024 * 1024 * 1024;

/// The data dir: a writable directory only its owner reads, with room to
/// grow (a full disk stops decisions); the secrets key 0600; the store's
/// size.
pub fn data_dir(dir: &Path) -> Vec<Finding> {
    let shown = dir.display();
    // The nearest existing directory: serve makes the rest.
    let existing = dir
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    if !existing.is_dir() {
        return vec![Finding::fail(
            "data dir",
            format!("{} is not a directory", existing.display()),
            "give --data-dir (or [server] data_dir) a directory",
        )];
    }
    let writable = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes())
        .map(|p| unsafe { libc::access(p.as_ptr(), libc::W_OK) } == 0)
        .unwrap_or(false);
    if !writable {
        return vec![Finding::fail(
            "data dir",
            format!("{} cannot be written by this user", existing.display()),
            "run paddock as the directory's owner, or choose another --data-dir",
        )];
    }
    let mut findings = Vec::new();
    let free = free_bytes(existing).unwrap_or(0);
    let detail = if dir.exists() {
        format!(
            "{shown}: writable, {:.1} GiB free",
            free as f64 / GIB as f64
        )
    } else {
        format!(
            "{shown} does not exist yet (paddock serve makes it); {:.1} GiB free",
            free as f64 / GIB as f64
        )
    };
    findings.push(if free < GIB / 4 {
        Finding::fail(
            "data dir",
            detail,
            "free space: with the disk full, nothing can be decided (set [audit] retain_days)",
        )
    } else if free < 2 * GIB {
        Finding::warn(
            "data dir",
            detail,
            "free space soon: a full disk stops decisions (set [audit] retain_days)",
        )
    } else {
        Finding::ok("data dir", detail)
    });
    if let Some(m) = mode(dir).filter(|m| m & 0o077 != 0) {
        findings.push(Finding::warn(
            "data dir",
            format!("{shown} is readable by others (mode {m:o})"),
            format!("chmod 700 {shown}: it holds the store, the CA key and the secrets key"),
        ));
    }
    let key = dir.join("secrets.key");
    if let Some(m) = mode(&key).filter(|m| m & 0o077 != 0) {
        findings.push(Finding::fail(
            "secrets key",
            format!("{} has mode {m:o}", key.display()),
            format!("chmod 600 {}", key.display()),
        ));
    }
    let store = dir.join("paddock.db");
    if let Ok(meta) = std::fs::metadata(&store) {
        let wal = std::fs::metadata(dir.join("paddock.db-wal")).map_or(0, |m| m.len());
        findings.push(Finding::ok(
            "store",
            format!(
                "{}: {:.1} MiB (write-ahead log {:.1} MiB)",
                store.display(),
                meta.len() as f64 / (1024.0 * 1024.0),
                wal as f64 / (1024.0 * 1024.0)
            ),
        ));
    }
    findings
}
