//! The Docker engine as the tests look at it: `docker` itself, what it
//! says of a container, and the sweep that removes an instance's objects.

use std::process::Command;

/// `docker inspect -f format container`, which must succeed.
pub fn inspect(container: &str, format: &str) -> String {
    let out = docker(&["inspect", "-f", format, container]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs")
}

pub(crate) fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

/// The name of the one network a container is attached to.
pub fn network_of(container: &str) -> String {
    let out = docker(&[
        "inspect",
        "-f",
        "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}",
        container,
    ]);
    let names = lines(&out.stdout).join(" ");
    let names: Vec<&str> = names.split_whitespace().collect();
    assert_eq!(
        names.len(),
        1,
        "{container} is on exactly one network: {names:?}"
    );
    names[0].to_owned()
}

/// Removes every Docker object of one instance, and its host-side fence
/// table (left behind when the paddock was killed).
pub fn sweep(instance: &str) {
    let _ = Command::new("nft")
        .args([
            "delete",
            "table",
            "inet",
            &paddock_egress::host_guard::table_name(instance),
        ])
        .output();
    let filter = format!("label=paddock.instance={instance}");
    let ids = docker(&["ps", "-aq", "--filter", &filter]);
    for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
        docker(&["rm", "-f", "-v", id]);
    }
    let nets = docker(&["network", "ls", "-q", "--filter", &filter]);
    for id in String::from_utf8_lossy(&nets.stdout).split_whitespace() {
        docker(&["network", "rm", id]);
    }
}
