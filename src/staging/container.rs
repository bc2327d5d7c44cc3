//! Start: the staging container, idle (its first process sleeps) so that nothing of the buildpack
//! runs before the capture is armed; in observe mode, on the network it is to be observed on.

use crate::capture::sandbox::SINK_V4;
use crate::error::Result;
use crate::staging::config::{bad_arg, Network, StageConfig};
use crate::staging::engine::{self, Container, Guard, IdleContainer};
use crate::staging::run::Run;

/// The network the phases run on in observe mode: a bridge of the run's own, or the user's.
pub struct Joined {
    pub name: String,
    /// The bridge created for this run (removed with it); `None` for a network of the user's.
    pub own: Option<Guard<engine::Network>>,
}

/// The running staging container.
pub struct Staging {
    pub container: Guard<Container>,
    /// The host pid of its idle first process.
    pub pid: u32,
    /// The user the phases run as ("" for the image's default, root).
    pub user: String,
}

/// Check, before building anything, that the network to join exists.
pub async fn check_network(run: &Run, cfg: &StageConfig) -> Result<()> {
    if let Network::Existing(name) = &cfg.network {
        if engine::network_driver(&run.docker, name).await?.is_none() {
            return Err(bad_arg(
                "--network",
                name,
                "no Docker network has this name: expected sealed, bridge, or an existing network (docker network ls)",
            ));
        }
    }
    Ok(())
}

/// Observe mode: the network the phases run on (a new bridge for this run, or the user's).
pub async fn join_network(run: &Run, cfg: &StageConfig) -> Result<Option<Joined>> {
    Ok(match &cfg.network {
        Network::Sealed => None,
        Network::Bridge => {
            let name = run.name();
            let own = engine::create_network(&run.docker, &name, &run.labels).await?;
            Some(Joined {
                name,
                own: Some(own),
            })
        }
        Network::Existing(name) => Some(Joined {
            name: name.clone(),
            own: None,
        }),
    })
}

/// Create and start the idle staging container, and find the user the phases run as.
pub async fn start(
    run: &Run,
    cfg: &StageConfig,
    image: &str,
    network: Option<&Joined>,
) -> Result<Staging> {
    let sink_dns = SINK_V4.to_string();
    let name = run.name();
    let spec = IdleContainer {
        image,
        name: &name,
        network: network.map(|n| n.name.as_str()),
        dns: network.is_none().then_some(sink_dns.as_str()),
        memory: cfg.memory,
        labels: &run.labels,
    };
    let container = engine::create_idle_container(&run.docker, &spec).await?;
    let pid = engine::start_container(&run.docker, container.id()).await?;
    // From the container's root through /proc (symlinks resolved inside it); an exec otherwise.
    let user = match read_in_root(pid, "tmp/.airgap-check-user") {
        Some(u) => u,
        None => engine::read_file(&run.docker, container.id(), "/tmp/.airgap-check-user").await?,
    };
    Ok(Staging {
        container,
        pid,
        user,
    })
}

/// A small file of the container whose first process is `pid`, read from the host with every
/// symlink resolved inside the container's root (openat2 RESOLVE_IN_ROOT): never a host file.
fn read_in_root(pid: u32, path: &str) -> Option<String> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::io::Read;
    let root = std::fs::File::open(format!("/proc/{pid}/root")).ok()?;
    let fd = openat2(
        &root,
        path,
        OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS),
    )
    .ok()?;
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(4096)
        .read_to_string(&mut s)
        .ok()?;
    Some(s.trim().to_string())
}
