//! A buildpack's kind, told by its shape, and the descriptor of a Cloud Native Buildpack
//! (buildpack.toml) checked before anything is created.
//!
//! Kind (issue 13): a folder with `buildpack.toml` is a Cloud Native Buildpack; one with
//! `bin/supply`, `bin/finalize` or `bin/compile` is a Cloud Foundry v2 buildpack; anything else is
//! refused, naming what it holds.
//!
//! buildpack.toml is read with the `toml` crate into types of our own rather than heroku's
//! `libcnb-data`: that crate is written for the buildpack's side of the interface (its build plan
//! and build.toml types can only be written, its buildpack plan only read), and its descriptor and
//! launch.toml types refuse unknown keys while lacking Buildpack API 0.12's `exec-env`, so a valid
//! 0.12 buildpack would be refused. The lifecycle itself ignores keys it does not know, and so do
//! these types; what they do check is what the spec requires of the keys the run uses
//! (buildpack.md, "buildpack.toml (TOML)"): `api`, `buildpack.id`, `buildpack.version`.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};

/// The Buildpack API versions airgap-check runs, oldest and newest (major 0).
pub const API_MIN: u64 = 7;
pub const API_MAX: u64 = 12;

/// What a buildpack folder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A Cloud Foundry v2 buildpack (bin/supply, bin/finalize or bin/compile).
    V2,
    /// A Cloud Native Buildpack (buildpack.toml).
    Cnb,
}

impl Kind {
    /// How the kind is named in messages, with what told it.
    pub fn described(self) -> &'static str {
        match self {
            Kind::V2 => "a Cloud Foundry v2 buildpack (bin/supply, bin/finalize or bin/compile)",
            Kind::Cnb => "a Cloud Native Buildpack (buildpack.toml)",
        }
    }
}

/// The kind of the buildpack in `dir` (`source` is what the user named, for the message).
pub fn kind_of(dir: &Path, source: &Path) -> Result<Kind> {
    if dir.join("buildpack.toml").is_file() {
        return Ok(Kind::Cnb);
    }
    let v2 = ["supply", "finalize", "compile"]
        .iter()
        .any(|s| dir.join("bin").join(s).is_file());
    if v2 {
        return Ok(Kind::V2);
    }
    Err(Error::BadInput {
        path: source.to_path_buf(),
        reason: format!(
            "not a buildpack: no buildpack.toml (a Cloud Native Buildpack) and no bin/supply, bin/finalize or bin/compile (a Cloud Foundry v2 buildpack); it holds {}",
            holds(dir)
        ),
    })
}

/// "bin/detect, README.md" (at most 8 names, folders one level down), or "nothing".
fn holds(dir: &Path) -> String {
    let list = |d: &Path, prefix: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .map(|r| {
                r.flatten()
                    .map(|e| format!("{prefix}{}", e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let mut names = Vec::new();
    for n in list(dir, "") {
        let sub = dir.join(&n);
        if sub.is_dir() {
            let inner = list(&sub, &format!("{n}/"));
            if inner.is_empty() {
                names.push(format!("{n}/"));
            }
            names.extend(inner);
        } else {
            names.push(n);
        }
    }
    match names.len() {
        0 => "nothing".into(),
        n if n > 8 => format!("{}, … ({n} entries)", names[..8].join(", ")),
        _ => names.join(", "),
    }
}

/// A Buildpack API version, `<major>.<minor>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Api {
    pub major: u64,
    pub minor: u64,
}

impl Api {
    /// `"0.8"` or `"1"` (= `1.0`), as buildpack.md "Buildpack API Version" has it.
    pub fn parse(s: &str) -> Option<Api> {
        let (major, minor) = s.split_once('.').unwrap_or((s, "0"));
        let num = |p: &str| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        };
        Some(Api {
            major: num(major)?,
            minor: num(minor)?,
        })
    }

    /// Whether this is at least 0.`minor`.
    pub fn at_least(self, minor: u64) -> bool {
        self >= Api { major: 0, minor }
    }
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A component buildpack's descriptor, as the run uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// The buildpack.toml it was read from.
    pub path: PathBuf,
    pub api: Api,
    pub id: String,
    pub version: String,
    pub name: Option<String>,
    /// `clear-env`: user-provided variables only as files in `<platform>/env/`, not as variables.
    pub clear_env: bool,
}

#[derive(Deserialize)]
struct RawDescriptor {
    api: Option<Spanned<String>>,
    buildpack: Option<Spanned<RawBuildpack>>,
    order: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
struct RawBuildpack {
    id: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
    name: Option<String>,
    #[serde(rename = "clear-env", default)]
    clear_env: bool,
}

/// "line 3 column 7" of a byte offset into `text`.
pub fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line} column {column}")
}

/// A TOML error of `text` as "line L column C: message".
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(s) => format!("{}: {message}", line_col(text, s.start)),
        None => message,
    }
}

/// The most buildpack.toml may hold (read no further).
const MAX_DESCRIPTOR: u64 = 1 << 20;

/// Read and check `dir/buildpack.toml` (exit 2 naming the file, the line and the value).
pub fn load(dir: &Path) -> Result<Descriptor> {
    let path = dir.join("buildpack.toml");
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_DESCRIPTOR + 1).read_to_end(&mut bytes))
        .map_err(|e| Error::Read {
            path: path.clone(),
            source: e,
        })?;
    if bytes.len() as u64 > MAX_DESCRIPTOR {
        return Err(bad(
            &path,
            "is over 1 MiB: expected a buildpack descriptor".into(),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        bad(
            &path,
            format!(
                "byte {} is not UTF-8: TOML is UTF-8 text",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    parse(&text)
        .map_err(|reason| bad(&path, reason))
        .map(|mut d| {
            d.path = path;
            d
        })
}

fn bad(path: &Path, reason: String) -> Error {
    Error::BadInput {
        path: path.to_path_buf(),
        reason,
    }
}

/// Check buildpack.toml's text; `Err` is "line L column C: what, the value, what was expected".
pub fn parse(text: &str) -> std::result::Result<Descriptor, String> {
    let raw: RawDescriptor = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    let at = |s: std::ops::Range<usize>| line_col(text, s.start);
    if let Some(order) = &raw.order {
        return Err(format!(
            "{}: [[order]]: a composite buildpack, which only names other buildpacks: give its component buildpacks with --buildpack, in the order of its group",
            at(order.span())
        ));
    }
    let api = raw
        .api
        .ok_or_else(|| "line 1 column 1: no `api` key: expected e.g. api = \"0.10\"".to_string())?;
    let parsed = Api::parse(api.get_ref()).ok_or_else(|| {
        format!(
            "{}: api {:?}: expected <major>.<minor>, e.g. \"0.10\"",
            at(api.span()),
            api.get_ref()
        )
    })?;
    if parsed.major != 0 || !(API_MIN..=API_MAX).contains(&parsed.minor) {
        return Err(format!(
            "{}: api {:?}: airgap-check runs Buildpack API 0.{API_MIN} to 0.{API_MAX}",
            at(api.span()),
            api.get_ref()
        ));
    }
    let bp = raw.buildpack.ok_or_else(|| {
        "line 1 column 1: no [buildpack] table: expected [buildpack] with id and version"
            .to_string()
    })?;
    let bp_at = at(bp.span());
    let bp = bp.into_inner();
    let id = bp.id.ok_or_else(|| {
        format!("{bp_at}: [buildpack] has no `id`: expected e.g. id = \"examples/hello\"")
    })?;
    check_id(id.get_ref())
        .map_err(|why| format!("{}: buildpack.id {:?}: {why}", at(id.span()), id.get_ref()))?;
    let version = bp.version.ok_or_else(|| {
        format!("{bp_at}: [buildpack] has no `version`: expected e.g. version = \"0.0.1\"")
    })?;
    check_version(version.get_ref()).map_err(|why| {
        format!(
            "{}: buildpack.version {:?}: {why}",
            at(version.span()),
            version.get_ref()
        )
    })?;
    Ok(Descriptor {
        path: PathBuf::new(),
        api: parsed,
        id: id.into_inner(),
        version: version.into_inner(),
        name: bp.name,
        clear_env: bp.clear_env,
    })
}

/// buildpack.md: "MUST only contain numbers, letters, and the characters `.`, `/`, and `-`";
/// "MUST NOT be `app`, `config`, `generated`, or `sbom`"; and, since it is a folder's name, no
/// part between its `/` may be empty, `.` or `..`.
fn check_id(id: &str) -> std::result::Result<(), &'static str> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'-'))
    {
        return Err("expected letters, digits, '.', '/' and '-' only, e.g. \"examples/hello\"");
    }
    if ["app", "config", "generated", "sbom"].contains(&id) {
        return Err("is reserved (app, config, generated and sbom are): expected another id");
    }
    // The id names the buildpack's <layers> folder (`/` as `_`): `.` or `..` would be /layers or
    // the container's root. Each part between `/` must be a name.
    if id.split('/').any(|part| ["", ".", ".."].contains(&part)) {
        return Err("has an empty, `.` or `..` part: expected names between the '/', e.g. \"examples/hello\"");
    }
    Ok(())
}

/// buildpack.md: "MUST be in the form `<X>.<Y>.<Z>` where `X`, `Y`, and `Z` are non-negative
/// integers and must not contain leading zeros".
fn check_version(v: &str) -> std::result::Result<(), &'static str> {
    let parts: Vec<&str> = v.split('.').collect();
    let number = |p: &&str| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p.len() == 1 || !p.starts_with('0'))
    };
    if parts.len() == 3 && parts.iter().all(number) {
        Ok(())
    } else {
        Err("expected <X>.<Y>.<Z>, non-negative integers without leading zeros, e.g. \"0.0.1\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "api = \"0.10\"\n\n[buildpack]\nid = \"examples/hello\"\nversion = \"0.0.1\"\nname = \"Hello\"\n\n[[stacks]]\nid = \"*\"\n\n[metadata]\nanything = [1, 2]\n";

    #[test]
    fn a_good_descriptor_reads_and_unknown_keys_are_ignored() {
        let d = parse(GOOD).unwrap();
        assert_eq!(
            (d.id.as_str(), d.version.as_str(), d.api),
            (
                "examples/hello",
                "0.0.1",
                Api {
                    major: 0,
                    minor: 10
                }
            )
        );
        assert!(!d.clear_env);
        let with_exec_env = format!("{GOOD}\n[[buildpack.exec-env]]\nname = \"test\"\n")
            .replace("0.10", "0.12")
            .replace("[metadata]\nanything = [1, 2]\n", "");
        assert_eq!(parse(&with_exec_env).unwrap().api.minor, 12);
    }

    #[test]
    fn errors_name_the_line_and_the_value() {
        let e = parse(&GOOD.replace("examples/hello", "bad id!")).unwrap_err();
        assert_eq!(
            e,
            "line 4 column 6: buildpack.id \"bad id!\": expected letters, digits, '.', '/' and '-' only, e.g. \"examples/hello\""
        );
        let e = parse(&GOOD.replace("0.0.1", "1.0")).unwrap_err();
        assert!(
            e.starts_with("line 5 column 11: buildpack.version \"1.0\": expected <X>.<Y>.<Z>"),
            "{e}"
        );
        let e = parse(&GOOD.replace("\"0.10\"", "\"0.6\"")).unwrap_err();
        assert_eq!(
            e,
            "line 1 column 7: api \"0.6\": airgap-check runs Buildpack API 0.7 to 0.12"
        );
        let e = parse(&GOOD.replace("\"0.10\"", "\"zero\"")).unwrap_err();
        assert!(e.contains("api \"zero\": expected <major>.<minor>"), "{e}");
        let e = parse(&GOOD.replace("id = \"examples/hello\"\n", "")).unwrap_err();
        assert!(
            e.starts_with("line 3 column 1: [buildpack] has no `id`"),
            "{e}"
        );
        let e = parse("api = \"0.8\"\n[buildpack\nid = 1\n").unwrap_err();
        assert!(e.starts_with("line 2 column "), "{e}");
        let e = parse(&GOOD.replace("id = \"examples/hello\"", "id = 7")).unwrap_err();
        assert!(e.starts_with("line 4 column 6: "), "{e}");
        let e = parse(&GOOD.replace("\"examples/hello\"", "\"sbom\"")).unwrap_err();
        assert!(e.contains("reserved"), "{e}");
        for id in [".", "..", "a/..", "./a", "a//b", "/a", "a/"] {
            let e = parse(&GOOD.replace("examples/hello", id)).unwrap_err();
            assert!(e.contains("has an empty, `.` or `..` part"), "{id}: {e}");
        }
        for id in ["a.b/c..d", "..a", "io.buildpacks.x"] {
            assert!(parse(&GOOD.replace("examples/hello", id)).is_ok(), "{id}");
        }
        let composite = "api = \"0.10\"\n[buildpack]\nid = \"a/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"a/b\"\nversion = \"1.0.0\"\n";
        let e = parse(composite).unwrap_err();
        assert!(
            e.starts_with("line 6 column 1: [[order]]: a composite buildpack"),
            "{e}"
        );
    }

    #[test]
    fn api_versions() {
        assert_eq!(Api::parse("1"), Some(Api { major: 1, minor: 0 }));
        assert_eq!(
            Api::parse("0.12"),
            Some(Api {
                major: 0,
                minor: 12
            })
        );
        assert_eq!(Api::parse("0.1.2"), None);
        assert_eq!(Api::parse("0."), None);
        assert!(Api::parse("0.8").unwrap().at_least(8));
        assert!(!Api::parse("0.7").unwrap().at_least(8));
        assert_eq!(line_col("ab\ncd", 4), "line 2 column 2");
    }

    #[test]
    fn kind_by_shape() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let e = kind_of(d, d).unwrap_err().to_string();
        assert!(
            e.contains("no bin/supply") && e.ends_with("it holds nothing"),
            "{e}"
        );
        std::fs::create_dir(d.join("bin")).unwrap();
        std::fs::write(d.join("bin/detect"), "").unwrap();
        std::fs::write(d.join("README.md"), "").unwrap();
        let e = kind_of(d, d).unwrap_err().to_string();
        assert!(e.ends_with("it holds README.md, bin/detect"), "{e}");
        std::fs::write(d.join("bin/supply"), "").unwrap();
        assert_eq!(kind_of(d, d).unwrap(), Kind::V2);
        std::fs::write(d.join("buildpack.toml"), GOOD).unwrap();
        assert_eq!(kind_of(d, d).unwrap(), Kind::Cnb);
        assert_eq!(load(d).unwrap().path, d.join("buildpack.toml"));
        let mut big = GOOD.to_string();
        big.push_str(&format!("# {}\n", "x".repeat(1 << 20)));
        std::fs::write(d.join("buildpack.toml"), big).unwrap();
        let e = load(d).unwrap_err().to_string();
        assert!(
            e.ends_with("is over 1 MiB: expected a buildpack descriptor"),
            "{e}"
        );
    }
}
