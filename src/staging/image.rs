//! Build (`--context copy`): the staging image, from the stack image with the app, the lifecycle's
//! folders and the buildpacks sent in the build context, built with no network and no RUN step.
//! The image (and, while the build runs, its layers) are guards of the run.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::staging::build_context;
use crate::staging::config::StageConfig;
use crate::staging::container::Plan;
use crate::staging::engine::{self, short, Guard, Image, RunLayers};
use crate::staging::run::Run;
use crate::staging::tree::Skipped;
use crate::staging::user::StagingUser;

/// The staging image of a run.
pub struct Built {
    /// The image's id.
    pub id: String,
    /// The Dockerfile it was built with: the record of what the image is.
    pub dockerfile: String,
    /// The image, removed with the run; `None` when it is kept (`--keep-image`).
    image: Option<Guard<Image>>,
    /// Every image carrying the run's label (layers of the build); `None` when kept.
    layers: Option<RunLayers>,
    /// What the build context left out (FIFOs, sockets, devices).
    pub skipped: Vec<Skipped>,
}

/// Write the build context and build the staging image.
pub async fn build(
    run: &Run,
    cfg: &StageConfig,
    plan: &Plan<'_>,
    user: &StagingUser,
    log: &Progress,
) -> Result<Built> {
    let labels: Vec<(&str, &str)> = run
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let dockerfile = build_context::dockerfile(plan.stack.image, (user.uid, user.gid), &labels);
    std::fs::create_dir_all(plan.dir).map_err(|e| Error::WriteFile {
        path: plan.dir.to_path_buf(),
        source: e,
    })?;
    let tar_path = plan.dir.join("context.tar");
    let skipped = {
        let (tar_path, df, app, bps) = (
            tar_path.clone(),
            dockerfile.clone(),
            plan.app.to_path_buf(),
            cfg.buildpacks.clone(),
        );
        tokio::task::spawn_blocking(move || {
            build_context::write_context(&tar_path, &df, &app, &bps)
        })
        .await
        .map_err(|e| Error::Internal(format!("the build-context task died: {e}")))??
    };
    let tag = format!("airgap-check-run:{}", run.id);
    log.line("building the staging image (no network during the build)");
    for l in dockerfile.lines() {
        log.detail(l);
    }
    let t = Instant::now();
    // --keep-image: nothing of the build is removed, whatever ends the run.
    let mut layers = (!cfg.keep_image).then(|| RunLayers::new(&run.docker, &run.id));
    let image =
        engine::build_image(&run.docker, &tar_path, &tag, None, false, |l| log.detail(l)).await?;
    if let Some(l) = layers.as_mut() {
        l.built();
    }
    let _ = std::fs::remove_file(&tar_path);
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
        dockerfile,
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
