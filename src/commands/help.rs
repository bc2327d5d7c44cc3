//! What the command line says about itself: shell completions (clap_complete), the man page
//! (clap_mangen), and the help shown for an invocation with nothing to do.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Error, Result};

/// `airgap-check completions SHELL`: the completion script on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut Cli::command(), "airgap-check", &mut out);
    out.flush().map_err(stdout_error)?;
    Ok(0)
}

/// `airgap-check man`: the man page (roff) on stdout.
pub fn man() -> Result<i32> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .and_then(|()| out.flush())
        .map_err(stdout_error)?;
    Ok(0)
}

/// No app and no buildpack, from the command line, the environment or a configuration file: the
/// help on stderr (it is a usage error), exit 2.
pub fn usage_error() -> Result<i32> {
    let help = Cli::command().render_help();
    eprintln!("{help}");
    eprintln!(
        "airgap-check: error: nothing to stage: give --app and --buildpack, or put them in airgap-check.yaml (apps:, buildpacks:)"
    );
    Ok(2)
}

fn stdout_error(e: std::io::Error) -> Error {
    Error::WriteFile {
        path: "stdout".into(),
        source: e,
    }
}
