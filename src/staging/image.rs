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
    /// The image's id.
    pub id: String,
    /// The image, removed with the run; `None` when it is kept (`--keep-image`).
    image: Option<Guard<Image>>,
    /// Every image carrying the run's label (layers of the build); `None` when kept.
    layers: Option<RunLayers>,
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
    // --keep-image: nothing of the build is removed, whatever ends the run.
    let mut layers = (!cfg.keep_image).then(|| RunLayers::new(&run.docker, &run.id));
    let image =
        engine::build_image(&run.docker, &tar_path, &tag, None, false, |l| log.detail(l)).await?;
    if let Some(l) = layers.as_mut() {
        l.built();
    }
    let id = image.id().to_string();
    log.line(&format!(
        "built {} in {:.1}s",
        short(&id),
        t.elapsed().as_secs_f64()
    ));
    let image = if cfg.keep_image {
        log.line(&format!("keeping image {} (--keep-image)", image.keep()));
        None
    } else {
        Some(image)
    };
    Ok(Built {
        id,
        image,
        layers,
        skipped,
    })
}

impl Built {
    /// Remove the image and the run's layers (unless kept); what could not be removed, and why.
    pub async fn clean_up(self) -> Option<(String, Error)> {
        if let Some(image) = self.image {
            let what = image.describe();
            if let Err(e) = image.remove().await {
                if let Some(layers) = self.layers {
                    layers.keep();
                }
                return Some((what, e));
            }
        }
        if let Some(layers) = self.layers {
            let _ = layers.remove().await;
        }
        None
    }
}
