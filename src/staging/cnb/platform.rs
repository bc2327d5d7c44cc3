//! The platform's files in the staging container: the folders and plan files made before
//! anything of the buildpacks runs, and each build's Buildpack Plan, written just before it runs.

use crate::staging::cnb::plan::{self, Require};
use crate::staging::cnb::rootfs::{Owner, RootFs};
use crate::staging::cnb::{self as cnb, Descriptor};

/// `<platform>` and its `env/` (root's, read-only to the buildpacks, a file for each `--env`),
/// each buildpack's `<layers>` and detect `<plan>` (the staging user's), the folders of the build
/// `<plan>`s (root's).
pub fn prepare(
    fs: &RootFs,
    env: &[(String, String)],
    group: &[Descriptor],
    user: Owner,
) -> std::io::Result<()> {
    let env_dir = format!("{}/env", cnb::PLATFORM_DIR);
    fs.mkdir_all(&env_dir, Owner::ROOT, 0o755)?;
    for (k, v) in env {
        fs.write(&format!("{env_dir}/{k}"), v.as_bytes(), Owner::ROOT, 0o644)?;
    }
    fs.mkdir_all(cnb::LAYERS_DIR, user, 0o755)?;
    for (i, d) in group.iter().enumerate() {
        fs.mkdir(&cnb::layers_dir(&d.id), user, 0o755)?;
        let detect = cnb::detect_plan(i);
        fs.mkdir_all(folder(&detect), user, 0o700)?;
        fs.write(&detect, b"", user, 0o600)?;
        fs.mkdir_all(folder(&cnb::build_plan(i)), Owner::ROOT, 0o755)?;
    }
    Ok(())
}

/// "/tmp/cnb/build/0/plan.toml" → "/tmp/cnb/build/0".
fn folder(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(dir, _)| dir)
}

/// Write the Buildpack Plan build `i` (of buildpack `id`) is given; `Err` says why staging fails.
/// The buildpacks have run by then, and as root they can change anything: a plan that cannot be
/// written is a failure of staging, and the capture is judged all the same.
pub fn write_build_plan(fs: &RootFs, i: usize, id: &str, given: &[Require]) -> Result<(), String> {
    let toml = plan::plan_toml(given).map_err(|e| {
        format!("the Buildpack Plan of buildpack {i} ({id}) cannot be written as TOML: {e}; its build did not run")
    })?;
    let path = cnb::build_plan(i);
    fs.write(&path, toml.as_bytes(), Owner::ROOT, 0o644)
        .map_err(|e| {
            format!(
                "a buildpack altered {}: cannot write {path}: {e}; build (buildpack {i}) did not run",
                cnb::PLANS_DIR
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_folders() {
        assert_eq!(folder("/tmp/cnb/build/0/plan.toml"), "/tmp/cnb/build/0");
    }
}
