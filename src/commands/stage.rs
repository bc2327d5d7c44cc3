//! The main job: stage an app with buildpacks in a sealed network and judge every packet.
//!
//! validate inputs (exit 2) → preflight (exit 3) → build the staging image → start an idle
//! container with no network → seal it into a sink namespace → DNS sinkhole → arm the capture →
//! canary → lifecycle phases (docker exec) → stop → flows → verdicts → reports. Whatever happens
//! (success, failure, timeout, error, Ctrl-C, SIGTERM), what was created is removed.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::capture::sandbox::{self, Sandbox, CONTAINER_V4, CONTAINER_V6, SINK_V4, SINK_V6};
use crate::capture::sinkhole::{self, DnsLog, CANARY_PORT};
use crate::capture::{Canary, LiveCapture};
use crate::cli::{parse_duration, parse_env, StageArgs};
use crate::error::{Error, Result};
use crate::report;
use crate::staging::build_context::{self as context, Buildpack};
use crate::staging::engine as docker;
use crate::staging::lifecycle::{self, PhaseSpec};
use crate::verdict::analysis::{
    attribute_phases, decoding_problems, dns_queries, judge_named, local_notes, names_of,
    naming_notes, verdict_with_staging, Analysis, CaptureHealth, PhaseRecord, StageInfo,
};
use crate::verdict::policy::Allowlist;

/// Lines of each phase's output kept for the reports.
const TAIL_LINES: usize = 40;
/// How long processes left running after the last phase are watched before they are killed.
const LINGER: Duration = Duration::from_secs(10);

/// A staging run's validated configuration.
pub struct StageConfig {
    pub app: PathBuf,
    pub buildpacks: Vec<Buildpack>,
    pub phases: Vec<PhaseSpec>,
    pub stack_image: String,
    pub stack: String,
    pub allowlist: Allowlist,
    pub json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub pcap: Option<PathBuf>,
    pub suggest_allowlist: Option<PathBuf>,
    pub timeout: Duration,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub keep_image: bool,
    pub verbose: bool,
    pub network: Network,
    pub filter: Option<String>,
    /// The container's memory limit, bytes.
    pub memory: u64,
    /// Holds extracted zips and the build context; removed on drop.
    pub scratch: tempfile::TempDir,
}

impl StageConfig {
    /// The memory limit as the user would write it: "1g", "64m", "7000k".
    pub fn memory_label(&self) -> String {
        let m = self.memory;
        if m % (1 << 30) == 0 {
            format!("{}g", m >> 30)
        } else if m % (1 << 20) == 0 {
            format!("{}m", m >> 20)
        } else {
            format!("{}k", m >> 10)
        }
    }
}

/// Where the phases run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Network {
    /// airgap-check's own sealed network (the default).
    Sealed,
    /// Observe: a Docker bridge network created for this run.
    Bridge,
    /// Observe: an existing Docker network, by name.
    Existing(String),
}

impl Network {
    pub fn parse(s: &str) -> Result<Network> {
        match s {
            "sealed" => Ok(Network::Sealed),
            "bridge" => Ok(Network::Bridge),
            "" | "none" | "host" => Err(bad_arg(
                "--network",
                s,
                "expected sealed, bridge, or the name of an existing Docker network (host and none cannot be observed)",
            )),
            n if n.len() <= 128
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) =>
            {
                Ok(Network::Existing(n.to_string()))
            }
            _ => Err(bad_arg(
                "--network",
                s,
                "expected sealed, bridge, or a Docker network name (letters, digits, . _ -)",
            )),
        }
    }
}

fn bad_arg(option: &'static str, value: &str, expected: &str) -> Error {
    Error::BadArgument {
        option,
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// Check every input before anything is created on the host (exit 2 on any problem).
pub fn validate(a: &StageArgs) -> Result<StageConfig> {
    let app = a.app.clone().ok_or_else(|| {
        bad_arg(
            "--app",
            "",
            "expected the app directory to stage (see --help)",
        )
    })?;
    match std::fs::metadata(&app) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::BadInput {
                path: app,
                reason: "not a directory: expected the app's source folder".into(),
            })
        }
        Err(e) => {
            return Err(Error::Unreadable {
                path: app,
                reason: e.to_string(),
            })
        }
    }
    std::fs::read_dir(&app).map_err(|e| Error::Unreadable {
        path: app.clone(),
        reason: e.to_string(),
    })?;
    if a.buildpacks.is_empty() {
        return Err(bad_arg(
            "--buildpack",
            "",
            "expected at least one buildpack directory or zip",
        ));
    }
    let timeout = parse_duration(&a.timeout)?;
    let network = Network::parse(&a.network)?;
    if let Some(f) = &a.filter {
        crate::capture::check_filter(f)?;
    }
    let env = a
        .env
        .iter()
        .map(|e| parse_env(e))
        .collect::<Result<Vec<_>>>()?;
    if let Some(u) = &a.user {
        if !context::valid_user(u) {
            return Err(bad_arg("--user", u, "expected a user name or uid[:gid]"));
        }
    }
    if !context::valid_image_ref(&a.stack_image) {
        return Err(bad_arg(
            "--stack-image",
            &a.stack_image,
            "expected an image reference such as cloudfoundry/cflinuxfs4",
        ));
    }
    let allowlist = match &a.allowlist {
        Some(p) => Allowlist::load(p)?,
        None => Allowlist::default_list(),
    };
    for out in [&a.json, &a.junit, &a.pcap, &a.suggest_allowlist]
        .into_iter()
        .flatten()
    {
        report::check_writable(out)?;
    }
    let scratch = tempfile::Builder::new()
        .prefix(&format!("airgap-check-{}-", std::process::id()))
        .tempdir()
        .map_err(|e| Error::Write {
            path: std::env::temp_dir(),
            reason: e.to_string(),
        })?;
    let buildpacks = a
        .buildpacks
        .iter()
        .enumerate()
        .map(|(i, p)| context::load_buildpack(p, scratch.path(), i))
        .collect::<Result<Vec<_>>>()?;
    // Every directory listable and every file readable before anything is created (exit 2 naming
    // the entry otherwise); FIFOs, sockets and devices are skipped later, with a warning each.
    context::check_tree(&app)?;
    for bp in &buildpacks {
        context::check_tree(&bp.dir)?;
    }
    let scripts: Vec<_> = buildpacks.iter().map(|b| b.scripts).collect();
    let phases = lifecycle::plan(&scripts).map_err(|(i, reason)| Error::BadInput {
        path: buildpacks[i].source.clone(),
        reason: format!("buildpack {i} {reason}"),
    })?;
    let stack = a
        .stack
        .clone()
        .unwrap_or_else(|| stack_name(&a.stack_image));
    Ok(StageConfig {
        app,
        buildpacks,
        phases,
        stack_image: a.stack_image.clone(),
        stack,
        allowlist,
        json: a.json.clone(),
        junit: a.junit.clone(),
        pcap: a.pcap.clone(),
        suggest_allowlist: a.suggest_allowlist.clone(),
        timeout,
        env,
        user: a.user.clone(),
        keep_image: a.keep_image,
        verbose: a.verbose,
        network,
        filter: a.filter.clone(),
        memory: crate::cli::parse_memory(&a.memory)?,
        scratch,
    })
}

/// "cloudfoundry/cflinuxfs4:1.2" → "cflinuxfs4".
pub fn stack_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last).to_string()
}

/// The capabilities the sealed run needs, checked before anything is created.
pub fn preflight_privileges() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    let missing: Vec<&str> = [
        (21, "CAP_SYS_ADMIN (to create and enter network namespaces)"),
        (
            12,
            "CAP_NET_ADMIN (to create the veth pair, addresses and routes)",
        ),
        (13, "CAP_NET_RAW (to capture packets)"),
    ]
    .iter()
    .filter(|(bit, _)| eff & (1u64 << bit) == 0)
    .map(|(_, what)| *what)
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Privilege {
            what: missing.join(", "),
        })
    }
}

/// What must be removed at the end, whatever happens.
#[derive(Default)]
struct Leftovers {
    docker: Option<bollard::Docker>,
    run_id: Option<String>,
    /// Whether the image build finished (then no layer can appear after cleanup).
    built: bool,
    container: Option<String>,
    /// A network created for this run (observe mode).
    network: Option<String>,
    image: Option<String>,
    keep_image: bool,
}

impl Leftovers {
    async fn clean(&mut self, log: &Progress) {
        let Some(d) = self.docker.clone() else { return };
        // What could not be removed, and the first reason: one line for the reader, not one per
        // object (an engine that is gone fails them all for the same reason).
        let mut left: Vec<String> = Vec::new();
        let mut why: Option<String> = None;
        let mut failed = |what: String, e: Error| {
            left.push(what);
            why.get_or_insert(e.to_string());
        };
        if let Some(c) = self.container.take() {
            if let Err(e) = docker::remove_container(&d, &c).await {
                failed(format!("container {}", short(&c)), e);
            }
        }
        if let Some(n) = self.network.take() {
            if let Err(e) = docker::remove_network(&d, &n).await {
                failed(format!("network {n}"), e);
            }
        }
        if let Some(i) = self.image.take() {
            if self.keep_image {
                log.line(&format!("kept image {i}"));
            } else if let Err(e) = docker::remove_image(&d, &i).await {
                failed(format!("image {}", short(&i)), e);
            }
        }
        if !left.is_empty() {
            log.warn(&format!(
                "could not remove {} ({}); run `airgap-check prune` once the Docker engine answers",
                left.join(", "),
                why.unwrap_or_default()
            ));
            return;
        }
        // A build cut short (an error, a signal) leaves untagged layers: they carry the run label.
        // The engine may still be committing the step it was on, so look again for a moment.
        if let (Some(run), false) = (self.run_id.take(), self.keep_image) {
            let rounds = if self.built { 1 } else { 6 };
            for round in 0..rounds {
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                for i in docker::images_of_run(&d, &run).await.unwrap_or_default() {
                    let _ = docker::remove_image(&d, &i).await;
                }
            }
        }
    }
}

/// Progress lines on stderr: plain in CI, a live line on a terminal, every detail with -v.
pub(crate) struct Progress {
    verbose: bool,
    bar: Option<indicatif::ProgressBar>,
    start: Instant,
}

impl Progress {
    pub(crate) fn new(verbose: bool) -> Progress {
        let bar = (std::io::stderr().is_terminal() && !verbose).then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress {
            verbose,
            bar,
            start: Instant::now(),
        }
    }

    pub(crate) fn line(&self, msg: &str) {
        let msg = format!("[{:>6.1}s] {msg}", self.start.elapsed().as_secs_f64());
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    pub(crate) fn warn(&self, msg: &str) {
        self.line(&format!("warning: {msg}"));
    }

    /// Transient detail: the spinner's message on a terminal, a line with -v, nothing otherwise.
    fn detail(&self, msg: &str) {
        if self.verbose {
            eprintln!("  {msg}");
        } else if let Some(b) = &self.bar {
            b.set_message(msg.chars().take(100).collect::<String>());
        }
    }

    pub(crate) fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

pub(crate) fn run_id() -> String {
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

/// Run the staging job; the `Ok` value is the exit code.
pub fn run(args: &StageArgs) -> Result<i32> {
    let cfg = validate(args)?;
    preflight_privileges()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Docker {
            op: "runtime",
            reason: e.to_string(),
        })?;
    let progress = Progress::new(cfg.verbose);
    let result = rt.block_on(async {
        let leftovers = Arc::new(tokio::sync::Mutex::new(Leftovers {
            keep_image: cfg.keep_image,
            ..Leftovers::default()
        }));
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| Error::Docker {
                op: "signals",
                reason: e.to_string(),
            })?;
        // A panic inside the run must not skip the cleanup below: it becomes an error.
        let run = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(stage(
            &cfg,
            leftovers.clone(),
            &progress,
        )));
        let outcome = tokio::select! {
            r = run => r.unwrap_or_else(|_| Err(Error::Docker {
                op: "run",
                reason: "airgap-check hit an internal error (a bug: please report it); what it created was removed".into(),
            })),
            _ = tokio::signal::ctrl_c() => Err(Error::Interrupted { signal: "SIGINT" }),
            _ = sigterm.recv() => Err(Error::Interrupted { signal: "SIGTERM" }),
        };
        if matches!(outcome, Err(Error::Interrupted { .. })) {
            progress.line("interrupted: removing what this run created");
        }
        leftovers.lock().await.clean(&progress).await;
        outcome
    });
    progress.done();
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

async fn stage(
    cfg: &StageConfig,
    leftovers: Arc<tokio::sync::Mutex<Leftovers>>,
    log: &Progress,
) -> Result<i32> {
    let id = run_id();
    let labels = docker::labels(&id);
    let d = docker::connect().await?;
    {
        let mut l = leftovers.lock().await;
        l.docker = Some(d.clone());
        l.run_id = Some(id.clone());
    }

    log.line(&format!(
        "run {id}: stack image {} (CF_STACK={})",
        cfg.stack_image, cfg.stack
    ));
    if let Network::Existing(name) = &cfg.network {
        if docker::network_driver(&d, name).await?.is_none() {
            return Err(bad_arg(
                "--network",
                name,
                "no Docker network has this name: expected sealed, bridge, or an existing network (docker network ls)",
            ));
        }
    }
    let stack_user = docker::ensure_image(&d, &cfg.stack_image).await?;

    // The build context: Dockerfile, app, buildpacks.
    let label_pairs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let dockerfile = context::dockerfile(
        &cfg.stack_image,
        cfg.user.as_deref(),
        stack_user.as_deref(),
        cfg.buildpacks.len(),
        &label_pairs,
    );
    let tar_path = cfg.scratch.path().join("context.tar");
    let skipped = {
        let (tar_path, app, bps) = (tar_path.clone(), cfg.app.clone(), cfg.buildpacks.clone());
        tokio::task::spawn_blocking(move || {
            context::write_context(&tar_path, &dockerfile, &app, &bps)
        })
        .await
        .map_err(|e| Error::Docker {
            op: "build context",
            reason: e.to_string(),
        })??
    };
    for s in &skipped {
        log.warn(&s.describe());
    }
    let tag = format!("airgap-check-run:{id}");
    log.line("building the staging image (no network during the build)");
    let t = Instant::now();
    let image = docker::build_image(&d, &tar_path, &tag, None, false, |l| log.detail(l)).await;
    // A failed build may still have tagged nothing; a successful one is ours to remove.
    let image = image?;
    {
        let mut l = leftovers.lock().await;
        l.image = Some(image.clone());
        l.built = true;
    }
    log.line(&format!(
        "built {} in {:.1}s",
        short(&image),
        t.elapsed().as_secs_f64()
    ));

    // Observe mode: the network the phases run on (a new bridge for this run, or the user's).
    let network = match &cfg.network {
        Network::Sealed => None,
        Network::Bridge => {
            let name = format!("airgap-check-{id}");
            docker::create_network(&d, &name, &labels).await?;
            leftovers.lock().await.network = Some(name.clone());
            Some(name)
        }
        Network::Existing(name) => Some(name.clone()),
    };

    let sink_dns = SINK_V4.to_string();
    let container = docker::create_idle_container(
        &d,
        &image,
        &format!("airgap-check-{id}"),
        network.as_deref(),
        network.is_none().then_some(sink_dns.as_str()),
        cfg.memory,
        &labels,
    )
    .await?;
    leftovers.lock().await.container = Some(container.clone());
    let pid = docker::start_container(&d, &container).await?;
    // From the container's root through /proc (symlinks resolved inside it); an exec otherwise.
    let user = match read_in_root(pid, "tmp/.airgap-check-user") {
        Some(u) => u,
        None => docker::read_file(&d, &container, "/tmp/.airgap-check-user").await?,
    };

    let pcap_tmp = cfg.pcap.as_deref().map(report::pcap_tempfile).transpose()?;
    let save = pcap_tmp.as_ref().map(|t| t.path().to_path_buf());
    let payload = format!("airgap-check canary {id}").into_bytes();
    let dns = Arc::new(Mutex::new(DnsLog::default()));
    let sensor = match &network {
        None => arm_sealed(&id, pid, &payload, save, cfg.filter.as_deref(), &dns, log).await?,
        Some(net) => arm_observe(net, pid, &payload, save, cfg.filter.as_deref(), log).await?,
    };
    let tcp_sink_error = sensor.tcp_sink_error.clone();

    // The canary: proof, on this run, that the capture sees what the container sends.
    let (v4, v6) = send_canary(
        &sensor.container_ns,
        &sensor.canary_to,
        &sensor.capture,
        &payload,
    )
    .await?;
    let wanted = |family_v4: bool| sensor.canary_to.iter().any(|t| t.is_ipv4() == family_v4);
    let canary_ok = !sensor.canary_to.is_empty() && (v4 || !wanted(true)) && (v6 || !wanted(false));
    let canary_problem = sensor.canary_problem(v4, v6);
    // Packets the container's interface drops on the way out never reach the capture: counted.
    sensor.capture.count_sent_from_now();
    let tx_before = crate::capture::point::tx_counters_in(&sensor.container_ns);
    if canary_ok {
        log.line(&format!(
            "canary seen ({}): the capture sees the container",
            sensor.canary_families()
        ));
    } else {
        log.warn(&format!(
            "canary NOT seen ({}): the capture cannot be trusted; not staging",
            canary_problem
        ));
    }

    // The lifecycle.
    let mut records = Vec::new();
    let mut staging_error = None;
    if canary_ok {
        let deadline = tokio::time::Instant::now() + cfg.timeout;
        let env = phase_env(cfg);
        // On GitHub Actions a log line starting with "::" is a workflow command: the buildpack's
        // own output (printed with -v) must not be able to issue one.
        let fence =
            (cfg.verbose && report::in_github_actions()).then(|| format!("airgap-check-{id}"));
        if let Some(f) = &fence {
            eprintln!("::stop-commands::{f}");
        }
        for spec in &cfg.phases {
            let bp = &cfg.buildpacks[spec.buildpack];
            log.line(&format!(
                "{} (buildpack {}: {})",
                spec.name,
                spec.buildpack,
                bp.name()
            ));
            let started = now_micros();
            let ooms_before = docker::oom_kills(pid);
            let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES);
            let name = spec.name;
            let out = docker::exec(&d, &container, &spec.argv, &user, &env, deadline, |line| {
                if cfg.verbose {
                    eprintln!("  [{name}] {line}");
                } else {
                    log.detail(&format!("[{name}] {line}"));
                }
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.chars().take(2000).collect::<String>());
            })
            .await?;
            let rec = PhaseRecord {
                name: spec.name.to_string(),
                buildpack: spec.buildpack,
                buildpack_name: bp.name(),
                started,
                ended: now_micros(),
                exit_code: out.exit_code,
                timed_out: out.exit_code.is_none(),
                must_succeed: spec.must_succeed,
                oom_killed: matches!(
                    (ooms_before, docker::oom_kills(pid)),
                    (Some(a), Some(b)) if b > a
                ),
                output_tail: tail.into_iter().collect(),
            };
            let secs = (rec.ended - rec.started) as f64 / 1e6;
            match (rec.exit_code, rec.timed_out) {
                (_, true) => log.warn(&format!(
                    "{} timed out (--timeout {:?})",
                    rec.label(),
                    cfg.timeout
                )),
                (Some(c), _) if rec.oom_killed => log.warn(&format!(
                    "{} exit {c} in {secs:.1}s: the kernel killed a process of it for lack of memory (--memory {})",
                    rec.label(),
                    cfg.memory_label()
                )),
                (Some(0), _) => log.line(&format!("  exit 0 in {secs:.1}s")),
                (Some(c), _) => log.line(&format!("  exit {c} in {secs:.1}s")),
                (None, _) => {}
            }
            let failed = rec.failed();
            if failed {
                staging_error = Some(if rec.timed_out {
                    format!(
                        "staging timed out after {:?} in {}",
                        cfg.timeout,
                        rec.label()
                    )
                } else if rec.oom_killed {
                    format!(
                        "{} exited {} after the kernel killed a process of it for lack of memory (the container's limit, --memory, is {})",
                        rec.label(),
                        rec.exit_code.unwrap_or(-1),
                        cfg.memory_label()
                    )
                } else {
                    format!("{} exited {}", rec.label(), rec.exit_code.unwrap_or(-1))
                });
            }
            records.push(rec);
            if failed {
                break;
            }
        }
    }

    if let Some(f) =
        (cfg.verbose && report::in_github_actions()).then(|| format!("airgap-check-{id}"))
    {
        eprintln!("::{f}::");
    }

    // Processes the phases left behind (a daemon, a timed-out phase) are watched until they end,
    // for at most LINGER; then every process of the container is killed while the capture still
    // runs, so nothing it does can happen unseen.
    let mut leftover = Vec::new();
    if canary_ok {
        let until = Instant::now() + LINGER;
        loop {
            leftover = docker::leftover_processes(&d, &container, pid)
                .await
                .unwrap_or_default();
            if leftover.is_empty() || staging_error.is_some() || Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !leftover.is_empty() && staging_error.is_none() {
            log.warn(&format!(
                "still running {} s after the last phase, killed: {}",
                LINGER.as_secs(),
                leftover.join("; ")
            ));
        }
        if network.is_some() {
            // Observe mode: kill them by their host pids and keep the idle first process, and
            // with it the veth the capture is on; the whole container only if that fails.
            for _ in 0..20 {
                let now = docker::leftover_processes(&d, &container, pid)
                    .await
                    .unwrap_or_default();
                if now.is_empty() {
                    break;
                }
                docker::kill_host_pids(pid, &now);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if !docker::leftover_processes(&d, &container, pid)
                .await
                .unwrap_or_default()
                .is_empty()
            {
                docker::kill_container(&d, &container).await?;
            }
        } else {
            docker::kill_container(&d, &container).await?;
            docker::wait_stopped(&d, &container, Duration::from_secs(5)).await;
        }
    }
    // No process is left to start anything new; what a dead one queued (a TCP FIN, a
    // retransmission) belongs to flows already seen. A moment for those, then stop.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The container's own transmit counters, read before the capture drains: everything they
    // count was sent before, so a capture that sees it all has seen at least as much.
    let tx = tx_before
        .zip(crate::capture::point::tx_counters_in(&sensor.container_ns))
        .map(|(a, b)| b.since(a));
    sensor.capture.count_sent_until_now();
    let capture = sensor.capture;
    let live = tokio::task::spawn_blocking(move || capture.finish())
        .await
        .map_err(|e| Error::Capture {
            iface: "sink".into(),
            reason: e.to_string(),
        })??;
    let (point, local) = (sensor.point, sensor.local);
    stop_sealed(sensor.sealed);
    let mut live = live;
    let tx_dropped = tx.map(|t| t.dropped);
    let unseen = crate::capture::point::unseen_by(tx, &live, sensor.host_side);
    live.dropped = live.dropped.map(|d| d + tx_dropped.unwrap_or(0) + unseen);
    if tx.is_none() {
        live.error
            .get_or_insert("the container interface's counters could not be read".into());
    }

    let (flows, counts, dns_seen) = live.table.finish();
    let (mut flows, local) = judge_with_names(flows, &cfg.allowlist, &local, &dns, &dns_seen);
    attribute_phases(&mut flows, &records);
    let queries = dns_queries(&dns_seen, &records);

    let mut notes: Vec<String> = skipped.iter().map(context::Skipped::describe).collect();
    if let Some(e) = &staging_error {
        notes.push(format!("staging failed: {e}"));
    }
    if unseen > 0 {
        notes.push(crate::capture::point::unseen_note(unseen));
    }
    if !canary_ok {
        notes.push(format!(
            "the canary was not seen ({}): the capture did not see the container, so nothing was staged",
            canary_problem
        ));
    }
    if let Some(e) = &live.error {
        notes.push(format!("the capture failed: {e}"));
    }
    notes.extend(crate::report::pcap_save_note(
        cfg.pcap.as_deref(),
        &live.save_error,
    ));
    if let Some(e) = &tcp_sink_error {
        notes.push(format!(
            "TCP connections were refused rather than accepted ({e}): attempts are judged, but their TLS SNI and HTTP Host are unknown"
        ));
    }
    let unwatched = !leftover.is_empty() && staging_error.is_none();
    if unwatched {
        notes.push(format!(
            "{} process(es) still ran {} s after the last phase and were killed, so what they would have done next is unknown: {}",
            leftover.len(),
            LINGER.as_secs(),
            leftover.join("; ")
        ));
    }
    if counts.non_ip > 0 {
        notes.push(format!(
            "{} frame(s) of a protocol other than IP came from the container (a raw socket?) and could not be judged",
            counts.non_ip
        ));
    }
    notes.extend(local_notes(&flows, &local, true));
    notes.extend(naming_notes(&counts, &dns_seen));
    notes.extend(decoding_problems(&counts));
    match live.dropped {
        Some(0) => {}
        Some(n) => notes.push(format!(
            "the capture dropped {n} packets{}: what they held is unknown",
            match tx_dropped {
                Some(t) if t > 0 => format!(
                    " ({t} of them dropped by the container's interface before the capture)"
                ),
                _ => String::new(),
            }
        )),
        None => notes.push("the capture's drop counters could not be read".into()),
    }
    if let Some(f) = &cfg.filter {
        notes.push(format!(
            "only packets that pass the filter {f:?} were captured and judged"
        ));
    }
    let health = CaptureHealth {
        link_type: live.link_type.clone(),
        point,
        filter: cfg.filter.clone(),
        dropped: live.dropped,
        canary_seen: Some(canary_ok),
        cut_short: None,
        first_ts: live.first_ts.or(records.first().map(|r| r.started)),
        error: live.error.clone().or_else(|| {
            live.dropped
                .is_none()
                .then(|| "drop counters unreadable".into())
        }),
    };
    let mut verdict = verdict_with_staging(&flows, &health, staging_error.is_some());
    if verdict == crate::verdict::Verdict::Pass
        && (!decoding_problems(&counts).is_empty()
            || unwatched
            || counts.non_ip > 0
            || live.save_error.is_some())
    {
        verdict = crate::verdict::Verdict::Inconclusive;
    }
    let analysis = Analysis {
        mode: "stage",
        input: cfg.app.display().to_string(),
        allowlist: cfg.allowlist.source.clone(),
        local,
        flows,
        counts,
        capture: health,
        verdict,
        notes,
        phases: records,
        stage: Some(StageInfo {
            run_id: id.clone(),
            stack_image: cfg.stack_image.clone(),
            stack: cfg.stack.clone(),
            buildpacks: cfg
                .buildpacks
                .iter()
                .map(|b| b.source.display().to_string())
                .collect(),
            user: if user.is_empty() {
                "root".into()
            } else {
                user.clone()
            },
            network: network.clone().unwrap_or_else(|| "sealed".into()),
        }),
        dns_queries: queries,
    };

    log.done();
    // A capture file that could not be written whole is not kept (dropping it removes it).
    let keep = cfg
        .pcap
        .as_deref()
        .zip(pcap_tmp.filter(|_| live.save_error.is_none()));
    report::deliver(
        &analysis,
        &cfg.allowlist,
        cfg.json.as_deref(),
        cfg.junit.as_deref(),
        cfg.suggest_allowlist.as_deref(),
        keep,
    )
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

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

/// The staging environment the lifecycle gives every phase, plus the user's --env.
fn phase_env(cfg: &StageConfig) -> Vec<String> {
    let mut env = vec![
        format!("CF_STACK={}", cfg.stack),
        "VCAP_APPLICATION={\"application_name\":\"app\",\"name\":\"app\",\"space_name\":\"airgap-check\",\"limits\":{\"mem\":1024,\"disk\":4096}}".to_string(),
        "VCAP_SERVICES={}".to_string(),
        format!("MEMORY_LIMIT={}m", cfg.memory >> 20),
        "CF_INSTANCE_INDEX=0".to_string(),
    ];
    env.extend(cfg.env.iter().map(|(k, v)| format!("{k}={v}")));
    env
}

/// Judge with the names the capture holds (SNI, Host, DNS answers: the sinkhole's answers cross the
/// veth too) and, should a DNS exchange have been missed, the names the sinkhole handed out.
fn judge_with_names(
    flows: Vec<crate::flows::Flow>,
    allowlist: &Allowlist,
    local: &[ipnet::IpNet],
    sinkhole: &Mutex<DnsLog>,
    seen: &crate::flows::DnsSeen,
) -> (Vec<crate::verdict::analysis::Judged>, Vec<IpAddr>) {
    let log = sinkhole.lock().map(|l| l.names.clone()).unwrap_or_default();
    let names = |flow: &crate::flows::Flow, addr: IpAddr| -> Vec<String> {
        let mut n = names_of(flow, addr, seen);
        for (name, l) in &log {
            let answered = l.v4.map(IpAddr::V4) == Some(addr) || l.v6.map(IpAddr::V6) == Some(addr);
            if answered && !n.contains(name) {
                n.push(name.clone());
            }
        }
        n
    };
    judge_named(flows, allowlist, local, &names)
}

/// Send the canary from inside the container's namespace to each target until the capture has seen
/// it for every family targeted, for at most 5 seconds; what was seen, per family.
pub(crate) async fn send_canary(
    ns: &std::fs::File,
    targets: &[SocketAddr],
    capture: &LiveCapture,
    payload: &[u8],
) -> Result<(bool, bool)> {
    if targets.is_empty() {
        return Ok((false, false));
    }
    let need_v4 = targets.iter().any(|t| t.is_ipv4());
    let need_v6 = targets.iter().any(|t| t.is_ipv6());
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let (ns2, p, to) = (ns.try_clone().ok(), payload.to_vec(), targets.to_vec());
        let sent = tokio::task::spawn_blocking(move || match ns2 {
            Some(ns2) => crate::capture::point::send_from(&ns2, &to, &p),
            None => Ok(()),
        })
        .await;
        if let Ok(Err(e)) = sent {
            return Err(e.into());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        let seen = capture.canary_seen();
        if ((seen.0 || !need_v4) && (seen.1 || !need_v6)) || Instant::now() >= until {
            return Ok(seen);
        }
    }
}

/// The capture and what proves it: a sealed sandbox, or a capture point on a real network.
struct Sensor {
    capture: LiveCapture,
    /// The container's network namespace: canaries are sent from there.
    container_ns: std::fs::File,
    /// Where the canary goes (empty: no canary could be sent, see `no_canary`).
    canary_to: Vec<SocketAddr>,
    no_canary: Option<String>,
    /// The container's own addresses, for the judge.
    local: Vec<ipnet::IpNet>,
    /// Where the capture runs, for the reports.
    point: String,
    /// The capture is outside the container's namespace (the sink, or a host-side veth).
    host_side: bool,
    tcp_sink_error: Option<String>,
    /// Sealed runs: the sandbox and the sinkhole's stop switch, kept until the capture is done.
    sealed: Option<(Sandbox, tokio::sync::oneshot::Sender<()>)>,
}

impl Sensor {
    fn canary_families(&self) -> &'static str {
        match (
            self.canary_to.iter().any(|t| t.is_ipv4()),
            self.canary_to.iter().any(|t| t.is_ipv6()),
        ) {
            (true, true) => "IPv4 and IPv6",
            (true, false) => "IPv4",
            _ => "IPv6",
        }
    }

    fn canary_problem(&self, v4: bool, v6: bool) -> String {
        match &self.no_canary {
            Some(why) => why.clone(),
            None => self
                .canary_to
                .iter()
                .map(|t| {
                    let seen = if t.is_ipv4() { v4 } else { v6 };
                    format!("to {t}: {}", if seen { "seen" } else { "not seen" })
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Stop the sinkhole and drop the sandbox (the kernel removes the namespace and the veth).
fn stop_sealed(sealed: Option<(Sandbox, tokio::sync::oneshot::Sender<()>)>) {
    if let Some((sandbox, stop_tx)) = sealed {
        let _ = stop_tx.send(());
        drop(sandbox);
    }
}

fn capture_err(iface: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Capture {
        iface: iface.to_string(),
        reason: e.to_string(),
    }
}

/// Seal the container into a sink namespace, start the sinkhole there and arm the capture on the
/// sink's end of the veth.
async fn arm_sealed(
    id: &str,
    pid: u32,
    payload: &[u8],
    save: Option<PathBuf>,
    filter: Option<&str>,
    dns: &Arc<Mutex<DnsLog>>,
    log: &Progress,
) -> Result<Sensor> {
    // Seal: the container's only interface leads into the sink.
    let tag8: String = id.chars().take(8).collect();
    let sandbox = tokio::task::spawn_blocking(move || Sandbox::seal(pid, &tag8))
        .await
        .map_err(|e| Error::Docker {
            op: "seal",
            reason: e.to_string(),
        })??;
    log.line(&format!(
        "sealed: container {CONTAINER_V4} / {CONTAINER_V6} → sink {SINK_V4} / {SINK_V6}, no route out"
    ));
    if let Some(e) = &sandbox.tcp_sink_error {
        log.warn(&format!(
            "TCP connections will be refused, not accepted, so their first bytes (TLS SNI, HTTP Host) cannot name them: {e}"
        ));
    }

    // The sinkhole: DNS and the canary's discard port, inside the sink.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    {
        let sink = sandbox
            .sink
            .try_clone()
            .map_err(|e| sandbox::SandboxError {
                step: "sinkhole",
                reason: e.to_string(),
            })?;
        let dns = dns.clone();
        std::thread::Builder::new()
            .name("sinkhole".into())
            .spawn(move || {
                if let Err(e) = sandbox::enter_netns(&sink) {
                    let _ = ready_tx.send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
                drop(sink);
                sinkhole::run(dns, ready_tx, stop_rx);
            })
            .map_err(|e| sandbox::SandboxError {
                step: "sinkhole",
                reason: e.to_string(),
            })?;
    }
    tokio::task::spawn_blocking(move || ready_rx.recv())
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_else(|| Err(std::io::Error::other("the sinkhole thread ended")))
        .map_err(|e| sandbox::SandboxError {
            step: "sinkhole",
            reason: e.to_string(),
        })?;

    // The capture, armed before anything of the buildpack runs.
    let canary = Canary {
        payload: payload.to_vec(),
        paths: vec![
            (IpAddr::V4(CONTAINER_V4), IpAddr::V4(SINK_V4)),
            (IpAddr::V6(CONTAINER_V6), IpAddr::V6(SINK_V6)),
        ],
    };
    let capture = LiveCapture::start(
        Some(
            sandbox
                .sink
                .try_clone()
                .map_err(capture_err(&sandbox.sink_if))?,
        ),
        &sandbox.sink_if,
        Some(canary),
        save,
        filter,
    )?;
    log.line(&format!("capture armed on {}", sandbox.sink_if));
    Ok(Sensor {
        capture,
        container_ns: sandbox
            .container
            .try_clone()
            .map_err(capture_err(&sandbox.sink_if))?,
        canary_to: vec![
            SocketAddr::from((SINK_V4, CANARY_PORT)),
            SocketAddr::from((SINK_V6, CANARY_PORT)),
        ],
        no_canary: None,
        local: vec![
            IpAddr::V4(CONTAINER_V4).into(),
            IpAddr::V6(CONTAINER_V6).into(),
        ],
        point: format!(
            "sink end {} of the sealed container's veth (outside the container)",
            sandbox.sink_if
        ),
        host_side: true,
        tcp_sink_error: sandbox.tcp_sink_error.clone(),
        sealed: Some((sandbox, stop_tx)),
    })
}

/// Observe mode: find where the container's packets can be captured on its real network, arm the
/// capture there, and aim the canary at the network's gateway when this host holds it.
async fn arm_observe(
    network: &str,
    pid: u32,
    payload: &[u8],
    save: Option<PathBuf>,
    filter: Option<&str>,
    log: &Progress,
) -> Result<Sensor> {
    let (point, ns, local, gateway) = tokio::task::spawn_blocking(move || {
        let point = crate::capture::point::capture_point(pid)?;
        let ns = sandbox::netns_of_pid(pid)?;
        let local = crate::capture::point::addresses_in(&ns)?;
        Ok::<_, Error>((
            point,
            ns,
            local,
            crate::capture::point::default_gateway(pid),
        ))
    })
    .await
    .map_err(|e| Error::Docker {
        op: "observe",
        reason: e.to_string(),
    })??;
    let (canary, canary_to, no_canary) = canary_for(&ns, gateway, payload)?;
    let capture = LiveCapture::start(point.ns, &point.iface, canary, save, filter)?;
    log.line(&format!(
        "observing on network {network}: capture armed on the {}",
        point.describe
    ));
    Ok(Sensor {
        capture,
        container_ns: ns,
        canary_to,
        no_canary,
        local: local.into_iter().map(ipnet::IpNet::from).collect(),
        host_side: point.host_side,
        point: point.describe,
        tcp_sink_error: None,
        sealed: None,
    })
}

/// The canary of a container on a real network: to its gateway's discard port, and only when
/// this host holds the gateway's address (so the canary never leaves the machine).
pub fn canary_for(
    ns: &std::fs::File,
    gateway: Option<std::net::Ipv4Addr>,
    payload: &[u8],
) -> Result<(Option<Canary>, Vec<SocketAddr>, Option<String>)> {
    let Some(gw) = gateway else {
        return Ok((
            None,
            Vec::new(),
            Some("the container has no IPv4 default gateway to send a canary to".into()),
        ));
    };
    if !crate::capture::point::local_addresses().contains(&IpAddr::V4(gw)) {
        return Ok((
            None,
            Vec::new(),
            Some(format!(
                "the container's gateway {gw} is not an address of this host, and the canary must not leave it"
            )),
        ));
    }
    let to = SocketAddr::from((gw, CANARY_PORT));
    let (src, _) = crate::capture::point::canary_path(ns, to)?;
    Ok((
        Some(Canary {
            payload: payload.to_vec(),
            paths: vec![(src, to.ip())],
        }),
        vec![to],
        None,
    ))
}
