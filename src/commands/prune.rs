//! `airgap-check prune`: remove what killed runs left — labelled containers, networks and images
//! whose airgap-check process is gone, and their temporary folders — and empty the cache of
//! extracted buildpack zips (but what a running run uses). Namespaces and veths need nothing: the
//! kernel removed them when the process died.

use crate::error::{Error, Result};
use crate::staging::engine;

pub fn run() -> Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let (containers, networks, images) = rt.block_on(remove_dead_objects())?;
    let dirs = remove_dead_folders();
    let cache = crate::staging::zip_cache::ZipCache::from_env()?;
    let (zips, bytes) = cache.clear();
    println!(
        "pruned {containers} containers, {networks} networks, {images} images, {dirs} temporary folders, {zips} extracted buildpack zips ({} in {})",
        crate::staging::buildpack::size_text(bytes),
        cache.root().display()
    );
    Ok(0)
}

/// Whether the airgap-check process `pid` is still alive (then what it made is not left over).
fn alive(pid: Option<u32>) -> bool {
    pid.is_some_and(|p| {
        std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "airgap-check")
    })
}

/// Containers, then networks, then images of dead runs: how many of each were removed.
async fn remove_dead_objects() -> Result<(usize, usize, usize)> {
    let d = engine::connect().await?;
    let (cs, is) = engine::labelled(&d).await?;
    let mut containers = 0;
    for (id, _) in cs.into_iter().filter(|(_, pid)| !alive(*pid)) {
        engine::remove_container(&d, &id).await?;
        println!("removed container {}", engine::short(&id));
        containers += 1;
    }
    let mut networks = 0;
    for (id, pid) in engine::labelled_networks(&d).await? {
        if !alive(pid) {
            engine::remove_network(&d, &id).await?;
            println!("removed network {}", engine::short(&id));
            networks += 1;
        }
    }
    let mut images = 0;
    for (id, _) in is.into_iter().filter(|(_, pid)| !alive(*pid)) {
        engine::remove_image(&d, &id).await?;
        println!("removed image {id}");
        images += 1;
    }
    Ok((containers, networks, images))
}

/// The temporary folders (airgap-check-PID-*) of dead runs: how many were removed.
fn remove_dead_folders() -> usize {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    let mut dirs = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("airgap-check-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some() && !alive(pid) && std::fs::remove_dir_all(e.path()).is_ok() {
            println!("removed {}", e.path().display());
            dirs += 1;
        }
    }
    dirs
}
