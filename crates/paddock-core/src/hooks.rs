//! `box.create` / `box.destroy` hooks: external commands speaking one JSON
//! document each way. A hook's opaque `state` from create is kept with the
//! box and handed back to it on destroy, so whatever it set up can be undone.

use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use paddock_docker::FileEntry;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::CoreError;
use crate::config::HookConfig;

const MAX_RESPONSE: usize = 16 * 1024 * 1024;
const MAX_FILES_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Serialize)]
pub(crate) struct HookBox<'a> {
    pub image: &'a str,
    pub box_id: &'a str,
    pub description: &'a str,
    pub project: &'a str,
}

#[derive(Debug, Serialize)]
struct HookRequest<'a> {
    event: &'a str,
    #[serde(rename = "box")]
    subject: &'a HookBox<'a>,
    state: &'a Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HookResponse {
    #[serde(default)]
    files: Vec<HookFile>,
    #[serde(default)]
    state: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HookFile {
    path: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    content_base64: Option<String>,
    #[serde(default)]
    mode: Option<u32>,
}

pub(crate) struct HookOutcome {
    pub files: Vec<FileEntry>,
    pub state: Value,
}

fn failure(hook: &HookConfig, message: impl Into<String>) -> CoreError {
    CoreError::Hook {
        hook: hook.name.clone(),
        message: message.into(),
    }
}

/// Runs one hook for one event and parses its answer.
pub(crate) async fn run(
    hook: &HookConfig,
    event: &str,
    subject: &HookBox<'_>,
    state: &Value,
) -> Result<HookOutcome, CoreError> {
    let request = serde_json::to_vec(&HookRequest {
        event,
        subject,
        state,
    })
    .map_err(|e| failure(hook, e.to_string()))?;
    let mut command = tokio::process::Command::new(&hook.command[0]);
    command
        .args(&hook.command[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = paddock_children::global()
        .spawn("hook", format!("{} ({event})", hook.name), command)
        .map_err(|e| failure(hook, e.to_string()))?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let mut stderr = child.stderr.take().expect("stderr was piped");
    let talk = async {
        // A hook that exits without reading its stdin is not an error by
        // itself; its exit status and answer decide.
        let _ = stdin.write_all(&request).await;
        drop(stdin);
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut limited_out = (&mut stdout).take(MAX_RESPONSE as u64 + 1);
        let mut limited_err = (&mut stderr).take(64 * 1024);
        let (r1, r2) = tokio::join!(
            limited_out.read_to_end(&mut out),
            limited_err.read_to_end(&mut err)
        );
        r1.and(r2)?;
        let status = child.wait().await.map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>((status, out, err))
    };
    let (status, out, err) = tokio::time::timeout(Duration::from_secs(hook.timeout_secs), talk)
        .await
        .map_err(|_| failure(hook, format!("no answer within {} s", hook.timeout_secs)))?
        .map_err(|e| failure(hook, e.to_string()))?;
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let tail: String = err
            .trim()
            .chars()
            .rev()
            .take(512)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(failure(hook, format!("exited with {status}: {tail}")));
    }
    parse_answer(hook, &out)
}

/// A hook's answer (its stdout, once it exited with success): the files
/// to put in the box and the state to keep, checked.
pub(crate) fn parse_answer(hook: &HookConfig, out: &[u8]) -> Result<HookOutcome, CoreError> {
    if out.len() > MAX_RESPONSE {
        return Err(failure(hook, "answer is larger than 16 MiB"));
    }
    let response: HookResponse = if out.iter().all(u8::is_ascii_whitespace) {
        HookResponse::default()
    } else {
        serde_json::from_slice(out)
            .map_err(|e| failure(hook, format!("answer is not valid JSON: {e}")))?
    };
    let files = response
        .files
        .into_iter()
        .map(|f| file_entry(hook, f))
        .collect::<Result<Vec<_>, _>>()?;
    if files.iter().map(|f| f.content.len()).sum::<usize>() > MAX_FILES_BYTES {
        return Err(failure(hook, "files add up to more than 8 MiB"));
    }
    Ok(HookOutcome {
        files,
        state: response.state,
    })
}

fn file_entry(hook: &HookConfig, f: HookFile) -> Result<FileEntry, CoreError> {
    let path_ok = f.path.starts_with('/')
        && f.path.len() > 1
        && !f.path.ends_with('/')
        && !f.path.split('/').any(|part| part == ".." || part == ".")
        && !f.path.contains('\0');
    if !path_ok {
        return Err(failure(
            hook,
            format!("file path {:?} is not a clean absolute path", f.path),
        ));
    }
    let content = match (f.content, f.content_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| failure(hook, format!("{}: content_base64: {e}", f.path)))?,
        _ => {
            return Err(failure(
                hook,
                format!("{}: give exactly one of content and content_base64", f.path),
            ));
        }
    };
    let mode = f.mode.unwrap_or(0o644);
    if mode > 0o7777 {
        return Err(failure(
            hook,
            format!("{}: mode {mode:o} is not a file mode", f.path),
        ));
    }
    Ok(FileEntry {
        path: f.path,
        content,
        mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(script: &str) -> HookConfig {
        HookConfig {
            name: "t".into(),
            command: vec!["/bin/sh".into(), "-c".into(), script.into()],
            events: vec![],
            timeout_secs: 5,
        }
    }

    const SUBJECT: HookBox<'static> = HookBox {
        image: "i",
        box_id: "b",
        description: "",
        project: "p",
    };

    #[tokio::test]
    async fn files_and_state_come_back() {
        let h = hook(
            r#"cat >/dev/null; echo '{"files":[{"path":"/etc/x","content":"hi","mode":384},{"path":"/y","content_base64":"AAE="}],"state":{"k":1}}'"#,
        );
        let out = run(&h, "box.create", &SUBJECT, &Value::Null).await.unwrap();
        assert_eq!(out.files.len(), 2);
        assert_eq!(out.files[0].mode, 0o600);
        assert_eq!(out.files[1].content, vec![0, 1]);
        assert_eq!(out.state, serde_json::json!({"k": 1}));
    }

    #[tokio::test]
    async fn request_carries_event_box_and_state() {
        let h = hook(r#"req=$(cat); printf '{"state":%s}' "$req""#);
        let out = run(&h, "box.destroy", &SUBJECT, &serde_json::json!({"s": 2}))
            .await
            .unwrap();
        assert_eq!(out.state["event"], "box.destroy");
        assert_eq!(out.state["box"]["project"], "p");
        assert_eq!(out.state["state"]["s"], 2);
    }

    #[tokio::test]
    async fn bad_answers_are_typed_failures() {
        for script in [
            "exit 3",
            "echo not-json",
            r#"echo '{"files":[{"path":"../etc/x","content":"a"}]}'"#,
            r#"echo '{"files":[{"path":"/x","content":"a","content_base64":"YQ=="}]}'"#,
            "sleep 30",
        ] {
            let mut h = hook(script);
            h.timeout_secs = 1;
            let err = run(&h, "box.create", &SUBJECT, &Value::Null).await;
            assert!(matches!(err, Err(CoreError::Hook { .. })), "{script}");
        }
    }
}
