//! A run's workspace on the host, mounted into its staging container (the engine mounts this
//! host's files: no image is built): a copy of the app owned by the staging user, the lifecycle's
//! folders, and for each buildpack a writable layer over its folder (an overlay volume: the
//! buildpack's own files are read, never written; what the phases write lands in the layer).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::models::{Mount, MountType, MountVolumeOptions, MountVolumeOptionsDriverConfig};

use crate::error::{Error, Result};
use crate::staging::buildpack::Buildpack;
use crate::staging::lifecycle;
use crate::staging::tree::{copy_tree, Skipped};
use crate::staging::user::StagingUser;

/// The lifecycle folders every phase is given, as (name in the workspace, path in the container).
const LIFECYCLE: [(&str, &str); 4] = [
    ("cache", lifecycle::CACHE_DIR),
    ("deps", lifecycle::DEPS_DIR),
    ("profile.d", lifecycle::PROFILE_DIR),
    ("env", lifecycle::ENV_DIR),
];

/// One app's workspace.
#[derive(Clone)]
pub struct Workspace {
    root: PathBuf,
    buildpacks: usize,
}

fn write_err(path: &Path, e: std::io::Error) -> Error {
    Error::WriteFile {
        path: path.to_path_buf(),
        source: e,
    }
}

impl Workspace {
    /// Make the (empty) folders under `root`, which must not exist yet; the buildpacks' folders
    /// are reached through links (overlay options cannot hold every path a user may have).
    pub fn create(root: &Path, buildpacks: &[Buildpack]) -> Result<Workspace> {
        let mkdir = |p: &Path| std::fs::create_dir_all(p).map_err(|e| write_err(p, e));
        mkdir(&root.join("app"))?;
        for (name, _) in LIFECYCLE {
            mkdir(&root.join(name))?;
        }
        for i in 0..buildpacks.len() {
            mkdir(
                &root
                    .join("deps")
                    .join(lifecycle::index(i, buildpacks.len())),
            )?;
        }
        for (i, bp) in buildpacks.iter().enumerate() {
            for layer in ["upper", "work"] {
                mkdir(&root.join(format!("bp{i}/{layer}")))?;
            }
            let lower = root.join(format!("bp{i}/lower"));
            let target = std::path::absolute(&bp.dir).map_err(|e| write_err(&bp.dir, e))?;
            std::os::unix::fs::symlink(target, &lower).map_err(|e| write_err(&lower, e))?;
        }
        Ok(Workspace {
            root: root.to_path_buf(),
            buildpacks: buildpacks.len(),
        })
    }

    /// Copy the app in and give the workspace to the staging user: the app, the lifecycle's
    /// folders and the top of each buildpack's layer are theirs. What was not copied (FIFOs,
    /// sockets, devices).
    pub fn fill(&self, app: &Path, user: &StagingUser) -> Result<Vec<Skipped>> {
        let owner = (user.uid, user.gid);
        let skipped = copy_tree(app, &self.root.join("app"), owner)?;
        let mut owned: Vec<PathBuf> = LIFECYCLE.iter().map(|(n, _)| self.root.join(n)).collect();
        for i in 0..self.buildpacks {
            owned.push(
                self.root
                    .join("deps")
                    .join(lifecycle::index(i, self.buildpacks)),
            );
            owned.push(self.root.join(format!("bp{i}/upper")));
        }
        for p in owned {
            std::os::unix::fs::chown(&p, Some(owner.0), Some(owner.1))
                .map_err(|e| write_err(&p, e))?;
        }
        Ok(skipped)
    }

    /// The mounts of the staging container, labelled (the buildpacks' layers are volumes the
    /// engine removes with the container).
    pub fn mounts(&self, labels: &HashMap<String, String>) -> Vec<Mount> {
        let bind = |from: PathBuf, to: &str| Mount {
            target: Some(to.to_string()),
            source: Some(from.display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(false),
            ..Mount::default()
        };
        let mut mounts = vec![bind(self.root.join("app"), lifecycle::BUILD_DIR)];
        for (name, to) in LIFECYCLE {
            mounts.push(bind(self.root.join(name), to));
        }
        for i in 0..self.buildpacks {
            let d = self.root.join(format!("bp{i}"));
            let o = format!(
                "lowerdir={},upperdir={},workdir={}",
                d.join("lower").display(),
                d.join("upper").display(),
                d.join("work").display()
            );
            mounts.push(Mount {
                target: Some(lifecycle::buildpack_dir(i)),
                typ: Some(MountType::VOLUME),
                volume_options: Some(MountVolumeOptions {
                    labels: Some(labels.clone()),
                    driver_config: Some(MountVolumeOptionsDriverConfig {
                        name: Some("local".into()),
                        options: Some(HashMap::from([
                            ("type".to_string(), "overlay".to_string()),
                            ("device".to_string(), "overlay".to_string()),
                            ("o".to_string(), o),
                        ])),
                    }),
                    ..MountVolumeOptions::default()
                }),
                ..Mount::default()
            });
        }
        mounts
    }

    /// Whether the container whose first process is `pid` has this workspace's app folder at the
    /// lifecycle's path: the engine mounted this host's files (an engine elsewhere cannot).
    pub fn is_mounted_in(&self, pid: u32) -> bool {
        use std::os::unix::fs::MetadataExt;
        let inside = format!("/proc/{pid}/root{}", lifecycle::BUILD_DIR);
        match (
            std::fs::metadata(inside),
            std::fs::metadata(self.root.join("app")),
        ) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    /// For the reports: each mount as "target ← source (how)".
    pub fn describe(&self, buildpacks: &[Buildpack]) -> Vec<String> {
        let mut v = vec![format!(
            "{} ← a copy of the app owned by the staging user",
            lifecycle::BUILD_DIR
        )];
        for (name, to) in LIFECYCLE {
            v.push(format!("{to} ← an empty folder of the run's ({name})"));
        }
        for (i, bp) in buildpacks.iter().enumerate() {
            v.push(format!(
                "{} ← {} (read-only, under a writable layer of the run's)",
                lifecycle::buildpack_dir(i),
                bp.dir.display()
            ));
        }
        v
    }
}
