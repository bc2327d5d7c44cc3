//! `airgap-check prune`: remove what killed runs left behind.

use crate::error::{self, Result};
use crate::staging::engine as docker;

/// Remove what killed runs left: labelled containers and images whose airgap-check process is gone,
/// and their temporary folders. Namespaces and veths need nothing: the kernel removed them when the
/// process died.
pub fn run() -> Result<i32> {
    let alive = |pid: Option<u32>| {
        pid.is_some_and(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "airgap-check")
        })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| error::Error::Docker {
            op: "runtime",
            reason: e.to_string(),
        })?;
    let (mut containers, mut images, mut networks) = (0, 0, 0);
    rt.block_on(async {
        let d = docker::connect().await?;
        let (cs, is) = docker::labelled(&d).await?;
        for (id, pid) in cs {
            if !alive(pid) {
                docker::remove_container(&d, &id).await?;
                println!("removed container {}", &id[..id.len().min(12)]);
                containers += 1;
            }
        }
        for (id, pid) in docker::labelled_networks(&d).await? {
            if !alive(pid) {
                docker::remove_network(&d, &id).await?;
                println!("removed network {}", &id[..id.len().min(12)]);
                networks += 1;
            }
        }
        for (id, pid) in is {
            if !alive(pid) {
                docker::remove_image(&d, &id).await?;
                println!("removed image {id}");
                images += 1;
            }
        }
        Ok::<_, error::Error>(())
    })?;
    let mut dirs = 0;
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
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
    }
    println!(
        "pruned {containers} containers, {networks} networks, {images} images, {dirs} temporary folders"
    );
    Ok(0)
}
