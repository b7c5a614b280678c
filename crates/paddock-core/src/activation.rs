//! Activation: the agent CLI's OAuth login, finished by a person.
//!
//! The login command runs in the box with stdin open. Its authorize URL is
//! shown only on the activation page, and the code the person pastes goes
//! page → here → the command's stdin. Neither is logged, stored, or returned
//! to MCP or REST; failure messages are scrubbed of the code.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use paddock_docker::{Chunk, InteractiveExec};

use crate::engine::BoxEngine;
use paddock_store::{BoxState, Store};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::config::ImageProfile;
use crate::model::now_ms;
use crate::{BoxService, CoreError, Result};
use paddock_secret::{hash as hash_token, mint as new_token, scrub};

const MAX_CODE: usize = 4096;
/// Output kept while looking for the URL, and as the failure message.
const MAX_CAPTURE: usize = 64 * 1024;
const MAX_MESSAGE: usize = 1024;

/// What the activation page shows for a live link.
#[derive(Debug, Clone)]
pub struct ActivationPage {
    pub box_id: String,
    pub project: String,
    pub authorize_url: String,
}

/// What an activation link leads to now: the form while it is unused;
/// once its code was sent, how the login is going (the person who sent it
/// may need to see what the login waits for).
#[derive(Debug, Clone)]
pub enum ActivationStatus {
    Open(ActivationPage),
    /// The code went in; the login runs.
    Waiting {
        box_id: String,
        project: String,
    },
    Ready {
        box_id: String,
        project: String,
    },
    Failed {
        box_id: String,
        project: String,
        message: String,
    },
}

impl ActivationStatus {
    pub fn box_id(&self) -> &str {
        match self {
            Self::Open(p) => &p.box_id,
            Self::Waiting { box_id, .. }
            | Self::Ready { box_id, .. }
            | Self::Failed { box_id, .. } => box_id,
        }
    }

    pub fn project(&self) -> &str {
        match self {
            Self::Open(p) => &p.project,
            Self::Waiting { project, .. }
            | Self::Ready { project, .. }
            | Self::Failed { project, .. } => project,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    Ready,
    Failed(String),
}

type Input = Pin<Box<dyn AsyncWrite + Send>>;

struct LiveLogin {
    authorize_url: String,
    input: Option<Input>,
    /// Set before the code is written, so the watcher can scrub it from
    /// whatever the command prints.
    code: Arc<Mutex<Option<String>>>,
    outcome: watch::Receiver<Option<SubmitOutcome>>,
}

/// Login commands in flight, by box id. Lost on restart; a page visit then
/// starts the login again (see [`BoxService::activation_page`]).
#[derive(Default)]
pub(crate) struct Logins(Arc<Mutex<HashMap<String, LiveLogin>>>);

impl Logins {
    fn map(&self) -> parking_lot::MutexGuard<'_, HashMap<String, LiveLogin>> {
        self.0.lock()
    }

    pub(crate) fn forget(&self, box_id: &str) {
        self.map().remove(box_id);
    }
}

impl BoxService {
    /// Starts the login, waits for its URL and mints the activation link.
    /// The box moves from `creating` to `pending_activation`.
    pub(crate) async fn start_activation(
        &self,
        box_id: &str,
        container: &str,
        profile: &ImageProfile,
    ) -> Result<String> {
        let project = self
            .store
            .get_box(box_id)?
            .map(|r| r.project)
            .unwrap_or_default();
        self.launch_login(box_id, &project, container, profile)
            .await?;
        let token = new_token();
        let expires = now_ms() + (self.config.activation.ttl_secs as i64) * 1000;
        self.store
            .put_activation(box_id, &hash_token(&token), expires)?;
        self.store.transition_box(
            box_id,
            BoxState::Creating,
            BoxState::PendingActivation,
            None,
            now_ms(),
        )?;
        Ok(self.activation_url(&token))
    }

    fn activation_url(&self, token: &str) -> String {
        format!(
            "{}/activate/{token}",
            self.config.public_url.trim_end_matches('/')
        )
    }

    /// A fresh activation link for a box still waiting for its login (the
    /// first one is shown once, when the box is made, and stored only
    /// hashed). The earlier link stops working.
    pub fn renew_activation_link(&self, box_id: &str) -> Result<String> {
        let row = self
            .store
            .get_box(box_id)?
            .ok_or_else(|| CoreError::NotFound(box_id.to_owned()))?;
        if row.state != BoxState::PendingActivation {
            return Err(CoreError::Conflict(format!(
                "box {box_id} is not waiting for activation"
            )));
        }
        let token = new_token();
        let expires = now_ms() + (self.config.activation.ttl_secs as i64) * 1000;
        self.store
            .put_activation(box_id, &hash_token(&token), expires)?;
        Ok(self.activation_url(&token))
    }

    async fn launch_login(
        &self,
        box_id: &str,
        project: &str,
        container: &str,
        profile: &ImageProfile,
    ) -> Result<()> {
        let pattern = regex::Regex::new(&profile.url_pattern)
            .map_err(|e| CoreError::Activation(format!("bad url_pattern: {e}")))?;
        // What the login needs is reachable before it runs: some logins
        // reach their provider before printing anything.
        for ext in &self.extensions {
            ext.login_started(crate::LoginStarted {
                box_id,
                project,
                image: &profile.image,
                destinations: &profile.login_destinations,
            });
        }
        let launched = self.run_login(box_id, container, profile, &pattern).await;
        if launched.is_err() {
            for ext in &self.extensions {
                ext.login_ended(box_id);
            }
        }
        launched
    }

    async fn run_login(
        &self,
        box_id: &str,
        container: &str,
        profile: &ImageProfile,
        pattern: &regex::Regex,
    ) -> Result<()> {
        let exec = self
            .engine
            .exec_interactive(container, profile.login_command.clone(), Vec::new())
            .await?;
        let InteractiveExec {
            exec_id,
            mut output,
            input,
        } = exec;
        let wait = Duration::from_secs(self.config.activation.url_timeout_secs);
        let mut seen = String::new();
        let found = tokio::time::timeout(wait, async {
            while let Some(chunk) = output.next().await {
                let bytes = match chunk? {
                    Chunk::Stdout(b) | Chunk::Stderr(b) => b,
                };
                seen.push_str(&String::from_utf8_lossy(&bytes));
                if let Some(m) = pattern.find(&seen) {
                    return Ok(Some(m.as_str().to_owned()));
                }
                if seen.len() > MAX_CAPTURE {
                    return Ok(None);
                }
            }
            Ok::<_, CoreError>(None)
        })
        .await;
        let authorize_url = match found {
            Ok(Ok(Some(url))) => url,
            Ok(Ok(None)) => {
                return Err(CoreError::Activation(
                    "the login command ended without printing an authorize URL".into(),
                ));
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(CoreError::Activation(format!(
                    "the login command printed no authorize URL within {} s",
                    wait.as_secs()
                )));
            }
        };

        let code = Arc::new(Mutex::new(None));
        let (tx, rx) = watch::channel(None);
        self.logins.map().insert(
            box_id.to_owned(),
            LiveLogin {
                authorize_url,
                input: Some(input),
                code: code.clone(),
                outcome: rx,
            },
        );
        tokio::spawn(watch_login(
            Watched {
                store: self.store.clone(),
                engine: self.engine.clone(),
                logins: self.logins.0.clone(),
                extensions: self.extensions.clone(),
                box_id: box_id.to_owned(),
                exec_id,
            },
            output,
            code,
            tx,
        ));
        Ok(())
    }

    /// Resolves a link to what its page shows. After a restart the login
    /// command is gone, so it is started again and shows a fresh URL.
    pub async fn activation_page(&self, token: &str) -> Result<ActivationPage> {
        let (box_id, _) = self.live_activation(token)?;
        let _guard = self.lock_box(&box_id).await;
        let row = self
            .store
            .get_box(&box_id)?
            .filter(|r| r.state == BoxState::PendingActivation)
            .ok_or(CoreError::ActivationInvalid)?;
        let existing = self
            .logins
            .map()
            .get(&box_id)
            .map(|l| l.authorize_url.clone());
        let authorize_url = match existing {
            Some(url) => url,
            None => {
                let profile = self
                    .config
                    .profile_for(&row.image)
                    .cloned()
                    .ok_or_else(|| {
                        CoreError::Activation("the image no longer has a login profile".into())
                    })?;
                let container = row
                    .container_id
                    .clone()
                    .ok_or(CoreError::ActivationInvalid)?;
                self.launch_login(&box_id, &row.project, &container, &profile)
                    .await?;
                self.logins
                    .map()
                    .get(&box_id)
                    .map(|l| l.authorize_url.clone())
                    .ok_or(CoreError::ActivationInvalid)?
            }
        };
        Ok(ActivationPage {
            box_id,
            project: row.project,
            authorize_url,
        })
    }

    /// Where a link stands: its page while unused, else how its login is
    /// going. Unknown and expired links are invalid either way.
    pub async fn activation_status(&self, token: &str) -> Result<ActivationStatus> {
        if token.is_empty() || token.len() > 128 {
            return Err(CoreError::ActivationInvalid);
        }
        let found = self
            .store
            .find_activation(&hash_token(token))?
            .filter(|a| a.expires_at_ms > now_ms())
            .ok_or(CoreError::ActivationInvalid)?;
        if !found.used {
            return Ok(ActivationStatus::Open(self.activation_page(token).await?));
        }
        let row = self
            .store
            .get_box(&found.box_id)?
            .ok_or(CoreError::ActivationInvalid)?;
        let (box_id, project) = (row.id, row.project);
        Ok(match row.state {
            // Stopped only after its login finished.
            BoxState::Ready | BoxState::Stopped => ActivationStatus::Ready { box_id, project },
            BoxState::Failed | BoxState::Exited => ActivationStatus::Failed {
                box_id,
                project,
                message: row.error.unwrap_or_default(),
            },
            BoxState::PendingActivation => ActivationStatus::Waiting { box_id, project },
            BoxState::Creating | BoxState::Destroying => return Err(CoreError::ActivationInvalid),
        })
    }

    /// The link's box, if the link is known, unused and unexpired.
    fn live_activation(&self, token: &str) -> Result<(String, String)> {
        if token.is_empty() || token.len() > 128 {
            return Err(CoreError::ActivationInvalid);
        }
        let hash = hash_token(token);
        let row = self
            .store
            .find_activation(&hash)?
            .ok_or(CoreError::ActivationInvalid)?;
        if row.used || row.expires_at_ms <= now_ms() {
            return Err(CoreError::ActivationInvalid);
        }
        Ok((row.box_id, hash))
    }

    /// Sends the person's code to the login command and waits for its
    /// verdict. The link is spent by the first submit that reaches the box.
    pub async fn submit_code(&self, token: &str, code: &str) -> Result<SubmitOutcome> {
        let code = code.trim();
        if code.is_empty() || code.len() > MAX_CODE || code.contains(['\n', '\r', '\0']) {
            return Err(CoreError::Invalid(format!(
                "the code must be one line of 1 to {MAX_CODE} bytes"
            )));
        }
        let (box_id, hash) = self.live_activation(token)?;
        let (input, slot, mut outcome) = {
            let mut logins = self.logins.map();
            let live = logins.get_mut(&box_id).ok_or_else(|| {
                CoreError::Activation("the login is not running; reload the activation page".into())
            })?;
            let Some(input) = live.input.take() else {
                return Err(CoreError::ActivationInvalid);
            };
            (input, live.code.clone(), live.outcome.clone())
        };
        if !self.store.consume_activation(&hash)? {
            return Err(CoreError::ActivationInvalid);
        }
        *slot.lock() = Some(code.to_owned());
        let mut input = input;
        let line = format!("{code}\n");
        if let Err(e) = async {
            input.write_all(line.as_bytes()).await?;
            input.flush().await
        }
        .await
        {
            return Err(CoreError::Activation(format!(
                "could not reach the login command: {}",
                scrub(&e.to_string(), code)
            )));
        }
        let wait = Duration::from_secs(self.config.activation.code_timeout_secs);
        let result = tokio::time::timeout(wait, outcome.wait_for(Option::is_some)).await;
        drop(input);
        match result {
            Ok(Ok(done)) => Ok(done
                .clone()
                .unwrap_or(SubmitOutcome::Failed("unknown".into()))),
            Ok(Err(_)) => Ok(SubmitOutcome::Failed("the login was interrupted".into())),
            Err(_) => {
                let message = format!(
                    "the login command did not finish within {} s",
                    wait.as_secs()
                );
                self.store.transition_box(
                    &box_id,
                    BoxState::PendingActivation,
                    BoxState::Failed,
                    Some(&message),
                    now_ms(),
                )?;
                Ok(SubmitOutcome::Failed(message))
            }
        }
    }
}

/// What the watcher of one login works with.
struct Watched {
    store: Arc<Store>,
    engine: Arc<dyn BoxEngine>,
    logins: Arc<Mutex<HashMap<String, LiveLogin>>>,
    extensions: Vec<Arc<dyn crate::BoxExtension>>,
    box_id: String,
    exec_id: String,
}

/// Follows a login command to its end and records how it went.
async fn watch_login(
    watched: Watched,
    mut output: paddock_docker::OutputStream,
    code: Arc<Mutex<Option<String>>>,
    outcome: watch::Sender<Option<SubmitOutcome>>,
) {
    let Watched {
        store,
        engine,
        logins,
        extensions,
        box_id,
        exec_id,
    } = watched;
    let mut tail = String::new();
    while let Some(chunk) = output.next().await {
        match chunk {
            Ok(Chunk::Stdout(b)) | Ok(Chunk::Stderr(b)) => {
                tail.push_str(&String::from_utf8_lossy(&b));
                if tail.len() > MAX_CAPTURE {
                    let cut = tail.len() - MAX_CAPTURE / 2;
                    let cut = (cut..tail.len())
                        .find(|i| tail.is_char_boundary(*i))
                        .unwrap_or(0);
                    tail.drain(..cut);
                }
            }
            Err(_) => break,
        }
    }
    let exit = exit_code(engine.as_ref(), &exec_id).await;
    for ext in &extensions {
        ext.login_ended(&box_id);
    }
    let secret = code.lock().clone().unwrap_or_default();
    let result = match exit {
        Some(0) if !secret.is_empty() => SubmitOutcome::Ready,
        Some(0) => SubmitOutcome::Failed("the login command exited before a code was sent".into()),
        other => {
            let last = tail.trim().lines().last().unwrap_or("").to_owned();
            let mut message = scrub(&last, &secret);
            message.truncate(
                (0..=MAX_MESSAGE.min(message.len()))
                    .rev()
                    .find(|i| message.is_char_boundary(*i))
                    .unwrap_or(0),
            );
            let status = other.map_or("was cut off".to_owned(), |c| format!("exited with {c}"));
            SubmitOutcome::Failed(if message.is_empty() {
                format!("the login command {status}")
            } else {
                format!("the login command {status}: {message}")
            })
        }
    };
    let now = now_ms();
    let recorded = match &result {
        SubmitOutcome::Ready => store.transition_box(
            &box_id,
            BoxState::PendingActivation,
            BoxState::Ready,
            None,
            now,
        ),
        SubmitOutcome::Failed(m) => store.transition_box(
            &box_id,
            BoxState::PendingActivation,
            BoxState::Failed,
            Some(m),
            now,
        ),
    };
    match recorded {
        Ok(true) => {
            tracing::info!(box_id = %box_id, ready = matches!(result, SubmitOutcome::Ready), "activation finished")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(box_id = %box_id, error = %e, "could not record the activation result")
        }
    }
    {
        // Only our own entry: a relaunched login may have replaced it.
        let mut logins = logins.lock();
        if logins
            .get(&box_id)
            .is_some_and(|l| Arc::ptr_eq(&l.code, &code))
        {
            logins.remove(&box_id);
        }
    }
    let _ = outcome.send(Some(result));
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
