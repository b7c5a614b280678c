//! Secrets a box uses without holding them. A project's secret is sealed
//! at rest under a key kept outside the database (`key.rs`); a box of the
//! project gets, in the variable the secret names, a placeholder derived
//! for that box alone; the egress gateway swaps the placeholder for the
//! value only where a binding (`binding.rs`) says, towards the hosts it
//! names. Nobody can read a value back: nothing here returns one except
//! to the gateway's injection ([`BoxSecret::value`]).

mod binding;
mod box_view;
mod key;
mod shared;

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use paddock_store::{SecretRow, Store, StoreError};
use serde::Serialize;
use zeroize::Zeroizing;

pub use binding::{Binding, BindingSpec, BoundHost, Inject, check_env, check_name, check_value};
pub use box_view::{BoxSecret, BoxSecrets, PLACEHOLDER_LEN, PLACEHOLDER_PREFIX, StreamScan};
pub use key::{CREDENTIAL_NAME, KEY_ENV, KEY_FILE, KeySource, VaultKey};
pub use shared::SharedKey;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{0}")]
    Invalid(String),
    #[error("project {project:?} has no secret {name:?}")]
    NotFound { project: String, name: String },
    #[error("secrets key: {0}")]
    Key(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A secret's value, in memory only while something may inject it; wiped
/// when dropped, never shown by `Debug`.
#[derive(Clone)]
pub struct SecretValue(Arc<Zeroizing<Vec<u8>>>);

impl SecretValue {
    /// The bytes to put on the wire, and nowhere else.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

/// What a listing shows of a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretInfo {
    pub project: String,
    pub name: String,
    pub env: Option<String>,
    pub bindings: Vec<BindingSpec>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub last_used_ms: Option<i64>,
}

/// A change to a secret. `None` keeps what is there; a new secret needs a
/// value.
#[derive(Debug, Default)]
pub struct SecretUpdate {
    pub value: Option<Zeroizing<Vec<u8>>>,
    pub env: Option<Option<String>>,
    pub bindings: Option<Vec<BindingSpec>>,
}

/// A project's secrets as the gateway uses them, opened once.
pub(crate) struct OpenSecret {
    pub name: String,
    pub env: Option<String>,
    pub bindings: Vec<Binding>,
    /// None: sealed under another key (the key was changed).
    pub value: Option<SecretValue>,
}

/// How often a secret's `last_used_ms` is written at most: a busy agent
/// makes many requests a second, and the decision log has each one.
const USE_WRITE_EVERY_MS: i64 = 10_000;
/// Box views kept before the cache starts again.
const MAX_CACHED_BOXES: usize = 4096;

pub struct Vault {
    store: Arc<Store>,
    key: VaultKey,
    placeholder_key: Zeroizing<[u8; 32]>,
    projects: Mutex<HashMap<String, Arc<Vec<Arc<OpenSecret>>>>>,
    boxes: Mutex<HashMap<String, (u64, Arc<BoxSecrets>)>>,
    /// Bumped by every change, so a cached box view is known stale.
    generation: AtomicU64,
    /// Secrets removed since start: their placeholders are refused with a
    /// clear answer rather than sent on as if they were text.
    removed: Mutex<HashSet<(String, String)>>,
    last_written_use: Mutex<HashMap<(String, String), i64>>,
}

fn context(project: &str, name: &str) -> Vec<u8> {
    format!("paddock-secret\0{project}\0{name}").into_bytes()
}

fn bindings_of(row: &SecretRow) -> Result<Vec<BindingSpec>, VaultError> {
    serde_json::from_str(&row.bindings).map_err(|e| {
        StoreError::Corrupt(format!(
            "secret {}/{}: bindings: {e}",
            row.project, row.name
        ))
        .into()
    })
}

fn info(row: &SecretRow) -> Result<SecretInfo, VaultError> {
    Ok(SecretInfo {
        project: row.project.clone(),
        name: row.name.clone(),
        env: row.env.clone(),
        bindings: bindings_of(row)?,
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
        last_used_ms: row.last_used_ms,
    })
}

impl Vault {
    pub fn new(store: Arc<Store>, key: VaultKey) -> Self {
        let placeholder_key = key.derive("paddock placeholders v1");
        Self {
            store,
            key,
            placeholder_key,
            projects: Mutex::new(HashMap::new()),
            boxes: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            removed: Mutex::new(HashSet::new()),
            last_written_use: Mutex::new(HashMap::new()),
        }
    }

    pub fn key_source(&self) -> &KeySource {
        &self.key.source
    }

    fn changed(&self, project: &str) {
        self.projects.lock().remove(project);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Sets a secret's value, variable or bindings (each kept when not
    /// given). A new value reaches every box at its next request: boxes
    /// hold only placeholders, which do not change.
    pub fn set(
        &self,
        project: &str,
        name: &str,
        update: SecretUpdate,
        now_ms: i64,
    ) -> Result<SecretInfo, VaultError> {
        check_name(name)?;
        if project.is_empty() {
            return Err(VaultError::Invalid(
                "a secret belongs to a project; name one".into(),
            ));
        }
        if let Some(Some(env)) = &update.env {
            check_env(env)?;
        }
        if let Some(value) = &update.value {
            check_value(value)?;
        }
        if let Some(bindings) = &update.bindings {
            for spec in bindings {
                Binding::try_from(spec)?;
            }
        }
        let existing = self.store.secret(project, name)?;
        let (nonce, sealed) = match (&update.value, &existing) {
            (Some(value), _) => self.key.seal(&context(project, name), value),
            (None, Some(row)) => (row.nonce.clone(), row.sealed.clone()),
            (None, None) => {
                return Err(VaultError::Invalid(format!(
                    "project {project:?} has no secret {name:?} yet: give it a value"
                )));
            }
        };
        let env = match update.env {
            Some(env) => env,
            None => existing.as_ref().and_then(|r| r.env.clone()),
        };
        let bindings = match update.bindings {
            Some(b) => b,
            None => existing
                .as_ref()
                .map(bindings_of)
                .transpose()?
                .unwrap_or_default(),
        };
        let row = SecretRow {
            project: project.to_owned(),
            name: name.to_owned(),
            env,
            bindings: serde_json::to_string(&bindings).expect("bindings serialise"),
            nonce,
            sealed,
            created_at_ms: existing.as_ref().map_or(now_ms, |r| r.created_at_ms),
            updated_at_ms: now_ms,
            last_used_ms: existing.as_ref().and_then(|r| r.last_used_ms),
        };
        self.store.put_secret(&row)?;
        self.removed
            .lock()
            .remove(&(project.to_owned(), name.to_owned()));
        self.changed(project);
        info(&row)
    }

    pub fn list(&self, project: Option<&str>) -> Result<Vec<SecretInfo>, VaultError> {
        self.store.secrets(project)?.iter().map(info).collect()
    }

    /// Removes a secret: its placeholder is worthless from the next
    /// request on, and refused with that reason.
    pub fn remove(&self, project: &str, name: &str) -> Result<(), VaultError> {
        if !self.store.delete_secret(project, name)? {
            return Err(VaultError::NotFound {
                project: project.to_owned(),
                name: name.to_owned(),
            });
        }
        self.removed
            .lock()
            .insert((project.to_owned(), name.to_owned()));
        self.changed(project);
        Ok(())
    }

    fn project(&self, project: &str) -> Result<Arc<Vec<Arc<OpenSecret>>>, VaultError> {
        if let Some(open) = self.projects.lock().get(project) {
            return Ok(open.clone());
        }
        let mut opened = Vec::new();
        for row in self.store.secrets(Some(project))? {
            let value = self
                .key
                .open(&context(&row.project, &row.name), &row.nonce, &row.sealed)
                .map(|v| SecretValue(Arc::new(v)));
            if value.is_none() {
                tracing::warn!(project, secret = %row.name, "a secret does not open with this key; requests that need it are refused");
            }
            let bindings = bindings_of(&row)?
                .iter()
                .map(Binding::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            opened.push(Arc::new(OpenSecret {
                name: row.name,
                env: row.env,
                bindings,
                value,
            }));
        }
        let opened = Arc::new(opened);
        self.projects
            .lock()
            .insert(project.to_owned(), opened.clone());
        Ok(opened)
    }

    /// The placeholder of one secret in one box: derived, so it needs no
    /// storage and survives restarts and rotations, and tells which box
    /// leaked it.
    pub fn placeholder(&self, box_id: &str, project: &str, name: &str) -> String {
        use hmac::{Mac as _, SimpleHmac};
        let mut mac = SimpleHmac::<sha2::Sha256>::new_from_slice(self.placeholder_key.as_ref())
            .expect("HMAC takes a key of any length");
        mac.update(format!("{box_id}\0{project}\0{name}").as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex = hex::encode(digest);
        format!(
            "{PLACEHOLDER_PREFIX}{}",
            &hex[..PLACEHOLDER_LEN - PLACEHOLDER_PREFIX.len()]
        )
    }

    /// What the gateway knows of one box's secrets right now.
    pub fn for_box(&self, box_id: &str, project: &str) -> Result<Arc<BoxSecrets>, VaultError> {
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some((seen, view)) = self.boxes.lock().get(box_id)
            && *seen == generation
            && view.project == project
        {
            return Ok(view.clone());
        }
        let open = self.project(project)?;
        let mut secrets: Vec<BoxSecret> = open
            .iter()
            .map(|s| BoxSecret {
                name: s.name.clone(),
                placeholder: self.placeholder(box_id, project, &s.name),
                env: s.env.clone(),
                bindings: s.bindings.clone(),
                value: s.value.clone(),
                removed: false,
            })
            .collect();
        for (p, name) in self.removed.lock().iter() {
            if p == project {
                secrets.push(BoxSecret {
                    name: name.clone(),
                    placeholder: self.placeholder(box_id, project, name),
                    env: None,
                    bindings: Vec::new(),
                    value: None,
                    removed: true,
                });
            }
        }
        let view = Arc::new(BoxSecrets {
            box_id: box_id.to_owned(),
            project: project.to_owned(),
            secrets,
        });
        let mut boxes = self.boxes.lock();
        if boxes.len() >= MAX_CACHED_BOXES {
            boxes.clear();
        }
        boxes.insert(box_id.to_owned(), (generation, view.clone()));
        Ok(view)
    }

    /// The box is gone: its view is not kept.
    pub fn forget_box(&self, box_id: &str) {
        self.boxes.lock().remove(box_id);
    }

    /// `KEY=placeholder` for every secret of the project that names a
    /// variable: what a new box of the project is given.
    pub fn box_env(&self, box_id: &str, project: &str) -> Result<Vec<String>, VaultError> {
        Ok(self
            .for_box(box_id, project)?
            .secrets
            .iter()
            .filter_map(|s| Some(format!("{}={}", s.env.as_ref()?, s.placeholder)))
            .collect())
    }

    /// The secret was put on the wire now: its `last_used_ms` moves (at
    /// most once every ten seconds; each use is in the decision
    /// log regardless).
    pub fn used(&self, project: &str, name: &str, now_ms: i64) {
        let key = (project.to_owned(), name.to_owned());
        {
            let mut written = self.last_written_use.lock();
            if written
                .get(&key)
                .is_some_and(|at| now_ms - at < USE_WRITE_EVERY_MS)
            {
                return;
            }
            written.insert(key, now_ms);
        }
        if let Err(e) = self.store.secret_used(project, name, now_ms) {
            tracing::warn!(project, secret = name, error = %e, "cannot record a secret's last use");
        }
    }
}

#[cfg(test)]
mod tests;
