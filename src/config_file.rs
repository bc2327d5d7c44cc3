//! `airgap-check.yaml`: the options a project keeps in its repository, so that a developer, the
//! pre-push hook, the GitHub Action and the Concourse task run the same check.
//!
//! Found with `--config FILE` (or AIRGAP_CHECK_CONFIG), else in the current folder, then in each
//! folder above it up to the repository root (the first that holds `.git`); outside a repository
//! only the current folder is looked at. Keys are the long options' names (`stack-image`,
//! `keep-image`), repeatable options take a list under their plural (`apps`, `buildpacks`, `env`),
//! and the report paths sit under `reports:`. Paths are relative to the file's folder. The file
//! fills only what neither the command line nor an AIRGAP_CHECK_* variable gave: clap says where
//! each value came from ([`clap::parser::ValueSource`]).
//!
//! serde_norway reads the YAML (as for allowlists); every value is checked as it is read, so an
//! error names the file, the line and the key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::cli::{Cli, Command, GlobalArgs, JudgeArgs, ReportArgs, SaveArgs, StageArgs};
use crate::error::{Error, Result};
use crate::verdict::policy::{self, Allowlist};

/// The file name looked for.
pub const FILE_NAME: &str = "airgap-check.yaml";

/// The file as written, every value checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    pub apps: Option<Vec<PathBuf>>,
    pub buildpacks: Option<Vec<PathBuf>>,
    pub stack_image: Option<String>,
    pub stack: Option<String>,
    pub allowlist: Option<AllowlistSetting>,
    pub filter: Option<String>,
    pub reports: Option<Reports>,
    #[serde(default, deserialize_with = "scalar")]
    pub timeout: Option<String>,
    #[serde(default, deserialize_with = "env_map")]
    pub env: Option<BTreeMap<String, String>>,
    pub user: Option<String>,
    pub network: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub memory: Option<String>,
    pub keep_image: Option<bool>,
    pub jobs: Option<usize>,
    pub context: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub max_unzipped: Option<String>,
}

/// `reports:` — where each report goes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Reports {
    pub json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub pcap: Option<PathBuf>,
    pub suggest_allowlist: Option<PathBuf>,
}

/// `allowlist:` — a file, or the rules themselves (`allow:` and `deny:` under it).
#[derive(Debug)]
pub enum AllowlistSetting {
    Path(PathBuf),
    Inline(Allowlist),
}

/// A configuration file, read, with where it was found.
#[derive(Debug)]
pub struct Found {
    pub path: PathBuf,
    pub file: ConfigFile,
}

/// The configuration file this invocation reads, if any: `--config`, or the one found from the
/// current folder up to the repository root; none with `--no-config`.
pub fn locate(g: &GlobalArgs) -> Result<Option<Found>> {
    let path = match (&g.config, g.no_config) {
        (_, true) => return Ok(None),
        (Some(p), _) => p.clone(),
        (None, false) => {
            let cwd = std::env::current_dir().map_err(|e| Error::Read {
                path: PathBuf::from("."),
                source: e,
            })?;
            match discover(&cwd)? {
                Some(p) => p,
                None => return Ok(None),
            }
        }
    };
    let file = read(&path)?;
    Ok(Some(Found { path, file }))
}

/// `airgap-check.yaml` in `start` or a folder above it, up to the repository root (the first
/// folder holding `.git`); outside a repository, in `start` only. An `airgap-check.yml` where the
/// file is looked for is an error, not a file silently ignored.
pub fn discover(start: &Path) -> Result<Option<PathBuf>> {
    let in_repo = start.ancestors().any(|d| d.join(".git").exists());
    for dir in start.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(Some(candidate));
        }
        let yml = dir.join("airgap-check.yml");
        if yml.is_file() {
            return Err(Error::Config {
                path: yml,
                message: format!("airgap-check reads {FILE_NAME}, not .yml: rename the file"),
            });
        }
        if !in_repo || dir.join(".git").exists() {
            return Ok(None);
        }
    }
    Ok(None)
}

/// Read and check a configuration file (at most 1 MiB, as allowlists).
pub fn read(path: &Path) -> Result<ConfigFile> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(policy::MAX_ALLOWLIST_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|e| Error::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
    let bad = |message: String| Error::Config {
        path: path.to_path_buf(),
        message,
    };
    if bytes.len() > policy::MAX_ALLOWLIST_BYTES {
        return Err(bad("larger than 1 MiB: expected a short YAML file".into()));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        bad(format!(
            "not UTF-8 text (invalid byte at offset {}): expected a YAML file",
            e.utf8_error().valid_up_to()
        ))
    })?;
    parse(&text).map_err(bad)
}

/// Parse configuration text; the error is "line L column C: key: what is wrong".
pub fn parse(text: &str) -> std::result::Result<ConfigFile, String> {
    if let Some(line) = policy::too_deep(text) {
        return Err(format!(
            "line {line}: nested more than {} levels deep",
            policy::MAX_NESTING
        ));
    }
    // A file with nothing in it (or only comments) sets nothing.
    if matches!(
        serde_norway::from_str::<serde_norway::Value>(text),
        Ok(serde_norway::Value::Null)
    ) {
        return Ok(ConfigFile::default());
    }
    let c: ConfigFile =
        serde_norway::from_str(text).map_err(|e| policy::describe_yaml_error(&e))?;
    check_values(&c, text)?;
    Ok(c)
}

/// Fill what the command line and the environment left unset from the configuration file.
pub fn apply(cli: &mut Cli, matches: &ArgMatches, found: &Found) {
    let base = found
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let f = &found.file;
    match (&mut cli.command, matches.subcommand()) {
        (None, _) => apply_stage(&mut cli.stage, matches, f, base),
        (Some(Command::Analyze(a)), Some((_, m))) => {
            apply_judge(&mut a.judge, m, f, base);
            apply_reports(&mut a.reports, m, f, base);
        }
        (Some(Command::Watch(w)), Some((_, m))) => {
            apply_judge(&mut w.judge, m, f, base);
            apply_reports(&mut w.reports, m, f, base);
            apply_save(&mut w.save, m, f, base);
        }
        _ => {}
    }
}

/// Whether neither the command line nor the environment gave `id`.
fn unset(m: &ArgMatches, id: &str) -> bool {
    matches!(m.value_source(id), None | Some(ValueSource::DefaultValue))
}

/// `p` relative to the configuration file's folder (`-`, stdout, stays as it is).
fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || p == Path::new("-") {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn apply_stage(s: &mut StageArgs, m: &ArgMatches, f: &ConfigFile, base: &Path) {
    let paths = |v: &Vec<PathBuf>| v.iter().map(|p| resolve(base, p)).collect::<Vec<_>>();
    if let (true, Some(v)) = (unset(m, "apps"), &f.apps) {
        s.apps = paths(v);
    }
    if let (true, Some(v)) = (unset(m, "buildpacks"), &f.buildpacks) {
        s.buildpacks = paths(v);
    }
    let strings: [(&str, &mut String, &Option<String>); 5] = [
        ("stack_image", &mut s.stack_image, &f.stack_image),
        ("timeout", &mut s.timeout, &f.timeout),
        ("network", &mut s.network, &f.network),
        ("memory", &mut s.memory, &f.memory),
        ("context", &mut s.context, &f.context),
    ];
    for (id, field, value) in strings {
        if let (true, Some(v)) = (unset(m, id), value) {
            *field = v.clone();
        }
    }
    for (id, field, value) in [
        ("stack", &mut s.stack, &f.stack),
        ("user", &mut s.user, &f.user),
        ("max_unzipped", &mut s.max_unzipped, &f.max_unzipped),
    ] {
        if let (true, Some(v)) = (unset(m, id), value) {
            *field = Some(v.clone());
        }
    }
    if let (true, Some(k)) = (unset(m, "keep_image"), f.keep_image) {
        s.keep_image = k;
    }
    if let (true, Some(j)) = (unset(m, "jobs"), f.jobs) {
        s.jobs = Some(j);
    }
    if let Some(env) = &f.env {
        // The file's variables first; one given on the command line wins over the file's.
        let given: Vec<&str> = s.env.iter().filter_map(|e| e.split('=').next()).collect();
        let mut merged: Vec<String> = env
            .iter()
            .filter(|(k, _)| !given.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        merged.append(&mut s.env);
        s.env = merged;
    }
    apply_judge(&mut s.judge, m, f, base);
    apply_reports(&mut s.reports, m, f, base);
    apply_save(&mut s.save, m, f, base);
}

fn apply_judge(j: &mut JudgeArgs, m: &ArgMatches, f: &ConfigFile, base: &Path) {
    if unset(m, "allowlist") {
        match &f.allowlist {
            Some(AllowlistSetting::Path(p)) => j.allowlist = Some(resolve(base, p)),
            Some(AllowlistSetting::Inline(a)) => j.inline = Some(a.clone()),
            None => {}
        }
    }
    if let (true, Some(v)) = (unset(m, "filter"), &f.filter) {
        j.filter = Some(v.clone());
    }
}

fn apply_reports(r: &mut ReportArgs, m: &ArgMatches, f: &ConfigFile, base: &Path) {
    let Some(reports) = &f.reports else { return };
    for (id, field, value) in [
        ("json", &mut r.json, &reports.json),
        ("junit", &mut r.junit, &reports.junit),
        (
            "suggest_allowlist",
            &mut r.suggest_allowlist,
            &reports.suggest_allowlist,
        ),
    ] {
        if let (true, Some(v)) = (unset(m, id), value) {
            *field = Some(resolve(base, v));
        }
    }
}

fn apply_save(s: &mut SaveArgs, m: &ArgMatches, f: &ConfigFile, base: &Path) {
    let pcap = f.reports.as_ref().and_then(|r| r.pcap.as_ref());
    if let (true, Some(v)) = (unset(m, "pcap"), pcap) {
        s.pcap = Some(resolve(base, v));
    }
}

impl<'de> Deserialize<'de> for AllowlistSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AllowlistSetting;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("the path of an allowlist file, or the rules themselves (allow: and deny: under allowlist:)")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Self::Value, E> {
                Ok(AllowlistSetting::Path(PathBuf::from(s)))
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut a = Allowlist::deserialize(de::value::MapAccessDeserializer::new(map))?;
                a.source = "(inline in the configuration file)".into();
                Ok(AllowlistSetting::Inline(a))
            }
        }
        d.deserialize_any(V)
    }
}

/// `env:` — NAME: value; numbers and booleans are taken as text.
fn env_map<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<BTreeMap<String, String>>, D::Error> {
    let raw: BTreeMap<String, Scalar> = BTreeMap::deserialize(d)?;
    Ok(Some(raw.into_iter().map(|(k, Scalar(v))| (k, v)).collect()))
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    Scalar::deserialize(d).map(|s| Some(s.0))
}

/// The values serde_norway cannot check by their type, checked after reading as the command line
/// would check them. serde_norway gives a custom error no position, so the key's line is found in
/// the text ([`line_of`]).
fn check_values(c: &ConfigFile, text: &str) -> std::result::Result<(), String> {
    if let Some(t) = &c.timeout {
        crate::cli::parse_duration(t).map_err(|_| {
            format!(
                "line {}: timeout: invalid duration {t:?}: expected a duration such as 30s, 10m or 1h",
                line_of(text, "timeout", None)
            )
        })?;
    }
    if let Some(m) = &c.memory {
        crate::cli::parse_memory(m).map_err(|_| {
            format!(
                "line {}: memory: invalid size {m:?}: expected a size of at least 6m, such as 512m or 2g",
                line_of(text, "memory", None)
            )
        })?;
    }
    if let Some(m) = &c.max_unzipped {
        crate::cli::parse_size("--max-unzipped", m).map_err(|_| {
            format!(
                "line {}: max-unzipped: invalid size {m:?}: expected a size such as 512m or 8g",
                line_of(text, "max-unzipped", None)
            )
        })?;
    }
    if let Some(c2) = &c.context {
        if !["auto", "mount", "copy"].contains(&c2.as_str()) {
            return Err(format!(
                "line {}: context: invalid value {c2:?}: expected auto, mount or copy",
                line_of(text, "context", None)
            ));
        }
    }
    for name in c.env.iter().flat_map(|e| e.keys()) {
        crate::cli::parse_env(&format!("{name}=")).map_err(|_| {
            format!(
                "line {}: env: invalid variable name {name:?}: expected letters, digits and _, not starting with a digit",
                line_of(text, "env", Some(name))
            )
        })?;
    }
    Ok(())
}

/// The (1-based) line of top-level `key:`, or of `inner:` in the block under it; the key's own
/// line when the inner one is not found (a flow mapping), 1 when neither is.
fn line_of(text: &str, key: &str, inner: Option<&str>) -> usize {
    let is_key = |line: &str, k: &str| {
        line.strip_prefix(k)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    };
    let Some(top) = text.lines().position(|l| is_key(l, key)) else {
        return 1;
    };
    let inner_line = inner.and_then(|k| {
        text.lines()
            .enumerate()
            .skip(top + 1)
            .take_while(|(_, l)| l.is_empty() || l.starts_with([' ', '#']))
            .find(|(_, l)| is_key(l.trim_start(), k))
            .map(|(i, _)| i)
    });
    inner_line.unwrap_or(top) + 1
}

/// A YAML scalar (text, number or boolean) as text: `timeout: 600s`, `FOO: 1`.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text, a number or a boolean")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Scalar, E> {
                Ok(Scalar(s.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(yaml: &str) -> String {
        match parse(yaml) {
            Err(e) => e,
            Ok(c) => panic!("accepted: {c:?}"),
        }
    }

    #[test]
    fn every_key_reads() {
        let c = parse(
            "apps: [fixtures/a]\nbuildpacks: [., ../bp.zip]\nstack-image: s:1\nstack: cflinuxfs4\n\
             allowlist: ci/allow.yaml\nfilter: not port 22\nreports:\n  json: out/r.json\n  junit: out/r.xml\n  pcap: out/r.pcap\n  suggest-allowlist: out/s.yaml\n\
             timeout: 20m\nenv:\n  FOO: 1\n  BAR: text\nuser: root\nnetwork: sealed\nmemory: 2g\nkeep-image: true\n\
             jobs: 3\ncontext: copy\nmax-unzipped: 8g\n",
        )
        .unwrap();
        assert_eq!(
            (c.jobs, c.context.as_deref(), c.max_unzipped.as_deref()),
            (Some(3), Some("copy"), Some("8g"))
        );
        assert_eq!(c.apps.unwrap(), [PathBuf::from("fixtures/a")]);
        assert_eq!(c.buildpacks.unwrap().len(), 2);
        assert_eq!(c.timeout.as_deref(), Some("20m"));
        assert_eq!(c.env.unwrap()["FOO"], "1");
        assert_eq!(c.keep_image, Some(true));
        assert!(matches!(c.allowlist, Some(AllowlistSetting::Path(_))));
        assert_eq!(
            c.reports.unwrap().suggest_allowlist.unwrap(),
            PathBuf::from("out/s.yaml")
        );
        // Empty, or only comments: nothing set.
        assert!(parse("").unwrap().apps.is_none());
        assert!(parse("# nothing yet\n").unwrap().apps.is_none());
    }

    #[test]
    fn inline_allowlists_are_checked_with_their_position() {
        let c = parse("allowlist:\n  allow:\n    - name: a\n      cidrs: [10.0.0.0/8]\n  deny:\n    - name: d\n      cidrs: [10.9.0.0/16]\n").unwrap();
        match c.allowlist {
            Some(AllowlistSetting::Inline(a)) => {
                assert_eq!((a.allow.len(), a.deny.len()), (1, 1));
            }
            other => panic!("{other:?}"),
        }
        let e = err("allowlist:\n  allow:\n    - name: a\n      cidrs: [10.0.0.0/33]\n");
        assert!(
            e.starts_with("line 4 column 14: allowlist.allow[0].cidrs: invalid CIDR"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let e = err("apps: [a]\ncontext: cp\n");
        assert!(
            e.starts_with("line 2: context: invalid value \"cp\""),
            "{e}"
        );
        let e = err("apps: [a]\nmax-unzipped: lots\n");
        assert!(e.starts_with("line 2: max-unzipped: invalid size"), "{e}");
        let e = err("apps: [a]\napss: [b]\n");
        assert!(
            e.starts_with("line 2 column 1: unknown field `apss`"),
            "{e}"
        );
        let e = err("apps: [a]\ntimeout: soon\n");
        assert!(
            e.starts_with("line 2: timeout: invalid duration \"soon\""),
            "{e}"
        );
        let e = err("memory: 1k\n");
        assert!(e.starts_with("line 1: memory: invalid size \"1k\""), "{e}");
        let e = err("apps: [a]\nenv:\n  # the good one\n  GOOD: 1\n  1BAD: x\n");
        assert!(
            e.starts_with("line 5: env: invalid variable name \"1BAD\""),
            "{e}"
        );
        let e = err("env: {1BAD: x}\n");
        assert!(e.starts_with("line 1: env: invalid variable name"), "{e}");
        let e = err("reports:\n  jsno: r.json\n");
        assert!(
            e.starts_with("line 2 column 3: reports: unknown field `jsno`"),
            "{e}"
        );
        let e = err("user: x\napps: fixtures/a\n");
        assert!(
            e.starts_with("line 2 column 7: apps: invalid type: string"),
            "{e}"
        );
        let e = err("keep-image: sometimes\n");
        assert!(
            e.starts_with("line 1 column 13: keep-image: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn discovery_stops_at_the_repository_root() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("repo");
        let deep = repo.join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        // Outside a repository: the current folder only.
        let found = |d: &Path| discover(d).unwrap();
        std::fs::write(d.path().join(FILE_NAME), "").unwrap();
        assert_eq!(found(&deep), None);
        std::fs::write(deep.join(FILE_NAME), "").unwrap();
        assert_eq!(found(&deep), Some(deep.join(FILE_NAME)));
        std::fs::remove_file(deep.join(FILE_NAME)).unwrap();
        // Inside one: up to its root, never above it.
        std::fs::create_dir(repo.join(".git")).unwrap();
        assert_eq!(found(&deep), None);
        std::fs::write(repo.join(FILE_NAME), "").unwrap();
        assert_eq!(found(&deep), Some(repo.join(FILE_NAME)));
        std::fs::write(repo.join("a").join(FILE_NAME), "").unwrap();
        assert_eq!(found(&deep), Some(repo.join("a").join(FILE_NAME)));
        // A .yml on the way is not ignored.
        std::fs::write(deep.join("airgap-check.yml"), "").unwrap();
        let e = discover(&deep).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "airgap-check.yml: airgap-check reads airgap-check.yaml, not .yml: rename the file"
            ),
            "{e}"
        );
    }

    #[test]
    fn the_command_line_wins_and_paths_are_relative_to_the_file() {
        let (mut cli, m) = crate::cli::parse([
            "airgap-check",
            "--timeout",
            "5m",
            "--env",
            "A=cli",
            "--buildpack",
            "mine",
        ])
        .unwrap();
        let found = Found {
            path: PathBuf::from("/repo/ci/airgap-check.yaml"),
            file: parse(
                "apps: [app]\nbuildpacks: [bp]\ntimeout: 20m\nmemory: 2g\nenv: {A: file, B: 2}\n\
                 reports: {json: out/r.json, pcap: /abs/c.pcap}\nallowlist: allow.yaml\nkeep-image: true\n",
            )
            .unwrap(),
        };
        apply(&mut cli, &m, &found);
        let s = &cli.stage;
        assert_eq!(s.apps, [PathBuf::from("/repo/ci/app")]);
        assert_eq!(s.buildpacks, [PathBuf::from("mine")]);
        assert_eq!(s.timeout, "5m");
        assert_eq!(s.memory, "2g");
        assert_eq!(s.stack_image, "cloudfoundry/cflinuxfs4");
        assert_eq!(s.env, ["B=2", "A=cli"]);
        assert!(s.keep_image);
        assert_eq!(
            s.reports.json.as_deref(),
            Some(Path::new("/repo/ci/out/r.json"))
        );
        assert_eq!(s.save.pcap.as_deref(), Some(Path::new("/abs/c.pcap")));
        assert_eq!(
            s.judge.allowlist.as_deref(),
            Some(Path::new("/repo/ci/allow.yaml"))
        );
        // analyze takes the file's allowlist and reports, never its staging options.
        let (mut cli, m) =
            crate::cli::parse(["airgap-check", "analyze", "--pcap", "x", "--json", "-"]).unwrap();
        apply(&mut cli, &m, &found);
        let Some(Command::Analyze(a)) = &cli.command else {
            panic!()
        };
        assert_eq!(a.reports.json.as_deref(), Some(Path::new("-")));
        assert_eq!(
            a.judge.allowlist.as_deref(),
            Some(Path::new("/repo/ci/allow.yaml"))
        );
        assert!(cli.stage.apps.is_empty());
    }
}
