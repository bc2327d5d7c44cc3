//! Running a group in the staging container as the lifecycle's detector and builder do
//! (buildpack.md "Phase #1: Detection" and "Phase #5: Build"; buildpacks/lifecycle
//! buildpack/detect.go and build.go): the platform's folders first, then every detect (all of
//! them, even after one failed: each may contact something), the group's plans resolved, then
//! each build with its Buildpack Plan and the environment the earlier builds' layers make, and
//! what each build declared read back before the next one runs.

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::report::{self, explain::printable};
use crate::staging::cnb::env::BuildEnv;
use crate::staging::cnb::layers::{self, Layer};
use crate::staging::cnb::plan::{self, BuildPlan, Entry};
use crate::staging::cnb::rootfs::{Owner, RootFs};
use crate::staging::cnb::{self as cnb, Descriptor, Record};
use crate::staging::config::StageConfig;
use crate::staging::container::Staging;
use crate::staging::engine;
use crate::staging::lifecycle::{buildpack_dir, PhaseSpec};
use crate::staging::phases::{self, Phases};
use crate::staging::run::Run;
use crate::verdict::analysis::PhaseRecord;

/// The most the env files of one build's layers may hold, in all.
const MAX_ENV_BYTES: u64 = 1 << 20;

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
    prepare(&fs, cfg, group, owner)
        .map_err(unreachable("make the platform's folders and plan files"))?;
    let ctx = Ctx {
        run,
        cfg,
        staging,
        group,
        target: target_env(&fs, &image),
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
        return Ok(escaped(phases));
    };
    match resolve(&ctx, plans).await? {
        Ok(entries) => build_all(&ctx, base, entries, &mut phases).await?,
        Err(why) => phases.failed = Some(why),
    }
    Ok(escaped(phases))
}

/// Why staging failed may quote the buildpacks' own text (file and layer names, a TOML key):
/// escaped, for every report, so that it cannot drive a terminal or start a line of its own.
fn escaped(mut phases: Phases) -> Phases {
    phases.failed = phases.failed.map(|why| printable(&why));
    phases
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

/// The platform's folders and files, made before anything of the buildpacks runs: `<platform>`
/// and its `env/` (root's, read-only to the buildpacks), each buildpack's `<layers>` and detect
/// `<plan>` (the staging user's), the folders of the build `<plan>`s (root's).
fn prepare(
    fs: &RootFs,
    cfg: &StageConfig,
    group: &[Descriptor],
    user: Owner,
) -> std::io::Result<()> {
    let env_dir = format!("{}/env", cnb::PLATFORM_DIR);
    fs.mkdir_all(&env_dir, Owner::ROOT, 0o755)?;
    for (k, v) in &cfg.env {
        fs.write(&format!("{env_dir}/{k}"), v.as_bytes(), Owner::ROOT, 0o644)?;
    }
    fs.mkdir_all(cnb::LAYERS_DIR, user, 0o755)?;
    for (i, d) in group.iter().enumerate() {
        fs.mkdir(&cnb::layers_dir(&d.id), user, 0o755)?;
        let detect = cnb::detect_plan(i);
        let detect_dir = &detect[..detect.len() - "/plan.toml".len()];
        fs.mkdir_all(detect_dir, user, 0o700)?;
        fs.write(&detect, b"", user, 0o600)?;
        let build = cnb::build_plan(i);
        fs.mkdir_all(
            &build[..build.len() - "/plan.toml".len()],
            Owner::ROOT,
            0o755,
        )?;
    }
    Ok(())
}

/// `CNB_TARGET_OS`, `_ARCH`, `_ARCH_VARIANT` and the distribution from the image's
/// /etc/os-release (`ID`, `VERSION_ID`), as the lifecycle derives them from the image
/// (platform.md "Target Data").
fn target_env(fs: &RootFs, image: &engine::ImageConfig) -> Vec<String> {
    let mut env = vec!["CNB_TARGET_OS=linux".to_string()];
    env.extend(image.arch.as_ref().map(|a| format!("CNB_TARGET_ARCH={a}")));
    env.extend(
        image
            .variant
            .as_ref()
            .map(|v| format!("CNB_TARGET_ARCH_VARIANT={v}")),
    );
    let release = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| fs.read(p, 64 << 10).ok().flatten())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let field = |k: &str| {
        release.lines().find_map(|l| {
            let v = l.strip_prefix(k)?.strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_string()).filter(|v| !v.is_empty())
        })
    };
    env.extend(field("ID").map(|v| format!("CNB_TARGET_DISTRO_NAME={v}")));
    env.extend(field("VERSION_ID").map(|v| format!("CNB_TARGET_DISTRO_VERSION={v}")));
    env
}

/// The variables the lifecycle sets for buildpack `i`'s detect (`build`: false) or build
/// (buildpack.md "Detection" and "Build" inputs; lifecycle detect.go `runDetect`, build.go
/// `runBuildCmd`): `CNB_BUILDPACK_DIR` always, the paths from API 0.8, the target from 0.10.
fn cnb_vars(ctx: &Ctx<'_>, i: usize, build: bool) -> Vec<String> {
    let d = &ctx.group[i];
    let mut v = vec![format!("CNB_BUILDPACK_DIR={}", buildpack_dir(i))];
    if d.api.at_least(8) {
        v.push(format!("CNB_PLATFORM_DIR={}", cnb::PLATFORM_DIR));
        if build {
            v.push(format!("CNB_BP_PLAN_PATH={}", cnb::build_plan(i)));
            v.push(format!("CNB_LAYERS_DIR={}", cnb::layers_dir(&d.id)));
        } else {
            v.push(format!("CNB_BUILD_PLAN_PATH={}", cnb::detect_plan(i)));
        }
    }
    if d.api.at_least(10) {
        v.extend(ctx.target.iter().cloned());
    }
    v
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
    vars.extend(cnb_vars(ctx, i, name == "build"));
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
    for (i, d) in ctx.group.iter().enumerate() {
        let given = plan::buildpack_plan(&entries, i);
        let path = cnb::build_plan(i);
        let toml = match plan::plan_toml(&given) {
            Ok(t) => t,
            Err(e) => {
                phases.failed = Some(format!(
                    "the Buildpack Plan of buildpack {i} ({}) cannot be written as TOML: {e}; its build did not run",
                    d.id
                ));
                return Ok(());
            }
        };
        // The buildpacks have run (as root, they can change anything): a plan that cannot be
        // written fails staging, and the capture is judged all the same.
        if let Err(e) = ctx.fs.write(&path, toml.as_bytes(), Owner::ROOT, 0o644) {
            phases.failed = Some(format!(
                "a buildpack altered {}: cannot write {path}: {e}; build (buildpack {i}) did not run",
                cnb::PLANS_DIR
            ));
            return Ok(());
        }
        let rec = phase(ctx, "build", i, &env).await?;
        let label = rec.label();
        let failed = rec.failed().then(|| phases::why_failed(&rec, ctx.cfg));
        phases.records.push(rec);
        if failed.is_some() {
            phases.failed = failed;
            return Ok(());
        }
        let fail = |why: String| {
            Some(format!(
                "{label}: {why} (the lifecycle would fail the build)"
            ))
        };
        let declared = match layers::read_back(&ctx.fs, &cnb::layers_dir(&d.id), &d.id, d.api) {
            Ok(x) => x,
            Err(why) => {
                phases.failed = fail(why);
                return Ok(());
            }
        };
        entries = match plan::after_build(entries, &given, &declared.unmet) {
            Ok(e) => e,
            Err(why) => {
                phases.failed = fail(why);
                return Ok(());
            }
        };
        if let Err(why) = add_build_layers(&ctx.fs, &mut env, &declared.layers) {
            phases.failed = fail(why);
            return Ok(());
        }
        for line in report::cnb::declared_lines(&declared) {
            ctx.log.line(&line);
        }
        if let Some(r) = phases.cnb.as_mut() {
            layers::merge_processes(&mut r.processes, declared.processes);
            r.layers.extend(declared.layers);
        }
    }
    Ok(())
}

/// The `build = true` layers of a build, for the builds after it: their folders on the path
/// variables, their `env/` and `env.build/` files applied (lifecycle build.go `setupEnv`).
fn add_build_layers(
    fs: &RootFs,
    env: &mut BuildEnv,
    made: &[Layer],
) -> std::result::Result<(), String> {
    // What a build's env files may hold in all: the environment of an exec, not a data store.
    let mut left: u64 = MAX_ENV_BYTES;
    for layer in made.iter().filter(|l| l.build && l.has_contents) {
        let subs = fs
            .list(&layer.path)
            .map_err(|e| format!("{}: {e}", layer.path))?;
        let present: Vec<String> = subs
            .into_iter()
            .filter(|(_, d)| *d)
            .map(|(n, _)| n)
            .collect();
        env.add_root_dir(&layer.path, &present);
        for sub in ["env", "env.build"] {
            let dir = format!("{}/{sub}", layer.path);
            let mut files = Vec::new();
            for (name, is_dir) in fs.list(&dir).map_err(|e| format!("{dir}: {e}"))? {
                if is_dir {
                    continue;
                }
                let value = fs
                    .read(&format!("{dir}/{name}"), left)
                    .map_err(|e| {
                        format!("{dir}/{name}: {e} (the env files of a build hold at most 1 MiB in all)")
                    })?
                    .unwrap_or_default();
                left -= value.len() as u64;
                files.push((name, String::from_utf8_lossy(&value).into_owned()));
            }
            env.add_env_files(&files);
        }
    }
    Ok(())
}
