//! Files into and out of a real box: `paddock box cp` both ways, and the
//! archives REST refuses — links and paths leading out, oversized uploads,
//! bad paths — each leaving nothing behind in the box.

use serde_json::{Value, json};

use crate::common::egress_site::exec;
use crate::common::{Options, Paddock};

fn options() -> Options {
    Options {
        login_profile: false,
        env: vec![("PADDOCK_BOXES__COPY_MAX_MIB".into(), "1".into())],
        ..Options::default()
    }
}

fn cli_ok(p: &Paddock, args: &[&str]) -> String {
    let out = p.cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn in_box(p: &Paddock, command: &str) -> String {
    in_box_named(p, "files", command).await
}

async fn in_box_named(p: &Paddock, box_id: &str, command: &str) -> String {
    let out: Value = exec(p, box_id, command).await;
    assert_eq!(out["exit_code"], 0, "{command}: {out}");
    out["stdout"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn cp_both_ways_as_docker_cp_does() {
    let p = Paddock::start(options());
    let (status, body) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "proj", "box_id": "files"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let here = tempfile::tempdir().unwrap();
    let tree = here.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(tree.join("sub/b.txt"), "beta\n").unwrap();
    std::os::unix::fs::symlink("a.txt", tree.join("link")).unwrap();
    let tree_arg = tree.to_str().unwrap();

    // Into an existing directory: inside it, under its own name.
    cli_ok(&p, &["box", "cp", tree_arg, "files:/tmp"]);
    assert_eq!(
        in_box(
            &p,
            "cat /tmp/tree/a.txt /tmp/tree/sub/b.txt; readlink /tmp/tree/link"
        )
        .await,
        "alpha\nbeta\na.txt\n"
    );
    // To a name that does not exist yet: that name.
    let note = here.path().join("note.txt");
    std::fs::write(&note, "renamed\n").unwrap();
    cli_ok(
        &p,
        &[
            "box",
            "cp",
            note.to_str().unwrap(),
            "files:/tmp/renamed.txt",
        ],
    );
    assert_eq!(in_box(&p, "cat /tmp/renamed.txt").await, "renamed\n");
    // Onto that file again: replaced, as docker cp does.
    std::fs::write(&note, "replaced\n").unwrap();
    cli_ok(
        &p,
        &[
            "box",
            "cp",
            note.to_str().unwrap(),
            "files:/tmp/renamed.txt",
        ],
    );
    assert_eq!(in_box(&p, "cat /tmp/renamed.txt").await, "replaced\n");

    // Out, into a directory here, and as a new name.
    let out_dir = here.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    cli_ok(
        &p,
        &["box", "cp", "files:/tmp/tree", out_dir.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("tree/sub/b.txt")).unwrap(),
        "beta\n"
    );
    assert_eq!(
        std::fs::read_link(out_dir.join("tree/link")).unwrap(),
        std::path::Path::new("a.txt")
    );
    let copy = here.path().join("copy.txt");
    cli_ok(
        &p,
        &[
            "box",
            "cp",
            "files:/tmp/renamed.txt",
            copy.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "replaced\n");
    // `-`: the archive itself, as `docker cp` writes it.
    let out = p.cli(&["box", "cp", "files:/tmp/renamed.txt", "-"]);
    let mut archive = tar::Archive::new(out.stdout.as_slice());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["renamed.txt"]);

    // Nothing there: the server's words, exit code 1.
    let out = p.cli(&["box", "cp", "files:/nowhere", here.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such file or directory in the box"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tar archive with entries written raw into their headers, as a
/// hostile client would send them.
fn raw_archive(entries: &[(&str, tar::EntryType, &str, usize)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, target, size) in entries {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_size(*size as u64);
        if !target.is_empty() {
            header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        }
        header.set_cksum();
        builder
            .append(&header, vec![b'x'; *size].as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn archives_leading_out_or_too_large_are_refused_and_leave_nothing() {
    let p = Paddock::start(options());
    let (status, body) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "proj", "box_id": "refusals"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let put = |path: &str, archive: Vec<u8>| {
        let url = format!("{}/api/v1/boxes/refusals/files?path={path}", p.url);
        let http = p.http.clone();
        async move {
            let r = http.put(url).body(archive).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    use tar::EntryType as T;
    for (entries, says) in [
        (
            vec![
                ("ok.txt", T::Regular, "", 3),
                ("evil", T::Symlink, "/etc", 0),
            ],
            "outside",
        ),
        (
            vec![
                ("ok.txt", T::Regular, "", 3),
                ("d/up", T::Symlink, "../../..", 0),
            ],
            "outside",
        ),
        (
            vec![
                ("ok.txt", T::Regular, "", 3),
                ("../escape.txt", T::Regular, "", 3),
            ],
            "outside",
        ),
        (
            vec![("ok.txt", T::Regular, "", 3), ("dev", T::Char, "", 0)],
            "not a file",
        ),
    ] {
        let (status, err) = put("/tmp", raw_archive(&entries)).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (400, Some("invalid")),
            "{entries:?}: {err}"
        );
        assert!(
            err["error"]["message"].as_str().unwrap().contains(says),
            "{err}"
        );
    }
    // Past `copy_max_mib` (1 MiB here): refused before it is unpacked.
    let (status, err) = put(
        "/tmp",
        raw_archive(&[("big.bin", T::Regular, "", 1_100_000)]),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("too_large")),
        "{err}"
    );
    assert_eq!(
        in_box_named(&p, "refusals", "ls /tmp; ls / | grep -c escape || true").await,
        "0\n",
        "nothing of a refused archive reached the box"
    );

    // Bad paths and missing ones.
    let good = raw_archive(&[("ok.txt", T::Regular, "", 3)]);
    for (path, status, code) in [
        ("tmp", 400, "invalid"),
        ("/tmp/../etc", 400, "invalid"),
        ("/no/such/dir", 404, "path_not_found"),
    ] {
        let (got, err) = put(path, good.clone()).await;
        assert_eq!(
            (got, err["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {err}"
        );
    }
    let (status, err) = p.get("/api/v1/boxes/refusals/files?path=/nowhere").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("path_not_found"))
    );
    let (status, err) = p.get("/api/v1/boxes/refusals/files").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("invalid")),
        "{err}"
    );
    // A good one lands.
    let (status, done) = put("/tmp", good).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done, json!({"entries": 1, "file_bytes": 3}));
    assert_eq!(in_box_named(&p, "refusals", "cat /tmp/ok.txt").await, "xxx");
}
