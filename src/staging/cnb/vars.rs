//! The variables the lifecycle sets for each phase of a buildpack (buildpack.md "Detection" and
//! "Build" inputs; lifecycle detect.go `runDetect`, build.go `runBuildCmd`): `CNB_BUILDPACK_DIR`
//! always, the paths from Buildpack API 0.8, the target from 0.10 (platform.md "Target Data").

use crate::staging::cnb::rootfs::RootFs;
use crate::staging::cnb::{self as cnb, Descriptor};
use crate::staging::engine::ImageConfig;
use crate::staging::lifecycle::buildpack_dir;

/// The variables of buildpack `i`'s detect (`build`: false) or build, with `target` (from
/// [`target`]).
pub fn phase_vars(d: &Descriptor, i: usize, build: bool, target: &[String]) -> Vec<String> {
    let mut v = vec![format!("CNB_BUILDPACK_DIR={}", buildpack_dir(i))];
    if d.api.at_least(8) {
        v.push(format!("CNB_PLATFORM_DIR={}", cnb::PLATFORM_DIR));
        if build {
            v.push(format!("CNB_BP_PLAN_PATH={}", cnb::build_plan(i)));
            v.push(format!("CNB_LAYERS_DIR={}", cnb::layers_dir(&d.id)));
        } else {
            v.push(format!("CNB_BUILD_PLAN_PATH={}", cnb::detect_plan(i)));
        }
    }
    if d.api.at_least(10) {
        v.extend(target.iter().cloned());
    }
    v
}

/// `CNB_TARGET_OS`, `_ARCH` and `_ARCH_VARIANT` of the image, and the distribution from its
/// os-release (`ID`, `VERSION_ID`), as the lifecycle derives them from the image.
pub fn target(image: &ImageConfig, os_release: &str) -> Vec<String> {
    let mut env = vec!["CNB_TARGET_OS=linux".to_string()];
    env.extend(image.arch.as_ref().map(|a| format!("CNB_TARGET_ARCH={a}")));
    env.extend(
        image
            .variant
            .as_ref()
            .map(|v| format!("CNB_TARGET_ARCH_VARIANT={v}")),
    );
    let field = |k: &str| {
        os_release.lines().find_map(|l| {
            let v = l.strip_prefix(k)?.strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_string()).filter(|v| !v.is_empty())
        })
    };
    env.extend(field("ID").map(|v| format!("CNB_TARGET_DISTRO_NAME={v}")));
    env.extend(field("VERSION_ID").map(|v| format!("CNB_TARGET_DISTRO_VERSION={v}")));
    env
}

/// The container's os-release (empty when it has none).
pub fn os_release(fs: &RootFs) -> String {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| fs.read(p, 64 << 10).ok().flatten())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_of_an_image() {
        let image = ImageConfig {
            arch: Some("arm64".into()),
            variant: Some("v8".into()),
            ..ImageConfig::default()
        };
        let release = "NAME=\"Ubuntu\"\nID=ubuntu\nVERSION_ID=\"22.04\"\n";
        assert_eq!(
            target(&image, release),
            [
                "CNB_TARGET_OS=linux",
                "CNB_TARGET_ARCH=arm64",
                "CNB_TARGET_ARCH_VARIANT=v8",
                "CNB_TARGET_DISTRO_NAME=ubuntu",
                "CNB_TARGET_DISTRO_VERSION=22.04"
            ]
        );
        assert_eq!(target(&ImageConfig::default(), ""), ["CNB_TARGET_OS=linux"]);
    }

    #[test]
    fn paths_from_api_0_8_and_the_target_from_0_10() {
        let d = |api: &str| {
            cnb::descriptor::parse(&format!(
                "api = \"{api}\"\n[buildpack]\nid = \"a/b\"\nversion = \"1.0.0\"\n"
            ))
            .unwrap()
        };
        let t = ["CNB_TARGET_OS=linux".to_string()];
        assert_eq!(
            phase_vars(&d("0.7"), 1, true, &t),
            ["CNB_BUILDPACK_DIR=/tmp/buildpacks/1"]
        );
        assert_eq!(
            phase_vars(&d("0.8"), 0, false, &t),
            [
                "CNB_BUILDPACK_DIR=/tmp/buildpacks/0",
                "CNB_PLATFORM_DIR=/platform",
                "CNB_BUILD_PLAN_PATH=/tmp/cnb/detect/0/plan.toml"
            ]
        );
        assert_eq!(
            phase_vars(&d("0.10"), 0, true, &t),
            [
                "CNB_BUILDPACK_DIR=/tmp/buildpacks/0",
                "CNB_PLATFORM_DIR=/platform",
                "CNB_BP_PLAN_PATH=/tmp/cnb/build/0/plan.toml",
                "CNB_LAYERS_DIR=/layers/a_b",
                "CNB_TARGET_OS=linux"
            ]
        );
    }
}
