//! The main job: stage an app with buildpacks in a sealed network and judge every packet.
//!
//! validate inputs (exit 2) → preflight (exit 3) → build the staging image → start an idle
//! container with no network → seal it into a sink namespace → DNS sinkhole → arm the capture →
//! canary → lifecycle phases (docker exec) → stop → flows → verdicts → reports. Whatever happens
//! (success, failure, timeout, error, Ctrl-C, SIGTERM), what was created is removed.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::analysis::{
    attribute_phases, decoding_problems, dns_queries, judge_named, local_notes, names_of,
    naming_notes, verdict_with_staging, Analysis, CaptureHealth, PhaseRecord, StageInfo,
};
use crate::capture::LiveCapture;
use crate::cli::{parse_duration, parse_env, StageArgs};
use crate::context::{self, Buildpack};
use crate::docker;
use crate::error::{Error, Result};
use crate::lifecycle::{self, PhaseSpec};
use crate::policy::Allowlist;
use crate::report;
use crate::sandbox::{self, Sandbox, CONTAINER_V4, CONTAINER_V6, SINK_V4, SINK_V6};
use crate::sinkhole::{self, DnsLog, CANARY_PORT};

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
    /// Holds extracted zips and the build context; removed on drop.
    pub scratch: tempfile::TempDir,
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
    image: Option<String>,
    keep_image: bool,
}

impl Leftovers {
    async fn clean(&mut self, log: &Progress) {
        let Some(d) = self.docker.clone() else { return };
        if let Some(c) = self.container.take() {
            if let Err(e) = docker::remove_container(&d, &c).await {
                log.warn(&format!(
                    "could not remove container {c}: {e} (run `airgap-check prune`)"
                ));
            }
        }
        if let Some(i) = self.image.take() {
            if self.keep_image {
                log.line(&format!("kept image {i}"));
            } else if let Err(e) = docker::remove_image(&d, &i).await {
                log.warn(&format!(
                    "could not remove image {i}: {e} (run `airgap-check prune`)"
                ));
            }
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
struct Progress {
    verbose: bool,
    bar: Option<indicatif::ProgressBar>,
    start: Instant,
}

impl Progress {
    fn new(verbose: bool) -> Progress {
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

    fn line(&self, msg: &str) {
        let msg = format!("[{:>6.1}s] {msg}", self.start.elapsed().as_secs_f64());
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    fn warn(&self, msg: &str) {
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

    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn run_id() -> String {
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

    let container = docker::create_idle_container(
        &d,
        &image,
        &format!("airgap-check-{id}"),
        &SINK_V4.to_string(),
        &labels,
    )
    .await?;
    leftovers.lock().await.container = Some(container.clone());
    let pid = docker::start_container(&d, &container).await?;
    let user = docker::read_file(&d, &container, "/tmp/.airgap-check-user").await?;

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
    let tcp_sink_error = sandbox.tcp_sink_error.clone();

    // The sinkhole: DNS and the canary's discard port, inside the sink.
    let dns = Arc::new(Mutex::new(DnsLog::default()));
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
    let pcap_tmp = match &cfg.pcap {
        Some(p) => Some(
            tempfile::Builder::new()
                .prefix(".airgap-check-")
                .suffix(".pcap")
                .tempfile_in(
                    p.parent()
                        .filter(|x| !x.as_os_str().is_empty())
                        .unwrap_or(Path::new(".")),
                )
                .map_err(|e| Error::Write {
                    path: p.clone(),
                    reason: e.to_string(),
                })?,
        ),
        None => None,
    };
    let canary = format!("airgap-check canary {id}").into_bytes();
    let capture = LiveCapture::start(
        sandbox.sink.try_clone().map_err(|e| Error::Capture {
            iface: sandbox.sink_if.clone(),
            reason: e.to_string(),
        })?,
        &sandbox.sink_if,
        canary.clone(),
        pcap_tmp.as_ref().map(|t| t.path().to_path_buf()),
    )?;
    log.line(&format!("capture armed on {}", sandbox.sink_if));

    // The canary: proof, on this run, that the capture sees what the container sends.
    let (v4, v6) = send_canary(&sandbox, &capture, &canary).await?;
    let canary_ok = v4 && v6;
    if canary_ok {
        log.line("canary seen (IPv4 and IPv6): the capture sees the container");
    } else {
        log.warn(&format!(
            "canary NOT seen (IPv4 {v4}, IPv6 {v6}): the capture cannot be trusted; not staging"
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
                output_tail: tail.into_iter().collect(),
            };
            let secs = (rec.ended - rec.started) as f64 / 1e6;
            match (rec.exit_code, rec.timed_out) {
                (_, true) => log.warn(&format!(
                    "{} timed out (--timeout {:?})",
                    rec.label(),
                    cfg.timeout
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
            leftover = docker::leftover_processes(&d, &container)
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
        docker::kill_container(&d, &container).await?;
    }
    // Let the last packets land, then stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let live = tokio::task::spawn_blocking(move || capture.finish())
        .await
        .map_err(|e| Error::Capture {
            iface: "sink".into(),
            reason: e.to_string(),
        })??;
    let _ = stop_tx.send(());
    drop(sandbox);

    let (flows, counts, dns_seen) = live.table.finish();
    let local: Vec<ipnet::IpNet> = vec![
        IpAddr::V4(CONTAINER_V4).into(),
        IpAddr::V6(CONTAINER_V6).into(),
    ];
    let (mut flows, local) = judge_with_names(flows, &cfg.allowlist, &local, &dns, &dns_seen);
    attribute_phases(&mut flows, &records);
    let queries = dns_queries(&dns_seen, &records);

    let mut notes: Vec<String> = skipped.iter().map(context::Skipped::describe).collect();
    if !canary_ok {
        notes.push(format!("the canary was not seen (IPv4 {v4}, IPv6 {v6}): the capture did not see the container, so nothing was staged"));
    }
    if let Some(e) = &live.error {
        notes.push(format!("the capture failed: {e}"));
    }
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
            "the capture dropped {n} packets: what they held is unknown"
        )),
        None => notes.push("the capture's drop counters could not be read".into()),
    }
    let health = CaptureHealth {
        link_type: "EN10MB".into(),
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
        && (!decoding_problems(&counts).is_empty() || unwatched || counts.non_ip > 0)
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
        }),
        dns_queries: queries,
    };

    report::write_reports(
        &analysis,
        &cfg.allowlist,
        cfg.json.as_deref(),
        cfg.junit.as_deref(),
        cfg.suggest_allowlist.as_deref(),
    )?;
    if let (Some(p), Some(t)) = (&cfg.pcap, pcap_tmp) {
        t.persist(p).map_err(|e| Error::Write {
            path: p.clone(),
            reason: e.error.to_string(),
        })?;
    }
    log.done();
    report::print_summary(&analysis);
    Ok(analysis.verdict.exit_code())
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
        "MEMORY_LIMIT=1024m".to_string(),
        "CF_INSTANCE_INDEX=0".to_string(),
    ];
    env.extend(cfg.env.iter().map(|(k, v)| format!("{k}={v}")));
    env
}

/// Judge with the names the capture holds (SNI, Host, DNS answers: the sinkhole's answers cross the
/// veth too) and, should a DNS exchange have been missed, the names the sinkhole handed out.
fn judge_with_names(
    flows: Vec<crate::flow::Flow>,
    allowlist: &Allowlist,
    local: &[ipnet::IpNet],
    sinkhole: &Mutex<DnsLog>,
    seen: &crate::flow::DnsSeen,
) -> (Vec<crate::analysis::Judged>, Vec<IpAddr>) {
    let log = sinkhole.lock().map(|l| l.names.clone()).unwrap_or_default();
    let names = |flow: &crate::flow::Flow, addr: IpAddr| -> Vec<String> {
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

/// Send the canary from inside the container's namespace until the capture has seen it for IPv4
/// and IPv6, for at most 5 seconds.
async fn send_canary(
    sandbox: &Sandbox,
    capture: &LiveCapture,
    payload: &[u8],
) -> Result<(bool, bool)> {
    let ns = sandbox
        .container
        .try_clone()
        .map_err(|e| sandbox::SandboxError {
            step: "canary",
            reason: e.to_string(),
        })?;
    let payload = payload.to_vec();
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let (ns2, p) = (ns.try_clone().ok(), payload.clone());
        let sent = tokio::task::spawn_blocking(move || {
            let Some(ns2) = ns2 else { return Ok(()) };
            sandbox::in_netns(&ns2, || {
                for to in [
                    SocketAddr::from((SINK_V4, CANARY_PORT)),
                    SocketAddr::from((SINK_V6, CANARY_PORT)),
                ] {
                    let bind: SocketAddr = if to.is_ipv4() {
                        "0.0.0.0:0".parse().unwrap()
                    } else {
                        "[::]:0".parse().unwrap()
                    };
                    if let Ok(s) = std::net::UdpSocket::bind(bind) {
                        let _ = s.send_to(&p, to);
                    }
                }
            })
        })
        .await;
        if let Ok(Err(e)) = sent {
            return Err(e.into());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        let seen = capture.canary_seen();
        if (seen.0 && seen.1) || Instant::now() >= until {
            return Ok(seen);
        }
    }
}
