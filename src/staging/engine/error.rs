//! One error per engine operation, each keeping the engine's (bollard's) error as its source.

use bollard::errors::Error as Bollard;

/// Where the engine is: DOCKER_HOST, or Docker's default socket.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// The engine's error, or, when the connection itself is gone, what that means for the run.
pub struct Cause<'a>(pub &'a Bollard);

impl std::fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Bollard::HyperLegacyError { .. }
            | Bollard::IOError { .. }
            | Bollard::RequestTimeoutError
            | Bollard::SocketNotFoundError(_)
            | Bollard::HyperResponseError { .. } => write!(
                f,
                "lost the connection to the Docker engine at {} ({}); the run cannot go on, and what it created may remain: run `airgap-check prune` once the engine answers again",
                docker_host(),
                self.0
            ),
            e => e.fmt(f),
        }
    }
}

fn cause(e: &Bollard) -> Cause<'_> {
    Cause(e)
}

/// A Docker Engine operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("docker connect: cannot reach the Docker engine at {host}: {source}; is dockerd running, and may this user use its socket?")]
    Connect { host: String, source: Bollard },
    #[error("docker connect: the Docker engine at {host} did not answer within 15 s")]
    NoAnswer { host: String },
    #[error("docker inspect image: {}", cause(.source))]
    InspectImage { source: Bollard },
    #[error("docker build: {}", cause(.source))]
    Build { source: Bollard },
    /// The builder reported an error of its own (a failed step).
    #[error("docker build: {message}")]
    BuildStep { message: String },
    #[error("docker build: the engine reported no image id")]
    NoImageId,
    #[error("docker create container: {}", cause(.source))]
    CreateContainer { source: Bollard },
    #[error("docker start container: {}", cause(.source))]
    StartContainer { source: Bollard },
    #[error("docker inspect container: {}", cause(.source))]
    InspectContainer { source: Bollard },
    #[error("docker read a file of the container: {}", cause(.source))]
    ReadFile { source: Bollard },
    #[error("docker read a file of the container: the engine's archive is not readable: {reason}")]
    Archive { reason: String },
    #[error("docker inspect container: the container has no running process")]
    NotRunning,
    #[error("docker inspect container: the engine names no image of the container")]
    NoImage,
    #[error("docker list processes: {}", cause(.source))]
    ListProcesses { source: Bollard },
    #[error("docker kill container: {}", cause(.source))]
    KillContainer { source: Bollard },
    #[error("docker exec: {}", cause(.source))]
    Exec { source: Bollard },
    #[error("docker exec: the engine did not attach to the process output")]
    ExecNotAttached,
    #[error("docker exec: writing to the phases' driver: {source}")]
    ExecInput { source: std::io::Error },
    #[error("docker exec: the phases' driver has no further phase to run")]
    DriverDone,
    #[error("docker inspect exec: {}", cause(.source))]
    InspectExec { source: Bollard },
    #[error("docker remove container: {}", cause(.source))]
    RemoveContainer { source: Bollard },
    #[error("docker remove image: {}", cause(.source))]
    RemoveImage { source: Bollard },
    #[error("docker create network: {}", cause(.source))]
    CreateNetwork { source: Bollard },
    #[error("docker inspect network: {}", cause(.source))]
    InspectNetwork { source: Bollard },
    #[error("docker remove network: {}", cause(.source))]
    RemoveNetwork { source: Bollard },
    #[error("docker list containers: {}", cause(.source))]
    ListContainers { source: Bollard },
    #[error("docker list images: {}", cause(.source))]
    ListImages { source: Bollard },
    #[error("docker list networks: {}", cause(.source))]
    ListNetworks { source: Bollard },
}
