//! Command line → validated configuration.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

#[derive(Debug, Parser)]
#[command(
    name = "airgap-check",
    version,
    propagate_version = true,
    about = "Prove that a buildpack stages an app with no network egress",
    long_about = None,
    after_help = "Exit codes: 0 pass, 1 fail, 2 the invocation or an input is wrong, 3 the environment prevents a verdict (inconclusive).\n\nOptions also come from airgap-check.yaml (the current folder, then upward to the repository root; see --config) and from AIRGAP_CHECK_* environment variables; the command line wins over both, the environment over the file."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub stage: StageArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Options every command takes: how much to say, in which colours, and the configuration file.
#[derive(Clone, Debug, Args)]
pub struct GlobalArgs {
    /// Print the verdict line only (errors and warnings still go to stderr).
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        env = "AIRGAP_CHECK_QUIET"
    )]
    pub quiet: bool,
    /// Say more: -v shows the image build and every step, -vv also the buildpack's own output
    /// as it runs.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// When to use colour: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        default_value = "auto",
        env = "AIRGAP_CHECK_COLOR"
    )]
    pub color: ColorWhen,
    /// Read options from this YAML file instead of the airgap-check.yaml found in the current
    /// folder or above it (up to the repository root).
    #[arg(long, global = true, value_name = "FILE", env = "AIRGAP_CHECK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Read no configuration file, not even an airgap-check.yaml found nearby.
    #[arg(
        long,
        global = true,
        conflicts_with = "config",
        env = "AIRGAP_CHECK_NO_CONFIG"
    )]
    pub no_config: bool,
}

/// `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// How much a run says: the verdict line only, the usual, or more.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verbosity {
    pub quiet: bool,
    /// 0: the usual; 1: every step and the image build; 2: also the buildpack's output, live.
    pub level: u8,
}

impl GlobalArgs {
    pub fn verbosity(&self) -> Verbosity {
        Verbosity {
            quiet: self.quiet,
            level: if self.quiet { 0 } else { self.verbose },
        }
    }
}

/// The main job: stage an app with buildpacks in a sealed network and judge every packet.
#[derive(Debug, Args)]
pub struct StageArgs {
    /// The app to stage (a directory); repeat to stage several, each in its own sealed container,
    /// with the same buildpacks. AIRGAP_CHECK_APP takes several, one per line.
    #[arg(
        long = "app",
        value_name = "DIR",
        env = "AIRGAP_CHECK_APP",
        value_delimiter = '\n'
    )]
    pub apps: Vec<PathBuf>,
    /// Stage at most N apps at once (default: four per CPU; a staging run mostly waits).
    #[arg(long, value_name = "N", env = "AIRGAP_CHECK_JOBS")]
    pub jobs: Option<usize>,
    /// A buildpack directory or zip; repeat for multi-buildpack staging (the last one is final).
    /// AIRGAP_CHECK_BUILDPACK takes several, one per line.
    #[arg(
        long = "buildpack",
        value_name = "DIR|ZIP",
        env = "AIRGAP_CHECK_BUILDPACK",
        value_delimiter = '\n'
    )]
    pub buildpacks: Vec<PathBuf>,
    /// The stack image the staging container is built from.
    #[arg(
        long,
        value_name = "IMAGE",
        default_value = "cloudfoundry/cflinuxfs4",
        env = "AIRGAP_CHECK_STACK_IMAGE"
    )]
    pub stack_image: String,
    /// CF_STACK for the buildpacks; default: derived from the stack image's name.
    #[arg(long, value_name = "NAME", env = "AIRGAP_CHECK_STACK")]
    pub stack: Option<String>,
    #[command(flatten)]
    pub judge: JudgeArgs,
    #[command(flatten)]
    pub reports: ReportArgs,
    #[command(flatten)]
    pub save: SaveArgs,
    /// Give up on staging after this long (e.g. 30s, 10m, 1h): verdict fail.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "15m",
        env = "AIRGAP_CHECK_TIMEOUT"
    )]
    pub timeout: String,
    /// Extra environment for the phases (repeatable). AIRGAP_CHECK_ENV takes several, one per
    /// line.
    #[arg(
        long = "env",
        value_name = "K=V",
        env = "AIRGAP_CHECK_ENV",
        value_delimiter = '\n'
    )]
    pub env: Vec<String>,
    /// Run the phases as this user (name or uid[:gid]); default: vcap when the stack has it.
    #[arg(long, value_name = "USER", env = "AIRGAP_CHECK_USER")]
    pub user: Option<String>,
    /// Where the phases run: `sealed` (default: a network of airgap-check's own that answers
    /// everything and reaches nothing), `bridge` (observe: a new Docker bridge network for this
    /// run, with the host's real way out), or the name of an existing Docker network to join.
    #[arg(
        long,
        value_name = "sealed|bridge|NETWORK",
        default_value = "sealed",
        env = "AIRGAP_CHECK_NETWORK"
    )]
    pub network: String,
    /// The staging container's memory limit (e.g. 512m, 2g); the phases see it as MEMORY_LIMIT.
    /// A phase the kernel kills for lack of memory fails staging, and the reports say so.
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "1g",
        env = "AIRGAP_CHECK_MEMORY"
    )]
    pub memory: String,
    /// Keep the image built for the run (it is removed by default; only --context copy builds
    /// one).
    #[arg(long, env = "AIRGAP_CHECK_KEEP_IMAGE")]
    pub keep_image: bool,
    /// How the app and the buildpacks reach the engine: `mount` (the engine mounts this host's
    /// files: no image is built, a buildpack is never copied), `copy` (everything is sent in a
    /// build context and built into an image, for an engine that cannot see this host's files), or
    /// `auto` (mount, and copy when the engine turns out not to see them).
    #[arg(
        long,
        value_name = "auto|mount|copy",
        default_value = "auto",
        env = "AIRGAP_CHECK_CONTEXT"
    )]
    pub context: String,
    /// Refuse a buildpack zip that expands to more than SIZE (e.g. 8g); default: 256 MiB plus four
    /// times the zip's own size. Extracted zips are cached by content (see `prune`).
    #[arg(long, value_name = "SIZE", env = "AIRGAP_CHECK_MAX_UNZIPPED")]
    pub max_unzipped: Option<String>,
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
    /// Print a shell completion script (e.g. `airgap-check completions bash >
    /// /etc/bash_completion.d/airgap-check`).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `airgap-check man > airgap-check.1`.
    Man,
    /// Answer the manifest question before any staging, without Docker or root: the buildpack's
    /// dependencies per stack, cached or missing, each cached file's sha256, and the files under
    /// dependencies/ that no entry names. Exit 0 when every dependency is cached and intact, 1
    /// when not.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The buildpack: a folder, or a zip (read in place, never extracted).
    #[arg(long, value_name = "DIR|ZIP")]
    pub buildpack: PathBuf,
    /// Only this stack (CF_STACK); default: every stack the manifest names.
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
    /// Write the JSON report here (`-`: on stdout, the summary then on stderr).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Refuse a buildpack zip whose files declare more than SIZE (e.g. 8g) once inflated, before
    /// hashing any; default: 256 MiB plus four times the zip's own size (as staging's option).
    #[arg(long, value_name = "SIZE", env = "AIRGAP_CHECK_MAX_UNZIPPED")]
    pub max_unzipped: Option<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The container to watch (name or id).
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Stop after this long (e.g. 30s, 10m); default: until Ctrl-C or the container exits.
    #[arg(long, value_name = "DURATION", env = "AIRGAP_CHECK_DURATION")]
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
    /// The capture to judge (pcap or pcapng); `-` reads it from stdin (`tcpdump -w - | …`).
    #[arg(long, value_name = "FILE")]
    pub pcap: PathBuf,
    #[command(flatten)]
    pub judge: JudgeArgs,
    #[command(flatten)]
    pub reports: ReportArgs,
    /// Addresses that are "this host" (repeatable); default: the address present in every flow.
    #[arg(long, value_name = "CIDR", value_parser = parse_net, env = "AIRGAP_CHECK_LOCAL", value_delimiter = ',')]
    pub local: Vec<IpNet>,
}

/// How flows are judged: every command takes these.
#[derive(Clone, Debug, Args)]
pub struct JudgeArgs {
    /// Allowlist YAML; default: the built-in allowlists/default.yaml.
    #[arg(long, value_name = "FILE", env = "AIRGAP_CHECK_ALLOWLIST")]
    pub allowlist: Option<PathBuf>,
    /// Look only at the packets this libpcap filter expression passes (see pcap-filter(7)); the
    /// verdict then covers those packets only.
    #[arg(long, value_name = "BPF", env = "AIRGAP_CHECK_FILTER")]
    pub filter: Option<String>,
    /// The allowlist given inline in the configuration file (`allowlist:` as a mapping).
    #[arg(skip)]
    pub inline: Option<crate::verdict::policy::Allowlist>,
}

/// The report files: every command can write these. `-` is stdout (the console summary then
/// goes to stderr); one report at most can go there.
#[derive(Clone, Debug, Default, Args)]
pub struct ReportArgs {
    /// Write the JSON report here (`-`: stdout).
    #[arg(long, value_name = "FILE", env = "AIRGAP_CHECK_JSON")]
    pub json: Option<PathBuf>,
    /// Write the JUnit XML report here (`-`: stdout): a testcase per phase when staging, per
    /// destination otherwise.
    #[arg(long, value_name = "FILE", env = "AIRGAP_CHECK_JUNIT")]
    pub junit: Option<PathBuf>,
    /// Write the allowlist that would make this run pass here (`-`: stdout): the allowlist's
    /// rules, then one rule per disallowed destination (by name where known), each to be
    /// reviewed.
    #[arg(long, value_name = "FILE", env = "AIRGAP_CHECK_SUGGEST_ALLOWLIST")]
    pub suggest_allowlist: Option<PathBuf>,
}

/// Keeping the packets of a live capture.
#[derive(Clone, Debug, Default, Args)]
pub struct SaveArgs {
    /// Write every captured packet here (pcap, for Wireshark or `airgap-check analyze`).
    #[arg(long, value_name = "FILE", env = "AIRGAP_CHECK_PCAP")]
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

/// The command line (and the AIRGAP_CHECK_* environment) → the options, and where each came from
/// (for the configuration file, which fills only what neither gave).
pub fn parse<I, T>(args: I) -> Result<(Cli, clap::ArgMatches), clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    // The staging options belong to the main job: given with a subcommand, they are a mistake
    // (the global options -q, -v, --color, --config are fine anywhere).
    if let Some((sub, _)) = matches.subcommand() {
        let stage = StageArgs::augment_args(clap::Command::new("stage"));
        let given = stage.get_arguments().find(|a| {
            let id = a.get_id().as_str();
            matches!(
                matches
                    .try_get_raw(id)
                    .ok()
                    .flatten()
                    .map(|_| matches.value_source(id)),
                Some(Some(clap::parser::ValueSource::CommandLine))
            )
        });
        if let Some(a) = given {
            let name = a.get_long().unwrap_or(a.get_id().as_str());
            return Err(cmd.error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("--{name} belongs to a staging run; it cannot be used with the subcommand '{sub}' (options of '{sub}' go after its name)"),
            ));
        }
    }
    let cli = Cli::from_arg_matches(&matches)?;
    Ok((cli, matches))
}

impl JudgeArgs {
    /// The allowlist to judge with (the built-in default when none is named), after checking the
    /// filter expression: both before anything is created (exit 2 on a bad one).
    pub fn load(&self) -> Result<crate::verdict::policy::Allowlist, crate::error::Error> {
        let allowlist = match (&self.allowlist, &self.inline) {
            (Some(p), _) => crate::verdict::policy::Allowlist::load(p)?,
            (None, Some(inline)) => inline.clone(),
            (None, None) => crate::verdict::policy::Allowlist::default_list(),
        };
        if let Some(f) = &self.filter {
            crate::capture::check_filter(f)?;
        }
        Ok(allowlist)
    }
}
