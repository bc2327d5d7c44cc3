//! Running a phase: `docker exec` with its output streamed line by line, until the process exits
//! or the deadline passes.

use std::time::Duration;

use bollard::models::ExecConfig;
use bollard::Docker;
use futures_util::StreamExt;

use crate::error::Result;
use crate::staging::engine::EngineError;

/// What one exec did.
#[derive(Clone, Debug)]
pub struct ExecOutcome {
    /// `None` when it did not finish before the deadline.
    pub exit_code: Option<i64>,
}

/// A command to run in the staging container.
pub struct Exec<'a> {
    pub argv: &'a [String],
    /// A user name or `uid[:gid]`; empty: the container's default.
    pub user: &'a str,
    pub env: &'a [String],
}

/// Run a command in the container, feeding output lines to `on_line`, until it exits or `deadline`
/// passes. Completion is the process's exit (inspect), not the end of its output: a daemon the
/// phase leaves behind keeps the output open but does not keep the phase running.
pub async fn exec(
    docker: &Docker,
    container: &str,
    cmd: &Exec<'_>,
    deadline: tokio::time::Instant,
    on_line: impl FnMut(&str),
) -> Result<ExecOutcome> {
    let cfg = ExecConfig {
        cmd: Some(cmd.argv.to_vec()),
        env: Some(cmd.env.to_vec()),
        user: (!cmd.user.is_empty()).then(|| cmd.user.to_string()),
        working_dir: Some(crate::staging::lifecycle::BUILD_DIR.into()),
        ..ExecConfig::default()
    };
    let (id, output, _) = start_attached(docker, container, cfg, false).await?;
    let mut lines = Lines::new(on_line);
    let exit_code = follow(docker, &id, output, &mut lines, deadline).await?;
    lines.flush();
    Ok(ExecOutcome { exit_code })
}

/// Create and start an exec with its output attached (and its input, with `stdin`): its id, its
/// output, its input.
pub(super) async fn start_attached(
    docker: &Docker,
    container: &str,
    cfg: ExecConfig,
    stdin: bool,
) -> Result<(String, Output, Input)> {
    let cfg = ExecConfig {
        attach_stdin: Some(stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..cfg
    };
    let created = docker
        .create_exec(container, cfg)
        .await
        .map_err(|source| EngineError::Exec { source })?;
    let started = docker
        .start_exec(&created.id, None)
        .await
        .map_err(|source| EngineError::Exec { source })?;
    let bollard::exec::StartExecResults::Attached { output, input } = started else {
        return Err(EngineError::ExecNotAttached.into());
    };
    Ok((created.id, output, input))
}

pub(super) type Input = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

pub(super) type Output = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = std::result::Result<bollard::container::LogOutput, bollard::errors::Error>,
            > + Send,
    >,
>;

/// Stream the output until the process exits (its exit code) or the deadline passes (`None`).
async fn follow<F: FnMut(&str)>(
    docker: &Docker,
    exec_id: &str,
    mut output: Output,
    lines: &mut Lines<F>,
    deadline: tokio::time::Instant,
) -> Result<Option<i64>> {
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut output_open = true;
    let exit_code = loop {
        tokio::select! {
            chunk = output.next(), if output_open => match chunk {
                Some(Ok(log)) => lines.push(&log.into_bytes()),
                // The output ends when the process exits (or a daemon it left closes it too):
                // look now rather than at the next tick.
                _ => {
                    output_open = false;
                    poll.reset_immediately();
                }
            },
            _ = poll.tick() => {
                let i = docker
                    .inspect_exec(exec_id)
                    .await
                    .map_err(|source| EngineError::InspectExec { source })?;
                // Not running *with* an exit code: it has ended. Not running without one: the
                // engine has not started it yet (the first tick comes at once), not a timeout.
                if i.running == Some(false) && i.exit_code.is_some() {
                    break i.exit_code;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Ok(None);
                }
            }
        }
    };
    // The process has exited; take what it wrote last, but do not wait on a daemon it left.
    let drain_until = tokio::time::Instant::now() + Duration::from_millis(300);
    while output_open {
        match tokio::time::timeout_at(drain_until, output.next()).await {
            Ok(Some(Ok(log))) => lines.push(&log.into_bytes()),
            _ => output_open = false,
        }
    }
    Ok(exit_code)
}

/// The longest partial line held: longer ones are passed on as they are.
pub(super) const MAX_LINE: usize = 64 * 1024;

/// Output chunks → lines, never holding an unbounded line.
struct Lines<F: FnMut(&str)> {
    partial: String,
    on_line: F,
}

impl<F: FnMut(&str)> Lines<F> {
    fn new(on_line: F) -> Self {
        Lines {
            partial: String::new(),
            on_line,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.partial.push_str(&String::from_utf8_lossy(chunk));
        while let Some(nl) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=nl).collect();
            (self.on_line)(line.trim_end_matches(['\n', '\r']));
        }
        if self.partial.len() > MAX_LINE {
            (self.on_line)(&self.partial);
            self.partial.clear();
        }
    }

    fn flush(&mut self) {
        if !self.partial.is_empty() {
            (self.on_line)(&self.partial);
            self.partial.clear();
        }
    }
}

/// Run a short command in the container and return its output (used before the run is sealed).
pub async fn read_file(docker: &Docker, container: &str, path: &str) -> Result<String> {
    let mut out = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let argv = vec!["cat".to_string(), path.to_string()];
    let cmd = Exec {
        argv: &argv,
        user: "0",
        env: &[],
    };
    exec(docker, container, &cmd, deadline, |l| {
        out.push_str(l);
        out.push('\n');
    })
    .await?;
    Ok(out.trim().to_string())
}
