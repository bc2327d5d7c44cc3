//! Build the fixture stack image (fixtures/stack: busybox FROM scratch) through airgap-check's own
//! bollard build path. No registry is involved; the busybox binary comes from the host's
//! busybox-static package.

use std::path::{Path, PathBuf};

pub const STACK_IMAGE: &str = "airgap-check-fixture-stack:busybox";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Build (or refresh, from the build cache) the fixture stack image.
pub fn build_stack() -> Result<(), String> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        return Err(
            "/bin/busybox is missing: install Debian's busybox-static (scripts/install-deps.sh)"
                .into(),
        );
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tar_path = dir.path().join("stack.tar");
    {
        let f = std::fs::File::create(&tar_path).map_err(|e| e.to_string())?;
        let mut t = tar::Builder::new(f);
        for name in ["Dockerfile", "passwd", "group"] {
            t.append_path_with_name(root().join("fixtures/stack").join(name), name)
                .map_err(|e| e.to_string())?;
        }
        t.append_path_with_name(busybox, "busybox")
            .map_err(|e| e.to_string())?;
        t.finish().map_err(|e| e.to_string())?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let d = airgap_check::staging::engine::connect()
            .await
            .map_err(|e| e.to_string())?;
        let before = d.inspect_image(STACK_IMAGE).await.ok().and_then(|i| i.id);
        let labels = std::collections::HashMap::from([(
            "io.airgap-check.fixture".to_string(),
            "stack".to_string(),
        )]);
        let after = airgap_check::staging::engine::build_image(
            &d,
            &tar_path,
            STACK_IMAGE,
            Some(&labels),
            true,
            |_| {},
        )
        .await
        .map_err(|e| e.to_string())?
        .keep();
        // A rebuild that missed the cache (a fresh checkout) moved the tag: the old stack image
        // would be left dangling. Remove it unless something still uses it.
        if let Some(old) = before.filter(|b| *b != after) {
            let _ = d
                .remove_image(
                    &old,
                    None::<bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await;
        }
        Ok(())
    })
}
