//! The async runtime a live command runs on, and the signals that stop it.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::error::{Error, Result};
use crate::progress::Progress;

/// The multi-threaded runtime live commands use (guards clean up on it when dropped).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

/// A handler for SIGINT and one for SIGTERM.
pub fn interrupts() -> Result<(Signal, Signal)> {
    let watch = |kind, name| {
        signal(kind).map_err(|source| Error::Signal {
            signal: name,
            source,
        })
    };
    Ok((
        watch(SignalKind::interrupt(), "SIGINT")?,
        watch(SignalKind::terminate(), "SIGTERM")?,
    ))
}

/// Run `job` on a fresh runtime to its end, unless SIGINT or SIGTERM comes first: then say so and
/// drop it, so that the guards it holds remove what it created, and report the interruption. A
/// panic inside it is an internal error, after the same clean-up. What the job hands back goes to
/// `after` (the clean-up of a run that ended), which no signal interrupts: its exit code is the
/// command's.
pub fn run_interruptible<T, F, A, AF>(log: &Progress, job: F, after: A) -> Result<i32>
where
    F: Future<Output = Result<T>>,
    A: FnOnce(T) -> AF,
    AF: Future<Output = i32>,
{
    let rt = runtime()?;
    let result = rt.block_on(async {
        let (mut sigint, mut sigterm) = interrupts()?;
        let mut job = Box::pin(futures_util::FutureExt::catch_unwind(
            std::panic::AssertUnwindSafe(job),
        ));
        let outcome = tokio::select! {
            r = &mut job => r.unwrap_or_else(|_| Err(Error::Internal("a panic".into()))),
            _ = sigint.recv() => Err(Error::Interrupted { signal: "SIGINT" }),
            _ = sigterm.recv() => Err(Error::Interrupted { signal: "SIGTERM" }),
        };
        if matches!(outcome, Err(Error::Interrupted { .. })) {
            log.line("interrupted: removing what this run created");
        }
        // Dropping the job drops its guards: what it created is removed here, on this runtime.
        drop(job);
        match outcome {
            Ok(done) => Ok(after(done).await),
            Err(e) => Err(e),
        }
    });
    log.done();
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}
