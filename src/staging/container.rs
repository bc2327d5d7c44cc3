//! Start: the staging container, idle (its first process sleeps) so that nothing of the buildpack
//! runs before the capture is armed; in observe mode, on the network it is to be observed on.
//!
//! The app and the buildpacks reach it in one of two ways. Mounted (the default): the container is
//! made from the stack image itself, the run's workspace on this host mounted into it — a copy of
//! the app, the lifecycle's folders, each buildpack read-only under a writable layer — so no image
//! is built and no buildpack is copied. Copied (`--context copy`, or when the engine turns out not
//! to see this host's files): everything is sent in a build context and built into an image.

use std::path::Path;
use std::time::Instant;

use crate::capture::sandbox::SINK_V4;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::staging::config::{bad_arg, Context, Network, StageConfig};
use crate::staging::engine::{self, Container, Guard, IdleContainer};
use crate::staging::image::{self, Built};
use crate::staging::run::Run;
use crate::staging::tree::Skipped;
use crate::staging::user::{self, StagingUser};
use crate::staging::workspace::Workspace;

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
    /// The user the phases run as.
    pub user: StagingUser,
    /// The image built for it (`--context copy`); `None` when it was made from the stack image.
    pub built: Option<Built>,
    /// What was not staged of the app (FIFOs, sockets, devices).
    pub skipped: Vec<Skipped>,
    /// How the app and the buildpacks reached it, for the reports.
    pub record: Record,
}

/// How the staging container was made.
#[derive(Clone, Debug)]
pub enum Record {
    /// From the stack image, with these mounts ("target ← source (how)").
    Mounted(Vec<String>),
    /// From an image built with this Dockerfile.
    Built(String),
}

/// The stack image: its name, its configured user and its environment.
pub struct Stack<'a> {
    pub image: &'a str,
    pub user: Option<&'a str>,
    pub env: &'a [String],
    /// The staging user, once the first app's container has told it: the same stack image, the
    /// same user, for every app of the run (each reading costs the engine two archive reads).
    pub staging_user: &'a tokio::sync::OnceCell<StagingUser>,
}

/// Check, before building anything, that the network to join exists.
pub async fn check_network(docker: &bollard::Docker, cfg: &StageConfig) -> Result<()> {
    if let Network::Existing(name) = &cfg.network {
        if engine::network_driver(docker, name).await?.is_none() {
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

/// What one app's container starts from.
pub struct Plan<'a> {
    pub app: &'a Path,
    /// The app's own folder under the run's scratch folder.
    pub dir: &'a Path,
    pub stack: Stack<'a>,
    pub network: Option<&'a Joined>,
}

/// Make and start the staging container of one app, mounted or copied as `--context` says.
pub async fn start(
    run: &Run,
    cfg: &StageConfig,
    plan: &Plan<'_>,
    log: &Progress,
) -> Result<Staging> {
    let t = Instant::now();
    let staging = match cfg.context {
        Context::Copy => copied(run, cfg, plan, log).await?,
        Context::Mount => mounted(run, cfg, plan)
            .await
            .map_err(Unmountable::into_error)?,
        Context::Auto => match mounted(run, cfg, plan).await {
            Ok(s) => s,
            Err(Unmountable::Not(why)) => {
                log.line(&format!(
                    "the engine does not see this host's files ({why}): sending the app and the buildpacks in a build context instead"
                ));
                copied(run, cfg, plan, log).await?
            }
            Err(Unmountable::Failed(e)) => return Err(e),
        },
    };
    for s in &staging.skipped {
        log.warn(&crate::report::text::terminal_safe(&s.describe()));
    }
    if let Record::Mounted(mounts) = &staging.record {
        log.line(&format!(
            "staging container ready in {:.1}s: the app copied, the buildpacks mounted (no image built)",
            t.elapsed().as_secs_f64()
        ));
        for m in mounts {
            log.detail(m);
        }
    }
    Ok(staging)
}

/// Why the mounted way did not work: the engine cannot see this host's files, or something else.
enum Unmountable {
    Not(String),
    Failed(Error),
}

impl Unmountable {
    fn into_error(self) -> Error {
        match self {
            Unmountable::Failed(e) => e,
            Unmountable::Not(why) => Error::BadArgument {
                option: "--context",
                value: "mount".into(),
                expected: format!(
                    "the engine does not see this host's files ({why}): use --context copy (or auto)"
                ),
            },
        }
    }
}

/// An engine error that says the engine could not find a folder of this host to mount.
fn cannot_see(e: Error) -> Unmountable {
    let text = e.to_string();
    let unseen = [
        "bind source path does not exist",
        "no such file or directory",
    ]
    .iter()
    .any(|m| text.contains(m));
    if unseen {
        Unmountable::Not(text)
    } else {
        Unmountable::Failed(e)
    }
}

/// The container made from the stack image with the app's workspace mounted.
async fn mounted(
    run: &Run,
    cfg: &StageConfig,
    plan: &Plan<'_>,
) -> std::result::Result<Staging, Unmountable> {
    let ws = Workspace::create(&plan.dir.join("workspace"), &cfg.buildpacks)
        .map_err(Unmountable::Failed)?;
    let container = create(run, cfg, plan, plan.stack.image, ws.mounts(&run.labels))
        .await
        .map_err(cannot_see)?;
    let user = staging_user(run, cfg, &container, &plan.stack)
        .await
        .map_err(Unmountable::Failed)?;
    if let Some(p) = cfg.buildpacks.iter().find_map(|b| b.unreadable.as_ref()) {
        if user.uid != 0 {
            return Err(Unmountable::Not(format!(
                "{} may not be read by others, and the staging user is not its owner",
                p.display()
            )));
        }
    }
    let skipped = {
        let (ws, app, user) = (ws.clone(), plan.app.to_path_buf(), user.clone());
        tokio::task::spawn_blocking(move || ws.fill(&app, &user))
            .await
            .map_err(|e| Unmountable::Failed(Error::Internal(format!("the app copy died: {e}"))))?
            .map_err(Unmountable::Failed)?
    };
    let pid = engine::start_container(&run.docker, container.id())
        .await
        .map_err(cannot_see)?;
    if !ws.is_mounted_in(pid) {
        return Err(Unmountable::Not(
            "the container's app folder is not this host's".into(),
        ));
    }
    Ok(Staging {
        container,
        pid,
        user,
        built: None,
        skipped,
        record: Record::Mounted(ws.describe(&cfg.buildpacks)),
    })
}

/// The container made from an image built with the app and the buildpacks sent in its context.
async fn copied(run: &Run, cfg: &StageConfig, plan: &Plan<'_>, log: &Progress) -> Result<Staging> {
    // The staging user first: the image's copies are given to it.
    let probe = create(run, cfg, plan, plan.stack.image, Vec::new()).await?;
    let user = staging_user(run, cfg, &probe, &plan.stack).await?;
    probe.remove().await?;
    let built = image::build(run, cfg, plan, &user, log).await?;
    let container = create(run, cfg, plan, &built.id, Vec::new()).await?;
    let pid = engine::start_container(&run.docker, container.id()).await?;
    Ok(Staging {
        container,
        pid,
        user,
        skipped: built.skipped.clone(),
        record: Record::Built(built.dockerfile.clone()),
        built: Some(built),
    })
}

async fn create(
    run: &Run,
    cfg: &StageConfig,
    plan: &Plan<'_>,
    image: &str,
    mounts: Vec<bollard::models::Mount>,
) -> Result<Guard<Container>> {
    let sink_dns = SINK_V4.to_string();
    let name = run.name();
    let spec = IdleContainer {
        image,
        name: &name,
        network: plan.network.map(|n| n.name.as_str()),
        dns: plan.network.is_none().then_some(sink_dns.as_str()),
        memory: cfg.memory,
        labels: &run.labels,
        mounts,
    };
    engine::create_idle_container(&run.docker, &spec).await
}

/// The user the phases run as, from the stack's own /etc/passwd and /etc/group (read through the
/// engine from the created container: nothing of it runs).
async fn staging_user(
    run: &Run,
    cfg: &StageConfig,
    container: &Guard<Container>,
    stack: &Stack<'_>,
) -> Result<StagingUser> {
    let read = |path: &'static str| async move {
        let bytes = engine::file_of(&run.docker, container.id(), path).await?;
        Ok::<_, Error>(String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned())
    };
    let resolve = || async {
        let (passwd, group) = tokio::try_join!(read("/etc/passwd"), read("/etc/group"))?;
        // Cloud Native Buildpacks: the build image's CNB_USER_ID:CNB_GROUP_ID when it sets them.
        let cnb_user = cfg
            .cnb
            .as_ref()
            .and_then(|_| crate::staging::cnb::image_user(stack.env));
        let wanted = cfg.user.as_deref().or(cnb_user.as_deref());
        user::resolve(wanted, stack.user, &passwd, &group)
    };
    stack.staging_user.get_or_try_init(resolve).await.cloned()
}
