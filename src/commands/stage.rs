//! The main job: stage apps with buildpacks in a sealed network (or observed on a real one) and
//! judge every packet. Each app stages in a container and a sealed network of its own, up to
//! `--jobs` at once, all of them sharing the prepared buildpacks. Each step is a function of the
//! module that owns its idea; whatever ends the run (a verdict, an error, a timeout, Ctrl-C,
//! SIGTERM), what it created is removed: the engine's objects are guards, the namespaces die with
//! their last handle.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard::Docker;

use crate::capture::sandbox;
use crate::capture::sensor::{Sensed, Sensor, SensorOptions};
use crate::cli::{StageArgs, Verbosity};
use crate::commands::runtime::run_interruptible;
use crate::error::{Error, Result};
use crate::manifest;
use crate::progress::Progress;
use crate::report::{self, Outputs};
use crate::staging::config::{validate, StageConfig};
use crate::staging::container::{self, Joined, Plan, Record, Stack, Staging};
use crate::staging::engine;
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
    run_interruptible(log, stage_all(&cfg, log), |(code, made)| async move {
        for m in made {
            m.clean_up(log).await;
        }
        code
    })
}

/// What a run made, to be removed once it has ended (each a guard: an interrupted run removes
/// them as it is dropped).
struct Made {
    staging: Staging,
    network: Option<Joined>,
}

/// One app's run, concluded.
struct AppRun {
    analysis: Analysis,
    pcap: Option<(PathBuf, tempfile::NamedTempFile)>,
    made: Made,
}

/// Every app, up to their reports: the exit code, and what to remove.
async fn stage_all(cfg: &StageConfig, log: &Progress) -> Result<(i32, Vec<Made>)> {
    let docker = engine::connect().await?;
    container::check_network(&docker, cfg).await?;
    let image = engine::ensure_image(&docker, &cfg.stack_image).await?;
    let staging_user = tokio::sync::OnceCell::new();
    let stack = || Stack {
        image: &cfg.stack_image,
        user: image.user.as_deref(),
        env: &image.env,
        staging_user: &staging_user,
    };
    let mut notes = buildpack_notes(cfg, log);
    let read = read_manifests(cfg, log).await?;
    notes.extend(read.asides.into_iter().map(Note::Manifest));
    let known = &Known {
        notes,
        manifests: read.reads,
    };
    if let [app] = cfg.apps.as_slice() {
        let one = stage_app(&docker, cfg, app, 0, stack(), known, log).await?;
        log.done();
        let outputs = outputs(cfg, one.pcap.into_iter().collect());
        let code = report::deliver(&one.analysis, outputs)?;
        return Ok((code, vec![one.made]));
    }
    let jobs = Arc::new(tokio::sync::Semaphore::new(cfg.jobs));
    let runs = cfg.apps.iter().enumerate().map(|(n, app)| {
        let (jobs, docker) = (jobs.clone(), docker.clone());
        async move {
            let _turn = jobs.acquire().await;
            let log = log.for_app(&app.display().to_string());
            let run = stage_app(&docker, cfg, app, n, stack(), known, &log).await;
            // Done with: removed now, not when every app is.
            match run {
                Ok(r) => {
                    r.made.clean_up(&log).await;
                    (r.analysis, r.pcap)
                }
                Err(e) => {
                    log.warn(&format!(
                        "the run failed: {}",
                        crate::report::text::terminal_safe(&e.to_string())
                    ));
                    (Analysis::failed(Mode::Stage, app, &cfg.allowlist, &e), None)
                }
            }
        }
    });
    let runs: Vec<_> = futures_util::future::join_all(runs).await;
    log.done();
    let (analyses, pcaps): (Vec<Analysis>, Vec<_>) = runs.into_iter().unzip();
    let code = report::deliver_runs(
        &analyses,
        outputs(cfg, pcaps.into_iter().flatten().collect()),
    )?;
    Ok((code, Vec::new()))
}

fn outputs(cfg: &StageConfig, pcap: Vec<(PathBuf, tempfile::NamedTempFile)>) -> Outputs<'_> {
    Outputs {
        reports: &cfg.reports,
        allowlist: &cfg.allowlist,
        pcap,
        verbosity: cfg.verbosity,
    }
}

/// Where each zip came from, and buildpack scripts that cannot run: said once before staging
/// (the scripts also noted in every report).
fn buildpack_notes(cfg: &StageConfig, log: &Progress) -> Vec<Note> {
    let mut notes = Vec::new();
    for (i, bp) in cfg.buildpacks.iter().enumerate() {
        if let Some(z) = &bp.zip {
            log.line(&format!(
                "buildpack {i}: {} {} (sha256 {})",
                bp.source.display(),
                if z.reused {
                    "taken from the cache of extracted zips"
                } else {
                    "extracted into the cache of extracted zips"
                },
                &z.digest[..16]
            ));
        }
        let scripts = bp.not_executable();
        if scripts.is_empty() {
            continue;
        }
        let note = Note::NotExecutable {
            buildpack: format!("{i} ({})", bp.name()),
            scripts,
        };
        log.warn(&crate::report::text::terminal_safe(&note.to_string()));
        notes.push(note);
    }
    notes
}

/// What the run knows before any app stages: the notes every report gets, and the manifests.
struct Known {
    notes: Vec<Note>,
    manifests: Vec<manifest::ManifestRead>,
}

/// Every buildpack's manifest, read once for the whole run, off the runtime's threads (a large
/// manifest takes a while to parse, and no app's timeouts may wait on it); what is worth saying
/// of them is said now (and noted in every report).
async fn read_manifests(cfg: &StageConfig, log: &Progress) -> Result<manifest::Manifests> {
    let (buildpacks, stack) = (cfg.buildpacks.clone(), cfg.stack.clone());
    let read = tokio::task::spawn_blocking(move || manifest::read_all(&buildpacks, &stack))
        .await
        .map_err(|e| Error::Internal(format!("reading the manifests: {e}")))?;
    for a in &read.asides {
        log.warn(&crate::report::text::terminal_safe(&a.to_string()));
    }
    Ok(read)
}

/// One app: start its container, seal and arm, prove the capture, run the phases, conclude.
async fn stage_app(
    docker: &Docker,
    cfg: &StageConfig,
    app: &Path,
    n: usize,
    stack: Stack<'_>,
    known: &Known,
    log: &Progress,
) -> Result<AppRun> {
    let run = Run::new(docker.clone());
    log.line(&format!(
        "run {}: stack image {} (CF_STACK={})",
        run.id, cfg.stack_image, cfg.stack
    ));
    let network = container::join_network(&run, cfg).await?;
    let dir = cfg.scratch.path().join(format!("app-{n}"));
    let plan = Plan {
        app,
        dir: &dir,
        stack,
        network: network.as_ref(),
    };
    let staging = container::start(&run, cfg, &plan, log).await?;
    let mut sensor = arm(
        &run,
        cfg,
        &staging,
        network.as_ref(),
        pcap_for(cfg, app, n),
        log,
    )
    .await?;
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
    // No process is left to send anything new: the container's counters are final, and the
    // capture drains until it has seen every frame they count.
    log.detail("every process of the container is gone");
    sensor.read_final_counters();
    let tcp_refused = sensor.tcp_sink_error.clone().map(Note::TcpRefused);
    let not_attributed = sensor.attribution_error.clone().map(Note::NotAttributed);
    let mut sensed = sensor.finish().await?;
    log.detail("capture drained");
    let pcap = sensed.pcap.take();
    let mut notes = known.notes.clone();
    notes.extend(staging.skipped.iter().cloned().map(Note::Skipped));
    notes.extend(phases.failed.clone().map(Note::StagingFailed));
    notes.extend(unwatched);
    notes.extend(tcp_refused);
    notes.extend(not_attributed);
    let seen = Seen {
        app,
        run: &run,
        staging: &staging,
        network: network.as_ref(),
        manifests: &known.manifests,
    };
    let analysis = judge(cfg, &seen, sensed, phases, notes);
    Ok(AppRun {
        analysis,
        pcap,
        made: Made { staging, network },
    })
}

/// Where this app's capture file goes: --pcap itself, or a file of its own in --pcap's folder.
fn pcap_for(cfg: &StageConfig, app: &Path, n: usize) -> Option<PathBuf> {
    let p = cfg.pcap.as_ref()?;
    if cfg.apps.len() == 1 {
        return Some(p.clone());
    }
    let name: String = app
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(p.join(format!("{n}-{name}.pcap")))
}

/// Arm the capture before anything of the buildpack runs: sealed, or on the observed network.
async fn arm(
    run: &Run,
    cfg: &StageConfig,
    staging: &Staging,
    network: Option<&Joined>,
    pcap: Option<PathBuf>,
    log: &Progress,
) -> Result<Sensor> {
    let opts = SensorOptions {
        payload: format!("airgap-check canary {}", run.id).into_bytes(),
        pcap: pcap.as_deref(),
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

/// What one app's run was, for its report.
struct Seen<'a> {
    app: &'a Path,
    run: &'a Run,
    staging: &'a Staging,
    network: Option<&'a Joined>,
    /// Every buildpack's manifest, read once before staging.
    manifests: &'a [manifest::ManifestRead],
}

/// What the run observed (and what the run knows: `notes`) → the analysis.
fn judge(
    cfg: &StageConfig,
    seen: &Seen<'_>,
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
    let mut o = Observation::new(
        Mode::Stage,
        seen.app.display().to_string(),
        &cfg.allowlist,
        sensed.table,
    );
    o.local = sensed.local;
    o.local_given = true;
    o.handed_out = sensed.handed_out;
    o.capture = health;
    o.phases = phases.records;
    o.notes = notes;
    o.processes = sensed.processes;
    o.manifests = seen.manifests.to_vec();
    o.stage = Some(StageInfo {
        cnb: phases.cnb,
        ..stage_info(cfg, seen)
    });
    conclude(o)
}

fn stage_info(cfg: &StageConfig, seen: &Seen<'_>) -> StageInfo {
    let (context, dockerfile, mounts) = match &seen.staging.record {
        Record::Mounted(m) => ("mount", None, m.clone()),
        Record::Built(d) => ("copy", Some(d.clone()), Vec::new()),
    };
    StageInfo {
        run_id: seen.run.id.clone(),
        stack_image: cfg.stack_image.clone(),
        stack: cfg.stack.clone(),
        buildpacks: cfg
            .buildpacks
            .iter()
            .map(|b| b.source.display().to_string())
            .collect(),
        user: seen.staging.user.shown(),
        network: seen
            .network
            .map_or_else(|| "sealed".into(), |n| n.name.clone()),
        context: context.into(),
        dockerfile,
        mounts,
        cnb: None,
    }
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
        if let Some(built) = self.staging.built {
            left.extend(built.clean_up().await);
        }
        if let Some((_, why)) = left.first() {
            let what: Vec<&str> = left.iter().map(|(w, _)| w.as_str()).collect();
            log.warn(&format!(
                "could not remove {} ({why}); run `airgap-check prune` once the Docker engine answers",
                what.join(", ")
            ));
        }
    }
}
