//! What a run creates in the engine comes back as a guard: dropped, it removes its object
//! (whatever ends the run: an error, a panic, a signal that cancels the run); `remove()` removes
//! it on purpose and says whether that worked; `keep()` leaves it. So no list of what to clean up
//! is kept by hand. Everything also carries the run's labels, for `airgap-check prune`.

use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use bollard::Docker;

use crate::error::{Error, Result};

/// An engine object a guard can remove.
pub trait Removable {
    /// "container", "image", "network": for the reader.
    const WHAT: &'static str;
    /// Whether its id is a long hash, shown shortened (a network's is its name).
    const HASH_ID: bool = true;
    fn remove(docker: Docker, id: String) -> impl Future<Output = Result<()>> + Send + 'static;
}

/// A container of this run (removed with its anonymous volumes).
pub struct Container;
/// An image of this run.
pub struct Image;
/// A Docker network of this run (observe mode's per-run bridge).
pub struct Network;

impl Removable for Container {
    const WHAT: &'static str = "container";
    async fn remove(docker: Docker, id: String) -> Result<()> {
        super::remove_container(&docker, &id).await
    }
}

impl Removable for Image {
    const WHAT: &'static str = "image";
    async fn remove(docker: Docker, id: String) -> Result<()> {
        super::remove_image(&docker, &id).await
    }
}

impl Removable for Network {
    const WHAT: &'static str = "network";
    const HASH_ID: bool = false;
    async fn remove(docker: Docker, id: String) -> Result<()> {
        super::remove_network(&docker, &id).await
    }
}

/// One engine object of this run, removed when the guard is dropped.
pub struct Guard<K: Removable> {
    docker: Docker,
    id: String,
    armed: bool,
    kind: PhantomData<K>,
}

impl<K: Removable> Guard<K> {
    pub(crate) fn new(docker: &Docker, id: String) -> Guard<K> {
        Guard {
            docker: docker.clone(),
            id,
            armed: true,
            kind: PhantomData,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// "container 3f2a9c1b0d4e", for the reader.
    pub fn describe(&self) -> String {
        describe::<K>(&self.id)
    }

    /// Remove the object now. Cancelled half-way, the guard is still armed: its drop finishes.
    pub async fn remove(mut self) -> Result<()> {
        let r = K::remove(self.docker.clone(), self.id.clone()).await;
        self.armed = false;
        r
    }

    /// Leave the object in place (`--keep-image`); its id.
    pub fn keep(mut self) -> String {
        self.armed = false;
        std::mem::take(&mut self.id)
    }
}

impl<K: Removable> Drop for Guard<K> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let id = std::mem::take(&mut self.id);
        let what = describe::<K>(&id);
        if let Err(e) = run_to_end(&self.docker, move |d| K::remove(d, id)) {
            warn_left(&what, &e);
        }
    }
}

/// Every image still carrying the run's label: the layers of a build cut short (an error, a
/// signal) are untagged and belong to no image guard. Dropped (or `remove()`d), it removes them;
/// while the build was still running, the engine may be committing the step it was on, so it
/// looks again for a moment.
pub struct RunLayers {
    docker: Docker,
    run_id: String,
    built: bool,
    armed: bool,
}

impl RunLayers {
    pub(crate) fn new(docker: &Docker, run_id: &str) -> RunLayers {
        RunLayers {
            docker: docker.clone(),
            run_id: run_id.to_string(),
            built: false,
            armed: true,
        }
    }

    /// The build finished: no layer can appear after this, one look is enough.
    pub fn built(&mut self) {
        self.built = true;
    }

    /// Remove the run's layers now. Cancelled half-way, the guard is still armed.
    pub async fn remove(mut self) -> Result<()> {
        let r = sweep(self.docker.clone(), self.run_id.clone(), self.built).await;
        self.armed = false;
        r
    }

    /// Leave them (`--keep-image`).
    pub fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for RunLayers {
    fn drop(&mut self) {
        if self.armed {
            let (run, built) = (self.run_id.clone(), self.built);
            let _ = run_to_end(&self.docker, move |d| sweep(d, run, built));
        }
    }
}

async fn sweep(docker: Docker, run_id: String, built: bool) -> Result<()> {
    let rounds = if built { 1 } else { 6 };
    for round in 0..rounds {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for i in super::images_of_run(&docker, &run_id).await? {
            let _ = super::remove_image(&docker, &i).await;
        }
    }
    Ok(())
}

/// Run an engine job to its end from synchronous code (a `Drop`): on the multi-threaded runtime
/// the run uses, in place; elsewhere on a thread of its own, with a connection of its own.
fn run_to_end<F, Fut>(docker: &Docker, job: F) -> Result<()>
where
    F: FnOnce(Docker) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            let d = docker.clone();
            tokio::task::block_in_place(|| h.block_on(job(d)))
        }
        _ => std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(Error::Runtime)?;
            rt.block_on(async { job(super::connect().await?).await })
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Internal("the clean-up thread panicked".into()))),
    }
}

fn warn_left(what: &str, e: &Error) {
    eprintln!(
        "airgap-check: warning: could not remove {what} ({e}); run `airgap-check prune` once the Docker engine answers"
    );
}

fn describe<K: Removable>(id: &str) -> String {
    match K::HASH_ID {
        true => format!("{} {}", K::WHAT, short(id)),
        false => format!("{} {id}", K::WHAT),
    }
}

/// The first 12 characters of an id, without its "sha256:".
pub fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}
