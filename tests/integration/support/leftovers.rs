//! What a run of airgap-check may leave behind, looked up without airgap-check's own code: the
//! Docker engine is asked through bollard (`Docker::connect_with_defaults`, so DOCKER_HOST is
//! honoured), the kernel through /proc, /sys and /run, the file system through $TMPDIR.
//!
//! Every check is scoped to one run, since tests run in parallel (and other runs may share the
//! engine): its run id, or its process id. Objects that existed before the run started are not
//! the run's, so the pid-scoped checks ignore them (pids are reused: pid_max may be 32768). The
//! one global check is the host namespace's interfaces: an `agc*` interface must never be there,
//! whoever made it (airgap-check creates its veth pairs inside namespaces of its own).

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListNetworksOptionsBuilder,
};
use bollard::Docker;

/// The labels airgap-check puts on what it creates (README: "What a run does", step 9).
pub const LABEL: &str = "io.airgap-check";
pub const LABEL_RUN: &str = "io.airgap-check.run";
pub const LABEL_PID: &str = "io.airgap-check.pid";

/// One runtime and one engine connection for every check of this test binary.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime for the leftover checks")
    })
}

pub fn docker() -> &'static Docker {
    static D: OnceLock<Docker> = OnceLock::new();
    D.get_or_init(|| {
        let _in = runtime().enter();
        Docker::connect_with_defaults().unwrap_or_else(|e| {
            panic!(
                "cannot connect to the Docker engine (DOCKER_HOST={:?}): {e}",
                std::env::var("DOCKER_HOST").ok()
            )
        })
    })
}

/// Run a future against the engine on the shared runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// What is there before a run starts, to tell what the run added.
#[derive(Clone, Debug)]
pub struct Before {
    pub at: SystemTime,
    netns: BTreeSet<String>,
    nsfs: BTreeSet<String>,
}

impl Before {
    pub fn now() -> Before {
        Before {
            // A second of slack: Docker's `created` fields are whole seconds.
            at: SystemTime::now() - Duration::from_secs(1),
            netns: named_netns(),
            nsfs: nsfs_mounts(),
        }
    }
}

/// Containers (any state), images (with intermediate layers) and networks carrying `label`
/// (`key=value`), each as "container ID", "image ID" or "network NAME (ID)". With `since`, only
/// those created at or after it.
pub fn docker_objects(label: &str, since: Option<SystemTime>) -> Vec<String> {
    let filters = HashMap::from([("label", vec![label])]);
    let since_secs = since.map(|t| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64
    });
    let new_enough = |created: Option<i64>| match (since_secs, created) {
        (Some(s), Some(c)) => c >= s,
        _ => true,
    };
    block_on(async {
        let d = docker();
        let cs = d
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .unwrap_or_else(|e| panic!("docker: list containers with {label}: {e}"));
        let is = d
            .list_images(Some(
                ListImagesOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .unwrap_or_else(|e| panic!("docker: list images with {label}: {e}"));
        let ns = d
            .list_networks(Some(
                ListNetworksOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .unwrap_or_else(|e| panic!("docker: list networks with {label}: {e}"));
        let mut left = Vec::new();
        for c in cs.into_iter().filter(|c| new_enough(c.created)) {
            left.push(format!(
                "container {} {:?}",
                c.id.unwrap_or_default(),
                c.names.unwrap_or_default()
            ));
        }
        for i in is.into_iter().filter(|i| new_enough(Some(i.created))) {
            left.push(format!("image {}", i.id));
        }
        for n in ns.into_iter().filter(|n| {
            new_enough(
                n.created
                    .as_deref()
                    .and_then(|c| humantime::parse_rfc3339_weak(c).ok())
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as i64),
            )
        }) {
            left.push(format!(
                "network {} ({})",
                n.name.unwrap_or_default(),
                n.id.unwrap_or_default()
            ));
        }
        left
    })
}

/// Remove the image a run kept (`--keep-image`, tagged `airgap-check-run:<id>`); an error when
/// there is none.
pub fn remove_kept_image(run_id: &str) -> Result<(), String> {
    let tag = format!("airgap-check-run:{run_id}");
    block_on(async {
        let d = docker();
        d.inspect_image(&tag)
            .await
            .map_err(|e| format!("no image {tag}: {e}"))?;
        d.remove_image(
            &tag,
            Some(
                bollard::query_parameters::RemoveImageOptionsBuilder::new()
                    .force(true)
                    .build(),
            ),
            None,
        )
        .await
        .map(drop)
        .map_err(|e| format!("cannot remove {tag}: {e}"))
    })
}

/// Everything the engine holds with this run id's label.
pub fn of_run(run_id: &str) -> Vec<String> {
    docker_objects(&format!("{LABEL_RUN}={run_id}"), None)
}

/// Interfaces whose name starts with `agc` in this process's network namespace (the host's).
pub fn agc_interfaces() -> Vec<String> {
    nix::net::if_::if_nameindex()
        .expect("if_nameindex")
        .iter()
        .map(|i| i.name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("agc"))
        .collect()
}

/// `$TMPDIR/airgap-check-<pid>-*` made at or after `since`.
pub fn temp_dirs(pid: u32, since: Option<SystemTime>) -> Vec<String> {
    let prefix = format!("airgap-check-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .expect("the temporary folder is readable")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| match (since, e.metadata()) {
            (Some(s), Ok(m)) => m
                .created()
                .or_else(|_| m.modified())
                .map_or(true, |t| t >= s),
            _ => true,
        })
        .map(|e| e.path().display().to_string())
        .collect()
}

/// Names under /run/netns (`ip netns add` and the like).
fn named_netns() -> BTreeSet<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Mount points of nsfs bind mounts this process can see, less Docker's own (its containers'
/// namespaces under its exec root, which the engine is asked about instead): the default
/// engine's, and those of any other engine on the machine (`<exec root>/netns/<id>`, e.g. a side
/// engine another worktree's tests run under /run/docker26-side/exec), which come and go with
/// their containers whatever this run does.
fn nsfs_mounts() -> BTreeSet<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("/proc/self/mountinfo");
    info.lines()
        .filter_map(|l| {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let point = left.split_whitespace().nth(4)?;
            (fstype == "nsfs").then(|| point.to_string())
        })
        // A Docker engine keeps its containers' namespaces at EXEC-ROOT/netns/ (/run/docker/netns
        // for the machine's engine, /run/docker26-side/exec/netns for the second one): the
        // engine's, for containers of other tests too. airgap-check mounts no namespace at all.
        .filter(|p| !(p.contains("docker") && p.contains("/netns/")))
        .collect()
}

/// Everything a run of process `pid` (run id `run_id`, when it got that far) left behind; empty
/// when nothing. Never skips: without a run id it still asks the engine for what carries the
/// process's pid label.
pub fn find(pid: u32, run_id: Option<&str>, before: &Before) -> Vec<String> {
    let mut left = Vec::new();
    if let Some(id) = run_id {
        left.extend(
            of_run(id)
                .into_iter()
                .map(|o| format!("{o} ({LABEL_RUN}={id})")),
        );
    }
    for o in docker_objects(&format!("{LABEL_PID}={pid}"), Some(before.at)) {
        let o = format!("{o} ({LABEL_PID}={pid})");
        if !left
            .iter()
            .any(|l| l.split(" (").next() == o.split(" (").next())
        {
            left.push(o);
        }
    }
    for n in named_netns().difference(&before.netns) {
        left.push(format!("network namespace /run/netns/{n}"));
    }
    for m in nsfs_mounts().difference(&before.nsfs) {
        left.push(format!("nsfs mount on {m}"));
    }
    for i in agc_interfaces() {
        left.push(format!("interface {i} in the host namespace"));
    }
    for d in temp_dirs(pid, Some(before.at)) {
        left.push(format!("temporary folder {d}"));
    }
    left
}
