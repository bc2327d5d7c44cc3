//! Linger: processes the phases left behind (a daemon, a timed-out phase) are watched until they
//! end, for at most [`LINGER`]; then every process of the container is killed while the capture
//! still runs, so nothing it does can happen unseen.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::progress::Progress;
use crate::report::text::terminal_safe;
use crate::staging::container::Staging;
use crate::staging::engine;
use crate::staging::run::Run;
use crate::verdict::notes::Note;

/// How long processes left running after the last phase are watched before they are killed.
pub const LINGER: Duration = Duration::from_secs(10);

/// Watch what the phases left running, then kill every process but the idle first one (observe
/// mode, whose capture needs the container's interface) or the whole container (sealed runs).
/// The note, when something was still running with no phase having failed.
pub async fn linger_then_kill(
    run: &Run,
    staging: &Staging,
    staging_failed: bool,
    observe: bool,
    log: &Progress,
) -> Result<Option<Note>> {
    let leftover = watch_leftovers(run, staging, staging_failed).await;
    let unwatched = !leftover.is_empty() && !staging_failed;
    if unwatched {
        // The argv words are the container's (redacted where they were read): escaped here.
        log.warn(&terminal_safe(&format!(
            "still running {} s after the last phase, killed: {}",
            LINGER.as_secs(),
            leftover.join("; ")
        )));
    }
    if observe {
        kill_all_but_the_first(run, staging).await?;
    } else {
        engine::kill_container(&run.docker, staging.container.id()).await?;
        engine::wait_stopped(&run.docker, staging.container.id(), Duration::from_secs(5)).await;
    }
    Ok(unwatched.then(|| Note::Unwatched {
        processes: leftover,
        secs: LINGER.as_secs(),
    }))
}

/// The processes still running once they end or [`LINGER`] passes (at once after a failure).
async fn watch_leftovers(run: &Run, staging: &Staging, staging_failed: bool) -> Vec<String> {
    let until = Instant::now() + LINGER;
    loop {
        let leftover = leftovers(run, staging).await;
        if leftover.is_empty() || staging_failed || Instant::now() >= until {
            return leftover;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn leftovers(run: &Run, staging: &Staging) -> Vec<String> {
    engine::leftover_processes(&run.docker, staging.container.id(), staging.pid)
        .await
        .unwrap_or_default()
}

/// Observe mode: kill the leftovers by their host pids and keep the idle first process, and with
/// it the veth the capture is on; the whole container only if that fails.
async fn kill_all_but_the_first(run: &Run, staging: &Staging) -> Result<()> {
    for _ in 0..20 {
        let now = leftovers(run, staging).await;
        if now.is_empty() {
            return Ok(());
        }
        engine::kill_host_pids(staging.pid, &now);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !leftovers(run, staging).await.is_empty() {
        engine::kill_container(&run.docker, staging.container.id()).await?;
    }
    Ok(())
}
