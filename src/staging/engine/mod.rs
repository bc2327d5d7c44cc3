//! The Docker Engine, through bollard: build, containers, exec, and finding what a run left.
//! Every object airgap-check creates carries the [`LABEL`] label (and the run id and pid), so
//! `airgap-check prune` can find leftovers after a crash; what a run creates comes back as a
//! [`guards::Guard`] that removes it when dropped. Every failure is an [`EngineError`] naming the
//! operation and keeping the engine's error as its source.

mod driver;
mod error;
mod exec;
pub mod guards;

pub use driver::{Driver, Script};
pub use error::{docker_host, EngineError};
pub use exec::{exec, read_file, Exec, ExecOutcome};
pub use guards::{short, Container, Guard, Image, Network, RunLayers};

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::flows::now_micros;
use crate::report::redact::redact_argv;

/// Present on everything airgap-check creates.
pub const LABEL: &str = "io.airgap-check";
pub const LABEL_RUN: &str = "io.airgap-check.run";
pub const LABEL_PID: &str = "io.airgap-check.pid";

/// A run's id: twelve hex digits, the value of the [`LABEL_RUN`] label on what it creates.
pub fn run_id() -> String {
    let mut b = [0u8; 6];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok();
    if !ok {
        let t = now_micros() as u64 ^ u64::from(std::process::id()) << 20;
        b.copy_from_slice(&t.to_le_bytes()[..6]);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn labels(run_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL.to_string(), "1".to_string()),
        (LABEL_RUN.to_string(), run_id.to_string()),
        (LABEL_PID.to_string(), std::process::id().to_string()),
    ])
}

/// Connect (honouring DOCKER_HOST), agree on an API version with the engine, and check it answers.
pub async fn connect() -> Result<Docker> {
    let host = docker_host();
    let unreachable = |source| EngineError::Connect {
        host: host.clone(),
        source,
    };
    let docker = Docker::connect_with_defaults().map_err(unreachable)?;
    let docker = tokio::time::timeout(Duration::from_secs(15), docker.negotiate_version())
        .await
        .map_err(|_| EngineError::NoAnswer { host: host.clone() })?
        .map_err(unreachable)?;
    docker.ping().await.map_err(unreachable)?;
    Ok(docker)
}

/// What a container inherits of its image's config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// The configured user; `None` when unset.
    pub user: Option<String>,
    /// Its environment, `KEY=value`.
    pub env: Vec<String>,
    /// Its architecture (`amd64`, `arm64`).
    pub arch: Option<String>,
    /// The variant of its architecture (`v8` of arm64, `v7` of arm).
    pub variant: Option<String>,
}

impl ImageConfig {
    fn of(i: bollard::models::ImageInspect) -> ImageConfig {
        let config = i.config.unwrap_or_default();
        ImageConfig {
            user: config.user.filter(|u| !u.is_empty()),
            env: config.env.unwrap_or_default(),
            arch: i.architecture.filter(|a| !a.is_empty()),
            variant: i.variant.filter(|v| !v.is_empty()),
        }
    }
}

/// The stack image's config, after making sure the image is present (pulling it if not).
pub async fn ensure_image(docker: &Docker, image: &str) -> Result<ImageConfig> {
    match docker.inspect_image(image).await {
        Ok(i) => return Ok(ImageConfig::of(i)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => return Err(EngineError::InspectImage { source: e }.into()),
    }
    let mut pull = docker.create_image(
        Some(CreateImageOptionsBuilder::new().from_image(image).build()),
        None,
        None,
    );
    while let Some(step) = pull.next().await {
        if let Err(e) = step {
            return Err(Error::StackImage {
                image: image.to_string(),
                source: e,
            });
        }
    }
    docker
        .inspect_image(image)
        .await
        .map(ImageConfig::of)
        .map_err(|e| Error::StackImage {
            image: image.to_string(),
            source: e,
        })
}

/// The config of the image a container was made from, found by the image id the container
/// records: not by a name, which may have been given to another image since.
pub async fn container_image_config(docker: &Docker, container: &str) -> Result<ImageConfig> {
    let info = docker
        .inspect_container(
            container,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .map_err(|source| EngineError::InspectContainer { source })?;
    let image = info
        .image
        .filter(|i| !i.is_empty())
        .ok_or(EngineError::NoImage)?;
    docker
        .inspect_image(&image)
        .await
        .map(ImageConfig::of)
        .map_err(|source| EngineError::InspectImage { source }.into())
}

/// Build an image from a context tar, with no network during the build. Staging runs build with
/// `cache: false`: a cached layer could be shared with a concurrent run, and removing one run's
/// image would then prune a layer under the other's build. Images that are kept (the fixture
/// stack) build with the cache, so rebuilding the same content leaves no dangling image behind.
/// `on_line` gets the builder's output lines. Returns the image id. `labels`, when given, are
/// added by the engine (one more build step).
pub async fn build_image(
    docker: &Docker,
    context_tar: &Path,
    tag: &str,
    labels: Option<&HashMap<String, String>>,
    cache: bool,
    on_line: impl FnMut(&str),
) -> Result<Guard<Image>> {
    let id = build(docker, context_tar, tag, labels, cache, on_line).await?;
    Ok(Guard::new(docker, id))
}

async fn build(
    docker: &Docker,
    context_tar: &Path,
    tag: &str,
    labels: Option<&HashMap<String, String>>,
    cache: bool,
    mut on_line: impl FnMut(&str),
) -> Result<String> {
    // Streamed from disk in 1 MiB chunks: a large app never sits in memory whole.
    let file = tokio::fs::File::open(context_tar)
        .await
        .map_err(|e| Error::Read {
            path: context_tar.to_path_buf(),
            source: e,
        })?;
    let body = futures_util::stream::try_unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = bytes::BytesMut::with_capacity(1 << 20);
        let n = f.read_buf(&mut buf).await?;
        Ok::<_, std::io::Error>((n > 0).then(|| (buf.freeze(), f)))
    });
    let mut opts = BuildImageOptionsBuilder::new()
        .t(tag)
        .rm(true)
        .forcerm(true)
        .nocache(!cache)
        .networkmode("none")
        .pull("");
    if let Some(l) = labels {
        opts = opts.labels(l);
    }
    let opts = opts.build();
    let mut stream = docker.build_image(opts, None, Some(bollard::body_try_stream(body)));
    let mut id = None;
    let mut last_error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(s) = info.stream.as_deref() {
                    for line in s.lines().filter(|l| !l.trim().is_empty()) {
                        on_line(line);
                    }
                }
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    last_error = Some(e);
                }
                if let Some(aux) = info.aux.and_then(|a| a.id) {
                    id = Some(aux);
                }
            }
            Err(source) => return Err(EngineError::Build { source }.into()),
        }
    }
    if let Some(message) = last_error {
        return Err(EngineError::BuildStep { message }.into());
    }
    match id {
        Some(id) => Ok(id),
        None => {
            let i = docker
                .inspect_image(tag)
                .await
                .map_err(|source| EngineError::Build { source })?;
            Ok(i.id.ok_or(EngineError::NoImageId)?)
        }
    }
}

/// The idle first process of the staging container (so it can be told apart from the buildpack's).
/// The most processes the staging container may hold.
pub const PIDS_LIMIT: i64 = 4096;

pub const IDLE_CMD: &str = "sleep 2147483647";

/// What the staging container is made of.
pub struct IdleContainer<'a> {
    pub image: &'a str,
    pub name: &'a str,
    /// The Docker network to join (observe mode); `None`: no network at all (sealed runs).
    pub network: Option<&'a str>,
    /// The DNS server the container is told about (sealed runs: the sink).
    pub dns: Option<&'a str>,
    /// The memory limit, bytes (no swap beyond it).
    pub memory: u64,
    pub labels: &'a HashMap<String, String>,
    /// Folders of this host (and volumes) to mount.
    pub mounts: Vec<bollard::models::Mount>,
}

/// Create the staging container with an idle first process, so that nothing of the buildpack runs
/// before the capture. Sealed runs give no network (the sandbox adds one) and point DNS at the
/// sink; observe runs join their network and keep Docker's DNS.
pub async fn create_idle_container(
    docker: &Docker,
    c: &IdleContainer<'_>,
) -> Result<Guard<Container>> {
    let body = ContainerCreateBody {
        image: Some(c.image.to_string()),
        entrypoint: Some(vec!["/bin/sh".into()]),
        cmd: Some(vec!["-c".into(), format!("exec {IDLE_CMD}")]),
        user: Some("0".into()),
        labels: Some(c.labels.clone()),
        network_disabled: Some(false),
        host_config: Some(HostConfig {
            network_mode: Some(c.network.unwrap_or("none").into()),
            dns: c.dns.map(|d| vec![d.to_string()]),
            // No swap beyond the limit: a phase that needs more memory is killed, not slowed.
            memory: Some(c.memory as i64),
            memory_swap: Some(c.memory as i64),
            // A fork bomb in a buildpack stops at the container, not at the host.
            pids_limit: Some(PIDS_LIMIT),
            mounts: (!c.mounts.is_empty()).then(|| c.mounts.clone()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(c.name).build()),
            body,
        )
        .await
        .map_err(|source| EngineError::CreateContainer { source })?;
    Ok(Guard::new(docker, created.id))
}

/// A small file of a created (not necessarily started) container's file system, through the
/// engine's archive API; `None` when there is no such file. At most 1 MiB is read.
pub async fn file_of(docker: &Docker, container: &str, path: &str) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let opts = bollard::query_parameters::DownloadFromContainerOptionsBuilder::new()
        .path(path)
        .build();
    let mut stream = docker.download_from_container(container, Some(opts));
    let mut tar = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) if tar.len() < 4 << 20 => tar.extend_from_slice(&b),
            Ok(_) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(source) => return Err(EngineError::ReadFile { source }.into()),
        }
    }
    let mut archive = tar::Archive::new(tar.as_slice());
    let entries = archive.entries().map_err(|e| EngineError::Archive {
        reason: e.to_string(),
    })?;
    for entry in entries.flatten() {
        if entry.header().entry_type().is_file() {
            let mut out = Vec::new();
            entry
                .take(1 << 20)
                .read_to_end(&mut out)
                .map_err(|e| EngineError::Archive {
                    reason: e.to_string(),
                })?;
            return Ok(Some(out));
        }
    }
    Ok(None)
}

/// Start a created container and return its first process's pid (on the host).
pub async fn start_container(docker: &Docker, id: &str) -> Result<u32> {
    docker
        .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
        .map_err(|source| EngineError::StartContainer { source })?;
    let info = docker
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .map_err(|source| EngineError::InspectContainer { source })?;
    let pid = info
        .state
        .and_then(|s| s.pid)
        .filter(|p| *p > 0)
        .ok_or(EngineError::NotRunning)?;
    Ok(pid as u32)
}

/// The container's processes other than its idle first one (host pid `init`): "pid command"
/// strings. The first process is told by its pid, never by its command line, which a buildpack's
/// process could copy to hide among the idle. Read from the first process's cgroup on this host
/// (no round trip to the engine, which runs `ps`); the engine's `top` when that cannot be read.
pub async fn leftover_processes(docker: &Docker, id: &str, init: u32) -> Result<Vec<String>> {
    if let Some(pids) = cgroup_pids(init) {
        return Ok(pids
            .into_iter()
            .filter(|p| *p != init)
            .filter_map(|p| {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).ok()?;
                let args: Vec<String> = cmd
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                // A zombie or a kernel thread has no command line: its name, as ps shows it.
                let shown = if args.is_empty() {
                    let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).ok()?;
                    format!("[{}]", comm.trim())
                } else {
                    // Redacted while the words are still separate: a `curl -u u:p` left running
                    // is shown (warn line, Unwatched note) without its password.
                    redact_argv(&args).join(" ")
                };
                Some(format!("{p} {shown}"))
            })
            .collect());
    }
    let top = docker
        .top_processes(
            id,
            Some(
                bollard::query_parameters::TopOptionsBuilder::new()
                    .ps_args("-o pid,args")
                    .build(),
            ),
        )
        .await
        .map_err(|source| EngineError::ListProcesses { source })?;
    Ok(top
        .processes
        .unwrap_or_default()
        .into_iter()
        .filter(|row| row.first().and_then(|p| p.trim().parse::<u32>().ok()) != Some(init))
        .map(|row| redacted_ps_row(&row))
        .collect())
}

/// A `ps -o pid,args` row (pid, then args as ps joined them): the args split at spaces again and
/// redacted as an argv, the best there is once ps has joined them.
fn redacted_ps_row(row: &[String]) -> String {
    let words: Vec<String> = row
        .iter()
        .flat_map(|c| c.split_whitespace())
        .map(str::to_string)
        .collect();
    redact_argv(&words).join(" ")
}

/// Every process in the cgroup of `pid` and the cgroups below it, from the host's cgroup file
/// system (v2, or v1's pids hierarchy); `None` when it cannot be read.
fn cgroup_pids(pid: u32) -> Option<Vec<u32>> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let dir = cgroups.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        if controllers.is_empty() {
            Some(format!("/sys/fs/cgroup{path}"))
        } else if controllers.split(',').any(|c| c == "pids") {
            Some(format!("/sys/fs/cgroup/pids{path}"))
        } else {
            None
        }
    })?;
    let mut pids = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(dir)];
    while let Some(d) = dirs.pop() {
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).ok()?;
        pids.extend(procs.lines().filter_map(|p| p.trim().parse::<u32>().ok()));
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path());
            }
        }
    }
    // The first process must be among them: otherwise this is not the container's cgroup.
    pids.contains(&pid).then_some(pids)
}

/// Kill every process of the container (it stays, to be removed later).
pub async fn kill_container(docker: &Docker, id: &str) -> Result<()> {
    match docker
        .kill_container(id, None::<bollard::query_parameters::KillContainerOptions>)
        .await
    {
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => Ok(()),
        Err(e) => Err(EngineError::KillContainer { source: e }.into()),
    }
}

/// The container's state, if the engine tells it.
pub async fn state(docker: &Docker, id: &str) -> Option<bollard::models::ContainerState> {
    docker
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .ok()
        .and_then(|i| i.state)
}

/// Wait (at most `max`) until the container no longer runs: the engine says when.
pub async fn wait_stopped(docker: &Docker, id: &str, max: Duration) {
    let opts = bollard::query_parameters::WaitContainerOptionsBuilder::new()
        .condition("not-running")
        .build();
    let mut waiting = docker.wait_container(id, Some(opts));
    // Its exit code (137 after a kill) does not matter here, nor does an engine that cannot wait:
    // the state is looked at then.
    if tokio::time::timeout(max, waiting.next()).await.is_err()
        || state(docker, id).await.and_then(|s| s.running) == Some(true)
    {
        let until = tokio::time::Instant::now() + max;
        while tokio::time::Instant::now() < until
            && state(docker, id).await.and_then(|s| s.running) == Some(true)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Every image carrying this run's label, intermediate build layers included (a build cut short
/// leaves them untagged).
pub async fn images_of_run(docker: &Docker, run_id: &str) -> Result<Vec<String>> {
    let label = format!("{LABEL_RUN}={run_id}");
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    Ok(docker
        .list_images(Some(
            ListImagesOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|source| EngineError::ListImages { source })?
        .into_iter()
        .map(|i| i.id)
        .collect())
}

pub async fn remove_container(docker: &Docker, id: &str) -> Result<()> {
    match docker
        .remove_container(
            id,
            Some(
                RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build(),
            ),
        )
        .await
    {
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(EngineError::RemoveContainer { source: e }.into()),
    }
}

pub async fn remove_image(docker: &Docker, id: &str) -> Result<()> {
    match docker
        .remove_image(
            id,
            Some(RemoveImageOptionsBuilder::new().force(true).build()),
            None,
        )
        .await
    {
        Ok(_)
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(EngineError::RemoveImage { source: e }.into()),
    }
}

/// Create a bridge network for one run (labelled like everything else).
pub async fn create_network(
    docker: &Docker,
    name: &str,
    labels: &HashMap<String, String>,
) -> Result<Guard<Network>> {
    docker
        .create_network(bollard::models::NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        })
        .await
        .map_err(|source| EngineError::CreateNetwork { source })?;
    Ok(Guard::new(docker, name.to_string()))
}

/// Check that a network exists; its driver.
pub async fn network_driver(docker: &Docker, name: &str) -> Result<Option<String>> {
    match docker
        .inspect_network(
            name,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
    {
        Ok(n) => Ok(Some(n.driver.unwrap_or_default())),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(EngineError::InspectNetwork { source: e }.into()),
    }
}

pub async fn remove_network(docker: &Docker, name: &str) -> Result<()> {
    match docker.remove_network(name).await {
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(EngineError::RemoveNetwork { source: e }.into()),
    }
}

/// Networks carrying the airgap-check label: (id, pid label).
pub async fn labelled_networks(docker: &Docker) -> Result<Vec<(String, Option<u32>)>> {
    let filters = HashMap::from([("label", vec![LABEL])]);
    Ok(docker
        .list_networks(Some(
            bollard::query_parameters::ListNetworksOptionsBuilder::new()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|source| EngineError::ListNetworks { source })?
        .into_iter()
        .filter_map(|n| {
            let pid = n
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_PID))
                .and_then(|p| p.parse().ok());
            n.id.map(|id| (id, pid))
        })
        .collect())
}

/// How many processes the kernel's out-of-memory killer has killed in the memory cgroup of the
/// process `pid` (cgroup v2 `memory.events`, or v1 `memory.oom_control`); `None` if unreadable.
pub fn oom_kills(pid: u32) -> Option<u64> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let counter = |file: &str| -> Option<u64> {
        std::fs::read_to_string(file)
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
    };
    for l in cgroups.lines() {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            if let Some(n) = counter(&format!("/sys/fs/cgroup/memory{path}/memory.oom_control")) {
                return Some(n);
            }
        } else if controllers.is_empty() {
            if let Some(n) = counter(&format!("/sys/fs/cgroup{path}/memory.events")) {
                return Some(n);
            }
        }
    }
    None
}

/// Kill processes of a container by their host pids (as `docker top` lists them), leaving its first
/// process (host pid `init`), and with it the container's network, in place. A pid is killed only
/// while it is still in the first process's cgroups: a pid the host reused is left alone.
pub fn kill_host_pids(init: u32, lines: &[String]) {
    let cgroups = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok();
    let Some(ours) = cgroups(init as i32) else {
        return;
    };
    for l in lines {
        if let Some(pid) = l
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pid == init as i32 || cgroups(pid).as_ref() != Some(&ours) {
                continue;
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Containers and images carrying the airgap-check label: (id, pid label).
pub async fn labelled(
    docker: &Docker,
) -> Result<(Vec<(String, Option<u32>)>, Vec<(String, Option<u32>)>)> {
    let filters = HashMap::from([("label", vec![LABEL])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|source| EngineError::ListContainers { source })?
        .into_iter()
        .filter_map(|c| {
            let pid = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_PID))
                .and_then(|p| p.parse().ok());
            c.id.map(|id| (id, pid))
        })
        .collect();
    let images = docker
        .list_images(Some(
            ListImagesOptionsBuilder::new()
                .all(false)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|source| EngineError::ListImages { source })?
        .into_iter()
        .map(|i| {
            let pid = i.labels.get(LABEL_PID).and_then(|p| p.parse().ok());
            (i.id, pid)
        })
        .collect();
    Ok((containers, images))
}
