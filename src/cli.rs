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
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Judge a saved capture (pcap or pcapng) against an allowlist.
    Analyze(AnalyzeArgs),
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The capture to judge (pcap or pcapng).
    #[arg(long, value_name = "FILE")]
    pub pcap: PathBuf,
    /// Allowlist YAML; default: the built-in allowlists/default.yaml.
    #[arg(long, value_name = "FILE")]
    pub allowlist: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Addresses that are "this host" (repeatable); default: the address present in every flow.
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    pub local: Vec<IpNet>,
}

/// A CIDR, or a bare address taken as a host prefix.
fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| "expected an address or CIDR such as 10.1.0.2 or 10.0.0.0/8".to_string())
}

pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args)
}
