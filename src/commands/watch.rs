//! `airgap-check watch CONTAINER`: capture a running container's traffic from outside it (or from
//! inside its namespace when its peer is not on this host), until Ctrl-C, `--duration` or its exit,
//! then judge and report as usual.

use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use tokio::signal::unix::Signal;

use crate::capture::sandbox;
use crate::capture::sensor::{Sensed, Sensor, SensorOptions};
use crate::cli::{parse_duration_for, Verbosity, WatchArgs};
use crate::commands::runtime::{interrupts, runtime};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::report::{self, Outputs};
use crate::staging::engine::{self, EngineError};
use crate::verdict::analysis::{Analysis, Mode};
use crate::verdict::conclude::{conclude, Observation};
use crate::verdict::notes::Note;
use crate::verdict::policy::Allowlist;

pub fn run(a: &WatchArgs, v: Verbosity) -> Result<i32> {
    let allowlist = a.judge.load()?;
    let duration = a
        .duration
        .as_deref()
        .map(|d| parse_duration_for("--duration", d))
        .transpose()?;
    a.reports.check_writable(a.save.pcap.as_deref())?;
    sandbox::check_privileges()?;
    let rt = runtime()?;
    let log = Progress::new(v);
    let out = rt.block_on(watch(a, &allowlist, duration, &log, v));
    log.done();
    rt.shutdown_timeout(Duration::from_secs(2));
    out
}

async fn watch(
    a: &WatchArgs,
    allowlist: &Allowlist,
    duration: Option<Duration>,
    log: &Progress,
    verbosity: Verbosity,
) -> Result<i32> {
    let mut signals = interrupts()?;
    let d = engine::connect().await?;
    let target = Target::find(&d, &a.container).await?;
    let opts = SensorOptions {
        payload: format!("airgap-check canary {}", engine::run_id()).into_bytes(),
        pcap: a.save.pcap.as_deref(),
        filter: a.judge.filter.as_deref(),
    };
    let mut sensor = Sensor::observing(target.pid, &opts).await?;
    let started = Instant::now();
    log.line(&format!(
        "watching container {} on the {}; Ctrl-C to stop",
        target.label(),
        sensor.point()
    ));
    let canary = prove(&mut sensor, log).await?;
    let ended = match canary {
        Some(false) => Ended::NoCanary,
        _ => until_the_end(&d, &target, &mut sensor, duration, started, &mut signals).await,
    };
    let watched = started.elapsed().as_secs_f64();
    let until = ended.describe(duration);
    log.line(&format!("stopped after {watched:.1}s: {until}"));
    if !matches!(ended, Ended::Exited(..)) {
        // Let the last packets land; the counters are read before the capture drains, so it has
        // had everything they count.
        tokio::time::sleep(Duration::from_millis(300)).await;
        sensor.read_counters();
    }
    let mut sensed = sensor.finish().await?;
    let pcap = sensed.pcap.take();
    let watched = Note::Watched {
        container: target.label(),
        secs: watched,
        until,
    };
    let analysis = judge(a, allowlist, &target, sensed, &ended, watched);
    log.done();
    report::deliver(
        &analysis,
        Outputs {
            reports: &a.reports,
            allowlist,
            pcap: pcap.into_iter().collect(),
            verbosity,
        },
    )
}

/// The watched container.
struct Target {
    id: String,
    name: String,
    pid: u32,
}

impl Target {
    /// A running container with a network of its own, by name or id (exit 2 otherwise).
    async fn find(d: &Docker, container: &str) -> Result<Target> {
        let info = match d
            .inspect_container(
                container,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(i) => i,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Err(bad(
                    container,
                    "no container has this name or id (see docker ps)",
                ))
            }
            Err(source) => return Err(EngineError::InspectContainer { source }.into()),
        };
        let state = info.state.clone().unwrap_or_default();
        let pid = state.pid.unwrap_or(0);
        if state.running != Some(true) || pid <= 0 {
            let status = state.status.map(|s| s.to_string());
            return Err(bad(
                container,
                &format!(
                    "the container is not running (status {}): expected a running container",
                    status.as_deref().unwrap_or("unknown")
                ),
            ));
        }
        let mode = info
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.clone());
        check_network_mode(container, mode.as_deref().unwrap_or_default())?;
        Ok(Target {
            id: info.id.clone().unwrap_or_default(),
            name: info.name.unwrap_or_default().trim_start_matches('/').into(),
            pid: pid as u32,
        })
    }

    /// "web (3f2a9c1b0d4e)".
    fn label(&self) -> String {
        format!("{} ({})", self.name, engine::short(&self.id))
    }
}

fn check_network_mode(container: &str, mode: &str) -> Result<()> {
    match mode {
        "host" => Err(bad(
            container,
            "the container shares the host's network namespace (--network host): its packets cannot be told from the host's; expected a container with a network of its own",
        )),
        "none" => Err(bad(
            container,
            "the container has no network (--network none): there is nothing to watch",
        )),
        _ => Ok(()),
    }
}

fn bad(value: &str, expected: &str) -> Error {
    Error::BadArgument {
        option: "CONTAINER",
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// Send the canary (to the container's gateway, when this host holds it) and say what it showed.
async fn prove(sensor: &mut Sensor, log: &Progress) -> Result<Option<bool>> {
    let outcome = sensor.prove().await?;
    match (outcome.seen, &outcome.problem) {
        (Some(true), _) => log.line("canary seen: the capture sees the container"),
        (Some(false), _) => log.warn(
            "canary NOT seen: the capture does not see the container; stopping (inconclusive)",
        ),
        (None, Some(why)) => log.warn(&format!("no canary ({why}): a pass will need traffic seen")),
        (None, None) => {}
    }
    Ok(outcome.seen)
}

/// How a watch ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ended {
    Duration,
    Signal(&'static str),
    /// The container exited: its exit code and when (Docker's State.FinishedAt).
    Exited(Option<i64>, Option<SystemTime>),
    /// The canary was not seen: there is nothing to watch with.
    NoCanary,
    /// The capture stopped while the container still ran (its interface was replaced, …).
    CaptureFailed,
}

impl Ended {
    fn describe(&self, d: Option<Duration>) -> String {
        match self {
            Ended::Duration => format!(
                "--duration {}",
                humantime::format_duration(d.unwrap_or_default())
            ),
            Ended::Signal(s) => format!("{s} (stopped by the user)"),
            Ended::Exited(Some(c), _) => format!("the container exited (code {c})"),
            Ended::Exited(None, _) => "the container stopped".into(),
            Ended::NoCanary => "the canary was not seen".into(),
            Ended::CaptureFailed => "the capture failed while the container still ran".into(),
        }
    }
}

/// Wait for the end: Ctrl-C, SIGTERM, --duration, or the container's exit; read the container's
/// counters as it goes (an exited container's interfaces are gone).
async fn until_the_end(
    d: &Docker,
    target: &Target,
    sensor: &mut Sensor,
    duration: Option<Duration>,
    started: Instant,
    (sigint, sigterm): &mut (Signal, Signal),
) -> Ended {
    let deadline = duration.map(|d| tokio::time::Instant::from_std(started + d));
    loop {
        let tick = tokio::time::sleep(Duration::from_millis(250));
        tokio::select! {
            _ = sigint.recv() => return Ended::Signal("Ctrl-C"),
            _ = sigterm.recv() => return Ended::Signal("SIGTERM"),
            _ = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => return Ended::Duration,
            _ = tick => match exited(d, &target.id).await {
                Some(e) => return e,
                None if sensor.failed() => return exit_behind_the_failure(d, &target.id).await,
                None => sensor.read_counters(),
            },
        }
    }
}

/// The capture died under a running container: give the exit that took the interface away a
/// second to show; otherwise the capture failed.
async fn exit_behind_the_failure(d: &Docker, id: &str) -> Ended {
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(e) = exited(d, id).await {
            return e;
        }
    }
    Ended::CaptureFailed
}

/// The container's exit, if it has exited.
async fn exited(d: &Docker, id: &str) -> Option<Ended> {
    match engine::state(d, id).await {
        Some(s) if s.running == Some(true) => None,
        Some(s) => Some(Ended::Exited(
            s.exit_code,
            s.finished_at
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok()),
        )),
        None => Some(Ended::Exited(None, None)),
    }
}

/// What was watched → the analysis. A container that exits takes its interface with it: the
/// capture ends there, having read everything that crossed it. Only then: a capture that failed
/// before the exit (an interface swapped under a running container) missed what came after, and
/// stays a failure.
fn judge(
    a: &WatchArgs,
    allowlist: &Allowlist,
    target: &Target,
    sensed: Sensed,
    ended: &Ended,
    watched: Note,
) -> Analysis {
    let mut notes = vec![watched];
    let mut health = sensed.health;
    let at_exit = match (ended, &sensed.capture_error) {
        (Ended::Exited(_, Some(finished)), Some((_, Some(failed)))) => {
            *failed + Duration::from_millis(250) >= *finished
        }
        _ => false,
    };
    if let (true, Some((e, _))) = (at_exit, &sensed.capture_error) {
        notes.push(Note::InterfaceGone(e.clone()));
        health.error = sensed
            .counters_unread
            .then(|| "the container interface's counters could not be read".into());
    }
    if matches!(ended, Ended::Exited(..)) && !sensed.counters_unread {
        notes.push(Note::CountersBeforeExit);
    }
    let mut seen = Observation::new(Mode::Watch, target_input(target), allowlist, sensed.table);
    seen.local = sensed.local;
    seen.local_given = true;
    seen.capture = health;
    seen.capture.filter = a.judge.filter.clone();
    seen.notes = notes;
    conclude(seen)
}

fn target_input(t: &Target) -> String {
    format!("container {}", t.label())
}
