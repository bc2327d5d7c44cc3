//! Build: the staging image, from the stack image with the app and the buildpacks added, built
//! with no network. The image (and, while the build runs, its layers) are guards of the run.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::staging::build_context::{self, Skipped};
use crate::staging::config::StageConfig;
use crate::staging::engine::{self, short, Guard, Image, RunLayers};
use crate::staging::run::Run;

/// The staging image of a run.
pub struct Built {
    pub image: Guard<Image>,
    /// Every image carrying the run's label (layers of the build).
    pub layers: RunLayers,
    /// What the build context left out (FIFOs, sockets, devices).
    pub skipped: Vec<Skipped>,
}

/// Make sure the stack image is there, write the build context, and build the staging image.
pub async fn build(run: &Run, cfg: &StageConfig, log: &Progress) -> Result<Built> {
    let stack_user = engine::ensure_image(&run.docker, &cfg.stack_image).await?;
    let labels: Vec<(&str, &str)> = run
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let dockerfile = build_context::dockerfile(
        &cfg.stack_image,
        cfg.user.as_deref(),
        stack_user.as_deref(),
        cfg.buildpacks.len(),
        &labels,
    );
    let tar_path = cfg.scratch.path().join("context.tar");
    let skipped = {
        let (tar_path, app, bps) = (tar_path.clone(), cfg.app.clone(), cfg.buildpacks.clone());
        tokio::task::spawn_blocking(move || {
            build_context::write_context(&tar_path, &dockerfile, &app, &bps)
        })
        .await
        .map_err(|e| Error::Internal(format!("the build-context task died: {e}")))??
    };
    for s in &skipped {
        log.warn(&s.describe());
    }
    let tag = format!("airgap-check-run:{}", run.id);
    log.line("building the staging image (no network during the build)");
    let t = Instant::now();
    let mut layers = RunLayers::new(&run.docker, &run.id);
    let image =
        engine::build_image(&run.docker, &tar_path, &tag, None, false, |l| log.detail(l)).await?;
    layers.built();
    log.line(&format!(
        "built {} in {:.1}s",
        short(image.id()),
        t.elapsed().as_secs_f64()
    ));
    Ok(Built {
        image,
        layers,
        skipped,
    })
}

impl Built {
    /// Remove the image and the run's layers, or keep them (`--keep-image`); what could not be
    /// removed, and why.
    pub async fn clean_up(self, keep: bool, log: &Progress) -> Option<(String, Error)> {
        if keep {
            log.line(&format!("kept image {}", self.image.keep()));
            self.layers.keep();
            return None;
        }
        let what = self.image.describe();
        if let Err(e) = self.image.remove().await {
            self.layers.keep();
            return Some((what, e));
        }
        let _ = self.layers.remove().await;
        None
    }
}
