//! airgap-check: prove that a buildpack stages an app with no network egress.
//!
//! Data flows one way:
//!
//! ```text
//!  cli, config_file ── the command line, AIRGAP_CHECK_* and airgap-check.yaml, merged
//!     │
//!  commands/ ── stage, analyze, watch, prune: each a short list of named steps
//!     │
//!  staging/  ── engine (Docker), build_context (the image), lifecycle (the phases), cnb (Cloud
//!     │          Native Buildpacks: detect and build as a CNB platform runs them)
//!     │
//!  capture/  ── sandbox + sinkhole (the sealed network), point (a real network), live / file
//!     │          (the packets), canary (proof the capture sees the container)
//!     ▼
//!  flows/    ── decode → key → table (fragments, first bytes, dns) → named flows
//!     ▼
//!  verdict/  ── policy (allow and deny rules) → judge → analysis: the one conclusion and its
//!               verdict
//!     ▼
//!  report/   ── console, JSON, JUnit, GitHub Actions, suggested allowlist
//! ```

pub mod capture;
pub mod cli;
pub mod commands;
pub mod config_file;
pub mod error;
pub mod flows;
pub mod manifest;
pub mod progress;
pub mod report;
pub mod staging;
pub mod verdict;

use std::ffi::OsString;

use crate::cli::Command;
use crate::error::Result;

/// Run the tool with these arguments; the `Ok` value is the exit code.
pub fn run<I, T>(args: I) -> Result<i32>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let (mut cli, matches) = match cli::parse(args) {
        Ok(c) => c,
        Err(e) => {
            // clap prints help and --version on stdout (exit 0), usage errors on stderr (exit 2).
            let _ = e.print();
            return Ok(e.exit_code());
        }
    };
    colour(cli.global.color);
    let v = cli.global.verbosity();
    if matches!(
        cli.command,
        None | Some(Command::Analyze(_) | Command::Watch(_))
    ) {
        if let Some(found) = config_file::locate(&cli.global)? {
            config_file::apply(&mut cli, &matches, &found);
        }
    }
    match cli.command {
        Some(Command::Analyze(a)) => commands::analyze::run(&a, v),
        Some(Command::Prune) => commands::prune::run(),
        Some(Command::Watch(w)) => commands::watch::run(&w, v),
        Some(Command::Inspect(i)) => commands::inspect::run(&i),
        Some(Command::Completions { shell }) => commands::help::completions(shell),
        Some(Command::Man) => commands::help::man(),
        None if cli.stage.apps.is_empty() && cli.stage.buildpacks.is_empty() => {
            // Nothing to do is a usage error: the help goes to stderr, with exit 2.
            commands::help::usage_error()
        }
        None => commands::stage::run(&cli.stage, v),
    }
}

/// `--color`: anstream writes colour on a terminal unless NO_COLOR is set (auto), or as told.
fn colour(when: cli::ColorWhen) {
    let choice = match when {
        cli::ColorWhen::Auto => anstream::ColorChoice::Auto,
        cli::ColorWhen::Always => anstream::ColorChoice::Always,
        cli::ColorWhen::Never => anstream::ColorChoice::Never,
    };
    choice.write_global();
}
