//! What a build declared, read back from its layers folder once it has exited: the processes of
//! `launch.toml` (buildpack.md "launch.toml (TOML)"), each `<layer>.toml`'s `[types]` ("Layer
//! Content Metadata (TOML)", "Layer Types") and `build.toml`'s unmet entries. A file the lifecycle
//! would refuse fails the build as the lifecycle would.

use serde::{Deserialize, Serialize};

use crate::staging::cnb::descriptor::{toml_error, Api};
use crate::staging::cnb::plan::{BuildToml, Provide};
use crate::staging::cnb::rootfs::RootFs;

/// The most a declaration file may hold.
const MAX_TOML: u64 = 1 << 20;
/// The most layers read of one buildpack.
const MAX_LAYERS: usize = 1000;

/// One process a buildpack declared for launch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Process {
    #[serde(rename = "type")]
    pub kind: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub default: bool,
    /// `working-dir`; null: the app directory.
    pub working_dir: Option<String>,
    /// The id of the buildpack that declared it.
    pub buildpack: String,
}

/// One layer a buildpack made, with its types.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Layer {
    /// The id of the buildpack whose layer it is.
    pub buildpack: String,
    pub name: String,
    /// Its folder in the staging container.
    pub path: String,
    pub launch: bool,
    pub build: bool,
    pub cache: bool,
    /// Whether the folder exists (a layer may be declared by its .toml alone).
    pub has_contents: bool,
}

/// What one build declared.
#[derive(Debug, Default)]
pub struct Declared {
    pub processes: Vec<Process>,
    pub layers: Vec<Layer>,
    pub unmet: Vec<Provide>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Command {
    /// Buildpack API < 0.9: one string (and `direct`).
    One(String),
    /// Buildpack API 0.9 and later: the executable and its fixed arguments.
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct RawProcess {
    #[serde(rename = "type")]
    kind: String,
    command: Command,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    default: bool,
    #[serde(rename = "working-dir")]
    working_dir: Option<String>,
}

#[derive(Deserialize)]
struct LaunchToml {
    #[serde(default)]
    processes: Vec<RawProcess>,
}

#[derive(Deserialize, Default)]
struct Types {
    #[serde(default)]
    launch: bool,
    #[serde(default)]
    build: bool,
    #[serde(default)]
    cache: bool,
}

#[derive(Deserialize)]
struct LayerToml {
    #[serde(default)]
    types: Types,
}

/// Read a TOML file of the container as `T`; `None` when there is no such file.
fn read_toml<T: for<'de> Deserialize<'de>>(fs: &RootFs, path: &str) -> Result<Option<T>, String> {
    let Some(bytes) = fs
        .read(path, MAX_TOML)
        .map_err(|e| format!("{path}: {e}"))?
    else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| format!("{path}: {}", toml_error(&text, &e)))
}

/// Read back what the build of `id` (Buildpack API `api`) left in `dir`, its layers folder.
pub fn read_back(fs: &RootFs, dir: &str, id: &str, api: Api) -> Result<Declared, String> {
    let mut out = Declared::default();
    let entries = fs.list(dir).map_err(|e| format!("{dir}: {e}"))?;
    for (name, _) in entries
        .iter()
        .filter(|(n, is_dir)| !is_dir && n.ends_with(".toml"))
    {
        let layer = &name[..name.len() - ".toml".len()];
        if ["launch", "build", "store"].contains(&layer) || layer.is_empty() {
            continue;
        }
        if out.layers.len() == MAX_LAYERS {
            return Err(format!("{dir}: more than {MAX_LAYERS} layers"));
        }
        let path = format!("{dir}/{name}");
        let meta: LayerToml = read_toml(fs, &path)?.unwrap_or(LayerToml {
            types: Types::default(),
        });
        out.layers.push(Layer {
            buildpack: id.to_string(),
            name: layer.to_string(),
            path: format!("{dir}/{layer}"),
            launch: meta.types.launch,
            build: meta.types.build,
            cache: meta.types.cache,
            has_contents: entries.iter().any(|(n, d)| *d && n == layer),
        });
    }
    if let Some(b) = read_toml::<BuildToml>(fs, &format!("{dir}/build.toml"))? {
        out.unmet = b.unmet;
    }
    if let Some(l) = read_toml::<LaunchToml>(fs, &format!("{dir}/launch.toml"))? {
        out.processes = processes(l, id, api, dir)?;
    }
    Ok(out)
}

fn processes(l: LaunchToml, id: &str, api: Api, dir: &str) -> Result<Vec<Process>, String> {
    let mut out: Vec<Process> = Vec::new();
    for p in l.processes {
        let ok = !p.kind.is_empty()
            && p.kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(format!(
                "{dir}/launch.toml: process type {:?}: expected letters, digits, '.', '_' and '-' only",
                p.kind
            ));
        }
        if out.iter().any(|o| o.kind == p.kind) {
            return Err(format!(
                "{dir}/launch.toml: process type {:?} is declared twice",
                p.kind
            ));
        }
        let command = match p.command {
            Command::One(c) if !api.at_least(9) => vec![c],
            Command::Many(c) if api.at_least(9) && !c.is_empty() => c,
            _ => {
                return Err(format!(
                    "{dir}/launch.toml: process {:?}: `command` must be {} in Buildpack API {api}",
                    p.kind,
                    if api.at_least(9) {
                        "a non-empty list of strings"
                    } else {
                        "a string"
                    }
                ))
            }
        };
        out.push(Process {
            kind: p.kind,
            command,
            args: p.args,
            default: p.default,
            working_dir: p.working_dir.filter(|_| api.at_least(8)),
            buildpack: id.to_string(),
        });
    }
    if out.iter().filter(|p| p.default).count() > 1 {
        return Err(format!(
            "{dir}/launch.toml: more than one process has default = true"
        ));
    }
    Ok(out)
}

/// Add a later buildpack's processes to the group's: a type declared again replaces the earlier
/// one (buildpack.md: "the lifecycle MUST use the last process type definition").
pub fn merge_processes(all: &mut Vec<Process>, later: Vec<Process>) {
    for p in later {
        match all.iter_mut().find(|o| o.kind == p.kind) {
            Some(o) => *o = p,
            None => all.push(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kind: &str, bp: &str) -> Process {
        Process {
            kind: kind.into(),
            command: vec!["x".into()],
            args: vec![],
            default: false,
            working_dir: None,
            buildpack: bp.into(),
        }
    }

    #[test]
    fn commands_by_api_version() {
        let l: LaunchToml = toml::from_str(
            "[[processes]]\ntype = \"web\"\ncommand = [\"httpd\", \"-f\"]\nargs = [\"-p\", \"8080\"]\ndefault = true\n",
        )
        .unwrap();
        let got = processes(
            l,
            "a/b",
            Api {
                major: 0,
                minor: 10,
            },
            "/l",
        )
        .unwrap();
        assert_eq!(got[0].command, ["httpd", "-f"]);
        assert!(got[0].default);
        let old: LaunchToml =
            toml::from_str("[[processes]]\ntype = \"web\"\ncommand = \"httpd -f\"\n").unwrap();
        let e = processes(
            old,
            "a/b",
            Api {
                major: 0,
                minor: 10,
            },
            "/l",
        )
        .unwrap_err();
        assert!(e.contains("a non-empty list of strings"), "{e}");
        let old: LaunchToml =
            toml::from_str("[[processes]]\ntype = \"web\"\ncommand = \"httpd -f\"\n").unwrap();
        let got = processes(old, "a/b", Api { major: 0, minor: 8 }, "/l").unwrap();
        assert_eq!(got[0].command, ["httpd -f"]);
        let bad: LaunchToml =
            toml::from_str("[[processes]]\ntype = \"we b\"\ncommand = [\"x\"]\n").unwrap();
        assert!(processes(bad, "a", Api { major: 0, minor: 9 }, "/l").is_err());
    }

    #[test]
    fn a_later_buildpack_replaces_a_process_type() {
        let mut all = vec![p("web", "a"), p("worker", "a")];
        merge_processes(&mut all, vec![p("web", "b")]);
        assert_eq!(all, [p("web", "b"), p("worker", "a")]);
    }
}
