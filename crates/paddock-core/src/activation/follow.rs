//! Following one login command from its start to its end: finding its
//! prompt, then recording how it ended on the box.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use paddock_docker::{Chunk, OutputStream};
use paddock_secret::scrub;
use paddock_store::{BoxState, Store};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::prompt::{LoginPrompt, MAX_CAPTURE, PromptFinder, plain_text};
use super::{LiveLogin, SubmitOutcome};
use crate::config::LoginShape;
use crate::engine::BoxEngine;
use crate::model::now_ms;

/// The longest failure message kept from the command's last words.
const MAX_MESSAGE: usize = 1024;

/// What the follower of one login works with.
pub(super) struct Followed {
    pub store: Arc<Store>,
    pub engine: Arc<dyn BoxEngine>,
    pub logins: Arc<Mutex<HashMap<String, LiveLogin>>>,
    pub extensions: Vec<Arc<dyn crate::BoxExtension>>,
    pub box_id: String,
    pub exec_id: String,
    pub shape: LoginShape,
    pub url_timeout: Duration,
}

/// What the follower tells the rest of the service.
pub(super) struct Channels {
    pub prompt: watch::Sender<LoginPrompt>,
    pub outcome: watch::Sender<Option<SubmitOutcome>>,
    /// The pasted code, once sent: scrubbed from what the command prints.
    pub code: Arc<Mutex<Option<String>>>,
}

/// How the search for the prompt ended.
enum Search {
    Shown(LoginPrompt),
    /// The output ended first; what it said.
    Ended(String),
    /// Nothing matched within the time allowed, or in all it printed.
    NotShown,
}

pub(super) async fn follow_login(
    followed: Followed,
    mut output: OutputStream,
    mut finder: PromptFinder,
    channels: Channels,
) {
    let search = tokio::time::timeout(followed.url_timeout, find_prompt(&mut output, &mut finder))
        .await
        .unwrap_or(Search::NotShown);
    let result = match search {
        Search::Shown(prompt) => {
            let secrets = prompt_secrets(&prompt);
            let _ = channels.prompt.send(prompt);
            let tail = read_to_end(&mut output).await;
            let exit = exit_code(followed.engine.as_ref(), &followed.exec_id).await;
            let code = channels.code.lock().clone();
            let code_sent = code.is_some();
            let mut secrets = secrets;
            secrets.extend(code);
            ended(followed.shape, code_sent, exit, &tail, &secrets)
        }
        Search::Ended(said) => {
            let exit = exit_code(followed.engine.as_ref(), &followed.exec_id).await;
            let status = exit.map_or("was cut off".to_owned(), |c| format!("exited with {c}"));
            SubmitOutcome::Failed(with_last_words(
                format!("the login command {status} before showing a sign-in URL"),
                &said,
                &[],
            ))
        }
        Search::NotShown => SubmitOutcome::Failed(format!(
            "the login command showed no sign-in URL within {} s",
            followed.url_timeout.as_secs()
        )),
    };
    record(&followed, &channels, result);
}

async fn find_prompt(output: &mut OutputStream, finder: &mut PromptFinder) -> Search {
    let mut said = Vec::new();
    while let Some(chunk) = output.next().await {
        let bytes = match chunk {
            Ok(Chunk::Stdout(b) | Chunk::Stderr(b)) => b,
            Err(_) => break,
        };
        said.extend_from_slice(&bytes);
        if let Some(prompt) = finder.feed(&bytes) {
            return Search::Shown(prompt);
        }
        if finder.overflowed() {
            return Search::NotShown;
        }
    }
    Search::Ended(String::from_utf8_lossy(&said).into_owned())
}

/// What the command prints until it ends, its last `MAX_CAPTURE / 2`
/// bytes or more kept.
async fn read_to_end(output: &mut OutputStream) -> String {
    let mut tail = Vec::new();
    while let Some(chunk) = output.next().await {
        match chunk {
            Ok(Chunk::Stdout(b) | Chunk::Stderr(b)) => {
                tail.extend_from_slice(&b);
                if tail.len() > MAX_CAPTURE {
                    tail.drain(..tail.len() - MAX_CAPTURE / 2);
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}

/// What the page shows and nothing else may.
fn prompt_secrets(prompt: &LoginPrompt) -> Vec<String> {
    match prompt {
        LoginPrompt::Starting => Vec::new(),
        LoginPrompt::PasteCode { authorize_url } => vec![authorize_url.clone()],
        LoginPrompt::DeviceCode {
            verification_url,
            user_code,
        } => vec![verification_url.clone(), user_code.clone()],
    }
}

/// How a login that showed its prompt ended.
fn ended(
    shape: LoginShape,
    code_sent: bool,
    exit: Option<i64>,
    tail: &str,
    secrets: &[String],
) -> SubmitOutcome {
    match exit {
        Some(0) if shape == LoginShape::DeviceCode || code_sent => SubmitOutcome::Ready,
        Some(0) => SubmitOutcome::Failed("the login command exited before a code was sent".into()),
        other => {
            let status = other.map_or("was cut off".to_owned(), |c| format!("exited with {c}"));
            SubmitOutcome::Failed(with_last_words(
                format!("the login command {status}"),
                tail,
                secrets,
            ))
        }
    }
}

/// `message`, then the command's last line of output (control sequences
/// out, every secret scrubbed, cut to `MAX_MESSAGE`).
fn with_last_words(message: String, said: &str, secrets: &[String]) -> String {
    let plain = plain_text(said);
    let mut last = plain
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        last = scrub(&last, secret);
    }
    let cut = (0..=MAX_MESSAGE.min(last.len()))
        .rev()
        .find(|i| last.is_char_boundary(*i))
        .unwrap_or(0);
    last.truncate(cut);
    if last.is_empty() {
        message
    } else {
        format!("{message}: {last}")
    }
}

/// Puts the outcome on the box, tells the extensions the login is over,
/// and forgets the login (only this one: a relaunched login may have
/// replaced it).
fn record(followed: &Followed, channels: &Channels, result: SubmitOutcome) {
    for ext in &followed.extensions {
        ext.login_ended(&followed.box_id);
    }
    let box_id = &followed.box_id;
    let (to, error) = match &result {
        SubmitOutcome::Ready => (BoxState::Ready, None),
        SubmitOutcome::Failed(m) => (BoxState::Failed, Some(m.as_str())),
    };
    match followed
        .store
        .transition_box(box_id, BoxState::PendingActivation, to, error, now_ms())
    {
        Ok(true) => {
            tracing::info!(box_id = %box_id, ready = matches!(result, SubmitOutcome::Ready), "activation finished")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(box_id = %box_id, error = %e, "could not record the activation result")
        }
    }
    {
        let mut logins = followed.logins.lock();
        if logins
            .get(box_id)
            .is_some_and(|l| Arc::ptr_eq(&l.code, &channels.code))
        {
            logins.remove(box_id);
        }
    }
    let _ = channels.outcome.send(Some(result));
}

/// The output stream ends when the process does, but the engine may need a
/// moment to publish the exit code.
async fn exit_code(engine: &dyn BoxEngine, exec_id: &str) -> Option<i64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match engine.exec_exit_code(exec_id).await {
            Ok(Some(code)) => return Some(code),
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_words_are_plain_scrubbed_and_cut() {
        let said = "Paste code here >\n\x1b[31mCouldn't log in: bad code s3cret\x1b[0m\r\n\r\n";
        assert_eq!(
            with_last_words(
                "the login command exited with 1".into(),
                said,
                &["s3cret".into()]
            ),
            "the login command exited with 1: Couldn't log in: bad code [redacted]"
        );
        let long = "é".repeat(2000);
        let message = with_last_words("m".into(), &long, &[]);
        assert!(message.len() <= MAX_MESSAGE + 3, "{}", message.len());
        assert_eq!(with_last_words("m".into(), "\n\n", &[]), "m");
    }

    #[test]
    fn a_device_login_is_done_when_it_exits_cleanly_a_paste_login_only_after_a_code() {
        let url = vec!["https://x.test".to_owned()];
        assert_eq!(
            ended(LoginShape::DeviceCode, false, Some(0), "", &url),
            SubmitOutcome::Ready
        );
        assert!(matches!(
            ended(LoginShape::PasteCode, false, Some(0), "", &url),
            SubmitOutcome::Failed(_)
        ));
        assert_eq!(
            ended(LoginShape::PasteCode, true, Some(0), "", &url),
            SubmitOutcome::Ready
        );
        assert_eq!(
            ended(LoginShape::DeviceCode, false, Some(2), "expired\n", &url),
            SubmitOutcome::Failed("the login command exited with 2: expired".into())
        );
    }
}
