//! Integration tests of Cloud Native Buildpacks staged sealed, phase by phase: shell CNBs of
//! fixtures/cnb on the busybox fixture stack, the real binary, the real Docker engine and real
//! captures. Every packet stays inside the sealed network (or, in observe mode, goes to the
//! run's own bridge's gateway). Needs root and Docker, as the stage tests do.

use serde_json::{json, Value};

use crate::support::{flow, Agc};

fn cnb(name: &str) -> String {
    format!("fixtures/cnb/{name}")
}

/// (name, buildpack index, buildpack name, exit code) of every phase.
fn phases(j: &Value) -> Vec<(String, u64, String, Value)> {
    j["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["buildpack"].as_u64().unwrap(),
                p["buildpack_name"].as_str().unwrap().to_string(),
                p["exit_code"].clone(),
            )
        })
        .collect()
}

#[test]
fn a_clean_cnb_passes_with_its_layer_and_process_read_back() {
    let s = Agc::stage(&[&cnb("clean")])
        .args(&["--env", "BP_GREETING=hello"])
        .expect_exit(0)
        .expect_verdict("pass")
        .expect_disallowed(&[])
        .run();
    let j = s.json();
    assert_eq!(j["capture"]["canary_seen"], true);
    let id = "examples/clean".to_string();
    assert_eq!(
        phases(j),
        [
            ("detect".into(), 0, id.clone(), json!(0)),
            ("build".into(), 0, id.clone(), json!(0))
        ]
    );
    assert_eq!(j["stage"]["user"], "vcap", "as for v2: the stack's vcap");
    assert_eq!(
        j["cnb"]["group"],
        json!([{"id": "examples/clean", "version": "0.0.1", "api": "0.10"}])
    );
    assert_eq!(
        j["cnb"]["processes"],
        json!([{"type": "web", "command": ["serve"], "args": ["--quiet"], "default": true,
                "working_dir": null, "buildpack": "examples/clean"}])
    );
    // A folder with no <layer>.toml is not a layer (buildpack.md "Layer Types").
    assert_eq!(
        j["cnb"]["layers"],
        json!([{"buildpack": "examples/clean", "name": "web",
                "path": "/layers/examples_clean/web", "launch": true, "build": false,
                "cache": true, "has_contents": true}])
    );
    // The build saw its positional arguments, plan, platform env file and the staging user.
    let tail = j["phases"][1]["output_tail"].to_string();
    assert!(
        tail.contains("Building as uid 2000 in /layers/examples_clean (target linux)"),
        "{tail}"
    );
    let x = s.junit.as_deref().unwrap();
    for name in [
        "capture",
        "detect (buildpack 0: examples/clean)",
        "build (buildpack 0: examples/clean)",
    ] {
        assert!(x.contains(&format!("name=\"{name}\"")), "{name} in {x}");
    }
    assert!(!x.contains("<failure"), "{x}");
    s.assert_junit_valid();
    assert!(
        s.stderr.contains("process web (default): serve --quiet"),
        "{}",
        s.stderr
    );
}

#[test]
fn a_lookup_and_a_connection_in_detect_are_attributed_to_detect() {
    let s = Agc::stage(&[&cnb("leak-detect")])
        .expect_exit(1)
        .expect_verdict("fail")
        // The sinkhole answers the name with the first address it hands out.
        .expect_disallowed(&[flow("tcp", "198.18.0.1", Some(443), "detect")])
        .run();
    let j = s.json();
    let tcp = s.flow("tcp", "198.18.0.1", Some(443));
    assert_eq!(tcp["phase_buildpack"], 0);
    assert_eq!(tcp["names"], json!(["updates.example.org"]));
    let query = j["dns_queries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "updates.example.org" && q["type"] == "A")
        .unwrap_or_else(|| panic!("no DNS query: {}", j["dns_queries"]));
    assert_eq!(
        (&query["phase"], &query["phase_buildpack"]),
        (&json!("detect"), &json!(0))
    );
    let x = s.junit.as_deref().unwrap();
    assert!(
        x.contains(
            "detect contacted 1 disallowed destination: tcp 198.18.0.1:443 (updates.example.org)"
        ),
        "{x}"
    );
    s.assert_junit_valid();
}

#[test]
fn an_ipv6_download_in_build_fails_naming_the_host_the_phase_and_the_buildpack() {
    let s = Agc::stage(&[&cnb("leak-ipv6-build")])
        .env("GITHUB_ACTIONS", "true")
        .env_remove("GITHUB_STEP_SUMMARY")
        .expect_exit(1)
        .expect_disallowed(&[flow("tcp", "2001:db8::9", Some(443), "build")])
        .run();
    let j = s.json();
    assert_eq!(j["flows"][0]["phase_buildpack"], 0);
    assert_eq!(j["phases"][1]["disallowed_flows"], 1);
    assert_eq!(j["cnb"]["group"][0]["api"], "0.12");
    // The annotation says the phase and the buildpack by its id.
    let annotation = s
        .stdout
        .lines()
        .chain(s.stderr.lines())
        .find(|l| l.starts_with("::error") && l.contains("2001:db8::9"))
        .unwrap_or_else(|| panic!("no annotation for the flow: {}{}", s.stdout, s.stderr))
        .to_string();
    assert!(
        annotation.contains(
            "build (buildpack 0: examples/leak-ipv6-build) contacted tcp [2001:db8::9]:443"
        ),
        "{annotation}"
    );
    let x = s.junit.as_deref().unwrap();
    assert!(
        x.contains("name=\"build (buildpack 0: examples/leak-ipv6-build)\""),
        "{x}"
    );
    s.assert_junit_valid();
}

#[test]
fn a_group_resolves_its_plan_and_udp_in_the_second_build_is_attributed_to_it() {
    let s = Agc::stage(&[&cnb("provides-tool"), &cnb("requires-tool-udp")])
        .expect_exit(1)
        .expect_disallowed(&[flow("udp", "203.0.113.71", Some(69), "build")])
        .run();
    let j = s.json();
    let udp = s.flow("udp", "203.0.113.71", Some(69));
    assert_eq!(udp["phase_buildpack"], 1, "build of buildpack 1");
    assert_eq!(udp["state"], "unreachable");
    let (p, r) = (
        "examples/provides-tool".to_string(),
        "examples/requires-tool-udp".to_string(),
    );
    assert_eq!(
        phases(j),
        [
            ("detect".into(), 0, p.clone(), json!(0)),
            ("detect".into(), 1, r.clone(), json!(0)),
            ("build".into(), 0, p.clone(), json!(0)),
            ("build".into(), 1, r.clone(), json!(0)),
        ]
    );
    // The first build got the entry in its plan; the second ran its tool from the first's build
    // layer (on PATH, its env/ applied) before it sent the datagram.
    let second = j["phases"][3]["output_tail"].to_string();
    assert!(second.contains("hello from tool"), "{second}");
    assert_eq!(j["phases"][3]["disallowed_flows"], 1);
    assert_eq!(j["phases"][2]["disallowed_flows"], 0);
    assert_eq!(j["cnb"]["layers"][0]["name"], "tool");
    assert_eq!(j["cnb"]["layers"][0]["build"], true);
    assert_eq!(j["cnb"]["group"].as_array().unwrap().len(), 2);
    let x = s.junit.as_deref().unwrap();
    assert!(
        x.contains("build contacted 1 disallowed destination: udp 203.0.113.71:69"),
        "{x}"
    );
    s.assert_junit_valid();
}

#[test]
fn a_detect_that_fails_stops_staging_before_any_build() {
    let s = Agc::stage(&[&cnb("detect-fails")])
        .expect_exit(1)
        .expect_verdict("fail")
        // Its build would connect: it must not run.
        .expect_disallowed(&[])
        .run();
    let j = s.json();
    assert_eq!(
        phases(j),
        [("detect".into(), 0, "examples/ruby".into(), json!(100))]
    );
    assert_eq!(j["phases"][0]["failed"], true);
    let notes = j["notes"].to_string();
    assert!(
        notes.contains("detect (buildpack 0: examples/ruby) exited 100: the buildpack does not apply to this app")
            && notes.contains("no build ran"),
        "{notes}"
    );
    assert!(
        s.stdout
            .contains("FAIL: detect (buildpack 0: examples/ruby) exited 100"),
        "{}",
        s.stdout
    );
    let x = s.junit.as_deref().unwrap();
    assert!(x.contains("type=\"staging-failed\""), "{x}");
    assert!(x.contains("no Gemfile: not a Ruby app"), "{x}");
    s.assert_junit_valid();
}

#[test]
fn a_group_whose_plans_do_not_resolve_fails_saying_which_requirement() {
    let s = Agc::stage(&[&cnb("requires-tool-udp")])
        .expect_exit(1)
        .expect_verdict("fail")
        .expect_disallowed(&[])
        .run();
    assert_eq!(s.json()["phases"].as_array().unwrap().len(), 1, "no build");
    assert!(
        s.stdout.contains(
            "FAIL: staging failed: detection failed: the group's build plans do not resolve: buildpack 0 (examples/requires-tool-udp) requires \"tool\", which neither it nor a buildpack before it provides"
        ),
        "{}",
        s.stdout
    );
}

/// A copy of the clean CNB with this buildpack.toml.
fn with_descriptor(dir: &std::path::Path, toml: &str) -> std::path::PathBuf {
    let bp = dir.join("bp");
    std::fs::create_dir_all(bp.join("bin")).unwrap();
    for s in ["detect", "build"] {
        std::fs::copy(
            format!("fixtures/cnb/clean/bin/{s}"),
            bp.join("bin").join(s),
        )
        .unwrap();
    }
    std::fs::write(bp.join("buildpack.toml"), toml).unwrap();
    bp
}

#[test]
fn bad_cnb_inputs_are_exit_2_naming_the_file_the_line_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let hello = "fixtures/apps/hello";
    let bad_id = with_descriptor(
        &dir.path().join("bad-id"),
        "api = \"0.10\"\n\n[buildpack]\n# the id\nid = \"examples/hello world\"\nversion = \"0.0.1\"\n",
    );
    let old_api = with_descriptor(
        &dir.path().join("old-api"),
        "api = \"0.6\"\n[buildpack]\nid = \"a/b\"\nversion = \"0.0.1\"\n",
    );
    let broken = with_descriptor(&dir.path().join("broken"), "api = \"0.10\"\n[buildpack\n");
    // `..` would make its <layers> folder the container's root.
    let dot_dot = with_descriptor(
        &dir.path().join("dot-dot"),
        "api = \"0.10\"\n[buildpack]\nid = \"..\"\nversion = \"0.0.1\"\n",
    );
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec![bad_id.display().to_string()],
            vec![
                format!("{}/buildpack.toml: line 5 column 6: buildpack.id \"examples/hello world\"", bad_id.display()),
                "expected letters, digits".into(),
            ],
        ),
        (
            vec![old_api.display().to_string()],
            vec![format!(
                "{}/buildpack.toml: line 1 column 7: api \"0.6\": airgap-check runs Buildpack API 0.7 to 0.12",
                old_api.display()
            )],
        ),
        (
            vec![dot_dot.display().to_string()],
            vec![format!(
                "{}/buildpack.toml: line 3 column 6: buildpack.id \"..\": has an empty, `.` or `..` part",
                dot_dot.display()
            )],
        ),
        (
            vec![broken.display().to_string()],
            vec![format!("{}/buildpack.toml: line 2 column", broken.display())],
        ),
        (
            vec![cnb("clean"), "fixtures/buildpacks/clean".into()],
            vec![
                "fixtures/buildpacks/clean: buildpack 1 is a Cloud Foundry v2 buildpack (bin/supply, bin/finalize or bin/compile), but buildpack 0 (fixtures/cnb/clean) is a Cloud Native Buildpack (buildpack.toml): one run stages buildpacks of one kind".into(),
            ],
        ),
        (
            vec![cnb("clean"), cnb("clean")],
            vec!["buildpack 1 has the id \"examples/clean\" of buildpack 0".into()],
        ),
    ];
    for (bps, needles) in cases {
        let mut args = vec!["--app".to_string(), hello.into()];
        for b in &bps {
            args.extend(["--buildpack".to_string(), b.clone()]);
        }
        let o = Agc::new(&args)
            .context(format!("{bps:?}"))
            .expect_exit(2)
            .run();
        assert_eq!(o.stderr.lines().count(), 1, "one line: {}", o.stderr);
        for n in needles {
            assert!(o.stderr.contains(&n), "{n}\n in: {}", o.stderr);
        }
    }
}

#[test]
fn several_apps_stage_with_a_zipped_cnb_each_sealed() {
    // The clean CNB as a zip under one top-level folder (as a GitHub archive is).
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("clean-cnb.zip");
    {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        for (name, mode) in [
            ("buildpack.toml", 0o644),
            ("bin/detect", 0o755),
            ("bin/build", 0o755),
        ] {
            let o = zip::write::SimpleFileOptions::default().unix_permissions(mode);
            w.start_file(format!("clean-main/{name}"), o).unwrap();
            w.write_all(&std::fs::read(format!("fixtures/cnb/clean/{name}")).unwrap())
                .unwrap();
        }
        w.finish().unwrap();
    }
    let s = Agc::stage_apps(&["hello", "fetching"], &[zip_path.to_str().unwrap()])
        .expect_exit(0)
        .expect_verdict("pass")
        .run();
    let runs = s.json()["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert_eq!(r["verdict"], "pass", "{r}");
        assert_eq!(r["cnb"]["processes"][0]["type"], "web", "{r}");
        assert_eq!(phases(r).len(), 2, "{r}");
    }
    assert_ne!(runs[0]["stage"]["run_id"], runs[1]["stage"]["run_id"]);
}

#[test]
fn observe_mode_stages_a_cnb_on_a_bridge_of_the_run() {
    let s = Agc::stage(&[&cnb("clean")])
        .args(&["--network", "bridge"])
        .expect_exit(0)
        .expect_disallowed(&[])
        .run();
    let j = s.json();
    assert!(j["stage"]["network"]
        .as_str()
        .unwrap()
        .starts_with("airgap-check-"));
    assert_eq!(j["capture"]["canary_seen"], true);
    assert_eq!(phases(j).len(), 2);
    assert_eq!(j["cnb"]["layers"][0]["name"], "web");
}

#[test]
fn a_cnb_stages_the_same_with_its_files_copied_into_an_image() {
    let s = Agc::stage(&[&cnb("provides-tool"), &cnb("requires-tool-udp")])
        .args(&["--context", "copy"])
        .expect_exit(1)
        .expect_disallowed(&[flow("udp", "203.0.113.71", Some(69), "build")])
        .run();
    let j = s.json();
    assert_eq!(j["stage"]["context"], "copy");
    assert_eq!(
        s.flow("udp", "203.0.113.71", Some(69))["phase_buildpack"],
        1
    );
    assert_eq!(j["cnb"]["layers"][0]["name"], "tool");
}

/// A build image of the test's own: the fixture stack with `CNB_USER_ID` and `CNB_GROUP_ID` set
/// (platform.md "Build Image"), removed on drop.
struct BuildImage(String);

impl BuildImage {
    fn new() -> BuildImage {
        crate::support::ensure_stack();
        let tag = format!("airgap-check-test-cnb-build:{}", std::process::id());
        let dockerfile = format!(
            "FROM {}\nENV CNB_USER_ID=4321 CNB_GROUP_ID=4322\n",
            crate::support::STACK_IMAGE
        );
        let mut child = std::process::Command::new("docker")
            .args(["build", "--network", "none", "-t", &tag, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the docker CLI runs");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), dockerfile.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "docker build {tag}");
        BuildImage(tag)
    }
}

impl Drop for BuildImage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", &self.0])
            .output();
    }
}

#[test]
fn the_build_images_cnb_user_runs_the_phases_unless_user_is_given() {
    let image = BuildImage::new();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--app",
            "fixtures/apps/hello",
            "--buildpack",
            "fixtures/cnb/clean",
        ];
        args.extend(["--stack-image", &image.0, "--timeout", "120s"]);
        args.extend(extra);
        Agc::new(&args).json_only().expect_exit(0).run()
    };
    let s = run(&[]);
    let j = s.json();
    assert_eq!(j["stage"]["user"], "4321:4322");
    let tail = j["phases"][1]["output_tail"].to_string();
    assert!(tail.contains("Building as uid 4321 "), "{tail}");
    assert_eq!(run(&["--user", "vcap"]).json()["stage"]["user"], "vcap");
}

/// A shell CNB of the test's own in `dir`: API 0.10, this id, these bin/detect and bin/build.
fn shell_cnb(dir: &std::path::Path, id: &str, detect: &str, build: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bp = dir.join(id.replace('/', "_"));
    std::fs::create_dir_all(bp.join("bin")).unwrap();
    std::fs::write(
        bp.join("buildpack.toml"),
        format!("api = \"0.10\"\n[buildpack]\nid = \"{id}\"\nversion = \"0.0.1\"\n"),
    )
    .unwrap();
    for (name, script) in [("detect", detect), ("build", build)] {
        let path = bp.join("bin").join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bp
}

#[test]
fn a_launch_toml_the_lifecycle_would_refuse_fails_staging_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A string command is Buildpack API 0.8's form; 0.9 and later take a list.
    let bp = shell_cnb(
        dir.path(),
        "examples/bad-launch",
        "exit 0",
        "printf '[[processes]]\\ntype = \"web\"\\ncommand = \"serve\"\\n' > \"$1/launch.toml\"",
    );
    let s = Agc::stage(&[bp.to_str().unwrap()])
        .expect_exit(1)
        .expect_verdict("fail")
        .expect_disallowed(&[])
        .run();
    assert!(
        s.stdout.contains(
            "FAIL: staging failed: build (buildpack 0: examples/bad-launch): /layers/examples_bad-launch/launch.toml: process \"web\": `command` must be a non-empty list of strings in Buildpack API 0.10 (the lifecycle would fail the build)"
        ),
        "{}",
        s.stdout
    );
    assert_eq!(s.json()["cnb"]["processes"], json!([]));
}

#[test]
fn a_build_plan_over_1000_entries_fails_its_detect() {
    let dir = tempfile::tempdir().unwrap();
    let bp = shell_cnb(
        dir.path(),
        "examples/wide-plan",
        "i=0; while [ $i -le 1000 ]; do printf '[[provides]]\\nname = \"d%s\"\\n' $i; i=$((i+1)); done > \"$2\"",
        "exit 0",
    );
    let s = Agc::stage(&[bp.to_str().unwrap()])
        .expect_exit(1)
        .expect_verdict("fail")
        .expect_disallowed(&[])
        .run();
    assert!(
        s.stdout.contains(
            "detect (buildpack 0: examples/wide-plan) wrote too big a build plan: /tmp/cnb/detect/0/plan.toml: 1001 provides and requires in all (its [[or]] alternatives included): airgap-check resolves at most 1000 per buildpack"
        ),
        "{}",
        s.stdout
    );
}

/// A root buildpack's FIFO where airgap-check writes a plan is replaced, not written into (which
/// would block); one where it reads launch.toml is refused by its type, not opened.
#[test]
fn fifos_a_root_buildpack_leaves_neither_block_nor_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let bp = shell_cnb(
        dir.path(),
        "examples/fifos",
        "mkfifo /tmp/cnb/build/0/plan.toml",
        "[ -f \"$3\" ] && [ ! -p \"$3\" ] || { echo \"my plan is not a regular file\" >&2; exit 1; }\nmkfifo \"$1/launch.toml\"",
    );
    let s = Agc::stage(&[bp.to_str().unwrap()])
        .args(&["--user", "root"])
        .expect_exit(1)
        .expect_verdict("fail")
        .expect_disallowed(&[])
        .run();
    let j = s.json();
    assert_eq!(j["phases"][1]["exit_code"], 0, "{}", j["phases"]);
    assert!(
        s.stdout.contains(
            "FAIL: staging failed: build (buildpack 0: examples/fifos): /layers/examples_fifos/launch.toml: not a regular file but a FIFO (the lifecycle would fail the build)"
        ),
        "{}",
        s.stdout
    );
}

#[test]
fn a_device_node_a_root_buildpack_makes_is_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    // /dev/null's numbers: harmless if it were opened, refused all the same.
    let bp = shell_cnb(
        dir.path(),
        "examples/mknod",
        "exit 0",
        "mknod \"$1/tool.toml\" c 1 3",
    );
    let s = Agc::stage(&[bp.to_str().unwrap()])
        .args(&["--user", "0"])
        .expect_exit(1)
        .expect_verdict("fail")
        .expect_disallowed(&[])
        .run();
    assert!(
        s.stdout.contains(
            "/layers/examples_mknod/tool.toml: not a regular file but a character device"
        ),
        "{}",
        s.stdout
    );
}

/// A root buildpack that removes the folder of the build plans cannot turn its own egress into
/// "inconclusive": staging fails, and the flow is named.
#[test]
fn a_buildpack_that_breaks_the_plan_files_still_fails_on_its_flows() {
    let dir = tempfile::tempdir().unwrap();
    let bp = shell_cnb(
        dir.path(),
        "examples/vandal",
        "rm -rf /tmp/cnb/build\nnc -w 2 203.0.113.40 443 </dev/null || true",
        "exit 0",
    );
    let s = Agc::stage(&[bp.to_str().unwrap()])
        .args(&["--user", "root"])
        .expect_exit(1)
        .expect_verdict("fail")
        .expect_disallowed(&[flow("tcp", "203.0.113.40", Some(443), "detect")])
        .run();
    let notes = s.json()["notes"].to_string();
    assert!(
        notes.contains(
            "a buildpack altered /tmp/cnb: cannot write /tmp/cnb/build/0/plan.toml: No such file or directory"
        ) && notes.contains("build (buildpack 0) did not run"),
        "{notes}"
    );
    assert_eq!(s.json()["phases"].as_array().unwrap().len(), 1);
}

/// No line of the run's output starts with a workflow command the buildpack wrote.
fn no_injected_command(s: &crate::support::Outcome, marker: &str) {
    for line in s.stdout.lines().chain(s.stderr.lines()) {
        assert!(
            !line.trim_start().starts_with(&format!("::error::{marker}")),
            "a line the buildpack started: {line:?}\n{}{}",
            s.stdout,
            s.stderr
        );
    }
}

/// Layer names, process commands and file names are the buildpack's text: escaped wherever they
/// are printed, they cannot issue a GitHub workflow command (`::error::…` at a line's start).
#[test]
fn a_buildpacks_names_cannot_issue_workflow_commands() {
    let dir = tempfile::tempdir().unwrap();
    let nl = "$(printf 'x\\n::error::injected')";
    let declares = shell_cnb(
        dir.path(),
        "examples/declares",
        "exit 0",
        &format!(
            "printf '[types]\\nlaunch = true\\n' > \"$1/{nl}.toml\"\nprintf '[[processes]]\\ntype = \"web\"\\ncommand = [\"serve\", \"a\\\\n::error::injected\"]\\n' > \"$1/launch.toml\""
        ),
    );
    let s = Agc::stage(&[declares.to_str().unwrap()])
        .env("GITHUB_ACTIONS", "true")
        .env_remove("GITHUB_STEP_SUMMARY")
        .expect_exit(0)
        .expect_verdict("pass")
        .run();
    assert!(
        s.stderr.contains("layers: x\\n::error::injected (launch)")
            && s.stderr
                .contains("process web: serve a\\n::error::injected"),
        "{}",
        s.stderr
    );
    assert_eq!(s.json()["cnb"]["layers"][0]["name"], "x\n::error::injected");
    no_injected_command(&s, "injected");
    let refused = shell_cnb(
        dir.path(),
        "examples/refused",
        "exit 0",
        &format!("echo 'not toml' > \"$1/{nl}.toml\""),
    );
    let s = Agc::stage(&[refused.to_str().unwrap()])
        .env("GITHUB_ACTIONS", "true")
        .env_remove("GITHUB_STEP_SUMMARY")
        .expect_exit(1)
        .expect_verdict("fail")
        .run();
    assert!(
        s.stdout
            .contains("FAIL: staging failed: build (buildpack 0: examples/refused): /layers/examples_refused/x\\n::error::injected.toml: line 1 column"),
        "{}",
        s.stdout
    );
    no_injected_command(&s, "injected");
}
