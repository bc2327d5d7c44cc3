//! A staging run's configuration: every input checked before anything is created on the host
//! (exit 2 naming the input otherwise).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{
    parse_duration, parse_env, parse_memory, parse_size, ReportArgs, StageArgs, Verbosity,
};
use crate::error::{Error, Result};
use crate::staging::buildpack::{load_buildpack, Buildpack, UnzipLimit};
use crate::staging::cnb::{self, Descriptor};
use crate::staging::lifecycle::{self, PhaseSpec};
use crate::staging::zip_cache::ZipCache;
use crate::verdict::policy::Allowlist;

/// How the app and the buildpacks reach the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// Mounted from this host (no image is built); sent in a build context when the engine turns
    /// out not to see this host's files.
    Auto,
    /// Mounted from this host, or the run fails.
    Mount,
    /// Sent in a build context and built into an image (an engine on another host).
    Copy,
}

impl Context {
    fn parse(s: &str) -> Result<Context> {
        match s {
            "auto" => Ok(Context::Auto),
            "mount" => Ok(Context::Mount),
            "copy" => Ok(Context::Copy),
            _ => Err(bad_arg(
                "--context",
                s,
                "expected auto, mount (the engine mounts this host's files) or copy (everything sent in a build context)",
            )),
        }
    }
}

/// A staging run's validated configuration.
pub struct StageConfig {
    /// The apps, each staged in its own sealed container.
    pub apps: Vec<PathBuf>,
    /// At most this many apps at once.
    pub jobs: usize,
    pub context: Context,
    pub buildpacks: Vec<Buildpack>,
    pub phases: Vec<PhaseSpec>,
    /// Cloud Native Buildpacks: the group's descriptors, in the order given; `None` for v2.
    pub cnb: Option<Vec<Descriptor>>,
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
    /// Holds the apps' workspaces and build contexts; removed on drop.
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
    let apps = validate_apps(a)?;
    if a.buildpacks.is_empty() {
        return Err(bad_arg(
            "--buildpack",
            "",
            "expected at least one buildpack directory or zip",
        ));
    }
    let timeout = parse_duration(&a.timeout)?;
    let network = Network::parse(&a.network)?;
    let context = Context::parse(&a.context)?;
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
    let pcap = validate_pcap(a.save.pcap.as_deref(), apps.len())?;
    a.reports
        .check_writable(pcap.as_deref().filter(|_| apps.len() == 1))?;
    let limit = UnzipLimit {
        bytes: a
            .max_unzipped
            .as_deref()
            .map(|m| parse_size("--max-unzipped", m))
            .transpose()?,
    };
    let jobs = validate_jobs(a.jobs)?;
    let memory = parse_memory(&a.memory)?;
    let scratch = scratch_dir()?;
    let (buildpacks, phases) = load_buildpacks(a, &apps, limit)?;
    let cnb = buildpacks[0]
        .cnb
        .is_some()
        .then(|| buildpacks.iter().filter_map(|b| b.cnb.clone()).collect());
    Ok(StageConfig {
        apps,
        jobs,
        context,
        buildpacks,
        phases,
        cnb,
        stack_image: a.stack_image.clone(),
        stack: a
            .stack
            .clone()
            .unwrap_or_else(|| stack_name(&a.stack_image)),
        allowlist,
        reports: a.reports.clone(),
        pcap,
        timeout,
        env,
        user: a.user.clone(),
        keep_image: a.keep_image,
        verbosity,
        network,
        filter: a.judge.filter.clone(),
        memory,
        scratch,
    })
}

/// The apps: directories that can be listed, each named once.
fn validate_apps(a: &StageArgs) -> Result<Vec<PathBuf>> {
    if a.apps.is_empty() {
        return Err(bad_arg(
            "--app",
            "",
            "expected the app directory to stage (see --help)",
        ));
    }
    let mut seen = Vec::new();
    for app in &a.apps {
        validate_app(app)?;
        let canonical = app.canonicalize().unwrap_or_else(|_| app.clone());
        if seen.contains(&canonical) {
            return Err(bad_arg(
                "--app",
                &app.display().to_string(),
                "is given twice: expected each app once",
            ));
        }
        seen.push(canonical);
    }
    Ok(a.apps.clone())
}

/// One app: a directory that can be listed.
fn validate_app(app: &Path) -> Result<()> {
    match std::fs::metadata(app) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::BadInput {
                path: app.to_path_buf(),
                reason: "not a directory: expected the app's source folder".into(),
            })
        }
        Err(e) => {
            return Err(Error::Read {
                path: app.to_path_buf(),
                source: e,
            })
        }
    }
    std::fs::read_dir(app).map_err(|e| Error::Read {
        path: app.to_path_buf(),
        source: e,
    })?;
    Ok(())
}

/// --pcap: a file for one app; for several, a folder (made if missing) that gets one file each.
fn validate_pcap(pcap: Option<&Path>, apps: usize) -> Result<Option<PathBuf>> {
    let Some(p) = pcap else { return Ok(None) };
    if apps == 1 {
        return Ok(Some(p.to_path_buf()));
    }
    if p.is_file() {
        return Err(Error::Write {
            path: p.to_path_buf(),
            reason: "is a file: with several --app, --pcap names a folder (one capture per app)"
                .into(),
        });
    }
    std::fs::create_dir_all(p).map_err(|e| Error::WriteFile {
        path: p.to_path_buf(),
        source: e,
    })?;
    crate::report::check_writable(&p.join("probe.pcap"))?;
    Ok(Some(p.to_path_buf()))
}

/// --jobs: at least one; by default four per CPU (a staging run mostly waits: on the engine, on
/// the phases' own work).
fn validate_jobs(jobs: Option<usize>) -> Result<usize> {
    match jobs {
        Some(0) => Err(bad_arg("--jobs", "0", "expected at least 1")),
        Some(n) => Ok(n),
        None => Ok(4 * std::thread::available_parallelism().map_or(2, |n| n.get())),
    }
}

/// --user and --stack-image, as the engine will take them.
fn validate_names(a: &StageArgs) -> Result<()> {
    if let Some(u) = &a.user {
        if !valid_user(u) {
            return Err(bad_arg("--user", u, "expected a user name or uid[:gid]"));
        }
    }
    if !valid_image_ref(&a.stack_image) {
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

/// The buildpacks (zips extracted into the cache, or found there) and the phases they make.
fn load_buildpacks(
    a: &StageArgs,
    apps: &[PathBuf],
    limit: UnzipLimit,
) -> Result<(Vec<Buildpack>, Vec<PhaseSpec>)> {
    let cache = ZipCache::from_env()?;
    let buildpacks = a
        .buildpacks
        .iter()
        .map(|p| load_buildpack(p, &cache, limit))
        .collect::<Result<Vec<_>>>()?;
    // Every directory listable and every file readable before anything is created (exit 2 naming
    // the entry otherwise); FIFOs, sockets and devices are skipped later, with a warning each.
    for app in apps {
        crate::staging::tree::check_tree(app)?;
    }
    for bp in &buildpacks {
        crate::staging::tree::check_tree(&bp.dir)?;
    }
    let phases = plan_phases(&buildpacks)?;
    Ok((buildpacks, phases))
}

/// The phases of these buildpacks, all of one kind (exit 2 naming the buildpack otherwise):
/// the CNB group's, or the v2 lifecycle's.
fn plan_phases(buildpacks: &[Buildpack]) -> Result<Vec<PhaseSpec>> {
    let bad = |i: usize, reason: String| Error::BadInput {
        path: buildpacks[i].source.clone(),
        reason: format!("buildpack {i} {reason}"),
    };
    let kind = |b: &Buildpack| match b.cnb {
        Some(_) => cnb::Kind::Cnb,
        None => cnb::Kind::V2,
    };
    let first = kind(&buildpacks[0]);
    if let Some(i) = buildpacks.iter().position(|b| kind(b) != first) {
        return Err(bad(
            i,
            format!(
                "is {}, but buildpack 0 ({}) is {}: one run stages buildpacks of one kind",
                kind(&buildpacks[i]).described(),
                buildpacks[0].source.display(),
                first.described()
            ),
        ));
    }
    if first == cnb::Kind::Cnb {
        let group: Vec<Descriptor> = buildpacks.iter().filter_map(|b| b.cnb.clone()).collect();
        cnb::check_group(&group).map_err(|(i, reason)| bad(i, reason))?;
        return Ok(cnb::plan(&group));
    }
    let scripts: Vec<_> = buildpacks.iter().map(|b| b.scripts).collect();
    lifecycle::plan(&scripts).map_err(|(i, reason)| bad(i, reason))
}

/// "cloudfoundry/cflinuxfs4:1.2" → "cflinuxfs4".
pub fn stack_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last).to_string()
}

/// The user a name or uid[:gid] may be: safe to put in a shell line and a Dockerfile.
pub fn valid_user(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// An image reference Docker could accept; anything else is refused before it reaches a Dockerfile.
pub fn valid_image_ref(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 255
        && r.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_users_and_images_are_refused() {
        assert!(valid_image_ref("cloudfoundry/cflinuxfs4:latest"));
        assert!(!valid_image_ref("x\nRUN curl evil"));
        assert!(valid_user("vcap") && valid_user("2000:2000"));
        assert!(!valid_user("bad user; rm -rf /"));
    }
}
