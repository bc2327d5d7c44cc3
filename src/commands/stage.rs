//! The main job: stage an app with buildpacks in a sealed network (or observed on a real one) and
//! judge every packet. Each step is a function of the module that owns its idea; whatever ends
//! the run (a verdict, an error, a timeout, Ctrl-C, SIGTERM), what it created is removed: the
//! engine's objects are guards, the namespaces die with their last handle.

use std::time::Duration;

use crate::capture::sandbox;
use crate::capture::sensor::{Sensed, Sensor, SensorOptions};
use crate::cli::{StageArgs, Verbosity};
use crate::commands::runtime::run_interruptible;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::report::{self, Outputs};
use crate::staging::config::{validate, StageConfig};
use crate::staging::container::{self, Joined, Staging};
use crate::staging::engine;
use crate::staging::image::{self, Built};
use crate::staging::linger::linger_then_kill;
use crate::staging::phases::{self, Phases};
use crate::staging::run::Run;
use crate::verdict::analysis::{Analysis, Mode, StageInfo};
use crate::verdict::conclude::{conclude, Observation};
use crate::verdict::notes::Note;

/// Run the staging job; the `Ok` value is the exit code.
pub fn run(args: &StageArgs, v: Verbosity) -> Result<i32> {
    let cfg = validate(args, v)?;
    sandbox::check_privileges()?;
    let log = Progress::new(v);
    let log = &log;
    run_interruptible(log, stage(&cfg, log), |(code, made)| async move {
        made.clean_up(log).await;
        code
    })
}

/// What a run made, to be removed once it has ended (each a guard: an interrupted run removes
/// them as it is dropped).
struct Made {
    staging: Staging,
    network: Option<Joined>,
    built: Built,
}

/// The run, up to its reports: the exit code, and what to remove.
async fn stage(cfg: &StageConfig, log: &Progress) -> Result<(i32, Made)> {
    let run = Run::new(engine::connect().await?);
    log.line(&format!(
        "run {}: stack image {} (CF_STACK={})",
        run.id, cfg.stack_image, cfg.stack
    ));
    container::check_network(&run, cfg).await?;
    let built = image::build(&run, cfg, log).await?;
    let network = container::join_network(&run, cfg).await?;
    let staging = container::start(&run, cfg, &built.id, network.as_ref()).await?;
    let mut sensor = arm(&run, cfg, &staging, network.as_ref(), log).await?;
    let canary_seen = prove(&mut sensor, log).await?;
    let (phases, unwatched) = if canary_seen {
        let phases = phases::run_all(&run, cfg, &staging, log).await?;
        let failed = phases.failed.is_some();
        let observe = network.is_some();
        let unwatched = linger_then_kill(&run, &staging, failed, observe, log).await?;
        (phases, unwatched)
    } else {
        (Phases::default(), None)
    };
    // No process is left to start anything new; what a dead one queued (a TCP FIN, a
    // retransmission) belongs to flows already seen. A moment for those, then stop.
    tokio::time::sleep(Duration::from_millis(100)).await;
    sensor.read_final_counters();
    let tcp_refused = sensor.tcp_sink_error.clone().map(Note::TcpRefused);
    let mut sensed = sensor.finish().await?;
    let pcap = sensed.pcap.take();
    let mut notes: Vec<Note> = built.skipped.iter().cloned().map(Note::Skipped).collect();
    notes.extend(phases.failed.clone().map(Note::StagingFailed));
    notes.extend(unwatched);
    notes.extend(tcp_refused);
    let analysis = judge(cfg, &run, &staging, network.as_ref(), sensed, phases, notes);
    log.done();
    let code = report::deliver(
        &analysis,
        Outputs {
            reports: &cfg.reports,
            allowlist: &cfg.allowlist,
            pcap,
            verbosity: cfg.verbosity,
        },
    )?;
    let made = Made {
        staging,
        network,
        built,
    };
    Ok((code, made))
}

/// Arm the capture before anything of the buildpack runs: sealed, or on the observed network.
async fn arm(
    run: &Run,
    cfg: &StageConfig,
    staging: &Staging,
    network: Option<&Joined>,
    log: &Progress,
) -> Result<Sensor> {
    let opts = SensorOptions {
        payload: format!("airgap-check canary {}", run.id).into_bytes(),
        pcap: cfg.pcap.as_deref(),
        filter: cfg.filter.as_deref(),
    };
    match network {
        None => {
            let tag: String = run.id.chars().take(8).collect();
            Sensor::sealed(staging.pid, &tag, &opts, log).await
        }
        Some(net) => {
            let sensor = Sensor::observing(staging.pid, &opts).await?;
            log.line(&format!(
                "observing on network {}: capture armed on the {}",
                net.name,
                sensor.point()
            ));
            Ok(sensor)
        }
    }
}

/// The canary: proof, on this run, that the capture sees what the container sends. Staging goes
/// on only when it was seen.
async fn prove(sensor: &mut Sensor, log: &Progress) -> Result<bool> {
    let outcome = sensor.prove().await?;
    let seen = outcome.seen == Some(true);
    if seen {
        log.line(&format!(
            "canary seen ({}): the capture sees the container",
            outcome.families
        ));
    } else {
        log.warn(&format!(
            "canary NOT seen ({}): the capture cannot be trusted; not staging",
            outcome.problem.unwrap_or_default()
        ));
    }
    Ok(seen)
}

/// What the run observed (and what the run knows: `notes`) → the analysis.
fn judge(
    cfg: &StageConfig,
    run: &Run,
    staging: &Staging,
    network: Option<&Joined>,
    sensed: Sensed,
    phases: Phases,
    notes: Vec<Note>,
) -> Analysis {
    let mut health = sensed.health;
    // Staging requires its canary: one that could not even be sent was not seen.
    if health.canary_seen.is_none() {
        health.canary_seen = Some(false);
    }
    health.first_ts = health
        .first_ts
        .or(phases.records.first().map(|r| r.started));
    let mut seen = Observation::new(
        Mode::Stage,
        cfg.app.display().to_string(),
        &cfg.allowlist,
        sensed.table,
    );
    seen.local = sensed.local;
    seen.local_given = true;
    seen.handed_out = sensed.handed_out;
    seen.capture = health;
    seen.phases = phases.records;
    seen.notes = notes;
    seen.stage = Some(StageInfo {
        run_id: run.id.clone(),
        stack_image: cfg.stack_image.clone(),
        stack: cfg.stack.clone(),
        buildpacks: cfg
            .buildpacks
            .iter()
            .map(|b| b.source.display().to_string())
            .collect(),
        user: if staging.user.is_empty() {
            "root".into()
        } else {
            staging.user.clone()
        },
        network: network.map_or_else(|| "sealed".into(), |n| n.name.clone()),
    });
    conclude(seen)
}

impl Made {
    /// Remove what the run created, container first; one warning for whatever could not be.
    async fn clean_up(self, log: &Progress) {
        let mut left: Vec<(String, Error)> = Vec::new();
        let container = self.staging.container.describe();
        if let Err(e) = self.staging.container.remove().await {
            left.push((container, e));
        }
        if let Some(own) = self.network.and_then(|n| n.own) {
            let what = own.describe();
            if let Err(e) = own.remove().await {
                left.push((what, e));
            }
        }
        left.extend(self.built.clean_up().await);
        if let Some((_, why)) = left.first() {
            let what: Vec<&str> = left.iter().map(|(w, _)| w.as_str()).collect();
            log.warn(&format!(
                "could not remove {} ({why}); run `airgap-check prune` once the Docker engine answers",
                what.join(", ")
            ));
        }
    }
}
