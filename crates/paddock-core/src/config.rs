//! The box-related part of paddock's configuration (the `[boxes]`,
//! `[activation]`, `[[profiles]]`, `[[hooks]]` and `[reconcile]` tables).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoreConfig {
    /// Base URL people open activation pages at.
    pub public_url: String,
    /// Distinguishes this paddock's Docker objects from another paddock's on
    /// the same engine. Empty means "generate once and keep in the store".
    pub instance: String,
    pub boxes: BoxLimits,
    pub activation: ActivationConfig,
    pub profiles: Vec<ImageProfile>,
    pub hooks: Vec<HookConfig>,
    pub reconcile: ReconcileConfig,
    /// `[[registries]]`: logins for pulling from private registries.
    pub registries: Vec<RegistryConfig>,
    /// `[[pools]]`: boxes kept made ahead, per project and image.
    pub pools: Vec<PoolConfig>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:7878".into(),
            instance: String::new(),
            boxes: BoxLimits::default(),
            activation: ActivationConfig::default(),
            profiles: Vec::new(),
            hooks: Vec::new(),
            reconcile: ReconcileConfig::default(),
            registries: Vec::new(),
            pools: Vec::new(),
        }
    }
}

/// A warm pool: `size` boxes of `project` from `image` (default: `[boxes]
/// default_image`) kept made — labelled, equipped and guarded as that
/// project's boxes are — so a create claims one instead of making one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    pub project: String,
    #[serde(default)]
    pub image: Option<String>,
    pub size: usize,
}

/// When a box's image is pulled before the box is made.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Never: an image the engine lacks is `image_not_found`.
    Never,
    /// When the engine lacks it (as `docker run` does).
    #[default]
    Missing,
    /// Every time, so a moving tag is followed.
    Always,
}

/// A login for one registry. The password is read from its file at each
/// pull (so it can be rotated) and never logged or shown.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The registry as image references name it (`ghcr.io`,
    /// `registry.example.com:5000`); `docker.io` for Docker Hub.
    pub server: String,
    pub username: String,
    pub password_file: std::path::PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BoxLimits {
    /// Used when a create request names no image.
    pub default_image: String,
    /// Memory cap per box, in MiB (0 = engine default).
    pub memory_mib: u64,
    /// CPU cap per box, in CPUs (0 = engine default).
    pub cpus: f64,
    /// Process cap per box (0 = engine default).
    pub pids_limit: i64,
    /// Boxes this paddock keeps at once.
    pub max_boxes: u32,
    /// Capabilities removed from every box; none are ever added.
    pub cap_drop: Vec<String>,
    /// Bytes of stdout and of stderr an exec returns before truncating.
    pub exec_output_limit: usize,
    /// How long an exec may run before the caller gets a timeout.
    pub exec_timeout_secs: u64,
    /// Command run as the box's main process. Empty: the image's own,
    /// unless that would end at once (a shell, a REPL, none), when the
    /// box sleeps until it is stopped, as `docker run -d IMAGE sleep
    /// infinity` would.
    pub command: Vec<String>,
    /// A box nobody used (exec, logs, login, start) for this long is
    /// destroyed, with an event. 0: never.
    pub idle_timeout_secs: u64,
    /// The longest `ttl_secs` a create may ask for. 0: no limit.
    pub max_ttl_secs: u64,
    /// How long a stopping box's processes get between SIGTERM and
    /// SIGKILL.
    pub stop_grace_secs: u32,
    /// The largest archive copied into or out of a box, in MiB.
    pub copy_max_mib: u64,
    /// The largest file `read_file` / `write_file` handle, in KiB (they
    /// carry text through MCP).
    pub text_file_max_kib: u64,
    /// IPv4 range box networks are carved from (one subnet per box).
    pub subnet_pool: String,
    /// Prefix length of each box's subnet.
    pub subnet_prefix: u8,
    /// Box networks kept ready, so a create need not wait for one. Emptied
    /// networks of destroyed boxes are kept up to twice this number.
    pub spare_networks: usize,
    /// The OCI runtime boxes run under, as registered with Docker
    /// (`runsc` for gVisor). Empty: the engine's default (runc).
    pub runtime: String,
    /// Boxes get a read-only root filesystem, with a writable volume at
    /// `workspace` and a tmpfs at /tmp.
    pub read_only: bool,
    /// Where a read-only box's writable volume is mounted.
    pub workspace: String,
    /// When images are pulled (a profile's or a create's choice wins).
    pub pull: PullPolicy,
}

impl Default for BoxLimits {
    fn default() -> Self {
        Self {
            default_image: "paddock-box:latest".into(),
            memory_mib: 2048,
            cpus: 2.0,
            pids_limit: 512,
            max_boxes: 32,
            cap_drop: vec!["ALL".into()],
            exec_output_limit: 1024 * 1024,
            exec_timeout_secs: 600,
            command: Vec::new(),
            idle_timeout_secs: 0,
            max_ttl_secs: 0,
            stop_grace_secs: 10,
            copy_max_mib: 1024,
            text_file_max_kib: 1024,
            subnet_pool: "10.213.0.0/16".into(),
            subnet_prefix: 28,
            spare_networks: 2,
            runtime: String::new(),
            read_only: false,
            workspace: "/workspace".into(),
            pull: PullPolicy::Missing,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActivationConfig {
    /// A box not activated within this many seconds is destroyed.
    pub ttl_secs: u64,
    /// How long the login command has to print its authorize URL.
    pub url_timeout_secs: u64,
    /// How long the login command has to finish after the code arrives.
    pub code_timeout_secs: u64,
    /// How often the reaper looks for expired boxes.
    pub reap_interval_secs: u64,
}

impl Default for ActivationConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 300,
            url_timeout_secs: 30,
            code_timeout_secs: 60,
            reap_interval_secs: 10,
        }
    }
}

/// What paddock knows about an image: how its agent CLI logs in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageProfile {
    /// Image reference the profile applies to, exactly as requested.
    pub image: String,
    /// Login command, run in the box with stdin open (argv form).
    #[serde(default)]
    pub login_command: Vec<String>,
    /// How the login is finished: `paste_code` (the person pastes the
    /// code the sign-in page gives them; it goes to the command's stdin)
    /// or `device_code` (the person enters the command's user code at the
    /// sign-in page; nothing is pasted, the command sees it done itself).
    #[serde(default)]
    pub login: LoginShape,
    /// Regex matching the sign-in URL the login command prints.
    #[serde(default = "default_url_pattern")]
    pub url_pattern: String,
    /// For `device_code`: regex matching the user code the command prints
    /// (its first capture group, else the whole match).
    #[serde(default)]
    pub user_code_pattern: Option<String>,
    /// What the login itself must reach (`host` or `host:port`, e.g. the
    /// identity provider's token endpoint): allowed for the box while its
    /// login runs, and no longer.
    #[serde(default)]
    pub login_destinations: Vec<String>,
    /// The box's main process for this image (argv form); empty: as
    /// `[boxes] command` says.
    #[serde(default)]
    pub command: Vec<String>,
    /// The OCI runtime for boxes of this image (overrides `[boxes]
    /// runtime`; a create may still name another).
    #[serde(default)]
    pub runtime: Option<String>,
    /// A read-only root filesystem for boxes of this image (overrides
    /// `[boxes] read_only`).
    #[serde(default)]
    pub read_only: Option<bool>,
    /// When this image is pulled (overrides `[boxes] pull`).
    #[serde(default)]
    pub pull: Option<PullPolicy>,
}

/// The two ways agent CLIs finish an OAuth login without a browser in the
/// box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginShape {
    #[default]
    PasteCode,
    DeviceCode,
}

fn default_url_pattern() -> String {
    r"https://[^\s]+".into()
}

pub const EVENT_CREATE: &str = "box.create";
pub const EVENT_DESTROY: &str = "box.destroy";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Key under which this hook's opaque state is kept.
    pub name: String,
    /// Command (argv form) speaking JSON on stdin/stdout.
    pub command: Vec<String>,
    /// Which of `box.create` / `box.destroy` it runs for.
    #[serde(default = "default_hook_events")]
    pub events: Vec<String>,
    #[serde(default = "default_hook_timeout")]
    pub timeout_secs: u64,
}

fn default_hook_events() -> Vec<String> {
    vec![EVENT_CREATE.into(), EVENT_DESTROY.into()]
}

fn default_hook_timeout() -> u64 {
    30
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileConfig {
    /// Remove this instance's labelled containers and networks that the
    /// store does not know, instead of only reporting them.
    pub remove_unknown: bool,
}

impl CoreConfig {
    /// Checks what serde cannot: patterns compile, hooks name real events.
    /// What is wrong is `CoreError::Invalid`, naming the setting.
    pub fn check(&self) -> crate::Result<()> {
        self.problem().map_err(crate::CoreError::Invalid)
    }

    fn problem(&self) -> Result<(), String> {
        for p in &self.profiles {
            regex::Regex::new(&p.url_pattern)
                .map_err(|e| format!("profile {:?}: url_pattern: {e}", p.image))?;
            match (&p.user_code_pattern, p.login) {
                (Some(pattern), _) => {
                    regex::Regex::new(pattern)
                        .map_err(|e| format!("profile {:?}: user_code_pattern: {e}", p.image))?;
                }
                (None, LoginShape::DeviceCode) => {
                    return Err(format!(
                        "profile {:?}: a device_code login needs user_code_pattern",
                        p.image
                    ));
                }
                (None, LoginShape::PasteCode) => {}
            }
        }
        for h in &self.hooks {
            if h.command.is_empty() {
                return Err(format!("hook {:?}: command is empty", h.name));
            }
            if let Some(e) = h
                .events
                .iter()
                .find(|e| *e != EVENT_CREATE && *e != EVENT_DESTROY)
            {
                return Err(format!("hook {:?}: unknown event {e:?}", h.name));
            }
        }
        if self.boxes.cpus < 0.0 || !self.boxes.cpus.is_finite() {
            return Err("boxes.cpus must be a non-negative number".into());
        }
        crate::subnet::SubnetPool::parse(&self.boxes.subnet_pool, self.boxes.subnet_prefix)?;
        if self.boxes.max_boxes == 0 {
            return Err("boxes.max_boxes must be at least 1".into());
        }
        for pool in &self.pools {
            crate::validate::project(&pool.project)
                .map_err(|e| format!("pool of {:?}: {e}", pool.project))?;
            if let Some(image) = &pool.image {
                crate::validate::image(image)
                    .map_err(|e| format!("pool of {:?}: {e}", pool.project))?;
            }
            if pool.size > self.boxes.max_boxes as usize {
                return Err(format!(
                    "pool of {:?}: size {} is more than boxes.max_boxes",
                    pool.project, pool.size
                ));
            }
        }
        Ok(())
    }

    /// The main process configured for boxes of `image`: its profile's,
    /// else `[boxes] command` (empty: decided from the image).
    pub fn command_for(&self, image: &str) -> &[String] {
        self.profiles
            .iter()
            .find(|p| p.image == image && !p.command.is_empty())
            .map_or(&self.boxes.command, |p| &p.command)
    }

    /// The image a pool keeps boxes of.
    pub fn pool_image<'a>(&'a self, pool: &'a PoolConfig) -> &'a str {
        pool.image.as_deref().unwrap_or(&self.boxes.default_image)
    }

    /// The profile naming `image`, whatever it configures.
    pub fn any_profile_for(&self, image: &str) -> Option<&ImageProfile> {
        self.profiles.iter().find(|p| p.image == image)
    }

    pub fn profile_for(&self, image: &str) -> Option<&ImageProfile> {
        self.profiles
            .iter()
            .find(|p| p.image == image && !p.login_command.is_empty())
    }
}
