//! The Python clients we did not write (the MCP SDK, varlink, Selenium …),
//! from the venv `scripts/test` makes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::fixtures;

/// The Python that has the external clients (`mcp`, …) installed:
/// `PADDOCK_TEST_PYTHON`, else the workspace's `.venv` made by `scripts/test`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PADDOCK_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python3");
    assert!(
        venv.exists(),
        "no Python with the test clients: run scripts/test (it creates .venv) or set PADDOCK_TEST_PYTHON"
    );
    venv
}

/// Runs a fixture script with JSON on stdin and parses its JSON stdout.
pub fn run_python(script: &str, input: &Value) -> Value {
    use std::io::Write;
    let mut child = Command::new(python())
        .arg(fixtures().join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
