//! airgap-check: prove that a buildpack stages an app with no network egress.
//!
//! Data flows one way:
//!
//! ```text
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
//!  verdict/  ── policy (allowlist) → judge → analysis: the one conclusion and its verdict
//!     ▼
//!  report/   ── console, JSON, JUnit, GitHub Actions, suggested allowlist
//! ```

pub mod capture;
pub mod cli;
pub mod commands;
pub mod error;
pub mod flows;
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
    let cli = match cli::parse(args) {
        Ok(c) => c,
        Err(e) => {
            // clap prints help/version (exit 0) and usage errors (exit 2) itself.
            let _ = e.print();
            return Ok(e.exit_code());
        }
    };
    match cli.command {
        Some(Command::Analyze(a)) => commands::analyze::run(&a),
        Some(Command::Prune) => commands::prune::run(),
        Some(Command::Watch(w)) => commands::watch::run(&w),
        None if cli.stage.apps.is_empty() && cli.stage.buildpacks.is_empty() => {
            let _ = cli::parse(["airgap-check", "--help"]).map_err(|e| e.print());
            Ok(2)
        }
        None => commands::stage::run(&cli.stage),
    }
}
