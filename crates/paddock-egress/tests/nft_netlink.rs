//! paddock writes nftables over netlink from the process. The real `nft`
//! (a client we did not write) reads back what it wrote, and must see
//! exactly what it would have made itself from the text rules they stand
//! for. Box rulesets go into network namespaces this test creates (with
//! `unshare`, killed at the end even on failure); the host fence's entries
//! into a table of the test's own (`paddock_test_*`, which scripts/sweep
//! removes), whose made-up bridge matches no traffic. Needs root.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};

use paddock_egress::firewall::BoxFirewall;
use paddock_egress::host_guard::HostGuard;
use paddock_egress::nflog::NflogSocket;

/// A network namespace of the test's own, held by a sleeping process.
struct Namespace {
    holder: Child,
}

impl Namespace {
    fn new() -> Self {
        let mut holder = Command::new("unshare")
            .args(["--net", "--", "sh", "-c", "echo ready; exec sleep 600"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux) runs");
        // The namespace exists once the shell speaks: reading the pid's
        // namespace any earlier could name the host's.
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "unshare --net needs root");
        let ns = Self { holder };
        assert_ne!(
            std::fs::read_link(format!("/proc/{}/ns/net", ns.pid())).unwrap(),
            std::fs::read_link("/proc/self/ns/net").unwrap(),
            "the test must never write a box's ruleset into the host's namespace"
        );
        ns
    }

    fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// `nft <args>` inside the namespace, with `stdin`; its stdout.
    fn nft(&self, args: &[&str], stdin: &str) -> String {
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.pid()))
            .arg("--")
            .arg("nft")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nsenter and nft run");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The box ruleset as nft text, one rule per listener port.
fn as_text(gateway: Ipv4Addr, ports: &[u16], group: u16) -> String {
    let listeners: String = ports
        .iter()
        .map(|p| format!("    ip daddr {gateway} tcp dport {p} accept\n"))
        .collect();
    format!(
        "table inet paddock {{\n\
         \x20 chain output {{\n\
         \x20   type filter hook output priority 0; policy drop;\n\
         \x20   oifname \"lo\" accept\n\
         \x20   ct state established,related accept\n\
         {listeners}\
         \x20   ip daddr {gateway} udp dport 53 accept\n\
         \x20   limit rate 100/second burst 200 packets log prefix \"paddock\" group {group}\n\
         \x20   meta l4proto tcp reject with tcp reset\n\
         \x20   reject\n\
         \x20 }}\n\
         }}\n"
    )
}

#[tokio::test]
async fn the_box_ruleset_is_what_nft_itself_would_write() {
    let gateway = Ipv4Addr::new(10, 213, 0, 1);
    let firewall = BoxFirewall {
        gateway,
        tcp_ports: vec![3128, 9418],
        nflog_group: 7,
    };
    let ours = Namespace::new();
    let theirs = Namespace::new();
    firewall.apply(ours.pid()).await.expect("applied");
    theirs.nft(&["-f", "-"], &as_text(gateway, &[3128, 9418], 7));
    let listing = ours.nft(&["list", "table", "inet", "paddock"], "");
    assert_eq!(
        listing,
        theirs.nft(&["list", "table", "inet", "paddock"], ""),
        "nft reads back different rules than it makes from their text"
    );
    assert!(listing.contains("policy drop"), "{listing}");
    assert!(
        listing.contains("log prefix \"paddock\" group 7"),
        "{listing}"
    );

    // Applying again replaces the table in one transaction: nothing
    // doubles, and a changed listener set shows at once.
    let fewer = BoxFirewall {
        tcp_ports: vec![3128],
        ..firewall
    };
    fewer.apply(ours.pid()).await.expect("applied again");
    let again = ours.nft(&["list", "table", "inet", "paddock"], "");
    assert_eq!(again.matches("oifname \"lo\" accept").count(), 1, "{again}");
    assert!(!again.contains("9418"), "{again}");
}

#[tokio::test]
async fn a_box_whose_process_is_gone_is_reported_as_exited() {
    // A pid no process can have (pids stay below pid_max): a pid of a
    // process that just ended could be reused at once by one in the
    // host's namespace, and the test must never write there.
    let pid: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let firewall = BoxFirewall {
        gateway: Ipv4Addr::new(10, 213, 0, 1),
        tcp_ports: vec![3128],
        nflog_group: 7,
    };
    let err = firewall
        .apply(pid)
        .await
        .expect_err("no namespace to enter");
    assert!(
        matches!(err, paddock_egress::EgressError::BoxExited),
        "{err}"
    );
}

/// Drops CAP_NET_ADMIN from the calling thread's effective set (Linux
/// keeps capabilities per thread, and threads it spawns inherit them).
fn drop_net_admin_in_this_thread() {
    const CAP_NET_ADMIN: u32 = 12;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset with a version-3 header and two data words.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()),
            0
        );
        data[0].effective &= !(1 << CAP_NET_ADMIN);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()),
            0
        );
    }
}

#[test]
fn without_net_admin_the_kernel_refusal_is_named_and_nothing_changes() {
    let ns = Namespace::new();
    let pid = ns.pid();
    let err = std::thread::spawn(move || {
        drop_net_admin_in_this_thread();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let firewall = BoxFirewall {
            gateway: Ipv4Addr::new(10, 213, 0, 1),
            tcp_ports: vec![3128],
            nflog_group: 7,
        };
        runtime.block_on(firewall.apply(pid))
    })
    .join()
    .unwrap()
    .expect_err("refused without CAP_NET_ADMIN");
    let message = err.to_string();
    assert!(message.contains("Operation not permitted"), "{message}");
    assert!(message.contains("CAP_NET_ADMIN"), "{message}");
    assert_eq!(ns.nft(&["list", "ruleset"], ""), "", "nothing was written");
}

/// The test's own host table, removed even when the test fails.
struct TestTable(HostGuard);

impl Drop for TestTable {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", self.0.table()])
            .stderr(Stdio::null())
            .status();
    }
}

fn host_nft(args: &[&str]) -> String {
    let out = Command::new("nft").args(args).output().expect("nft runs");
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn the_host_fence_entries_are_written_and_removed_over_netlink() {
    let instance = format!("test-{}-netlink", std::process::id());
    let guard = TestTable(HostGuard::new(&instance, vec![3128, 9418], 53, 4100));
    let table = guard.0.table().to_owned();
    let gateway = Ipv4Addr::new(10, 1, 2, 1);
    let network = "0123456789abcdef";

    guard.0.install().await.expect("installed");
    guard.0.verify().await.expect("the chain is there");
    guard
        .0
        .add_network(network, gateway)
        .await
        .expect("entries added");
    // Adding what is there changes nothing and is no error.
    guard
        .0
        .add_network(network, gateway)
        .await
        .expect("entries added again");
    let allowed = host_nft(&["list", "set", "inet", &table, "allowed"]);
    for entry in [
        "\"br-0123456789ab\" . 10.1.2.1 . tcp . 3128",
        "\"br-0123456789ab\" . 10.1.2.1 . tcp . 9418",
        "\"br-0123456789ab\" . 10.1.2.1 . udp . 53",
    ] {
        assert!(allowed.contains(entry), "{entry} missing: {allowed}");
    }
    assert!(!allowed.contains("tcp . 53"), "{allowed}");
    let boxnets = host_nft(&["list", "set", "inet", &table, "boxnets"]);
    assert!(boxnets.contains("\"br-0123456789ab\""), "{boxnets}");

    guard.0.remove_network(network, gateway).await;
    let allowed = host_nft(&["list", "set", "inet", &table, "allowed"]);
    assert!(!allowed.contains("br-0123456789ab"), "{allowed}");
    let boxnets = host_nft(&["list", "set", "inet", &table, "boxnets"]);
    assert!(!boxnets.contains("br-0123456789ab"), "{boxnets}");

    guard.0.uninstall().await;
    let err = guard.0.verify().await.expect_err("the table is gone");
    assert!(err.to_string().contains("is not in place"), "{err}");
    assert!(err.to_string().contains(&table), "{err}");
}

#[tokio::test]
async fn two_instances_never_share_the_hosts_log_group() {
    // Two paddocks whose names spread to the same first group: the second
    // moves on to the next free one instead of failing or sharing.
    let first =
        paddock_egress::host_guard::host_log_group(&format!("test-{}-log", std::process::id()));
    let (_one, group_one) = NflogSocket::open_on_host(first, 64).await.expect("bound");
    let (_two, group_two) = NflogSocket::open_on_host(first, 64).await.expect("bound");
    assert_eq!(group_one, first);
    assert_ne!(
        group_one, group_two,
        "a group bound by another socket is not reused"
    );
    assert!(group_two > group_one);
}
