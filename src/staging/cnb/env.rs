//! The environment of detect and build, as the lifecycle sets it up (buildpack.md
//! "Environment"; buildpacks/lifecycle env/env.go): the build image's POSIX path variables, then
//! for each earlier buildpack's `build = true` layer its `bin/`, `lib/`, `include/` and
//! `pkgconfig/` prepended to them ("Layer Paths") and its `env/` and `env.build/` files applied
//! ("Environment Variable Modification Rules"), then the user's variables (`--env`, also given as
//! files in `<platform>/env/`): path variables prepended, others overriding, none at all for a
//! buildpack with `clear-env = true` ("Provided by the Platform").

/// Layer sub-folders and the variables they are prepended to (lifecycle `POSIXBuildEnv`).
pub const ROOT_DIRS: [(&str, &[&str]); 4] = [
    ("bin", &["PATH"]),
    ("lib", &["LD_LIBRARY_PATH", "LIBRARY_PATH"]),
    ("include", &["CPATH"]),
    ("pkgconfig", &["PKG_CONFIG_PATH"]),
];

fn is_path_var(name: &str) -> bool {
    ROOT_DIRS.iter().any(|(_, vars)| vars.contains(&name))
}

/// The variables the lifecycle manages for the build, in the order first set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildEnv {
    vars: Vec<(String, String)>,
}

/// `s` with `sep` before it, or nothing when `s` is empty (lifecycle `prefix`).
fn prefixed(sep: &str, s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("{sep}{s}")
    }
}

impl BuildEnv {
    /// Start from the build image's environment (`KEY=value` strings): its path variables.
    pub fn from_image(image_env: &[String]) -> BuildEnv {
        let mut env = BuildEnv::default();
        for kv in image_env {
            if let Some((k, v)) = kv.split_once('=') {
                if is_path_var(k) {
                    env.set(k, v);
                }
            }
        }
        env
    }

    pub fn get(&self, name: &str) -> &str {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn set(&mut self, name: &str, value: &str) {
        match self.vars.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value.to_string(),
            None => self.vars.push((name.to_string(), value.to_string())),
        }
    }

    /// A build layer at `layer` (in the container) whose sub-folders `present` exist.
    pub fn add_root_dir(&mut self, layer: &str, present: &[String]) {
        for (sub, vars) in ROOT_DIRS {
            if !present.iter().any(|p| p == sub) {
                continue;
            }
            for var in vars {
                let v = format!("{layer}/{sub}{}", prefixed(":", self.get(var)));
                self.set(var, &v);
            }
        }
    }

    /// The files of one `env/` or `env.build/` folder, (file name, content), sorted by name:
    /// `NAME.prepend`, `.append`, `.override`, `.default`, `NAME` alone (override, the default
    /// action since Buildpack API 0.5), with `NAME.delim` the delimiter of prepend and append.
    pub fn add_env_files(&mut self, files: &[(String, String)]) {
        let delim = |name: &str| {
            files
                .iter()
                .find(|(f, _)| *f == format!("{name}.delim"))
                .map_or("", |(_, v)| v.as_str())
                .to_string()
        };
        for (file, value) in files {
            let (name, action) = file.split_once('.').unwrap_or((file, "override"));
            let current = self.get(name).to_string();
            let new = match action {
                "prepend" => format!("{value}{}", prefixed(&delim(name), &current)),
                "append" => {
                    let sep = if current.is_empty() {
                        String::new()
                    } else {
                        delim(name)
                    };
                    format!("{current}{sep}{value}")
                }
                "override" => value.clone(),
                "default" if current.is_empty() => value.clone(),
                _ => continue,
            };
            self.set(name, &new);
        }
    }

    /// `KEY=value` strings for one buildpack's exec: these variables, then the user's
    /// (`clear_env`: none of them).
    pub fn with_user(&self, user: &[(String, String)], clear_env: bool) -> Vec<String> {
        let mut env = self.clone();
        if !clear_env {
            for (k, v) in user {
                if is_path_var(k) {
                    let value = format!("{v}{}", prefixed(":", env.get(k)));
                    env.set(k, &value);
                } else {
                    env.set(k, v);
                }
            }
        }
        env.vars.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_prepend_their_folders_and_files_apply_their_actions() {
        let mut env = BuildEnv::from_image(&["PATH=/bin:/usr/bin".into(), "HOME=/x".into()]);
        assert_eq!(env.with_user(&[], false), ["PATH=/bin:/usr/bin"]);
        env.add_root_dir("/layers/a/tool", &["bin".into(), "lib".into()]);
        assert_eq!(env.get("PATH"), "/layers/a/tool/bin:/bin:/usr/bin");
        assert_eq!(env.get("LD_LIBRARY_PATH"), "/layers/a/tool/lib");
        env.add_env_files(&[
            ("JAVA_HOME".into(), "/layers/a/jdk".into()),
            ("OPTS.append".into(), "-b".into()),
            ("OPTS.delim".into(), " ".into()),
            ("OPTS.prepend".into(), "-a".into()),
            ("UNSET.default".into(), "d".into()),
            ("JAVA_HOME.default".into(), "ignored".into()),
            ("X.unknown".into(), "ignored".into()),
        ]);
        assert_eq!(env.get("JAVA_HOME"), "/layers/a/jdk");
        assert_eq!(env.get("OPTS"), "-a -b");
        assert_eq!(env.get("UNSET"), "d");
        assert_eq!(env.get("X"), "");
    }

    #[test]
    fn user_variables_prepend_to_paths_override_the_rest_and_clear_env_drops_them() {
        let env = BuildEnv::from_image(&["PATH=/bin".into()]);
        let user = [
            ("PATH".to_string(), "/opt/bin".to_string()),
            ("BP_X".to_string(), "1".to_string()),
        ];
        assert_eq!(
            env.with_user(&user, false),
            ["PATH=/opt/bin:/bin", "BP_X=1"]
        );
        assert_eq!(env.with_user(&user, true), ["PATH=/bin"]);
    }
}
