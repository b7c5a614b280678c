use paddock_docker::EngineError;
use paddock_store::StoreError;

/// Every way a box operation can fail. Front-ends map the variant, not the
/// message, to their status codes.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("no box with id {0:?}")]
    NotFound(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("box limit reached: this paddock keeps at most {0} boxes")]
    LimitReached(u32),
    #[error("docker engine unavailable: {0}")]
    EngineUnavailable(String),
    #[error("docker: {0}")]
    Engine(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("hook {hook:?} failed: {message}")]
    Hook { hook: String, message: String },
    #[error("activation failed: {0}")]
    Activation(String),
    /// Unknown, used or expired activation link. One message for all three,
    /// so a link's existence is not revealed.
    #[error("this activation link is invalid, expired or already used")]
    ActivationInvalid,
    #[error("setting up the box failed: {0}")]
    Extension(#[from] crate::ExtensionError),
    #[error("command did not finish within {0} seconds")]
    ExecTimeout(u64),
    /// The image's own command ended as the box started: a box needs a
    /// main process that keeps running.
    #[error(
        "the image's command exited with code {0} as soon as the box started; a box needs a command that keeps running (set the image profile's command, or [boxes] command, e.g. [\"sleep\", \"infinity\"])"
    )]
    BoxExited(i64),
    /// The engine has no such image: said before anything is made.
    #[error(
        "no image {0:?} on this paddock's Docker engine: pull it (docker pull {0}) or build it (docker build -t {0} …)"
    )]
    ImageNotFound(String),
    /// The registry would not give the image (a refused login, an
    /// unreachable registry); the engine's words say which.
    #[error("pulling {image:?} failed: {reason}")]
    PullFailed { image: String, reason: String },
    /// The runtime a create asked for is not registered with the engine.
    #[error(
        "the container runtime {runtime:?} is not installed in this paddock's Docker engine (it knows: {known}); install it and register it with Docker (for gVisor: `runsc install` and restart Docker, or scripts/ensure-env --runsc)"
    )]
    RuntimeNotInstalled { runtime: String, known: String },
    /// A path in a box that does not exist.
    #[error("no such file or directory in the box: {0}")]
    NoSuchPath(String),
    /// More than a configured cap (an upload, a download, a text file).
    #[error("{what} is larger than the limit of {limit_bytes} bytes")]
    TooLarge {
        what: &'static str,
        limit_bytes: u64,
    },
    /// The box is not in a state the operation works on (a stopped box's
    /// exec, a running box's start): says which state it is in.
    #[error("box {id:?} is {state}: {hint}")]
    WrongState {
        id: String,
        state: &'static str,
        hint: &'static str,
    },
    /// A box on a spoke, asked for what the hub does not route to spokes.
    #[error(
        "box {id:?} runs on spoke {spoke:?}, which this operation does not reach: get, exec, logs, stop, start, shield and destroy do"
    )]
    OnSpoke { id: String, spoke: String },
    /// The spoke a box is on, or a create names, is not connected; its
    /// boxes are kept and come back with it.
    #[error("spoke {0:?} is not connected; its boxes are kept and shown again when it returns")]
    SpokeUnreachable(String),
    /// The spoke has no room for another box.
    #[error("spoke {spoke:?} is full: {message}")]
    SpokeFull { spoke: String, message: String },
    /// The spoke failed the call, in its words.
    #[error("on spoke {spoke:?}: {message}")]
    Spoke { spoke: String, message: String },
}

impl From<EngineError> for CoreError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unavailable(m) => CoreError::EngineUnavailable(m),
            other => CoreError::Engine(other.to_string()),
        }
    }
}
