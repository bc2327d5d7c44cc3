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
        let d = airgap_check::docker::connect()
            .await
            .map_err(|e| e.to_string())?;
        let labels = std::collections::HashMap::from([(
            "io.airgap-check.fixture".to_string(),
            "stack".to_string(),
        )]);
        airgap_check::docker::build_image(&d, &tar_path, STACK_IMAGE, Some(&labels), true, |_| {})
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}
