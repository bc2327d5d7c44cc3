//! Running a group in the staging container as the lifecycle's detector and builder do
//! (buildpack.md "Phase #1: Detection" and "Phase #5: Build"; buildpacks/lifecycle
//! buildpack/detect.go and build.go): the platform's folders first, then every detect (all of
//! them, even after one failed: each may contact something), the group's plans resolved, then
//! each build with its Buildpack Plan and the environment the earlier builds' layers make, and
//! what each build declared read back before the next one runs.

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::report;
use crate::staging::cnb::env::BuildEnv;
use crate::staging::cnb::plan::{self, BuildPlan, Entry};
use crate::staging::cnb::rootfs::{Owner, RootFs};
use crate::staging::cnb::{self as cnb, build_layers, layers, platform, vars, Descriptor, Record};
use crate::staging::config::StageConfig;
use crate::staging::container::Staging;
use crate::staging::engine;
use crate::staging::lifecycle::PhaseSpec;
use crate::staging::phases::{self, Phases};
use crate::staging::run::Run;
use crate::verdict::analysis::PhaseRecord;

/// What every phase of the group shares.
struct Ctx<'a> {
    run: &'a Run,
    cfg: &'a StageConfig,
    staging: &'a Staging,
    group: &'a [Descriptor],
    fs: RootFs,
    /// `CNB_TARGET_*` (Buildpack API 0.10 and later).
    target: Vec<String>,
    deadline: tokio::time::Instant,
    log: &'a Progress,
}

/// Run the group's phases until one fails or the timeout passes.
pub async fn run_all(
    run: &Run,
    cfg: &StageConfig,
    staging: &Staging,
    group: &[Descriptor],
    log: &Progress,
) -> Result<Phases> {
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let image = engine::container_image_config(&run.docker, staging.container.id()).await?;
    let unreachable = |what: &str| {
        let what = what.to_string();
        move |source| Error::ContainerFiles { what, source }
    };
    let fs = RootFs::of(staging.pid).map_err(unreachable("open the root"))?;
    let owner = Owner {
        uid: staging.user.uid,
        gid: staging.user.gid,
    };
    platform::prepare(&fs, &cfg.env, group, owner)
        .map_err(unreachable("make the platform's folders and plan files"))?;
    let ctx = Ctx {
        run,
        cfg,
        staging,
        group,
        target: vars::target(&image, &vars::os_release(&fs)),
        fs,
        deadline,
        log,
    };
    let base = BuildEnv::from_image(&image.env);
    let mut phases = Phases {
        cnb: Some(Record::of(group)),
        ..Phases::default()
    };
    let Some(plans) = detect_all(&ctx, &base, &mut phases).await? else {
        return Ok(phases);
    };
    match resolve(&ctx, plans).await? {
        Ok(entries) => build_all(&ctx, base, entries, &mut phases).await?,
        Err(why) => phases.failed = Some(why),
    }
    // Why staging failed may quote the buildpacks' own text (file and layer names, a TOML key):
    // every report escapes it where it prints it (report::text), so it is kept raw here.
    Ok(phases)
}

/// Resolve the group's plans off the runtime's threads (a signal still stops the run) and within
/// the timeout; `Err` says why staging failed.
async fn resolve(
    ctx: &Ctx<'_>,
    plans: Vec<BuildPlan>,
) -> Result<std::result::Result<Vec<Entry>, String>> {
    let names: Vec<String> = ctx.group.iter().map(|d| d.id.clone()).collect();
    let job = tokio::task::spawn_blocking(move || plan::resolve(&plans, &names));
    match tokio::time::timeout_at(ctx.deadline, job).await {
        Ok(Ok(Ok(entries))) => Ok(Ok(entries)),
        Ok(Ok(Err(why))) => Ok(Err(format!(
            "detection failed: the group's build plans do not resolve: {why}; no build ran"
        ))),
        Ok(Err(e)) => Err(Error::Internal(format!("resolving the build plans: {e}"))),
        Err(_) => Ok(Err(format!(
            "staging timed out after {:?} resolving the group's build plans; no build ran",
            ctx.cfg.timeout
        ))),
    }
}

/// Run one phase of the group with `env` (and its own CNB variables).
async fn phase(ctx: &Ctx<'_>, name: &str, i: usize, env: &BuildEnv) -> Result<PhaseRecord> {
    let spec: &PhaseSpec = ctx
        .cfg
        .phases
        .iter()
        .find(|p| p.name == name && p.buildpack == i)
        .ok_or_else(|| Error::Internal(format!("no {name} phase for buildpack {i}")))?;
    let mut vars = env.with_user(&ctx.cfg.env, ctx.group[i].clear_env);
    vars.extend(vars::phase_vars(
        &ctx.group[i],
        i,
        name == "build",
        &ctx.target,
    ));
    let rec = phases::run_one(
        ctx.run,
        ctx.cfg,
        ctx.staging,
        spec,
        &vars,
        ctx.deadline,
        ctx.log,
    )
    .await?;
    phases::report_end(&rec, ctx.cfg, ctx.log);
    Ok(rec)
}

/// Every detect, in order; the plans they wrote, or `None` when detection failed (said in
/// `phases.failed`).
async fn detect_all(
    ctx: &Ctx<'_>,
    base: &BuildEnv,
    phases: &mut Phases,
) -> Result<Option<Vec<BuildPlan>>> {
    let mut plans = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for i in 0..ctx.group.len() {
        let rec = phase(ctx, "detect", i, base).await?;
        if rec.timed_out {
            phases.failed = Some(phases::why_failed(&rec, ctx.cfg));
            phases.records.push(rec);
            return Ok(None);
        }
        let outcome = detected(ctx, i, &rec);
        phases.records.push(rec);
        match outcome {
            Ok(p) => plans.push(p),
            Err(why) => failures.push(why),
        }
    }
    if let Some(first) = failures.first() {
        let more = match failures.len() {
            1 => String::new(),
            n => format!(" (and {} more detect(s) failed)", n - 1),
        };
        phases.failed = Some(format!(
            "detection failed: {first}{more}; every buildpack given is required, so no build ran"
        ));
        return Ok(None);
    }
    Ok(Some(plans))
}

/// What a detect's exit and `<plan>` say (buildpack.md "Detection": pass (0), fail (100), or
/// error (1-99, 101+)).
fn detected(ctx: &Ctx<'_>, i: usize, rec: &PhaseRecord) -> std::result::Result<BuildPlan, String> {
    match rec.exit_code {
        Some(0) => {}
        Some(100) => {
            return Err(format!(
                "{} exited 100: the buildpack does not apply to this app (detect passes with 0, fails with 100; any other exit is an error)",
                rec.label()
            ))
        }
        _ => {
            return Err(format!(
                "{} {}: an error (detect passes with 0, fails with 100; any other exit is an error)",
                rec.label(),
                rec.exited()
            ))
        }
    }
    let path = cnb::detect_plan(i);
    let text = match ctx.fs.read(&path, 1 << 20) {
        Ok(b) => String::from_utf8_lossy(&b.unwrap_or_default()).into_owned(),
        Err(e) => return Err(format!("{}: its build plan {path}: {e}", rec.label())),
    };
    let plan = BuildPlan::parse(&text).map_err(|e| {
        format!(
            "{} wrote a build plan the lifecycle would refuse: {path}: {e}",
            rec.label()
        )
    })?;
    plan.check_size()
        .map_err(|e| format!("{} wrote too big a build plan: {path}: {e}", rec.label()))?;
    Ok(plan)
}

/// Every build, in order, each given its Buildpack Plan; stops at the first that fails.
async fn build_all(
    ctx: &Ctx<'_>,
    mut env: BuildEnv,
    mut entries: Vec<Entry>,
    phases: &mut Phases,
) -> Result<()> {
    for i in 0..ctx.group.len() {
        if let Err(why) = build(ctx, i, &mut env, &mut entries, phases).await? {
            phases.failed = Some(why);
            break;
        }
    }
    Ok(())
}

/// Build `i`: its plan written, the phase run, then what it declared taken into the plan, the
/// environment of the builds after it and the record. `Err` says why staging failed.
async fn build(
    ctx: &Ctx<'_>,
    i: usize,
    env: &mut BuildEnv,
    entries: &mut Vec<Entry>,
    phases: &mut Phases,
) -> Result<std::result::Result<(), String>> {
    let d = &ctx.group[i];
    let given = plan::buildpack_plan(entries, i);
    if let Err(why) = platform::write_build_plan(&ctx.fs, i, &d.id, &given) {
        return Ok(Err(why));
    }
    let rec = phase(ctx, "build", i, env).await?;
    let label = rec.label();
    let failed = rec.failed().then(|| phases::why_failed(&rec, ctx.cfg));
    phases.records.push(rec);
    if let Some(why) = failed {
        return Ok(Err(why));
    }
    let declared = match layers::read_back(&ctx.fs, &cnb::layers_dir(&d.id), &d.id, d.api).and_then(
        |declared| {
            *entries = plan::after_build(std::mem::take(entries), &given, &declared.unmet)?;
            build_layers::add(&ctx.fs, env, &declared.layers)?;
            Ok(declared)
        },
    ) {
        Ok(declared) => declared,
        Err(why) => {
            return Ok(Err(format!(
                "{label}: {why} (the lifecycle would fail the build)"
            )))
        }
    };
    for line in report::cnb::declared_lines(&declared) {
        ctx.log.line(&line);
    }
    if let Some(r) = phases.cnb.as_mut() {
        layers::merge_processes(&mut r.processes, declared.processes);
        r.layers.extend(declared.layers);
    }
    Ok(Ok(()))
}
