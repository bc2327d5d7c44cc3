//! The `build = true` layers of a build, for the builds after it (lifecycle build.go `setupEnv`):
//! their folders on the path variables, their `env/` and `env.build/` files applied.

use crate::staging::cnb::env::BuildEnv;
use crate::staging::cnb::layers::Layer;
use crate::staging::cnb::rootfs::RootFs;

/// The most the env files of one build's layers may hold, in all: the environment of an exec,
/// not a data store.
const MAX_ENV_BYTES: u64 = 1 << 20;

/// Add the build layers among `made` to `env`; `Err` names the file and what is wrong.
pub fn add(fs: &RootFs, env: &mut BuildEnv, made: &[Layer]) -> Result<(), String> {
    let mut left: u64 = MAX_ENV_BYTES;
    for layer in made.iter().filter(|l| l.build && l.has_contents) {
        let present: Vec<String> = fs
            .list(&layer.path)
            .map_err(|e| format!("{}: {e}", layer.path))?
            .into_iter()
            .filter(|(_, is_dir)| *is_dir)
            .map(|(n, _)| n)
            .collect();
        env.add_root_dir(&layer.path, &present);
        for sub in ["env", "env.build"] {
            let files = env_files(fs, &format!("{}/{sub}", layer.path), &mut left)?;
            env.add_env_files(&files);
        }
    }
    Ok(())
}

/// The files of an env folder, (name, content), sorted by name; `left` is what they may still
/// hold in all.
fn env_files(fs: &RootFs, dir: &str, left: &mut u64) -> Result<Vec<(String, String)>, String> {
    let mut files = Vec::new();
    for (name, is_dir) in fs.list(dir).map_err(|e| format!("{dir}: {e}"))? {
        if is_dir {
            continue;
        }
        let value = fs
            .read(&format!("{dir}/{name}"), *left)
            .map_err(|e| {
                format!("{dir}/{name}: {e} (the env files of a build hold at most 1 MiB in all)")
            })?
            .unwrap_or_default();
        *left -= value.len() as u64;
        files.push((name, String::from_utf8_lossy(&value).into_owned()));
    }
    Ok(files)
}
