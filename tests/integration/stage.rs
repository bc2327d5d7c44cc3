//! Integration tests of the sealed staging run: the real binary, the real Docker engine, real
//! namespaces and real captures. Every packet stays inside the sealed network these runs build.
//! Needs root (or CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW), Docker and busybox-static.

use crate::support::stack;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;
use stack::{root, STACK_IMAGE};

/// The fixture stack is built once per test binary.
fn ensure_stack() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = BUILT.get_or_init(stack::build_stack) {
        panic!("cannot build the fixture stack: {e}");
    }
}

struct Stage {
    args: Vec<String>,
    timeout: &'static str,
    dir: tempfile::TempDir,
    reports: bool,
}

struct Staged {
    code: i32,
    stdout: String,
    stderr: String,
    json: Option<Value>,
    junit: Option<String>,
    junit_path: PathBuf,
    pcap_path: PathBuf,
    _dir: tempfile::TempDir,
}

/// `airgap-check --app fixtures/apps/hello --buildpack fixtures/buildpacks/<bp>` on the fixture stack.
fn stage(buildpacks: &[&str]) -> Stage {
    ensure_stack();
    let mut args = vec![
        "--app".to_string(),
        "fixtures/apps/hello".into(),
        "--stack-image".into(),
        STACK_IMAGE.into(),
    ];
    for bp in buildpacks {
        args.push("--buildpack".into());
        args.push(if bp.contains('/') {
            bp.to_string()
        } else {
            format!("fixtures/buildpacks/{bp}")
        });
    }
    Stage {
        args,
        timeout: "120s",
        dir: tempfile::tempdir().unwrap(),
        reports: true,
    }
}

impl Stage {
    fn arg(mut self, a: &str) -> Stage {
        self.args.push(a.into());
        self
    }

    fn timeout(mut self, t: &'static str) -> Stage {
        self.timeout = t;
        self
    }

    fn no_reports(mut self) -> Stage {
        self.reports = false;
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::cargo_bin("airgap-check").unwrap();
        cmd.current_dir(root())
            .args(&self.args)
            .args(["--timeout", self.timeout])
            .env("NO_COLOR", "1");
        if self.reports {
            cmd.arg("--json")
                .arg(self.dir.path().join("r.json"))
                .arg("--junit")
                .arg(self.dir.path().join("r.xml"))
                .arg("--pcap")
                .arg(self.dir.path().join("r.pcap"));
        }
        cmd
    }

    fn run(self) -> Staged {
        let out = assert_cmd::Command::from_std(self.command())
            .timeout(Duration::from_secs(240))
            .output()
            .unwrap();
        let json = std::fs::read_to_string(self.dir.path().join("r.json"))
            .ok()
            .map(|s| serde_json::from_str(&s).expect("the JSON report parses"));
        let staged = Staged {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
            json,
            junit: std::fs::read_to_string(self.dir.path().join("r.xml")).ok(),
            junit_path: self.dir.path().join("r.xml"),
            pcap_path: self.dir.path().join("r.pcap"),
            _dir: self.dir,
        };
        staged.assert_nothing_left();
        staged
    }
}

impl Staged {
    fn json(&self) -> &Value {
        self.json.as_ref().unwrap_or_else(|| {
            panic!(
                "no JSON report; exit {}\n{}\n{}",
                self.code, self.stdout, self.stderr
            )
        })
    }

    fn run_id(&self) -> Option<String> {
        if let Some(j) = &self.json {
            return j["stage"]["run_id"].as_str().map(String::from);
        }
        run_id_in(&self.stderr)
    }

    /// (protocol, remote, remote_port, phase) of every disallowed flow, sorted.
    fn disallowed(&self) -> Vec<(String, String, Value, String)> {
        let mut v: Vec<_> = self.json()["flows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["allowed"] == false)
            .map(|f| {
                (
                    f["protocol"].as_str().unwrap().to_string(),
                    f["remote"].as_str().unwrap().to_string(),
                    f["remote_port"].clone(),
                    f["phase"].as_str().unwrap_or("-").to_string(),
                )
            })
            .collect();
        v.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        v
    }

    fn phases(&self) -> Vec<(String, Value)> {
        self.json()["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["exit_code"].clone(),
                )
            })
            .collect()
    }

    fn assert_junit_valid(&self) {
        let out = Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(root().join("tests/schemas/junit-10.xsd"))
            .arg(&self.junit_path)
            .output()
            .expect("xmllint runs");
        assert!(
            out.status.success(),
            "{}\n{:?}",
            String::from_utf8_lossy(&out.stderr),
            self.junit
        );
    }

    /// No container, image or interface of this run survives it.
    fn assert_nothing_left(&self) {
        let Some(id) = self.run_id() else { return };
        let (containers, images) = labelled_with_run(&id);
        assert!(
            containers.is_empty(),
            "run {id} left containers {containers:?}"
        );
        assert!(images.is_empty(), "run {id} left images {images:?}");
        let ifaces: Vec<String> = std::fs::read_dir("/sys/class/net")
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.starts_with("agc"))
            .collect();
        assert!(
            ifaces.is_empty(),
            "interfaces in the host namespace: {ifaces:?}"
        );
    }
}

fn run_id_in(stderr: &str) -> Option<String> {
    stderr
        .split("run ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(String::from)
}

/// Containers and images carrying this run's label (asked of the engine through bollard).
fn labelled_with_run(id: &str) -> (Vec<String>, Vec<String>) {
    use bollard::query_parameters::{ListContainersOptionsBuilder, ListImagesOptionsBuilder};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let d = airgap_check::docker::connect().await.unwrap();
        let label = format!("{}={id}", airgap_check::docker::LABEL_RUN);
        let filters = std::collections::HashMap::from([("label", vec![label.as_str()])]);
        let cs = d
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .unwrap()
            .into_iter()
            .filter_map(|c| c.id)
            .collect();
        let is = d
            .list_images(Some(
                ListImagesOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        (cs, is)
    })
}

/// (protocol, remote, remote_port, phase) of a flow.
type Flow = (String, String, Value, String);

fn flow(proto: &str, remote: &str, port: Option<u16>, phase: &str) -> Flow {
    (
        proto.into(),
        remote.into(),
        port.map_or(Value::Null, Value::from),
        phase.into(),
    )
}

#[test]
fn clean_buildpack_passes_and_the_pass_is_earned() {
    let s = stage(&["clean"]).run();
    assert_eq!(s.code, 0, "{}\n{}", s.stdout, s.stderr);
    let j = s.json();
    assert_eq!(j["verdict"], "pass");
    assert_eq!(j["mode"], "stage");
    assert_eq!(j["capture"]["canary_seen"], true);
    assert_eq!(j["capture"]["dropped"], 0);
    assert_eq!(j["summary"]["disallowed"], 0);
    assert_eq!(
        s.phases(),
        vec![
            ("detect".to_string(), Value::from(0)),
            ("supply".into(), Value::from(0)),
            ("finalize".into(), Value::from(0)),
            ("release".into(), Value::from(0)),
        ]
    );
    assert_eq!(
        j["stage"]["user"], "vcap",
        "phases run as the stack's vcap user"
    );
    assert_eq!(j["stage"]["stack"], "airgap-check-fixture-stack");
    let release = &j["phases"][3]["output_tail"];
    assert!(
        release.to_string().contains("default_process_types"),
        "{release}"
    );
    // A JUnit testcase per phase, plus the capture's own.
    let x = s.junit.as_deref().unwrap();
    for name in [
        "capture",
        "detect (buildpack 0: clean)",
        "supply (buildpack 0: clean)",
        "finalize (buildpack 0: clean)",
        "release (buildpack 0: clean)",
    ] {
        assert!(x.contains(&format!("name=\"{name}\"")), "{name} in {x}");
    }
    assert!(!x.contains("<failure"), "{x}");
    s.assert_junit_valid();
    // The pcap holds what was captured and analyze reads it back to the same verdict.
    let out = Command::cargo_bin("airgap-check")
        .unwrap()
        .args(["analyze", "--pcap"])
        .arg(&s.pcap_path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn connection_at_the_first_instant_is_caught_in_detect() {
    let s = stage(&["leak-first-instant"]).run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    assert_eq!(
        s.disallowed(),
        vec![flow("tcp", "203.0.113.5", Some(443), "detect")]
    );
    let f = &s.json()["flows"][0];
    assert_eq!(
        f["state"], "handshake",
        "the sink accepts a connection to any address and port; this one sent nothing"
    );
    assert_eq!(f["src"], "10.99.0.2");
    let x = s.junit.as_deref().unwrap();
    assert!(
        x.contains("detect contacted 1 disallowed destination: tcp 203.0.113.5:443"),
        "{x}"
    );
    s.assert_junit_valid();
}

#[test]
fn ipv6_is_caught() {
    let s = stage(&["leak-ipv6"]).run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    assert_eq!(
        s.disallowed(),
        vec![flow("tcp", "2001:db8::7", Some(80), "supply")]
    );
}

#[test]
fn udp_is_caught() {
    let s = stage(&["leak-udp"]).run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    assert_eq!(
        s.disallowed(),
        vec![flow("udp", "203.0.113.30", Some(69), "supply")]
    );
    assert_eq!(s.json()["flows"][0]["state"], "unreachable");
}

#[test]
fn icmp_is_caught() {
    // busybox ping needs a raw socket, so this one stages as root (--user).
    let s = stage(&["leak-icmp"]).arg("--user").arg("root").run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    assert_eq!(s.json()["stage"]["user"], "root");
    assert_eq!(
        s.disallowed(),
        vec![flow("icmp", "198.51.100.10", None, "supply")]
    );
    assert_eq!(s.json()["flows"][0]["state"], "answered");
}

#[test]
fn background_process_is_attributed_to_the_phase_it_connected_in() {
    let s = stage(&["leak-background"]).run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    // Started by supply, connected two seconds later while finalize ran.
    assert_eq!(
        s.disallowed(),
        vec![flow("tcp", "203.0.113.40", Some(8443), "finalize")]
    );
    assert_eq!(s.json()["phases"][2]["disallowed_flows"], 1);
}

#[test]
fn metadata_endpoint_is_caught() {
    let s = stage(&["leak-metadata"]).run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    assert_eq!(
        s.disallowed(),
        vec![flow("tcp", "169.254.169.254", Some(80), "finalize")]
    );
}

#[test]
fn lookup_by_name_becomes_a_named_connection() {
    let s = stage(&["leak-dns"]).run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    assert_eq!(
        s.disallowed(),
        vec![flow("tcp", "198.18.0.1", Some(443), "supply")]
    );
    let flows = s.json()["flows"].as_array().unwrap();
    let tcp = flows.iter().find(|f| f["protocol"] == "tcp").unwrap();
    assert_eq!(
        tcp["names"],
        serde_json::json!(["buildpacks.cloudfoundry.org"])
    );
    let dns = flows
        .iter()
        .find(|f| f["remote_port"] == 53)
        .expect("the DNS query is a flow");
    assert_eq!(
        (dns["allowed"].as_bool(), dns["rule"].as_str()),
        (Some(true), Some("dns"))
    );
    assert!(
        s.stdout.contains("buildpacks.cloudfoundry.org"),
        "{}",
        s.stdout
    );
    assert!(s
        .junit
        .as_deref()
        .unwrap()
        .contains("198.18.0.1:443 (buildpacks.cloudfoundry.org)"));
}

#[test]
fn legacy_compile_phase_is_run_and_caught() {
    let s = stage(&["leak-compile"]).run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    let names: Vec<String> = s.phases().into_iter().map(|p| p.0).collect();
    assert_eq!(names, ["detect", "compile", "release"]);
    assert_eq!(
        s.disallowed(),
        vec![flow("tcp", "203.0.113.50", Some(80), "compile")]
    );
}

#[test]
fn staging_failure_fails_with_the_output_tail() {
    let s = stage(&["fail-supply"]).run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    assert_eq!(s.json()["verdict"], "fail");
    assert_eq!(
        s.phases(),
        vec![
            ("detect".to_string(), Value::from(0)),
            ("supply".into(), Value::from(1))
        ]
    );
    assert_eq!(s.json()["phases"][1]["failed"], true);
    let x = s.junit.as_deref().unwrap();
    assert!(x.contains("type=\"staging-failed\""), "{x}");
    assert!(x.contains("Could not download: no network"), "{x}");
    assert!(
        s.stdout
            .contains("FAIL: supply (buildpack 0: fail-supply) exited 1"),
        "{}",
        s.stdout
    );
    s.assert_junit_valid();
}

#[test]
fn a_hang_times_out_cleanly() {
    let t = Instant::now();
    let s = stage(&["hang"]).timeout("3s").run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    let supply = &s.json()["phases"][1];
    assert_eq!(
        (supply["timed_out"].as_bool(), supply["exit_code"].is_null()),
        (Some(true), true)
    );
    assert!(s.stdout.contains("timed out"), "{}", s.stdout);
    assert!(t.elapsed() < Duration::from_secs(120), "{:?}", t.elapsed());
}

#[test]
fn multi_buildpack_staging_attributes_flows_to_the_right_buildpack() {
    let s = stage(&["leak-ipv6", "clean"]).run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    let names: Vec<(String, u64)> = s.json()["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["buildpack"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("detect".to_string(), 0),
            ("detect".into(), 1),
            ("supply".into(), 0),
            ("supply".into(), 1),
            ("finalize".into(), 1),
            ("release".into(), 1)
        ]
    );
    let f = &s.json()["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["allowed"] == false)
        .unwrap()
        .clone();
    assert_eq!(
        (f["phase"].as_str(), f["phase_buildpack"].as_u64()),
        (Some("supply"), Some(0))
    );
}

#[test]
fn zipped_buildpack_stages_like_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("clean.zip");
    {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let o = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        for s in ["detect", "supply", "finalize", "release"] {
            w.start_file(format!("bin/{s}"), o).unwrap();
            w.write_all(
                &std::fs::read(root().join("fixtures/buildpacks/clean/bin").join(s)).unwrap(),
            )
            .unwrap();
        }
        w.finish().unwrap();
    }
    let s = stage(&[zip_path.to_str().unwrap()]).run();
    assert_eq!(s.code, 0, "{}\n{}", s.stdout, s.stderr);
}

#[test]
fn ten_concurrent_runs_each_see_only_their_own_traffic() {
    let cases: Vec<(&str, Vec<Flow>)> = vec![
        (
            "leak-udp",
            vec![flow("udp", "203.0.113.30", Some(69), "supply")],
        ),
        (
            "leak-metadata",
            vec![flow("tcp", "169.254.169.254", Some(80), "finalize")],
        ),
        ("clean", vec![]),
        (
            "leak-first-instant",
            vec![flow("tcp", "203.0.113.5", Some(443), "detect")],
        ),
        (
            "leak-ipv6",
            vec![flow("tcp", "2001:db8::7", Some(80), "supply")],
        ),
        (
            "leak-dns",
            vec![flow("tcp", "198.18.0.1", Some(443), "supply")],
        ),
        (
            "leak-compile",
            vec![flow("tcp", "203.0.113.50", Some(80), "compile")],
        ),
        (
            "leak-port53",
            vec![flow("tcp", "203.0.113.40", Some(53), "supply")],
        ),
        ("clean", vec![]),
        (
            "leak-udp",
            vec![flow("udp", "203.0.113.30", Some(69), "supply")],
        ),
    ];
    let runs: Vec<_> = cases
        .iter()
        .map(|(bp, _)| {
            let bp = bp.to_string();
            std::thread::spawn(move || stage(&[bp.as_str()]).timeout("300s").run())
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for ((bp, want), run) in cases.into_iter().zip(runs) {
        let s = run.join().unwrap();
        assert_eq!(
            s.code,
            if want.is_empty() { 0 } else { 1 },
            "{bp}: {}\n{}",
            s.stdout,
            s.stderr
        );
        assert_eq!(s.disallowed(), want, "{bp}");
        assert_eq!(s.json()["capture"]["dropped"], 0, "{bp}");
        assert!(ids.insert(s.run_id().unwrap()), "run ids are unique");
    }
}

#[test]
fn an_out_of_memory_kill_fails_staging_and_says_so() {
    let s = stage(&["oom"]).arg("--memory").arg("64m").run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    let supply = &s.json()["phases"][1];
    assert_eq!(supply["name"], "supply");
    assert_eq!(supply["oom_killed"], true, "{supply}");
    assert_eq!(supply["exit_code"], 137);
    assert_eq!(s.json()["phases"][0]["oom_killed"], false);
    assert!(s.stdout.contains("out of memory"), "{}", s.stdout);
    assert!(
        s.json()["notes"].to_string().contains("--memory, is 64m"),
        "{}",
        s.json()["notes"]
    );
    assert!(s.junit.as_deref().unwrap().contains("out of memory"));
    s.assert_junit_valid();
    // The limit is what the buildpacks are told.
    let out = stage(&["clean"])
        .arg("--memory")
        .arg("5m")
        .no_reports()
        .run();
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--memory \"5m\""), "{}", out.stderr);
}

/// Start a staging run and return once its stderr has shown `marker`: the child, and a channel
/// that carries everything it has printed so far.
fn spawn_until(
    s: &Stage,
    env: &[(&str, &str)],
    marker: &str,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
    String,
) {
    let mut cmd = s.command();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        let mut all = String::new();
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = tx.send(all.clone());
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen = String::new();
    while !seen.contains(marker) {
        assert!(
            Instant::now() < deadline,
            "never reached {marker:?}: {seen}"
        );
        if let Ok(s) = rx.recv_timeout(Duration::from_secs(1)) {
            seen = s;
        }
    }
    (child, rx, seen)
}

fn signal(child: &std::process::Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

/// What the engine holds with this run's label: containers, images, networks.
fn docker_objects_of(id: &str) -> Vec<String> {
    let label = format!("label=io.airgap-check.run={id}");
    let mut left = Vec::new();
    for what in [
        &["ps", "-aq", "--filter", &label][..],
        &["images", "-aq", "--filter", &label][..],
        &["network", "ls", "-q", "--filter", &label][..],
    ] {
        let out = Command::new("docker").args(what).output().unwrap();
        left.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(|s| format!("{} {s}", what[0])),
        );
    }
    left
}

fn agc_interfaces() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("agc"))
        .collect()
}

#[test]
fn sigint_stops_the_run_and_removes_everything() {
    interrupted_in_supply(nix::sys::signal::Signal::SIGINT, "SIGINT");
}

/// A run stopped by `sig` while a phase runs: exit 3, "interrupted", nothing of it left.
fn interrupted_in_supply(sig: nix::sys::signal::Signal, name: &str) {
    let s = stage(&["hang"]).no_reports();
    let (mut child, rx, mut seen) = spawn_until(&s, &[], "supply (buildpack 0: hang)");
    signal(&child, sig);
    assert_eq!(child.wait().unwrap().code(), Some(3));
    std::thread::sleep(Duration::from_millis(200));
    while let Ok(s) = rx.try_recv() {
        seen = s;
    }
    assert!(seen.contains(&format!("interrupted by {name}")), "{seen}");
    let id = run_id_in(&seen).expect("the run id is printed");
    assert_eq!(docker_objects_of(&id), Vec::<String>::new());
    assert_eq!(agc_interfaces(), Vec::<String>::new());
}

#[test]
fn sigkill_leaves_only_what_prune_removes() {
    for network in ["sealed", "bridge"] {
        let s = stage(&["hang"]).arg("--network").arg(network).no_reports();
        let (mut child, _rx, seen) = spawn_until(&s, &[], "supply (buildpack 0: hang)");
        let pid = child.id();
        signal(&child, nix::sys::signal::Signal::SIGKILL);
        child.wait().unwrap();
        let id = run_id_in(&seen).expect("the run id is printed");
        // The kernel removed the namespaces and veths with the process; Docker's objects and the
        // temporary folder wait for prune.
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(agc_interfaces(), Vec::<String>::new(), "{network}");
        let left = docker_objects_of(&id);
        assert!(
            left.iter().any(|l| l.starts_with("ps ")),
            "{network}: the container is still there before prune: {left:?}"
        );
        if network == "bridge" {
            assert!(left.iter().any(|l| l.starts_with("network ")), "{left:?}");
        }
        let tmp = |pid: u32| {
            std::fs::read_dir(std::env::temp_dir())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("airgap-check-{pid}-"))
                })
                .count()
        };
        assert_eq!(tmp(pid), 1, "{network}: its temporary folder is left");
        let out = Command::cargo_bin("airgap-check")
            .unwrap()
            .arg("prune")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(docker_objects_of(&id), Vec::<String>::new(), "{network}");
        assert_eq!(tmp(pid), 0, "{network}");
    }
}

/// A relay between a Unix socket of the test's and the Docker engine's, which the test can cut:
/// the engine itself is never touched.
struct Relay {
    path: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
    _dir: tempfile::TempDir,
}

impl Relay {
    fn start() -> Relay {
        use std::os::unix::net::{UnixListener, UnixStream};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop2, conns2) = (stop.clone(), conns.clone());
        std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let engine = UnixStream::connect("/var/run/docker.sock").unwrap();
                {
                    let mut c = conns2.lock().unwrap();
                    c.push(client.try_clone().unwrap());
                    c.push(engine.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), engine.try_clone().unwrap()),
                    (engine, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Relay {
            path,
            stop,
            conns,
            _dir: dir,
        }
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Lose the connection: every open one is cut, and no new one is accepted.
    fn cut(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.path);
        for c in self.conns.lock().unwrap().iter() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn losing_the_docker_connection_mid_run_is_exit_3_with_a_way_to_clean_up() {
    let relay = Relay::start();
    let s = stage(&["hang"]).no_reports();
    let host = relay.docker_host();
    let (mut child, rx, mut seen) = spawn_until(
        &s,
        &[("DOCKER_HOST", host.as_str())],
        "supply (buildpack 0: hang)",
    );
    relay.cut();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let code = child.wait().unwrap().code();
    std::thread::sleep(Duration::from_millis(200));
    while let Ok(s) = rx.try_recv() {
        seen = s;
    }
    assert_eq!(code, Some(3), "{seen}");
    assert!(t.elapsed() < Duration::from_secs(60), "it noticed: {seen}");
    let errors: Vec<&str> = seen
        .lines()
        .filter(|l| l.starts_with("airgap-check: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{seen}");
    assert!(errors[0].contains("docker"), "{seen}");
    assert!(
        seen.contains("airgap-check prune"),
        "says how to clean up: {seen}"
    );
    // What the kernel holds went with the process; what the engine holds, prune removes.
    assert_eq!(agc_interfaces(), Vec::<String>::new());
    let id = run_id_in(&seen).expect("the run id is printed");
    let out = Command::cargo_bin("airgap-check")
        .unwrap()
        .arg("prune")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(docker_objects_of(&id), Vec::<String>::new());
}

/// A tmpfs mounted for one test (root): read-only, or full.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn tmpfs(opts: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs {opts}");
        Mount { dir }
    }

    fn path(&self, f: &str) -> String {
        self.dir.path().join(f).display().to_string()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn pcap_to_a_read_only_or_full_place() {
    // Read-only: exit 2 before anything is created.
    let ro = Mount::tmpfs("ro,size=64k");
    let s = stage(&["clean"])
        .arg("--pcap")
        .arg(&ro.path("r.pcap"))
        .no_reports()
        .run();
    assert_eq!(s.code, 2, "{}", s.stderr);
    assert!(
        s.stderr.contains(&ro.path("r.pcap")) && s.stderr.contains("Read-only file system"),
        "{}",
        s.stderr
    );
    assert!(!s.stderr.contains("building"), "{}", s.stderr);
    // Full: the flows are judged, the half-written capture is not kept, and it is not a pass.
    let full = Mount::tmpfs("size=64k");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", full.path("filler")))
        .stderr(Stdio::null())
        .status();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let s = stage(&["clean"])
        .arg("--pcap")
        .arg(&full.path("r.pcap"))
        .arg("--json")
        .arg(json.to_str().unwrap())
        .no_reports()
        .run();
    assert_eq!(s.code, 3, "{}\n{}", s.stdout, s.stderr);
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j["verdict"], "inconclusive");
    assert!(
        j["notes"].to_string().contains("No space left on device"),
        "{}",
        j["notes"]
    );
    let kept: Vec<_> = std::fs::read_dir(full.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        kept,
        vec!["filler".to_string()],
        "nothing half-written is left"
    );
}

#[test]
fn sigterm_stops_the_run_and_removes_everything() {
    interrupted_in_supply(nix::sys::signal::Signal::SIGTERM, "SIGTERM");
}

#[test]
fn bad_inputs_exit_2_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let not_bp = dir.path().join("not-a-buildpack");
    std::fs::create_dir(&not_bp).unwrap();
    let bad_zip = dir.path().join("bad.zip");
    std::fs::write(&bad_zip, "no zip").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--app".into(),
                "fixtures/apps/missing".into(),
                "--buildpack".into(),
                "fixtures/buildpacks/clean".into(),
            ],
            "fixtures/apps/missing",
        ),
        (
            vec!["--app".into(), "fixtures/apps/hello".into()],
            "--buildpack",
        ),
        (
            vec![
                "--app".into(),
                "fixtures/apps/hello".into(),
                "--buildpack".into(),
                not_bp.display().to_string(),
            ],
            "no bin/",
        ),
        (
            vec![
                "--app".into(),
                "fixtures/apps/hello".into(),
                "--buildpack".into(),
                bad_zip.display().to_string(),
            ],
            "readable zip",
        ),
        (
            vec![
                "--app".into(),
                "fixtures/apps/hello".into(),
                "--buildpack".into(),
                "fixtures/buildpacks/clean".into(),
                "--timeout".into(),
                "soon".into(),
            ],
            "\"soon\"",
        ),
        (
            vec![
                "--app".into(),
                "fixtures/apps/hello".into(),
                "--buildpack".into(),
                "fixtures/buildpacks/clean".into(),
                "--env".into(),
                "1X=y".into(),
            ],
            "\"1X=y\"",
        ),
        (
            vec![
                "--app".into(),
                "fixtures/apps/hello".into(),
                "--buildpack".into(),
                "fixtures/buildpacks/clean".into(),
                "--stack-image".into(),
                "a b".into(),
            ],
            "--stack-image",
        ),
    ];
    for (args, needle) in cases {
        let mut cmd = Command::cargo_bin("airgap-check").unwrap();
        let child = cmd
            .current_dir(root())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{needle}: {stderr}");
        assert!(stderr.contains(needle), "{needle}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("panicked"));
        // No temporary folder of that process survives.
        let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("airgap-check-{pid}-"))
            })
            .collect();
        assert!(left.is_empty(), "{needle}: left {left:?}");
    }
}

#[test]
fn environment_problems_exit_3_with_one_actionable_line() {
    ensure_stack();
    let base = [
        "--app",
        "fixtures/apps/hello",
        "--buildpack",
        "fixtures/buildpacks/clean",
    ];
    // Docker unreachable.
    let out = Command::cargo_bin("airgap-check")
        .unwrap()
        .current_dir(root())
        .args(base)
        .args(["--stack-image", STACK_IMAGE])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{stderr}"
    );
    // A stack image that is neither present nor pullable (the "registry" is a closed port on this
    // machine, so the pull attempt stays here).
    let out = Command::cargo_bin("airgap-check")
        .unwrap()
        .current_dir(root())
        .args(base)
        .args(["--stack-image", "localhost:1/airgap-check-missing:latest"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr
            .contains("stack image localhost:1/airgap-check-missing:latest is not present locally"),
        "{stderr}"
    );
    // Missing privilege: drop CAP_NET_ADMIN from the bounding set.
    if Command::new("setpriv").arg("--version").output().is_ok() {
        let bin = assert_cmd::cargo::cargo_bin("airgap-check");
        let out = Command::new("setpriv")
            .args(["--bounding-set", "-net_admin", "--inh-caps", "-net_admin"])
            .arg(&bin)
            .current_dir(root())
            .args(base)
            .args(["--stack-image", STACK_IMAGE])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.contains("missing privilege: CAP_NET_ADMIN"),
            "{stderr}"
        );
    }
}

#[test]
fn tls_client_hello_names_the_flow_by_its_sni() {
    let s = stage(&["leak-tls"]).run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    assert_eq!(
        s.disallowed(),
        vec![flow("tcp", "203.0.113.61", Some(443), "supply")]
    );
    let f = &s.json()["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["protocol"] == "tcp")
        .unwrap()
        .clone();
    assert_eq!(f["names"], serde_json::json!(["pkg.example.com"]));
    assert_eq!(
        f["state"], "data",
        "the sink accepted the connection and read the ClientHello"
    );
    assert!(s.stdout.contains("pkg.example.com"), "{}", s.stdout);
    assert!(s
        .junit
        .as_deref()
        .unwrap()
        .contains("203.0.113.61:443 (pkg.example.com)"));
}

#[test]
fn http_request_names_the_flow_by_its_host_and_a_host_rule_allows_only_it() {
    let s = stage(&["leak-http"]).run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    let f = &s.json()["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["protocol"] == "tcp")
        .unwrap()
        .clone();
    assert_eq!(f["names"], serde_json::json!(["mirror.example.org"]));
    assert_eq!(f["request"], "GET /dl/go1.22.tgz HTTP/1.1");
    assert_eq!(f["phase"], "finalize");

    // A hosts: rule for the mirror allows this flow and nothing else: the TLS one still fails.
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("mirror.yaml");
    std::fs::write(
        &allow,
        "allow:\n  - name: dns\n    protocol: udp\n    ports: [53]\n  - name: our mirror\n    hosts: [mirror.example.org]\n    protocol: tcp\n    ports: [80]\n",
    )
    .unwrap();
    let allow = allow.display().to_string();
    let ok = stage(&["leak-http"]).arg("--allowlist").arg(&allow).run();
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    let f = &ok.json()["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["protocol"] == "tcp")
        .unwrap()
        .clone();
    assert_eq!(f["rule"], "our mirror");
    let other = stage(&["leak-tls"]).arg("--allowlist").arg(&allow).run();
    assert_eq!(other.code, 1, "{}", other.stdout);
}

#[test]
fn dns_queries_are_reported_with_their_phase_and_a_suggested_allowlist_makes_the_run_pass() {
    let dir = tempfile::tempdir().unwrap();
    let suggested = dir.path().join("suggested.yaml");
    let s = stage(&["leak-dns"])
        .arg("--suggest-allowlist")
        .arg(suggested.to_str().unwrap())
        .run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    let q = s.json()["dns_queries"].as_array().unwrap();
    let bp = q
        .iter()
        .find(|q| q["name"] == "buildpacks.cloudfoundry.org")
        .expect("the query is reported");
    assert_eq!(bp["phase"], "supply");
    let text = std::fs::read_to_string(&suggested).unwrap();
    assert!(text.contains("buildpacks.cloudfoundry.org"), "{text}");
    let again = stage(&["leak-dns"])
        .arg("--allowlist")
        .arg(suggested.to_str().unwrap())
        .run();
    assert_eq!(again.code, 0, "{text}\n{}\n{}", again.stdout, again.stderr);
}

#[test]
fn a_staging_capture_analyzed_later_keeps_its_names() {
    let s = stage(&["leak-dns"]).run();
    assert_eq!(s.code, 1);
    let out = Command::cargo_bin("airgap-check")
        .unwrap()
        .args(["analyze", "--pcap"])
        .arg(&s.pcap_path)
        .args(["--local", "10.99.0.2", "--local", "fd00:99::2"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("buildpacks.cloudfoundry.org"),
        "names from the sinkhole's DNS answers in the pcap: {stdout}"
    );
}

#[test]
fn prune_removes_what_a_dead_run_left_and_spares_live_ones() {
    ensure_stack();
    use bollard::models::{ContainerCreateBody, HostConfig};
    use bollard::query_parameters::CreateContainerOptionsBuilder;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // One container as a killed run leaves it (its pid is gone), one owned by a live process.
    let dead_pid = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let make = |run: &str, pid: u32| {
        let labels = std::collections::HashMap::from([
            (airgap_check::docker::LABEL.to_string(), "1".to_string()),
            (airgap_check::docker::LABEL_RUN.to_string(), run.to_string()),
            (airgap_check::docker::LABEL_PID.to_string(), pid.to_string()),
        ]);
        rt.block_on(async {
            let d = airgap_check::docker::connect().await.unwrap();
            let body = ContainerCreateBody {
                image: Some(STACK_IMAGE.into()),
                cmd: Some(vec!["true".into()]),
                labels: Some(labels),
                host_config: Some(HostConfig {
                    network_mode: Some("none".into()),
                    ..HostConfig::default()
                }),
                ..ContainerCreateBody::default()
            };
            d.create_container(Some(CreateContainerOptionsBuilder::new().build()), body)
                .await
                .unwrap()
                .id
        })
    };
    let dead_run = format!("dead{:08x}", dead_pid);
    make(&dead_run, dead_pid);
    // A live airgap-check: the prune command itself is one; use a long-running one instead.
    let mut live = Command::cargo_bin("airgap-check")
        .unwrap()
        .env("NO_COLOR", "1")
        .current_dir(root())
        .args([
            "--app",
            "fixtures/apps/hello",
            "--buildpack",
            "fixtures/buildpacks/hang",
            "--stack-image",
            STACK_IMAGE,
            "--timeout",
            "60s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let live_run = format!("live{:08x}", live.id());
    make(&live_run, live.id());
    // Wait until the live run is past its build, so the SIGTERM below lands in a phase.
    let mut err = std::io::BufReader::new(live.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut err, &mut line).unwrap();
        assert!(
            n > 0 && Instant::now() < deadline,
            "the live run ended early"
        );
        if line.contains("supply (buildpack 0: hang)") {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let out = Command::cargo_bin("airgap-check")
        .unwrap()
        .arg("prune")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(labelled_with_run(&dead_run).0.is_empty(), "{stdout}");
    assert_eq!(
        labelled_with_run(&live_run).0.len(),
        1,
        "a live run's container is kept: {stdout}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(live.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    live.wait().unwrap();
    // The live run's own cleanup does not know this extra container; prune it now that it is dead.
    let out = Command::cargo_bin("airgap-check")
        .unwrap()
        .arg("prune")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(labelled_with_run(&live_run).0.is_empty());
}

#[test]
fn a_process_left_behind_after_the_last_phase_is_watched_then_killed() {
    // It connects a second after release has exited: still caught, in release.
    let s = stage(&["leak-late"]).run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    assert_eq!(
        s.disallowed(),
        vec![flow("tcp", "203.0.113.70", Some(80), "release")]
    );
    // Dressed as the idle first process: told apart by its pid, watched, caught.
    let s = stage(&["hide-as-idle"]).run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    assert_eq!(
        s.disallowed(),
        vec![flow("tcp", "203.0.113.71", Some(80), "release")]
    );
    // It does nothing visible before the watch window ends: killed, and the run cannot pass.
    let s = stage(&["linger"]).run();
    assert_eq!(s.code, 3, "{}\n{}", s.stdout, s.stderr);
    assert_eq!(s.json()["verdict"], "inconclusive");
    let notes = s.json()["notes"].to_string();
    assert!(
        notes.contains("still ran 10 s after the last phase") && notes.contains("sleep 60"),
        "{notes}"
    );
}

#[test]
fn http_on_port_53_is_not_dns() {
    // The default DNS rules judge by port, with `content: dns`: an HTTP request is not DNS.
    let s = stage(&["leak-port53"]).run();
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    assert_eq!(
        s.disallowed(),
        vec![flow("tcp", "203.0.113.40", Some(53), "supply")]
    );
    let f = &s.json()["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["allowed"] == false)
        .unwrap()
        .clone();
    assert_eq!(f["request"], "GET /payload HTTP/1.0");
}

#[test]
fn sigterm_during_the_build_leaves_no_layer_behind() {
    let s = stage(&["clean"]).no_reports();
    let mut child = s
        .command()
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut err, &mut line).unwrap();
        assert!(n > 0, "ended before building: {seen}");
        seen.push_str(&line);
        if line.contains("building the staging image") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = std::io::Read::read_to_string(&mut err, &mut seen);
    assert_eq!(child.wait().unwrap().code(), Some(3), "{seen}");
    let id = run_id_in(&seen).expect("the run id is printed");
    let (cs, is) = labelled_with_run(&id);
    assert!(cs.is_empty() && is.is_empty(), "left {cs:?} {is:?}: {seen}");
}

// Hostile app directories: what goes into the build context (src/context.rs).

/// A buildpack whose supply runs `check` (sh, `$1` the build dir) and fails staging when it fails.
fn checking_buildpack(dir: &std::path::Path, check: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bp = dir.join("checking-bp");
    std::fs::create_dir_all(bp.join("bin")).unwrap();
    for (name, body) in [
        ("detect", "echo checking"),
        ("supply", check),
        ("finalize", "true"),
        ("release", "echo '---'"),
    ] {
        let p = bp.join("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bp
}

fn stage_app(app: &std::path::Path, bp: &std::path::Path) -> Stage {
    ensure_stack();
    Stage {
        args: vec![
            "--app".into(),
            app.display().to_string(),
            "--buildpack".into(),
            bp.display().to_string(),
            "--stack-image".into(),
            STACK_IMAGE.into(),
        ],
        timeout: "120s",
        dir: tempfile::tempdir().unwrap(),
        reports: true,
    }
}

#[test]
fn hostile_app_links_special_files_and_odd_names() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let marker = "HOST-SECRET-b41c7e";
    let secret = dir.path().join("outside/secret");
    std::fs::create_dir_all(secret.parent().unwrap()).unwrap();
    std::fs::write(&secret, marker).unwrap();
    let app = dir.path().join("a/app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("index.html"), "hello").unwrap();
    // Links out of the app: stored as links, resolved (to nothing) inside the container only.
    symlink(&secret, app.join("abs-link")).unwrap();
    symlink("../../outside/secret", app.join("rel-link")).unwrap();
    symlink("../../outside", app.join("dir-link")).unwrap();
    // Special files: skipped with a warning each.
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o644);
    nix::unistd::mkfifo(&app.join("fifo"), mode).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(app.join("socket")).unwrap();
    nix::sys::stat::mknod(
        &app.join("sda"),
        nix::sys::stat::SFlag::S_IFBLK,
        mode,
        nix::sys::stat::makedev(8, 0),
    )
    .expect("mknod needs root");
    // Odd names: staged byte for byte.
    let long = "l".repeat(200);
    std::fs::create_dir(app.join("d".repeat(120))).unwrap();
    for n in [
        &b"new\nline"[..],
        b"bad\xffname",
        b"-rf",
        long.as_bytes(),
        format!("{}/{long}", "d".repeat(120)).as_bytes(),
    ] {
        std::fs::write(app.join(OsStr::from_bytes(n)), "odd").unwrap();
    }
    let long_target = format!("/{}", "t".repeat(150));
    symlink(&long_target, app.join("long-link")).unwrap();

    let check = format!(
        r#"b="$1"
test "$(readlink "$b/abs-link")" = "{secret}"
test "$(readlink "$b/rel-link")" = ../../outside/secret
test "$(readlink "$b/dir-link")" = ../../outside
test "$(readlink "$b/long-link")" = "{long_target}"
test ! -e "$b/abs-link" && test ! -e "$b/rel-link" && test ! -e "$b/dir-link"
for f in fifo socket sda; do test ! -e "$b/$f" && test ! -L "$b/$f"; done
test "$(cat "$b/$(printf 'new\nline')")" = odd
test "$(cat "$b/$(printf 'bad\377name')")" = odd
test "$(cat "$b/-rf")" = odd
test "$(cat "$b/{long}")" = odd
test "$(cat "$b/{dirs}/{long}")" = odd
if find "$b" -type f -exec cat {{}} + | grep -q {marker}; then echo "secret staged"; exit 1; fi
echo hostile-app-checked"#,
        secret = secret.display(),
        dirs = "d".repeat(120),
    );
    let bp = checking_buildpack(dir.path(), &check);
    let s = stage_app(&app, &bp).arg("-v").run();
    assert_eq!(s.code, 0, "{}\n{}", s.stdout, s.stderr);
    assert!(s.stderr.contains("hostile-app-checked"), "{}", s.stderr);
    for (name, kind) in [
        ("fifo", "a FIFO (named pipe)"),
        ("socket", "a unix socket"),
        ("sda", "a block device"),
    ] {
        let line = format!("warning: {}: not staged: {kind};", app.join(name).display());
        assert!(s.stderr.contains(&line), "{line} in\n{}", s.stderr);
        let notes = s.json()["notes"].to_string();
        assert!(
            notes.contains(&format!("/a/app/{name}: not staged")),
            "{notes}"
        );
    }
}

/// Run a stage to its end: (exit code, peak RSS in KiB from wait4, stderr). Checks that nothing
/// of the run is left.
#[allow(clippy::zombie_processes)] // reaped by wait4, which also reports its peak RSS
fn run_for_peak_rss(s: Stage) -> (i32, u64, String) {
    let mut child = s
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    assert_eq!(pid, child.id() as i32);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let stderr = reader.join().unwrap();
    if let Some(id) = run_id_in(&stderr) {
        let (cs, is) = labelled_with_run(&id);
        assert!(cs.is_empty() && is.is_empty(), "left {cs:?} {is:?}");
    }
    (code, ru.ru_maxrss as u64, stderr)
}

#[test]
fn hostile_huge_app_streams_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir(&app).unwrap();
    // 256 MiB sparse (written out whole: Docker takes no sparse tar entries), 64 MiB of data and
    // 2,000 small files.
    std::fs::File::create(app.join("sparse"))
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    {
        use std::io::Write;
        let mut f = std::fs::File::create(app.join("data")).unwrap();
        for _ in 0..64 {
            f.write_all(&chunk).unwrap();
        }
    }
    for i in 0..2000 {
        std::fs::write(app.join(format!("f{i}")), i.to_string()).unwrap();
    }
    let check = r#"test "$(wc -c < "$1/sparse")" -eq 268435456
test "$(wc -c < "$1/data")" -eq 67108864
test "$(ls "$1" | wc -l)" -eq 2002
echo huge-app-checked"#;
    let bp = checking_buildpack(dir.path(), check);
    let (code, huge, stderr) = run_for_peak_rss(stage_app(&app, &bp).arg("-v").no_reports());
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("huge-app-checked"), "{stderr}");
    // The same run with the 1-file hello app: what a run costs whatever the app.
    let (code, base, stderr) = run_for_peak_rss(stage(&["clean"]).no_reports());
    assert_eq!(code, 0, "{stderr}");
    eprintln!("peak RSS: {huge} KiB with a 320 MiB app, {base} KiB with the hello app");
    assert!(
        huge < base + 32 * 1024,
        "the 320 MiB app took {huge} KiB at peak, the hello app {base} KiB: the context is not streamed"
    );
}

#[test]
fn hostile_app_path_too_long_is_exit_2_naming_it_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir(&app).unwrap();
    let seg = "s".repeat(250);
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o755);
    let mut fd = nix::fcntl::open(
        &app,
        nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    for _ in 0..18 {
        nix::sys::stat::mkdirat(&fd, seg.as_str(), mode).unwrap();
        fd = nix::fcntl::openat(
            &fd,
            seg.as_str(),
            nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
    }
    drop(fd);
    let child = stage_app(&app, &root().join("fixtures/buildpacks/clean"))
        .no_reports()
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&format!("cannot read {}/{seg}/", app.display()))
            && stderr.contains("too long"),
        "{stderr}"
    );
    assert!(!stderr.contains("run "), "nothing was started: {stderr}");
    let left = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("airgap-check-{pid}-"))
        });
    assert!(!left, "a temporary folder of the run survived");
}
