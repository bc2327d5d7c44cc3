//! Phases: the buildpack lifecycle run in the staging container (docker exec), one phase after
//! another, each timed, its output's tail kept, its end told apart: an exit, a timeout, the
//! kernel's out-of-memory killer.

use std::collections::VecDeque;

use crate::error::Result;
use crate::flows::now_micros;
use crate::progress::Progress;
use crate::report;
use crate::report::text::terminal_safe;
use crate::staging::config::StageConfig;
use crate::staging::container::Staging;
use crate::staging::engine::{self, Driver, Exec, ExecOutcome, Script};
use crate::staging::lifecycle::PhaseSpec;
use crate::staging::lifecycle::BUILD_DIR;
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

/// The v2 lifecycle's phases, in order, until one fails: all of them through one exec (the
/// driver, see engine/driver.rs), each started when the one before has ended.
async fn run_v2(run: &Run, cfg: &StageConfig, staging: &Staging, log: &Progress) -> Result<Phases> {
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let env = phase_env(cfg);
    let commands: Vec<Vec<String>> = cfg.phases.iter().map(|p| p.argv.clone()).collect();
    let script = Script {
        commands: &commands,
        user: &staging.user.exec,
        env: &env,
        working_dir: BUILD_DIR,
    };
    let mut driver = Driver::start(&run.docker, staging.container.id(), &script, deadline).await?;
    let mut phases = Phases::default();
    for spec in &cfg.phases {
        let mut watch = Watch::begin(cfg, staging, spec, log);
        let out = driver.run_next(|line| watch.line(line)).await?;
        let rec = watch.end(out);
        report_end(&rec, cfg, log);
        let failed = rec.failed().then(|| why_failed(&rec, cfg));
        phases.records.push(rec);
        if failed.is_some() {
            phases.failed = failed;
            break;
        }
        if driver.broken() {
            break;
        }
    }
    let timed_out = phases.records.last().is_some_and(|r| r.timed_out);
    if let Some(why) = driver.finish(timed_out).await? {
        let broken = format!(
            "the phases' driver was interfered with ({why}): where each phase ended and how cannot be trusted"
        );
        log.warn(&broken);
        phases.failed = Some(match phases.failed.take() {
            Some(first) => format!("{first}; {broken}"),
            None => broken,
        });
    }
    Ok(phases)
}

/// Run one phase with `env` in an exec of its own, until it exits or `deadline` passes.
pub(crate) async fn run_one(
    run: &Run,
    cfg: &StageConfig,
    staging: &Staging,
    spec: &PhaseSpec,
    env: &[String],
    deadline: tokio::time::Instant,
    log: &Progress,
) -> Result<PhaseRecord> {
    let mut watch = Watch::begin(cfg, staging, spec, log);
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
        |line| watch.line(line),
    )
    .await?;
    Ok(watch.end(out))
}

/// A phase as it runs: announced, timed, its output shown as the verbosity says and its tail kept.
struct Watch<'a> {
    cfg: &'a StageConfig,
    staging: &'a Staging,
    spec: &'a PhaseSpec,
    log: &'a Progress,
    started: i64,
    ooms_before: Option<u64>,
    tail: VecDeque<String>,
}

impl<'a> Watch<'a> {
    fn begin(
        cfg: &'a StageConfig,
        staging: &'a Staging,
        spec: &'a PhaseSpec,
        log: &'a Progress,
    ) -> Self {
        log.line(&format!(
            "{} (buildpack {}: {})",
            spec.name,
            spec.buildpack,
            cfg.buildpacks[spec.buildpack].name()
        ));
        Watch {
            cfg,
            staging,
            spec,
            log,
            started: now_micros(),
            ooms_before: engine::oom_kills(staging.pid),
            tail: VecDeque::with_capacity(TAIL_LINES),
        }
    }

    fn line(&mut self, line: &str) {
        let name = self.spec.name;
        // -vv: every line as it comes; -v: the steps, not the buildpack's output; otherwise the
        // spinner's message on a terminal. Escaped either way: the buildpack chose these bytes.
        // The tail stays raw; the reports escape it where they write it.
        match self.cfg.verbosity.level {
            1 => {}
            level => {
                let shown = terminal_safe(line);
                if level == 0 {
                    self.log.detail(&format!("[{name}] {shown}"));
                } else {
                    eprintln!("  [{name}] {shown}");
                }
            }
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail
            .push_back(line.chars().take(2000).collect::<String>());
    }

    fn end(self, out: ExecOutcome) -> PhaseRecord {
        PhaseRecord {
            name: self.spec.name.to_string(),
            buildpack: self.spec.buildpack,
            buildpack_name: self.cfg.buildpacks[self.spec.buildpack].name(),
            started: self.started,
            ended: now_micros(),
            exit_code: out.exit_code,
            timed_out: out.exit_code.is_none(),
            must_succeed: self.spec.must_succeed,
            oom_killed: matches!(
                (self.ooms_before, engine::oom_kills(self.staging.pid)),
                (Some(a), Some(b)) if b > a
            ),
            output_tail: self.tail.into_iter().collect(),
        }
    }
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
