use bollard::errors::Error as Bollard;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine did not answer at all: socket missing, refused, timed out.
    #[error("docker engine unavailable: {0}")]
    Unavailable(String),
    #[error("docker object not found: {0}")]
    NotFound(String),
    #[error("docker conflict: {0}")]
    Conflict(String),
    #[error("docker refused the request ({status}): {message}")]
    Api { status: u16, message: String },
    #[error("docker: {0}")]
    Other(String),
}

impl From<Bollard> for EngineError {
    fn from(e: Bollard) -> Self {
        match e {
            Bollard::DockerResponseServerError {
                status_code: 404,
                message,
            } => EngineError::NotFound(message),
            Bollard::DockerResponseServerError {
                status_code: 409,
                message,
            } => EngineError::Conflict(message),
            Bollard::DockerResponseServerError {
                status_code,
                message,
            } => EngineError::Api {
                status: status_code,
                message,
            },
            Bollard::RequestTimeoutError
            | Bollard::SocketNotFoundError(_)
            | Bollard::HyperLegacyError { .. }
            | Bollard::IOError { .. } => EngineError::Unavailable(e.to_string()),
            other => EngineError::Other(other.to_string()),
        }
    }
}
