//! Activation: the agent CLI's OAuth login, finished by a person.
//!
//! The login command runs in the box with stdin open, followed by a task
//! of its own (`follow`), so a box is handed over at once and its page
//! shows the login as it goes: starting (a device-code login asks its
//! provider for a code first, and that connection may be held for a
//! person), then what the person must do, then how it ended. Two shapes
//! (`[[profiles]] login`):
//!
//! - paste-a-code: the authorize URL is shown on the page, and the code
//!   the person pastes goes page → here → the command's stdin;
//! - device code: the verification URL and user code are shown; the
//!   person enters the code at the provider and the command, polling,
//!   sees it done.
//!
//! None of URL, user code or pasted code is logged, stored, or returned
//! to MCP or REST; failure messages are scrubbed of them.

mod follow;
mod prompt;

pub use prompt::{LoginPrompt, find_prompt};

use parking_lot::Mutex;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use paddock_docker::InteractiveExec;
use paddock_store::BoxState;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::config::{ImageProfile, LoginShape};
use crate::model::now_ms;
use crate::{BoxService, CoreError, Result};
use paddock_secret::{hash as hash_token, mint as new_token, scrub};

const MAX_CODE: usize = 4096;
/// How long a page visit waits for a starting login to show its prompt
/// (or end) before showing it as starting; the page then reloads itself.
const PROMPT_WAIT: Duration = Duration::from_secs(3);

/// What the activation page shows for a live link.
#[derive(Debug, Clone)]
pub struct ActivationPage {
    pub box_id: String,
    pub project: String,
    pub prompt: LoginPrompt,
}

/// What an activation link leads to now: the login's prompt while the
/// link is unused; once its code was sent (or a device-code login ended),
/// how the login went.
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
    shape: LoginShape,
    prompt: watch::Receiver<LoginPrompt>,
    input: Option<Input>,
    /// Set before the code is written, so the follower can scrub it from
    /// whatever the command prints.
    code: Arc<Mutex<Option<String>>>,
    outcome: watch::Receiver<Option<SubmitOutcome>>,
}

/// Login commands in flight, by box id. Lost on restart; a page visit then
/// starts the login again (see [`BoxService::activation_status`]).
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

/// A link found by its token: its box, and whether its code was sent.
struct Link {
    box_id: String,
    hash: String,
    used: bool,
}

impl BoxService {
    /// Mints the activation link and starts the login; the box moves from
    /// `creating` to `pending_activation` first, so however fast the login
    /// ends, its end is recorded against a box waiting for it.
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
        let token = new_token();
        let expires = now_ms() + (self.config().activation.ttl_secs as i64) * 1000;
        self.store
            .put_activation(box_id, &hash_token(&token), expires)?;
        self.store.transition_box(
            box_id,
            BoxState::Creating,
            BoxState::PendingActivation,
            None,
            now_ms(),
        )?;
        self.launch_login(box_id, &project, container, profile)
            .await?;
        Ok(self.activation_url(&token))
    }

    fn activation_url(&self, token: &str) -> String {
        format!(
            "{}/activate/{token}",
            self.config().public_url.trim_end_matches('/')
        )
    }

    /// A fresh activation link for a box still waiting for its login (the
    /// first one is shown once, when the box is made, and stored only
    /// hashed). The earlier link stops working.
    pub async fn renew_activation_link(&self, box_id: &str) -> Result<String> {
        if let Some(remote) = self.remote_box(box_id)? {
            return self.remote_renew_activation(&remote).await;
        }
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
        let expires = now_ms() + (self.config().activation.ttl_secs as i64) * 1000;
        self.store
            .put_activation(box_id, &hash_token(&token), expires)?;
        Ok(self.activation_url(&token))
    }

    /// Starts the login command and its follower. Returns once the command
    /// runs, not when it has printed anything.
    async fn launch_login(
        &self,
        box_id: &str,
        project: &str,
        container: &str,
        profile: &ImageProfile,
    ) -> Result<()> {
        let finder = prompt::PromptFinder::new(profile)?;
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
        let exec = match self
            .engine
            .exec_interactive(container, profile.login_command.clone(), Vec::new())
            .await
        {
            Ok(exec) => exec,
            Err(e) => {
                for ext in &self.extensions {
                    ext.login_ended(box_id);
                }
                return Err(e.into());
            }
        };
        let InteractiveExec {
            exec_id,
            output,
            input,
        } = exec;
        let code = Arc::new(Mutex::new(None));
        let (prompt_tx, prompt_rx) = watch::channel(LoginPrompt::Starting);
        let (outcome_tx, outcome_rx) = watch::channel(None);
        self.logins.map().insert(
            box_id.to_owned(),
            LiveLogin {
                shape: profile.login,
                prompt: prompt_rx,
                input: Some(input),
                code: code.clone(),
                outcome: outcome_rx,
            },
        );
        tokio::spawn(follow::follow_login(
            follow::Followed {
                store: self.store.clone(),
                engine: self.engine.clone(),
                logins: self.logins.0.clone(),
                extensions: self.extensions.clone(),
                box_id: box_id.to_owned(),
                exec_id,
                shape: profile.login,
                url_timeout: Duration::from_secs(self.config().activation.url_timeout_secs),
            },
            output,
            finder,
            follow::Channels {
                prompt: prompt_tx,
                outcome: outcome_tx,
                code,
            },
        ));
        Ok(())
    }

    /// Where a link stands. While unused and its box waits for the login,
    /// the login runs (started again after a restart) and the page shows
    /// its prompt; otherwise how the login went. Unknown and expired links
    /// are invalid either way.
    pub async fn activation_status(&self, token: &str) -> Result<ActivationStatus> {
        let link = self.find_link(token)?;
        if !link.used {
            self.settle_login(&link.box_id).await?;
        }
        let row = self
            .store
            .get_box(&link.box_id)?
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
            BoxState::PendingActivation if link.used => {
                ActivationStatus::Waiting { box_id, project }
            }
            BoxState::PendingActivation => {
                let prompt = self
                    .logins
                    .map()
                    .get(&box_id)
                    .map_or(LoginPrompt::Starting, |l| l.prompt.borrow().clone());
                ActivationStatus::Open(ActivationPage {
                    box_id,
                    project,
                    prompt,
                })
            }
            BoxState::Creating | BoxState::Destroying => return Err(CoreError::ActivationInvalid),
        })
    }

    /// Makes sure a box waiting for its login has one running (after a
    /// restart it has none), and gives a starting login a moment to show
    /// its prompt or end, so a page seldom has to show "starting".
    async fn settle_login(&self, box_id: &str) -> Result<()> {
        let watched = {
            let _guard = self.lock_box(box_id).await;
            let Some(row) = self
                .store
                .get_box(box_id)?
                .filter(|r| r.state == BoxState::PendingActivation)
            else {
                return Ok(());
            };
            let running = self.logins.map().contains_key(box_id);
            if !running {
                let profile = self
                    .config()
                    .profile_for(&row.image)
                    .cloned()
                    .ok_or_else(|| {
                        CoreError::Activation("the image no longer has a login profile".into())
                    })?;
                let container = row
                    .container_id
                    .clone()
                    .ok_or(CoreError::ActivationInvalid)?;
                self.launch_login(box_id, &row.project, &container, &profile)
                    .await?;
            }
            self.logins
                .map()
                .get(box_id)
                .map(|l| (l.prompt.clone(), l.outcome.clone()))
        };
        if let Some((mut prompt, mut outcome)) = watched {
            let _ = tokio::time::timeout(PROMPT_WAIT, async {
                tokio::select! {
                    _ = prompt.wait_for(|p| *p != LoginPrompt::Starting) => {}
                    _ = outcome.wait_for(Option::is_some) => {}
                }
            })
            .await;
        }
        Ok(())
    }

    /// The link `token` names, if it is known and unexpired.
    fn find_link(&self, token: &str) -> Result<Link> {
        if token.is_empty() || token.len() > 128 {
            return Err(CoreError::ActivationInvalid);
        }
        let hash = hash_token(token);
        let row = self
            .store
            .find_activation(&hash)?
            .filter(|a| a.expires_at_ms > now_ms())
            .ok_or(CoreError::ActivationInvalid)?;
        Ok(Link {
            box_id: row.box_id,
            hash,
            used: row.used,
        })
    }

    /// Sends the person's code to a paste-a-code login and waits for its
    /// verdict. The link is spent by the first submit that reaches the box.
    pub async fn submit_code(&self, token: &str, code: &str) -> Result<SubmitOutcome> {
        let code = code.trim();
        if code.is_empty() || code.len() > MAX_CODE || code.contains(['\n', '\r', '\0']) {
            return Err(CoreError::Invalid(format!(
                "the code must be one line of 1 to {MAX_CODE} bytes"
            )));
        }
        let link = self.find_link(token)?;
        if link.used {
            return Err(CoreError::ActivationInvalid);
        }
        let (box_id, hash) = (link.box_id, link.hash);
        let (input, slot, mut outcome) = {
            let mut logins = self.logins.map();
            let live = logins.get_mut(&box_id).ok_or_else(|| {
                CoreError::Activation("the login is not running; reload the activation page".into())
            })?;
            if live.shape == LoginShape::DeviceCode {
                return Err(CoreError::Invalid(
                    "this login takes no code here: enter the code shown on this page at the sign-in page".into(),
                ));
            }
            if *live.prompt.borrow() == LoginPrompt::Starting {
                return Err(CoreError::Activation(
                    "the login has not shown its sign-in link yet; reload the activation page"
                        .into(),
                ));
            }
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
        let wait = Duration::from_secs(self.config().activation.code_timeout_secs);
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
