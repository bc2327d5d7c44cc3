//! Phases: the buildpack lifecycle run in the staging container (docker exec), one phase after
//! another, each timed, its output's tail kept, its end told apart: an exit, a timeout, the
//! kernel's out-of-memory killer.

use std::collections::VecDeque;

use crate::error::Result;
use crate::flows::now_micros;
use crate::progress::Progress;
use crate::report;
use crate::staging::config::StageConfig;
use crate::staging::container::Staging;
use crate::staging::engine::{self, Exec};
use crate::staging::lifecycle::PhaseSpec;
use crate::staging::run::Run;
use crate::verdict::analysis::PhaseRecord;

/// Lines of each phase's output kept for the reports.
const TAIL_LINES: usize = 40;

/// The phases as they ran.
#[derive(Default)]
pub struct Phases {
    pub records: Vec<PhaseRecord>,
    /// Why staging failed (the first phase that did), if it did.
    pub failed: Option<String>,
    /// Cloud Native Buildpacks: the group and what its builds declared.
    pub cnb: Option<crate::staging::cnb::Record>,
}

/// Run the phases in order until one fails or the timeout passes.
pub async fn run_all(
    run: &Run,
    cfg: &StageConfig,
    staging: &Staging,
    log: &Progress,
) -> Result<Phases> {
    // On GitHub Actions a log line starting with "::" is a workflow command: the buildpack's own
    // output (printed with -vv) must not be able to issue one.
    let fence = (cfg.verbosity.level >= 2 && report::in_github_actions()).then(|| run.name());
    if let Some(f) = &fence {
        eprintln!("::stop-commands::{f}");
    }
    let phases = match &cfg.cnb {
        Some(group) => crate::staging::cnb::run::run_all(run, cfg, staging, group, log).await,
        None => run_v2(run, cfg, staging, log).await,
    };
    if let Some(f) = &fence {
        eprintln!("::{f}::");
    }
    phases
}

/// The v2 lifecycle's phases, in order, until one fails.
async fn run_v2(run: &Run, cfg: &StageConfig, staging: &Staging, log: &Progress) -> Result<Phases> {
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let env = phase_env(cfg);
    let mut phases = Phases::default();
    for spec in &cfg.phases {
        let rec = run_one(run, cfg, staging, spec, &env, deadline, log).await?;
        report_end(&rec, cfg, log);
        let failed = rec.failed().then(|| why_failed(&rec, cfg));
        phases.records.push(rec);
        if failed.is_some() {
            phases.failed = failed;
            break;
        }
    }
    Ok(phases)
}

/// Run one phase with `env`, until it exits or `deadline` passes.
pub(crate) async fn run_one(
    run: &Run,
    cfg: &StageConfig,
    staging: &Staging,
    spec: &PhaseSpec,
    env: &[String],
    deadline: tokio::time::Instant,
    log: &Progress,
) -> Result<PhaseRecord> {
    let bp = &cfg.buildpacks[spec.buildpack];
    log.line(&format!(
        "{} (buildpack {}: {})",
        spec.name,
        spec.buildpack,
        bp.name()
    ));
    let started = now_micros();
    let ooms_before = engine::oom_kills(staging.pid);
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    let name = spec.name;
    let cmd = Exec {
        argv: &spec.argv,
        user: &staging.user.exec,
        env,
    };
    let out = engine::exec(
        &run.docker,
        staging.container.id(),
        &cmd,
        deadline,
        |line| {
            // -vv: every line as it comes; -v: the steps, not the buildpack's output; otherwise
            // the spinner's message on a terminal.
            match cfg.verbosity.level {
                0 => log.detail(&format!("[{name}] {line}")),
                1 => {}
                _ => eprintln!("  [{name}] {line}"),
            }
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.chars().take(2000).collect::<String>());
        },
    )
    .await?;
    Ok(PhaseRecord {
        name: spec.name.to_string(),
        buildpack: spec.buildpack,
        buildpack_name: bp.name(),
        started,
        ended: now_micros(),
        exit_code: out.exit_code,
        timed_out: out.exit_code.is_none(),
        must_succeed: spec.must_succeed,
        oom_killed: matches!(
            (ooms_before, engine::oom_kills(staging.pid)),
            (Some(a), Some(b)) if b > a
        ),
        output_tail: tail.into_iter().collect(),
    })
}

/// One progress line for how the phase ended.
pub(crate) fn report_end(rec: &PhaseRecord, cfg: &StageConfig, log: &Progress) {
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
        (Some(c), _) => log.line(&format!("  exit {c} in {secs:.1}s")),
        (None, _) => {}
    }
}

/// Why a failed phase failed staging, in one sentence.
pub(crate) fn why_failed(rec: &PhaseRecord, cfg: &StageConfig) -> String {
    if rec.timed_out {
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
    }
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
