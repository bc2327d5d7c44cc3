//! A staging run's configuration: every input checked before anything is created on the host
//! (exit 2 naming the input otherwise).

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{parse_duration, parse_env, parse_memory, ReportArgs, StageArgs, Verbosity};
use crate::error::{Error, Result};
use crate::staging::build_context::{self as context, Buildpack};
use crate::staging::lifecycle::{self, PhaseSpec};
use crate::verdict::policy::Allowlist;

/// A staging run's validated configuration.
pub struct StageConfig {
    pub app: PathBuf,
    pub buildpacks: Vec<Buildpack>,
    pub phases: Vec<PhaseSpec>,
    pub stack_image: String,
    pub stack: String,
    pub allowlist: Allowlist,
    pub reports: ReportArgs,
    pub pcap: Option<PathBuf>,
    pub timeout: Duration,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub keep_image: bool,
    /// -q, -v, -vv: with -vv the phases' output is shown as it comes.
    pub verbosity: Verbosity,
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
        if m.is_multiple_of(1 << 30) {
            format!("{}g", m >> 30)
        } else if m.is_multiple_of(1 << 20) {
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

pub(crate) fn bad_arg(option: &'static str, value: &str, expected: &str) -> Error {
    Error::BadArgument {
        option,
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// Check every input before anything is created on the host (exit 2 on any problem).
pub fn validate(a: &StageArgs, verbosity: Verbosity) -> Result<StageConfig> {
    let app = validate_app(a)?;
    if a.buildpacks.is_empty() {
        return Err(bad_arg(
            "--buildpack",
            "",
            "expected at least one buildpack directory or zip",
        ));
    }
    let timeout = parse_duration(&a.timeout)?;
    let network = Network::parse(&a.network)?;
    if let Some(f) = &a.judge.filter {
        crate::capture::check_filter(f)?;
    }
    let env = a
        .env
        .iter()
        .map(|e| parse_env(e))
        .collect::<Result<Vec<_>>>()?;
    validate_names(a)?;
    let allowlist = a.judge.load()?;
    a.reports.check_writable(a.save.pcap.as_deref())?;
    let scratch = scratch_dir()?;
    let (buildpacks, phases) = load_buildpacks(a, &app, &scratch)?;
    Ok(StageConfig {
        app,
        buildpacks,
        phases,
        stack_image: a.stack_image.clone(),
        stack: a
            .stack
            .clone()
            .unwrap_or_else(|| stack_name(&a.stack_image)),
        allowlist,
        reports: a.reports.clone(),
        pcap: a.save.pcap.clone(),
        timeout,
        env,
        user: a.user.clone(),
        keep_image: a.keep_image,
        verbosity,
        network,
        filter: a.judge.filter.clone(),
        memory: parse_memory(&a.memory)?,
        scratch,
    })
}

/// The app: a directory that can be listed.
fn validate_app(a: &StageArgs) -> Result<PathBuf> {
    let app = match a.apps.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(bad_arg(
                "--app",
                "",
                "expected the app directory to stage (see --help)",
            ))
        }
        [_, second, ..] => {
            return Err(bad_arg(
                "--app",
                &second.display().to_string(),
                "expected one app per run: this build stages a single app (run airgap-check once per app)",
            ))
        }
    };
    match std::fs::metadata(&app) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::BadInput {
                path: app,
                reason: "not a directory: expected the app's source folder".into(),
            })
        }
        Err(e) => {
            return Err(Error::Read {
                path: app,
                source: e,
            })
        }
    }
    std::fs::read_dir(&app).map_err(|e| Error::Read {
        path: app.clone(),
        source: e,
    })?;
    Ok(app)
}

/// --user and --stack-image, as the engine will take them.
fn validate_names(a: &StageArgs) -> Result<()> {
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
    Ok(())
}

/// The run's scratch folder (extracted zips, the build context): removed when the run ends.
fn scratch_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("airgap-check-{}-", std::process::id()))
        .tempdir()
        .map_err(|e| Error::WriteFile {
            path: std::env::temp_dir(),
            source: e,
        })
}

/// The buildpacks (zips extracted into `scratch`) and the phases they make.
fn load_buildpacks(
    a: &StageArgs,
    app: &std::path::Path,
    scratch: &tempfile::TempDir,
) -> Result<(Vec<Buildpack>, Vec<PhaseSpec>)> {
    let buildpacks = a
        .buildpacks
        .iter()
        .enumerate()
        .map(|(i, p)| context::load_buildpack(p, scratch.path(), i))
        .collect::<Result<Vec<_>>>()?;
    // Every directory listable and every file readable before anything is created (exit 2 naming
    // the entry otherwise); FIFOs, sockets and devices are skipped later, with a warning each.
    context::check_tree(app)?;
    for bp in &buildpacks {
        context::check_tree(&bp.dir)?;
    }
    let scripts: Vec<_> = buildpacks.iter().map(|b| b.scripts).collect();
    let phases = lifecycle::plan(&scripts).map_err(|(i, reason)| Error::BadInput {
        path: buildpacks[i].source.clone(),
        reason: format!("buildpack {i} {reason}"),
    })?;
    Ok((buildpacks, phases))
}

/// "cloudfoundry/cflinuxfs4:1.2" → "cflinuxfs4".
pub fn stack_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last).to_string()
}
