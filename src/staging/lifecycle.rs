//! The Cloud Foundry buildpack v2 lifecycle, as it runs for explicitly named buildpacks: which
//! scripts run, in which order, with which arguments (see ../shared/BRIEF.md §2).

use std::path::Path;

/// Where the lifecycle's directories are inside the staging container.
pub const BUILD_DIR: &str = "/tmp/app";
pub const CACHE_DIR: &str = "/tmp/cache";
pub const DEPS_DIR: &str = "/tmp/deps";
pub const PROFILE_DIR: &str = "/tmp/profile.d";
/// Heroku-style `bin/compile` takes an ENV_DIR third; it is empty here.
pub const ENV_DIR: &str = "/tmp/env";
pub const BUILDPACKS_DIR: &str = "/tmp/buildpacks";

/// The scripts a buildpack has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scripts {
    pub detect: bool,
    pub supply: bool,
    pub finalize: bool,
    pub compile: bool,
    pub release: bool,
}

impl Scripts {
    pub fn of(dir: &Path) -> Scripts {
        let has = |s: &str| dir.join("bin").join(s).is_file();
        Scripts {
            detect: has("detect"),
            supply: has("supply"),
            finalize: has("finalize"),
            compile: has("compile"),
            release: has("release"),
        }
    }
}

/// One lifecycle step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseSpec {
    /// detect, supply, finalize, compile or release.
    pub name: &'static str,
    /// Which buildpack (0-based, in the order given).
    pub buildpack: usize,
    pub argv: Vec<String>,
    /// Whether a non-zero exit fails staging (detect's does not).
    pub must_succeed: bool,
}

/// Zero-padded index, as wide as the number of buildpacks has digits.
pub fn index(i: usize, count: usize) -> String {
    let width = count.to_string().len();
    format!("{i:0width$}")
}

pub fn buildpack_dir(i: usize) -> String {
    format!("{BUILDPACKS_DIR}/{i}")
}

/// finalize, or compile for a single legacy buildpack, of the last of `n` buildpacks.
fn final_phase(f: &Scripts, last: usize, n: usize) -> Result<PhaseSpec, (usize, String)> {
    let script = |s: &str| format!("{}/bin/{s}", buildpack_dir(last));
    if f.finalize {
        return Ok(PhaseSpec {
            name: "finalize",
            buildpack: last,
            argv: vec![
                script("finalize"),
                BUILD_DIR.into(),
                CACHE_DIR.into(),
                DEPS_DIR.into(),
                index(last, n),
                PROFILE_DIR.into(),
            ],
            must_succeed: true,
        });
    }
    if !f.compile {
        return Err((
            last,
            "has neither bin/finalize nor bin/compile: the final buildpack needs one of them"
                .into(),
        ));
    }
    if n > 1 {
        return Err((
            last,
            "is the final buildpack of several but has bin/compile, not bin/finalize (multi-buildpack staging needs finalize)".into(),
        ));
    }
    Ok(PhaseSpec {
        name: "compile",
        buildpack: last,
        argv: vec![
            script("compile"),
            BUILD_DIR.into(),
            CACHE_DIR.into(),
            ENV_DIR.into(),
        ],
        must_succeed: true,
    })
}

/// The phases for these buildpacks, or why they cannot stage (`Err` names the buildpack and what
/// it lacks). `scripts` is in the order given; the last buildpack is the final one.
pub fn plan(scripts: &[Scripts]) -> Result<Vec<PhaseSpec>, (usize, String)> {
    let n = scripts.len();
    if n == 0 {
        return Err((0, "no buildpack given".into()));
    }
    let last = n - 1;
    let script = |i: usize, s: &str| format!("{}/bin/{s}", buildpack_dir(i));
    let mut phases = Vec::new();
    for (i, s) in scripts.iter().enumerate() {
        if s.detect {
            phases.push(PhaseSpec {
                name: "detect",
                buildpack: i,
                argv: vec![script(i, "detect"), BUILD_DIR.into()],
                must_succeed: false,
            });
        }
    }
    for (i, s) in scripts.iter().enumerate() {
        if i < last && !s.supply {
            return Err((
                i,
                "has no bin/supply: only the last buildpack may lack it (multi-buildpack staging runs supply for every other one)".into(),
            ));
        }
        if s.supply {
            phases.push(PhaseSpec {
                name: "supply",
                buildpack: i,
                argv: vec![
                    script(i, "supply"),
                    BUILD_DIR.into(),
                    CACHE_DIR.into(),
                    DEPS_DIR.into(),
                    index(i, n),
                ],
                must_succeed: true,
            });
        }
    }
    let f = &scripts[last];
    phases.push(final_phase(f, last, n)?);
    if f.release {
        phases.push(PhaseSpec {
            name: "release",
            buildpack: last,
            argv: vec![script(last, "release"), BUILD_DIR.into()],
            must_succeed: true,
        });
    }
    Ok(phases)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: Scripts = Scripts {
        detect: true,
        supply: true,
        finalize: true,
        compile: false,
        release: true,
    };

    #[test]
    fn single_buildpack_runs_detect_supply_finalize_release() {
        let p = plan(&[FULL]).unwrap();
        let names: Vec<_> = p.iter().map(|p| p.name).collect();
        assert_eq!(names, ["detect", "supply", "finalize", "release"]);
        assert_eq!(
            p[2].argv,
            [
                "/tmp/buildpacks/0/bin/finalize",
                "/tmp/app",
                "/tmp/cache",
                "/tmp/deps",
                "0",
                "/tmp/profile.d"
            ]
        );
        assert!(!p[0].must_succeed);
    }

    #[test]
    fn index_is_zero_padded_to_the_buildpack_count() {
        assert_eq!(index(3, 9), "3");
        assert_eq!(index(3, 12), "03");
        let p = plan(&[FULL; 11]).unwrap();
        let supply0 = p.iter().find(|p| p.name == "supply").unwrap();
        assert_eq!(supply0.argv[4], "00");
        assert_eq!(p.iter().filter(|p| p.name == "finalize").count(), 1);
    }

    #[test]
    fn heroku_style_compile_when_no_finalize() {
        let heroku = Scripts {
            detect: true,
            compile: true,
            release: true,
            ..Scripts::default()
        };
        let names: Vec<_> = plan(&[heroku]).unwrap().iter().map(|p| p.name).collect();
        assert_eq!(names, ["detect", "compile", "release"]);
    }

    #[test]
    fn missing_scripts_are_refused_with_the_buildpack_named() {
        let no_supply = Scripts {
            finalize: true,
            ..Scripts::default()
        };
        assert_eq!(plan(&[no_supply, FULL]).unwrap_err().0, 0);
        assert_eq!(plan(&[Scripts::default()]).unwrap_err().0, 0);
        let compile_only = Scripts {
            compile: true,
            supply: true,
            ..Scripts::default()
        };
        assert_eq!(plan(&[FULL, compile_only]).unwrap_err().0, 1);
    }
}
