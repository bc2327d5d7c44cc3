//! Cloud Native Buildpacks, staged as a CNB platform runs them (buildpacks/spec buildpack.md
//! and platform.md, Buildpack API 0.7 to 0.12): every buildpack given is one group, in the order
//! given, each required, as Cloud Foundry's CNB lifecycle does for named buildpacks. `detect`
//! runs for each, the group's build plans are resolved, then `build` runs for each; every one a
//! phase of its own (`docker exec`), so that every attempt is attributed to a detect or a build
//! of a buildpack.
//!
//! In the staging container (the platform's defaults of platform.md where one exists):
//!
//! | what | where |
//! |---|---|
//! | the app (working directory) | `/tmp/app`, as for v2 buildpacks |
//! | buildpack N | `/tmp/buildpacks/N` (`CNB_BUILDPACK_DIR`), read-only |
//! | `<platform>` | `/platform`, with `env/NAME` for each `--env NAME=value` |
//! | `<layers>` of buildpack N | `/layers/<id, / as _>` (`CNB_LAYERS_DIR`), the staging user's |
//! | detect's `<plan>` | `/tmp/cnb/detect/N/plan.toml`, the staging user's |
//! | build's `<plan>` | `/tmp/cnb/build/N/plan.toml`, read-only |

pub mod build_layers;
pub mod descriptor;
pub mod env;
pub mod layers;
pub mod plan;
pub mod platform;
pub mod rootfs;
pub mod run;
pub mod vars;

use serde::Serialize;

pub use descriptor::{kind_of, Descriptor, Kind};

use crate::staging::lifecycle::{buildpack_dir, PhaseSpec};

pub const PLATFORM_DIR: &str = "/platform";
pub const LAYERS_DIR: &str = "/layers";
pub const PLANS_DIR: &str = "/tmp/cnb";

/// A buildpack id as a folder name (lifecycle `launch.EscapeID`).
pub fn escape_id(id: &str) -> String {
    id.replace('/', "_")
}

/// `<layers>` of a buildpack.
pub fn layers_dir(id: &str) -> String {
    format!("{LAYERS_DIR}/{}", escape_id(id))
}

/// The `<plan>` detect `i` writes.
pub fn detect_plan(i: usize) -> String {
    format!("{PLANS_DIR}/detect/{i}/plan.toml")
}

/// The `<plan>` build `i` is given.
pub fn build_plan(i: usize) -> String {
    format!("{PLANS_DIR}/build/{i}/plan.toml")
}

/// The phases of a group: detect for each buildpack, then build for each, with the positional
/// arguments the lifecycle passes (deprecated since Buildpack API 0.8, passed still: buildpack.md
/// "Positional Arguments to `detect` and `build` Executables"). Every one must succeed: a detect
/// that does not pass fails the group (all of them are required).
pub fn plan(group: &[Descriptor]) -> Vec<PhaseSpec> {
    let bin = |i: usize, s: &str| format!("{}/bin/{s}", buildpack_dir(i));
    let mut phases: Vec<PhaseSpec> = (0..group.len())
        .map(|i| PhaseSpec {
            name: "detect",
            buildpack: i,
            argv: vec![bin(i, "detect"), PLATFORM_DIR.into(), detect_plan(i)],
            must_succeed: true,
        })
        .collect();
    phases.extend(group.iter().enumerate().map(|(i, d)| PhaseSpec {
        name: "build",
        buildpack: i,
        argv: vec![
            bin(i, "build"),
            layers_dir(&d.id),
            PLATFORM_DIR.into(),
            build_plan(i),
        ],
        must_succeed: true,
    }));
    phases
}

/// The group, for the reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: String,
    pub version: String,
    pub api: String,
}

/// What the JSON report's `cnb` object says: the group, and what its builds declared.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Record {
    pub group: Vec<Member>,
    /// The processes for launch, the group's (a later buildpack's type replaces an earlier one's).
    pub processes: Vec<layers::Process>,
    /// Every layer of every build, with its types.
    pub layers: Vec<layers::Layer>,
}

impl Record {
    pub fn of(group: &[Descriptor]) -> Record {
        Record {
            group: group
                .iter()
                .map(|d| Member {
                    id: d.id.clone(),
                    version: d.version.clone(),
                    api: d.api.to_string(),
                })
                .collect(),
            ..Record::default()
        }
    }
}

/// The staging user a build image declares (platform.md "Build Image": `CNB_USER_ID` and
/// `CNB_GROUP_ID` in its config's `Env`), as `uid:gid`.
pub fn image_user(image_env: &[String]) -> Option<String> {
    let get = |k: &str| {
        image_env
            .iter()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
    };
    Some(format!("{}:{}", get("CNB_USER_ID")?, get("CNB_GROUP_ID")?))
}

/// Check a group before anything is created: ids told apart ignoring case (buildpack.md: "MUST
/// NOT be identical to any other buildpack ID when using a case-insensitive comparison").
pub fn check_group(group: &[Descriptor]) -> Result<(), (usize, String)> {
    for (i, d) in group.iter().enumerate() {
        if let Some(j) = group[..i]
            .iter()
            .position(|e| e.id.eq_ignore_ascii_case(&d.id))
        {
            return Err((
                i,
                format!(
                    "has the id {:?} of buildpack {j} ({}): a group holds each buildpack once",
                    d.id,
                    group[j].path.display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: &str) -> Descriptor {
        descriptor::parse(&format!(
            "api = \"0.8\"\n[buildpack]\nid = \"{id}\"\nversion = \"1.0.0\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn the_phases_and_their_arguments() {
        let p = plan(&[d("examples/a"), d("b")]);
        let names: Vec<_> = p.iter().map(|s| (s.name, s.buildpack)).collect();
        assert_eq!(
            names,
            [("detect", 0), ("detect", 1), ("build", 0), ("build", 1)]
        );
        assert_eq!(
            p[0].argv,
            [
                "/tmp/buildpacks/0/bin/detect",
                "/platform",
                "/tmp/cnb/detect/0/plan.toml"
            ]
        );
        assert_eq!(
            p[2].argv,
            [
                "/tmp/buildpacks/0/bin/build",
                "/layers/examples_a",
                "/platform",
                "/tmp/cnb/build/0/plan.toml"
            ]
        );
        assert!(p.iter().all(|s| s.must_succeed));
    }

    #[test]
    fn the_image_user_and_duplicate_ids() {
        let env = ["CNB_USER_ID=1001".to_string(), "CNB_GROUP_ID=1000".into()];
        assert_eq!(image_user(&env).as_deref(), Some("1001:1000"));
        assert_eq!(image_user(&env[..1]), None);
        assert_eq!(image_user(&["CNB_USER_ID=x".into(), env[1].clone()]), None);
        assert_eq!(check_group(&[d("a/b"), d("A/B")]).unwrap_err().0, 1);
        assert!(check_group(&[d("a/b"), d("a/c")]).is_ok());
    }
}
