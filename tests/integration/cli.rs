//! What a user of any CLI expects, on the real binary: the configuration file (airgap-check.yaml:
//! discovery, precedence: flags over AIRGAP_CHECK_* over the file), reports on stdout and a
//! capture from stdin, -q and -v/-vv, --color, --version everywhere, usage errors on stderr, shell
//! completions and the man page.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{assert_junit_valid, ensure_stack, fixture, root, Agc, STACK_IMAGE};

/// A scratch repository (a folder with `.git`) holding `airgap-check.yaml` with `config`, and a
/// subfolder `sub/deeper` to run from.
fn repo_with_config(config: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join(".git")).unwrap();
    let deeper = d.path().join("sub/deeper");
    std::fs::create_dir_all(&deeper).unwrap();
    std::fs::write(d.path().join("airgap-check.yaml"), config).unwrap();
    (d, deeper)
}

fn abs_fixture(name: &str) -> String {
    root().join(fixture(name)).display().to_string()
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

/// The configuration file is found from a subfolder up to the repository root; its allowlist
/// (inline) and report path are used; AIRGAP_CHECK_ALLOWLIST wins over it, and --allowlist over
/// both; --no-config and --config FILE are obeyed.
#[test]
fn config_file_is_discovered_and_flags_and_environment_win() {
    // leaky.pcap with an allowlist that allows everything but denies 198.51.100.7 by address.
    let (d, deeper) = repo_with_config(
        "# checked before each push\nallowlist:\n  allow:\n    - name: everything\n      cidrs: [0.0.0.0/0, \"::/0\"]\n  deny:\n    - name: not that one\n      cidrs: [198.51.100.7/32]\nreports:\n  json: out/from-config.json\n",
    );
    std::fs::create_dir(d.path().join("out")).unwrap();
    let report = d.path().join("out/from-config.json");
    let leaky = abs_fixture("leaky.pcap");
    // Found two folders up; paths in it are relative to it. leaky.pcap's broken frames keep a
    // run without disallowed flows inconclusive: the deny rule makes this one a fail.
    Agc::new(&["analyze", "--pcap", &leaky])
        .in_dir(&deeper)
        .expect_exit(1)
        .run();
    let j = read_json(&report);
    assert_eq!(j["allowlist"], "(inline in the configuration file)");
    assert_eq!(j["summary"]["disallowed"], 1, "{}", j["summary"]);
    let denied: Vec<&Value> = j["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["allowed"] == false)
        .collect();
    assert_eq!(denied[0]["remote"], "198.51.100.7");
    assert_eq!(denied[0]["denied_by"], "not that one");
    std::fs::remove_file(&report).unwrap();

    // AIRGAP_CHECK_ALLOWLIST wins over the file's allowlist (the report path still comes from it).
    let strict = root().join("allowlists/strict.yaml");
    Agc::new(&["analyze", "--pcap", &leaky])
        .in_dir(&deeper)
        .env("AIRGAP_CHECK_ALLOWLIST", &strict)
        .expect_exit(1)
        .run();
    let j = read_json(&report);
    assert_eq!(j["allowlist"], strict.display().to_string());
    assert_eq!(j["summary"]["disallowed"], 12, "{}", j["summary"]);

    // --allowlist wins over both.
    let default = root().join("allowlists/default.yaml");
    Agc::new(&["analyze", "--pcap", &leaky, "--allowlist"])
        .arg(&default)
        .in_dir(&deeper)
        .env("AIRGAP_CHECK_ALLOWLIST", &strict)
        .expect_exit(1)
        .run();
    let j = read_json(&report);
    assert_eq!(j["allowlist"], default.display().to_string());
    assert_eq!(j["summary"]["disallowed"], 10);
    std::fs::remove_file(&report).unwrap();

    // --no-config: the file is not read (no report where it says).
    Agc::new(&["analyze", "--pcap", &leaky, "--no-config"])
        .in_dir(&deeper)
        .expect_exit(1)
        .run();
    assert!(!report.exists());

    // --config FILE, from anywhere; AIRGAP_CHECK_CONFIG too.
    let other = d.path().join("sub/other.yaml");
    std::fs::write(&other, "reports:\n  json: other.json\n").unwrap();
    let o = Agc::new(&["analyze", "--pcap", &leaky, "--config"])
        .arg(&other)
        .expect_exit(1)
        .run();
    assert_eq!(
        read_json(&d.path().join("sub/other.json"))["allowlist"],
        "(default)"
    );
    assert!(o.stdout.contains("FAIL"));
    std::fs::remove_file(d.path().join("sub/other.json")).unwrap();
    Agc::new(&["analyze", "--pcap", &leaky])
        .env("AIRGAP_CHECK_CONFIG", &other)
        .expect_exit(1)
        .run();
    assert!(d.path().join("sub/other.json").is_file());
}

/// A configuration file above the repository root is not read; outside a repository only the
/// current folder's is.
#[test]
fn config_file_is_not_looked_for_above_the_repository_root() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("airgap-check.yaml"),
        "reports:\n  json: above.json\n",
    )
    .unwrap();
    let repo = d.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    Agc::new(&["analyze", "--pcap", &abs_fixture("clean.pcap")])
        .in_dir(&repo)
        .expect_exit(0)
        .run();
    assert!(!d.path().join("above.json").exists());
    let plain = d.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    Agc::new(&["analyze", "--pcap", &abs_fixture("clean.pcap")])
        .in_dir(&plain)
        .expect_exit(0)
        .run();
    assert!(!d.path().join("above.json").exists());
}

/// A broken configuration file is exit 2, one line naming the file, the line and the key, and
/// nothing is written.
#[test]
fn bad_config_file_is_exit_2_naming_file_line_and_key() {
    let cases = [
        (
            "apps: [a]\napss: [b]\n",
            "line 2 column 1: unknown field `apss`",
        ),
        (
            "apps: [a]\ntimeout: soon\n",
            "line 2: timeout: invalid duration \"soon\"",
        ),
        (
            "reports:\n  json: r.json\n  jsno: x\n",
            "line 3 column 3: reports: unknown field `jsno`",
        ),
        (
            "allowlist:\n  allow:\n    - name: a\n      cidrs: [10.0.0.0/33]\n",
            "line 4 column 14: allowlist.allow[0].cidrs: invalid CIDR \"10.0.0.0/33\"",
        ),
        ("apps: [a\n", "line 2"),
    ];
    for (config, want) in cases {
        let (d, deeper) = repo_with_config(config);
        let o = Agc::new(&["analyze", "--pcap", &abs_fixture("clean.pcap")])
            .in_dir(&deeper)
            .context(config)
            .expect_exit(2)
            .run();
        let file = d.path().join("airgap-check.yaml");
        let line = format!("airgap-check: error: config {}: {want}", file.display());
        assert!(o.stderr.starts_with(&line), "{line}\nin\n{}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
        assert!(o.stdout.is_empty());
        assert!(!d.path().join("r.json").exists());
    }
    // --config naming a file that is not there.
    let o = Agc::new(&["analyze", "--pcap", &abs_fixture("clean.pcap")])
        .args(&["--config", "/nonexistent/airgap-check.yaml"])
        .expect_exit(2)
        .run();
    assert!(
        o.stderr.contains("/nonexistent/airgap-check.yaml"),
        "{}",
        o.stderr
    );
}

/// A staging run with nothing on the command line: the app, the buildpacks, the stack image, the
/// timeout, the environment and the reports all come from airgap-check.yaml.
#[test]
fn staging_run_from_the_config_file_alone() {
    ensure_stack();
    let d = tempfile::tempdir().unwrap();
    let config = format!(
        "apps: [{app}]\nbuildpacks: [{bp}]\nstack-image: {STACK_IMAGE}\ntimeout: 120s\nenv:\n  FETCH_ADDR: 203.0.113.61\n  FETCH_HOST: pkg.example.com\nreports:\n  json: r.json\n  junit: r.xml\n",
        app = root().join("fixtures/apps/hello").display(),
        bp = root().join("fixtures/buildpacks/fetch-env").display(),
    );
    std::fs::write(d.path().join("airgap-check.yaml"), config).unwrap();
    Agc::new::<&str>(&[]).in_dir(d.path()).expect_exit(1).run();
    let j = read_json(&d.path().join("r.json"));
    assert_eq!(j["verdict"], "fail");
    assert_eq!(j["stage"]["stack_image"], STACK_IMAGE);
    let bad: Vec<&Value> = j["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["allowed"] == false)
        .collect();
    // The environment from the file reached the phases: the buildpack fetched what it named.
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0]["remote"], "203.0.113.61");
    assert_eq!(bad[0]["names"], serde_json::json!(["pkg.example.com"]));
    assert_junit_valid(&d.path().join("r.xml"), None);
}

/// `analyze --pcap -` reads the capture from stdin; `--json -` and `--junit -` write the report
/// to stdout, and the console summary then goes to stderr; two reports cannot share stdout.
#[test]
fn reports_to_stdout_and_a_capture_from_stdin() {
    let o = Agc::new(&["analyze", "--pcap", "-", "--json", "-"])
        .stdin_from(root().join(fixture("leaky.pcap")))
        .expect_exit(1)
        .run();
    let j: Value = serde_json::from_str(&o.stdout).expect("stdout is the JSON report alone");
    assert_eq!(j["input"], "(stdin)");
    assert_eq!(j["summary"]["flows"], 13);
    assert!(
        o.stderr
            .contains("airgap-check analyze (stdin): 31 packets"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("FAIL: 10 disallowed flows"),
        "{}",
        o.stderr
    );

    let o = Agc::new(&[
        "analyze",
        "--pcap",
        &abs_fixture("leaky.pcap"),
        "--junit",
        "-",
    ])
    .expect_exit(1)
    .run();
    assert!(o.stdout.starts_with("<?xml"), "{}", o.stdout);
    let xml = o.dir().join("stdout.xml");
    std::fs::write(&xml, &o.stdout).unwrap();
    assert_junit_valid(&xml, Some(&o.stdout));
    assert!(o.stderr.contains("FAIL"));

    // The suggested allowlist too, and a file report beside it.
    let o = Agc::analyze(&fixture("names.pcap"))
        .args(&["--suggest-allowlist", "-"])
        .expect_exit(1)
        .run();
    assert!(
        o.stdout.starts_with("# Suggested by airgap-check"),
        "{}",
        o.stdout
    );
    assert!(o.json.is_some());

    let o = Agc::new(&["analyze", "--pcap", &abs_fixture("leaky.pcap")])
        .args(&["--json", "-", "--junit", "-"])
        .expect_exit(2)
        .run();
    assert!(o
        .stderr
        .contains("--junit \"-\": expected a file: --json already writes to stdout"));
    assert!(o.stdout.is_empty());

    // Not a capture on stdin: exit 2, one line.
    let o = Agc::new(&["analyze", "--pcap", "-"])
        .stdin_from(root().join("README.md"))
        .expect_exit(2)
        .run();
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
}

/// -q prints the verdict line only; --color always colours even with NO_COLOR set, never does not.
#[test]
fn quiet_prints_the_verdict_line_only_and_color_obeys() {
    let o = Agc::new(&["-q", "analyze", "--pcap", &abs_fixture("leaky.pcap")])
        .expect_exit(1)
        .run();
    assert_eq!(o.stdout, "FAIL: 10 disallowed flows to 9 destinations\n");
    assert!(o.stderr.is_empty(), "{}", o.stderr);
    let o = Agc::new(&["analyze", "--quiet", "--pcap", &abs_fixture("clean.pcap")])
        .expect_exit(0)
        .run();
    assert_eq!(o.stdout.lines().count(), 1, "{}", o.stdout);
    assert!(o.stdout.starts_with("PASS"));

    // The test runner sets NO_COLOR=1: auto means no colour; always overrides it.
    let plain = Agc::analyze(&fixture("leaky.pcap")).expect_exit(1).run();
    assert!(!plain.stdout.contains('\u{1b}'));
    let o = Agc::new(&[
        "analyze",
        "--color",
        "always",
        "--pcap",
        &abs_fixture("leaky.pcap"),
    ])
    .expect_exit(1)
    .run();
    assert!(o.stdout.contains("\u{1b}["), "{}", o.stdout);
    let o = Agc::new(&["analyze", "--pcap", &abs_fixture("leaky.pcap")])
        .env("AIRGAP_CHECK_COLOR", "always")
        .args(&["--color", "never"])
        .expect_exit(1)
        .run();
    assert!(!o.stdout.contains('\u{1b}'));
}

/// -q on a staging run: the verdict line on stdout, no progress on stderr. -v shows the steps but
/// not the buildpack's output; -vv shows that too, as it runs.
#[test]
fn quiet_and_verbose_staging_runs() {
    let o = Agc::stage(&["clean"]).arg("-q").expect_exit(0).run();
    assert_eq!(
        o.stdout, "PASS: no disallowed flow in 0 flows\n",
        "{}",
        o.stdout
    );
    assert!(o.stderr.is_empty(), "{}", o.stderr);
    // -v shows how the container was made: its mounts (no image is built).
    let o = Agc::stage(&["clean"]).arg("-v").expect_exit(0).run();
    assert!(
        o.stderr
            .contains("  /tmp/buildpacks/0 ← fixtures/buildpacks/clean"),
        "{}",
        o.stderr
    );
    assert!(
        !o.stderr.contains("[supply] -----> Supplying"),
        "{}",
        o.stderr
    );
    let o = Agc::stage(&["clean"]).arg("-vv").expect_exit(0).run();
    assert!(
        o.stderr.contains("  [supply] -----> Supplying"),
        "{}",
        o.stderr
    );
}

/// Usage errors go to stderr (exit 2), --help and --version to stdout; every subcommand has
/// --version.
#[test]
fn usage_errors_on_stderr_and_version_everywhere() {
    for args in [
        &["--bogus"][..],
        &[][..],
        &["analyze"][..],
        &["completions", "tcsh"][..],
    ] {
        let o = Agc::new(args).expect_exit(2).run();
        assert!(o.stdout.is_empty(), "{args:?}: {}", o.stdout);
        assert!(!o.stderr.is_empty(), "{args:?}");
    }
    let o = Agc::new(&["--app", "fixtures/apps/hello", "analyze", "--pcap", "x"])
        .expect_exit(2)
        .run();
    assert!(
        o.stderr.contains("--app belongs to a staging run"),
        "{}",
        o.stderr
    );
    // The same app twice: one clear line, before anything is created.
    let o = Agc::new(&[
        "--app",
        "fixtures/apps/hello",
        "--app",
        "fixtures/apps/hello",
        "--buildpack",
        "fixtures/buildpacks/clean",
    ])
    .expect_exit(2)
    .run();
    assert!(
        o.stderr.starts_with(
            "airgap-check: error: --app \"fixtures/apps/hello\": is given twice: expected each app once"
        ),
        "{}",
        o.stderr
    );
    let version = env!("CARGO_PKG_VERSION");
    for sub in [
        &[][..],
        &["analyze"],
        &["watch"],
        &["prune"],
        &["completions"],
        &["man"],
    ] {
        let o = Agc::new(sub).arg("--version").expect_exit(0).run();
        assert!(
            o.stdout.trim_end().ends_with(version),
            "{sub:?}: {}",
            o.stdout
        );
    }
    let o = Agc::new(&["--help"]).expect_exit(0).run();
    assert!(o.stdout.contains("AIRGAP_CHECK_APP"), "{}", o.stdout);
    assert!(o.stdout.contains("airgap-check.yaml"));
}

/// Shell completions (clap_complete) and the man page (clap_mangen) are printed whole.
#[test]
fn completions_and_man_page() {
    for (shell, marker) in [
        ("bash", "complete -F _airgap__check"),
        ("zsh", "#compdef airgap-check"),
        ("fish", "complete -c airgap-check"),
    ] {
        let o = Agc::new(&["completions", shell]).expect_exit(0).run();
        assert!(o.stdout.contains(marker), "{shell}: {}", o.stdout);
        for word in [
            "analyze",
            "watch",
            "allowlist",
            "suggest-allowlist",
            "completions",
        ] {
            assert!(o.stdout.contains(word), "{shell} completes no {word}");
        }
    }
    let o = Agc::new(&["man"]).expect_exit(0).run();
    assert!(o.stdout.contains(".TH airgap-check 1"), "{}", o.stdout);
    assert!(o.stdout.contains("allowlist"));
}
