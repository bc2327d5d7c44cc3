//! Command line → validated configuration.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

#[derive(Debug, Parser)]
#[command(
    name = "airgap-check",
    version,
    about = "Prove that a buildpack stages an app with no network egress",
    long_about = None,
    after_help = "Exit codes: 0 pass, 1 fail, 2 the invocation or an input is wrong, 3 the environment prevents a verdict (inconclusive)."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub stage: StageArgs,
}

/// The main job: stage an app with buildpacks in a sealed network and judge every packet.
#[derive(Debug, Args)]
pub struct StageArgs {
    /// The app to stage (a directory); repeat to stage several, each in its own sealed container,
    /// with the same buildpacks.
    #[arg(long = "app", value_name = "DIR")]
    pub apps: Vec<PathBuf>,
    /// Stage at most N apps at once (default: four per CPU; a staging run mostly waits).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// A buildpack directory or zip; repeat for multi-buildpack staging (the last one is final).
    #[arg(long = "buildpack", value_name = "DIR|ZIP")]
    pub buildpacks: Vec<PathBuf>,
    /// The stack image the staging container is built from.
    #[arg(long, value_name = "IMAGE", default_value = "cloudfoundry/cflinuxfs4")]
    pub stack_image: String,
    /// CF_STACK for the buildpacks; default: derived from the stack image's name.
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
    #[command(flatten)]
    pub judge: JudgeArgs,
    #[command(flatten)]
    pub reports: ReportArgs,
    #[command(flatten)]
    pub save: SaveArgs,
    /// Give up on staging after this long (e.g. 30s, 10m, 1h): verdict fail.
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub timeout: String,
    /// Extra environment for the phases (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Run the phases as this user (name or uid[:gid]); default: vcap when the stack has it.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Where the phases run: `sealed` (default: a network of airgap-check's own that answers
    /// everything and reaches nothing), `bridge` (observe: a new Docker bridge network for this
    /// run, with the host's real way out), or the name of an existing Docker network to join.
    #[arg(long, value_name = "sealed|bridge|NETWORK", default_value = "sealed")]
    pub network: String,
    /// The staging container's memory limit (e.g. 512m, 2g); the phases see it as MEMORY_LIMIT.
    /// A phase the kernel kills for lack of memory fails staging, and the reports say so.
    #[arg(long, value_name = "SIZE", default_value = "1g")]
    pub memory: String,
    /// Keep the image built for the run (it is removed by default; only --context copy builds
    /// one).
    #[arg(long)]
    pub keep_image: bool,
    /// How the app and the buildpacks reach the engine: `mount` (the engine mounts this host's
    /// files: no image is built, a buildpack is never copied), `copy` (everything is sent in a
    /// build context and built into an image, for an engine that cannot see this host's files), or
    /// `auto` (mount, and copy when the engine turns out not to see them).
    #[arg(long, value_name = "auto|mount|copy", default_value = "auto")]
    pub context: String,
    /// Refuse a buildpack zip that expands to more than SIZE (e.g. 8g); default: 256 MiB plus four
    /// times the zip's own size. Extracted zips are cached by content (see `prune`).
    #[arg(long, value_name = "SIZE")]
    pub max_unzipped: Option<String>,
    /// Show the image build and the phases' output as they run.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Judge a saved capture (pcap or pcapng) against an allowlist.
    Analyze(AnalyzeArgs),
    /// Remove containers, images, networks and temporary folders left by runs that were killed.
    Prune,
    /// Watch a running container's traffic and judge it: until Ctrl-C, --duration, or the
    /// container's exit.
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The container to watch (name or id).
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Stop after this long (e.g. 30s, 10m); default: until Ctrl-C or the container exits.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    #[command(flatten)]
    pub judge: JudgeArgs,
    #[command(flatten)]
    pub reports: ReportArgs,
    #[command(flatten)]
    pub save: SaveArgs,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The capture to judge (pcap or pcapng).
    #[arg(long, value_name = "FILE")]
    pub pcap: PathBuf,
    #[command(flatten)]
    pub judge: JudgeArgs,
    #[command(flatten)]
    pub reports: ReportArgs,
    /// Addresses that are "this host" (repeatable); default: the address present in every flow.
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    pub local: Vec<IpNet>,
}

/// How flows are judged: every command takes these.
#[derive(Clone, Debug, Args)]
pub struct JudgeArgs {
    /// Allowlist YAML; default: the built-in allowlists/default.yaml.
    #[arg(long, value_name = "FILE")]
    pub allowlist: Option<PathBuf>,
    /// Look only at the packets this libpcap filter expression passes (see pcap-filter(7)); the
    /// verdict then covers those packets only.
    #[arg(long, value_name = "BPF")]
    pub filter: Option<String>,
}

/// The report files: every command can write these.
#[derive(Clone, Debug, Default, Args)]
pub struct ReportArgs {
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the JUnit XML report here (a testcase per phase when staging, per destination
    /// otherwise).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the allowlist that would make this run pass here: the allowlist's rules, then one
    /// rule per disallowed destination (by name where known), each to be reviewed.
    #[arg(long, value_name = "FILE")]
    pub suggest_allowlist: Option<PathBuf>,
}

/// Keeping the packets of a live capture.
#[derive(Clone, Debug, Default, Args)]
pub struct SaveArgs {
    /// Write every captured packet here (pcap, for Wireshark or `airgap-check analyze`).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
}

/// A CIDR, or a bare address taken as a host prefix.
fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| "expected an address or CIDR such as 10.1.0.2 or 10.0.0.0/8".to_string())
}

/// A duration such as 30s, 10m, 1h or 1h30m (for --timeout).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, crate::error::Error> {
    parse_duration_for("--timeout", s)
}

/// A duration such as 30s, 10m, 1h or 1h30m, for `option`.
pub fn parse_duration_for(
    option: &'static str,
    s: &str,
) -> Result<std::time::Duration, crate::error::Error> {
    humantime::parse_duration(s.trim())
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| crate::error::Error::BadArgument {
            option,
            value: s.to_string(),
            expected: "expected a duration such as 30s, 10m or 1h".into(),
        })
}

/// A memory size: bytes, or a number with k, m or g (binary units), at least 6m (Docker's floor).
pub fn parse_memory(s: &str) -> Result<u64, crate::error::Error> {
    parse_size("--memory", s)
        .ok()
        .filter(|b| *b >= 6 << 20)
        .ok_or_else(|| crate::error::Error::BadArgument {
            option: "--memory",
            value: s.to_string(),
            expected: "expected a size of at least 6m, such as 512m or 2g".into(),
        })
}

/// A size for `option`: bytes, or a number with k, m or g (binary units): 512m, 8g.
pub fn parse_size(option: &'static str, s: &str) -> Result<u64, crate::error::Error> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, unit) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| crate::error::Error::BadArgument {
            option,
            value: s.to_string(),
            expected: "expected a size such as 512m or 8g".into(),
        })
}

/// K=V, with a name the shell would accept.
pub fn parse_env(s: &str) -> Result<(String, String), crate::error::Error> {
    match s.split_once('=') {
        Some((k, v))
            if !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(crate::error::Error::BadArgument {
            option: "--env",
            value: s.to_string(),
            expected: "expected NAME=VALUE with NAME made of letters, digits and _".into(),
        }),
    }
}

pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args)
}

impl JudgeArgs {
    /// The allowlist to judge with (the built-in default when none is named), after checking the
    /// filter expression: both before anything is created (exit 2 on a bad one).
    pub fn load(&self) -> Result<crate::verdict::policy::Allowlist, crate::error::Error> {
        let allowlist = match &self.allowlist {
            Some(p) => crate::verdict::policy::Allowlist::load(p)?,
            None => crate::verdict::policy::Allowlist::default_list(),
        };
        if let Some(f) = &self.filter {
            crate::capture::check_filter(f)?;
        }
        Ok(allowlist)
    }
}
