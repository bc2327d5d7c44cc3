//! Integration tests of the sealed staging run: the real binary, the real Docker engine, real
//! namespaces and real captures. Every packet stays inside the sealed network these runs build.
//! Needs root (or CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW), Docker and busybox-static.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::leftovers::{self, LABEL, LABEL_PID, LABEL_RUN};
use crate::support::run::{run_id_in, Flow};
use crate::support::{ensure_stack, flow, prune_lock, root, Agc, STACK_IMAGE};

#[test]
fn clean_buildpack_passes_and_the_pass_is_earned() {
    let s = Agc::stage(&["clean"])
        .expect_exit(0)
        .expect_verdict("pass")
        .expect_disallowed(&[])
        .run();
    let j = s.json();
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
    Agc::new(&["analyze", "--pcap"])
        .arg(s.pcap_path())
        .expect_exit(0)
        .run();
}

#[test]
fn connection_at_the_first_instant_is_caught_in_detect() {
    let s = Agc::stage(&["leak-first-instant"])
        .expect_exit(1)
        .expect_disallowed(&[flow("tcp", "203.0.113.5", Some(443), "detect")])
        .run();
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
    Agc::stage(&["leak-ipv6"])
        .expect_exit(1)
        .expect_disallowed(&[flow("tcp", "2001:db8::7", Some(80), "supply")])
        .run();
}

#[test]
fn udp_is_caught() {
    let s = Agc::stage(&["leak-udp"])
        .expect_exit(1)
        .expect_disallowed(&[flow("udp", "203.0.113.30", Some(69), "supply")])
        .run();
    assert_eq!(s.json()["flows"][0]["state"], "unreachable");
}

#[test]
fn icmp_is_caught() {
    // busybox ping needs a raw socket, so this one stages as root (--user).
    let s = Agc::stage(&["leak-icmp"])
        .arg("--user")
        .arg("root")
        .expect_exit(1)
        .expect_disallowed(&[flow("icmp", "198.51.100.10", None, "supply")])
        .run();
    assert_eq!(s.json()["stage"]["user"], "root");
    assert_eq!(s.json()["flows"][0]["state"], "answered");
}

#[test]
fn background_process_is_attributed_to_the_phase_it_connected_in() {
    let s = Agc::stage(&["leak-background"])
        .expect_exit(1)
        // Started by supply, connected two seconds later while finalize ran.
        .expect_disallowed(&[flow("tcp", "203.0.113.40", Some(8443), "finalize")])
        .run();
    assert_eq!(s.json()["phases"][2]["disallowed_flows"], 1);
}

/// The metadata endpoints fail by default over IPv4 and IPv6, and the reports name the deny rule:
/// fd00:ec2::254 is inside fc00::/7, which the default allowlist allows (a false pass before deny
/// rules).
#[test]
fn metadata_endpoints_over_ipv4_and_ipv6_are_denied_by_default() {
    let s = Agc::stage(&["leak-imds-ipv6", "leak-metadata"])
        .expect_exit(1)
        .expect_verdict("fail")
        .expect_disallowed(&[
            flow("tcp", "fd00:ec2::254", Some(80), "supply"),
            flow("tcp", "169.254.169.254", Some(80), "finalize"),
        ])
        .run();
    let v6 = s.flow("tcp", "fd00:ec2::254", Some(80));
    assert_eq!(v6["denied_by"], "cloud metadata (AWS EC2 IMDS over IPv6)");
    assert_eq!(v6["rule"], Value::Null);
    let v4 = s.flow("tcp", "169.254.169.254", Some(80));
    assert!(
        v4["denied_by"]
            .as_str()
            .unwrap()
            .starts_with("cloud metadata (169.254.169.254"),
        "{v4}"
    );
    assert!(s.stdout.contains("DENIED BY"), "{}", s.stdout);
    assert!(
        s.stdout.contains("cloud metadata (AWS EC2 IMDS over IPv6)"),
        "{}",
        s.stdout
    );
    let junit = s.junit.as_deref().unwrap();
    assert!(
        junit.contains("denied by rule &quot;cloud metadata (AWS EC2 IMDS over IPv6)&quot;"),
        "{junit}"
    );
    s.assert_junit_valid();
    // Each phase's testcase carries the phase's duration as its time.
    for p in s.json()["phases"].as_array().unwrap() {
        let name = format!(
            "name=\"{} (buildpack {}: {})\"",
            p["name"].as_str().unwrap(),
            p["buildpack"],
            p["buildpack_name"].as_str().unwrap()
        );
        let case = junit
            .split(&name)
            .nth(1)
            .unwrap_or_else(|| panic!("no testcase {name} in {junit}"));
        let time: f64 = case
            .split("time=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let took = p["duration_seconds"].as_f64().unwrap();
        assert!(time > 0.0 && (time - took).abs() < 0.01, "{case}: {took}");
    }
}

#[test]
fn metadata_endpoint_is_caught() {
    Agc::stage(&["leak-metadata"])
        .expect_exit(1)
        .expect_disallowed(&[flow("tcp", "169.254.169.254", Some(80), "finalize")])
        .run();
}

#[test]
fn lookup_by_name_becomes_a_named_connection() {
    let s = Agc::stage(&["leak-dns"])
        .expect_exit(1)
        .expect_disallowed(&[flow("tcp", "198.18.0.1", Some(443), "supply")])
        .run();
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
    let s = Agc::stage(&["leak-compile"])
        .expect_exit(1)
        .expect_disallowed(&[flow("tcp", "203.0.113.50", Some(80), "compile")])
        .run();
    let names: Vec<String> = s.phases().into_iter().map(|p| p.0).collect();
    assert_eq!(names, ["detect", "compile", "release"]);
}

#[test]
fn staging_failure_fails_with_the_output_tail() {
    let s = Agc::stage(&["fail-supply"])
        .expect_exit(1)
        .expect_verdict("fail")
        .run();
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
    let s = Agc::stage(&["hang"])
        .stage_timeout("3s")
        .expect_exit(1)
        .run();
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
    let s = Agc::stage(&["leak-ipv6", "clean"]).expect_exit(1).run();
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
fn keep_image_keeps_the_image_whether_the_run_passes_or_fails() {
    // Only --context copy builds an image.
    let s = Agc::stage(&["clean"])
        .args(&["--context", "copy"])
        .expect_kept_image()
        .expect_exit(0)
        .run();
    assert!(s.stderr.contains("keeping image sha256:"), "{}", s.stderr);
    // A staging failure: the image is still kept.
    Agc::stage(&["fail-supply"])
        .args(&["--context", "copy"])
        .expect_kept_image()
        .expect_exit(1)
        .run();
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
    Agc::stage(&[zip_path.to_str().unwrap()])
        .expect_exit(0)
        .run();
}

/// A zipped "buildpack" with no bin/ whose entry's name drives a terminal: exit 2, one error
/// line listing what it holds, escaped.
#[test]
fn a_zip_that_is_no_buildpack_is_exit_2_its_names_escaped() {
    use crate::inspect::{assert_no_hostile_bytes, HOSTILE};
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("odd.zip");
    {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let o = zip::write::SimpleFileOptions::default();
        w.start_file(format!("README{HOSTILE}"), o).unwrap();
        w.write_all(b"no buildpack here").unwrap();
        w.finish().unwrap();
    }
    let s = Agc::stage(&[zip_path.to_str().unwrap()])
        .expect_exit(2)
        .run();
    assert_no_hostile_bytes("stderr", &s.stderr);
    let errors: Vec<&str> = s
        .stderr
        .lines()
        .filter(|l| l.starts_with("airgap-check: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", s.stderr);
    assert!(
        errors[0].contains("not a buildpack") && errors[0].contains("README\\u{1b}]0;pwn"),
        "{}",
        s.stderr
    );
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
        .map(|(bp, want)| {
            let run = Agc::stage(&[*bp])
                .stage_timeout("300s")
                .context(*bp)
                .expect_exit(if want.is_empty() { 0 } else { 1 })
                .expect_disallowed(want);
            std::thread::spawn(move || run.run())
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for ((bp, _), run) in cases.into_iter().zip(runs) {
        let s = run.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        assert_eq!(s.json()["capture"]["dropped"], 0, "{bp}");
        assert!(
            ids.insert(s.run_id.clone().expect("a run id")),
            "run ids are unique"
        );
    }
}

#[test]
fn an_out_of_memory_kill_fails_staging_and_says_so() {
    let s = Agc::stage(&["oom"])
        .arg("--memory")
        .arg("64m")
        .expect_exit(1)
        .run();
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
    let out = Agc::stage(&["clean"])
        .arg("--memory")
        .arg("5m")
        .no_reports()
        .expect_exit(2)
        .run();
    assert!(out.stderr.contains("--memory \"5m\""), "{}", out.stderr);
}

/// Where a staging run of the hang buildpack has reached a phase that never ends.
const IN_SUPPLY: &str = "supply (buildpack 0: hang)";
/// How long a staging run may take to get there (the image build included).
const UNTIL_SUPPLY: Duration = Duration::from_secs(180);

#[test]
fn sigint_stops_the_run_and_removes_everything() {
    interrupted_in_supply(Signal::SIGINT, "SIGINT");
}

/// A run stopped by `sig` while a phase runs: exit 3, "interrupted", nothing of it left.
fn interrupted_in_supply(sig: Signal, name: &str) {
    let run = Agc::stage(&["hang"]).no_reports().expect_exit(3).spawn();
    run.wait_for_stderr(IN_SUPPLY, UNTIL_SUPPLY);
    run.signal(sig);
    let o = run.finish();
    assert!(
        o.stderr.contains(&format!("interrupted by {name}")),
        "{}",
        o.stderr
    );
    assert!(o.run_id.is_some(), "the run id is printed: {}", o.stderr);
}

#[test]
fn sigkill_leaves_only_what_prune_removes() {
    // Nothing else may prune what this run leaves before the test looks at it.
    let _prune = prune_lock();
    for network in ["sealed", "bridge"] {
        let mut run = Agc::stage(&["hang"])
            .arg("--network")
            .arg(network)
            .no_reports()
            .context(network)
            .expect_signal(libc::SIGKILL)
            .spawn();
        let seen = run.wait_for_stderr(IN_SUPPLY, UNTIL_SUPPLY);
        let pid = run.pid();
        run.signal(Signal::SIGKILL);
        run.wait(Duration::from_secs(30));
        let id = run_id_in(&seen).expect("the run id is printed");
        // The kernel removed the namespaces and veths with the process; Docker's objects and the
        // temporary folder wait for prune.
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            leftovers::agc_interfaces(),
            Vec::<String>::new(),
            "{network}"
        );
        let left = leftovers::of_run(&id);
        assert!(
            left.iter().any(|l| l.starts_with("container ")),
            "{network}: the container is still there before prune: {left:?}"
        );
        if network == "bridge" {
            assert!(left.iter().any(|l| l.starts_with("network ")), "{left:?}");
        }
        assert_eq!(
            leftovers::temp_dirs(pid, None).len(),
            1,
            "{network}: its temporary folder is left"
        );
        Agc::prune().expect_exit(0).run();
        // Now nothing of the run may be left: the leftover check of `finish` says so.
        run.finish();
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
        // The engine this test process uses (DOCKER_HOST, or Docker's default socket).
        let engine_socket = match std::env::var("DOCKER_HOST") {
            Ok(h) => PathBuf::from(
                h.strip_prefix("unix://")
                    .expect("the relay needs a unix:// DOCKER_HOST"),
            ),
            Err(_) => PathBuf::from("/var/run/docker.sock"),
        };
        std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let engine = UnixStream::connect(&engine_socket).unwrap();
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
    let mut run = Agc::stage(&["hang"])
        .no_reports()
        .env("DOCKER_HOST", relay.docker_host())
        .expect_exit(3)
        .spawn();
    run.wait_for_stderr(IN_SUPPLY, UNTIL_SUPPLY);
    relay.cut();
    let t = Instant::now();
    run.wait(Duration::from_secs(60));
    let seen = run.stderr();
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
    assert_eq!(leftovers::agc_interfaces(), Vec::<String>::new());
    assert!(run_id_in(&seen).is_some(), "the run id is printed: {seen}");
    {
        let _prune = prune_lock();
        Agc::prune().expect_exit(0).run();
    }
    // The exit code, and that nothing of the run is left now.
    run.finish();
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
    let s = Agc::stage(&["clean"])
        .arg("--pcap")
        .arg(ro.path("r.pcap"))
        .no_reports()
        .expect_exit(2)
        .run();
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
    let s = Agc::stage(&["clean"])
        .json_only()
        .arg("--pcap")
        .arg(full.path("r.pcap"))
        .expect_exit(3)
        .expect_verdict("inconclusive")
        .run();
    let j = s.json();
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
    interrupted_in_supply(Signal::SIGTERM, "SIGTERM");
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
        let o = Agc::new(&args).context(needle).expect_exit(2).run();
        let stderr = &o.stderr;
        assert!(stderr.contains(needle), "{needle}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("panicked"));
        // No temporary folder of that process survives (the leftover check looked too).
        let left = leftovers::temp_dirs(o.pid, None);
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
    let out = Agc::new(&base)
        .args(&["--stack-image", STACK_IMAGE])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .expect_exit(3)
        .run();
    let stderr = &out.stderr;
    assert!(
        stderr.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{stderr}"
    );
    // A stack image that is neither present nor pullable (the "registry" is a closed port on this
    // machine, so the pull attempt stays here).
    let out = Agc::new(&base)
        .args(&["--stack-image", "localhost:1/airgap-check-missing:latest"])
        .expect_exit(3)
        .run();
    let stderr = &out.stderr;
    assert!(
        stderr
            .contains("stack image localhost:1/airgap-check-missing:latest is not present locally"),
        "{stderr}"
    );
    // Missing privilege: drop CAP_NET_ADMIN from the bounding set (setpriv: util-linux).
    let setpriv = Command::new("setpriv").arg("--version").output();
    assert!(
        setpriv.is_ok_and(|o| o.status.success()),
        "setpriv (util-linux) is needed to run airgap-check without CAP_NET_ADMIN"
    );
    let out = Agc::new(&base)
        .args(&["--stack-image", STACK_IMAGE])
        .wrapped_in(&[
            "setpriv",
            "--bounding-set",
            "-net_admin",
            "--inh-caps",
            "-net_admin",
        ])
        .expect_exit(3)
        .run();
    let stderr = &out.stderr;
    assert!(
        stderr.contains("missing privilege: CAP_NET_ADMIN"),
        "{stderr}"
    );
}

#[test]
fn tls_client_hello_names_the_flow_by_its_sni() {
    let s = Agc::stage(&["leak-tls"])
        .expect_exit(1)
        .expect_disallowed(&[flow("tcp", "203.0.113.61", Some(443), "supply")])
        .run();
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
    let s = Agc::stage(&["leak-http"]).expect_exit(1).run();
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
    let ok = Agc::stage(&["leak-http"])
        .arg("--allowlist")
        .arg(&allow)
        .expect_exit(0)
        .run();
    let f = &ok.json()["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["protocol"] == "tcp")
        .unwrap()
        .clone();
    assert_eq!(f["rule"], "our mirror");
    Agc::stage(&["leak-tls"])
        .arg("--allowlist")
        .arg(&allow)
        .expect_exit(1)
        .run();
}

#[test]
fn dns_queries_are_reported_with_their_phase_and_a_suggested_allowlist_makes_the_run_pass() {
    let dir = tempfile::tempdir().unwrap();
    let suggested = dir.path().join("suggested.yaml");
    let s = Agc::stage(&["leak-dns"])
        .arg("--suggest-allowlist")
        .arg(suggested.to_str().unwrap())
        .expect_exit(1)
        .run();
    let q = s.json()["dns_queries"].as_array().unwrap();
    let bp = q
        .iter()
        .find(|q| q["name"] == "buildpacks.cloudfoundry.org")
        .expect("the query is reported");
    assert_eq!(bp["phase"], "supply");
    let text = std::fs::read_to_string(&suggested).unwrap();
    assert!(text.contains("buildpacks.cloudfoundry.org"), "{text}");
    Agc::stage(&["leak-dns"])
        .arg("--allowlist")
        .arg(suggested.to_str().unwrap())
        .context(format!("the suggestion:\n{text}"))
        .expect_exit(0)
        .run();
}

#[test]
fn a_staging_capture_analyzed_later_keeps_its_names() {
    let s = Agc::stage(&["leak-dns"]).expect_exit(1).run();
    let out = Agc::new(&["analyze", "--pcap"])
        .arg(s.pcap_path())
        .args(&["--local", "10.99.0.2", "--local", "fd00:99::2"])
        .expect_exit(1)
        .run();
    let stdout = &out.stdout;
    assert!(
        stdout.contains("buildpacks.cloudfoundry.org"),
        "names from the sinkhole's DNS answers in the pcap: {stdout}"
    );
}

/// The containers carrying this run id's label.
fn containers_of(run: &str) -> Vec<String> {
    leftovers::of_run(run)
        .into_iter()
        .filter(|o| o.starts_with("container "))
        .collect()
}

#[test]
fn prune_removes_what_a_dead_run_left_and_spares_live_ones() {
    ensure_stack();
    let _prune = prune_lock();
    use bollard::models::{ContainerCreateBody, HostConfig};
    use bollard::query_parameters::CreateContainerOptionsBuilder;
    // One container as a killed run leaves it (its pid is gone), one owned by a live process.
    let dead_pid = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let make = |run: &str, pid: u32| {
        let labels = std::collections::HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (LABEL_RUN.to_string(), run.to_string()),
            (LABEL_PID.to_string(), pid.to_string()),
        ]);
        leftovers::block_on(async {
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
            leftovers::docker()
                .create_container(Some(CreateContainerOptionsBuilder::new().build()), body)
                .await
                .unwrap()
                .id
        })
    };
    let dead_run = format!("dead{:08x}", dead_pid);
    make(&dead_run, dead_pid);
    // A live airgap-check: the prune command itself is one; use a long-running one instead.
    let live = Agc::stage(&["hang"])
        .no_reports()
        .stage_timeout("60s")
        .expect_exit(3)
        .spawn();
    let live_run = format!("live{:08x}", live.pid());
    make(&live_run, live.pid());
    // Wait until the live run is past its build, so the SIGTERM below lands in a phase.
    live.wait_for_stderr(IN_SUPPLY, UNTIL_SUPPLY);
    let out = Agc::prune().expect_exit(0).run();
    let stdout = &out.stdout;
    assert!(containers_of(&dead_run).is_empty(), "{stdout}");
    assert_eq!(
        containers_of(&live_run).len(),
        1,
        "a live run's container is kept: {stdout}"
    );
    live.signal(Signal::SIGTERM);
    let mut live = live;
    live.wait(Duration::from_secs(60));
    // The live run's own cleanup does not know this extra container; prune it now that it is dead.
    Agc::prune().expect_exit(0).run();
    assert!(containers_of(&live_run).is_empty());
    // Exit 3 (interrupted), and nothing with the live run's pid label is left.
    live.finish();
}

#[test]
fn a_process_left_behind_after_the_last_phase_is_watched_then_killed() {
    // It connects a second after release has exited: still caught, in release.
    Agc::stage(&["leak-late"])
        .expect_exit(1)
        .expect_disallowed(&[flow("tcp", "203.0.113.70", Some(80), "release")])
        .run();
    // Dressed as the idle first process: told apart by its pid, watched, caught.
    Agc::stage(&["hide-as-idle"])
        .expect_exit(1)
        .expect_disallowed(&[flow("tcp", "203.0.113.71", Some(80), "release")])
        .run();
    // It does nothing visible before the watch window ends: killed, and the run cannot pass.
    let s = Agc::stage(&["linger"])
        .expect_exit(3)
        .expect_verdict("inconclusive")
        .run();
    let notes = s.json()["notes"].to_string();
    assert!(
        notes.contains("still ran 10 s after the last phase") && notes.contains("sleep 60"),
        "{notes}"
    );
}

/// A process left running with a credential in its argv, from a phase whose output drives the
/// terminal: the warning, the live output (-vv) and every report show both escaped and the
/// credential redacted.
#[test]
fn a_process_left_running_with_a_credential_is_shown_redacted_and_escaped() {
    use crate::inspect::assert_no_hostile_bytes;
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("index.html"), "hello").unwrap();
    // `; :` keeps the shell from exec-ing sleep, so the argv stays the one written here.
    let supply = "printf 'out\\033]0;pwn\\007\\342\\200\\256\\n'\n\
                  (sh -c 'sleep 30; :' -u user:hunter2pw) >/dev/null 2>&1 &";
    let bp = checking_buildpack(dir.path(), supply);
    let agc = Agc::stage_app(&app, &bp).arg("-vv");
    let summary = agc.dir().join("summary.md");
    let s = agc
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .expect_exit(3)
        .expect_verdict("inconclusive")
        .run();
    assert!(
        s.stderr.contains("sh -c sleep 30; : -u REDACTED"),
        "{}",
        s.stderr
    );
    assert!(s.stderr.contains("out\\u{1b}]0;pwn"), "{}", s.stderr);
    assert_no_hostile_bytes("stderr", &s.stderr);
    assert_no_hostile_bytes("the console", &s.stdout);
    assert_no_hostile_bytes("JUnit", s.junit.as_deref().unwrap());
    assert_no_hostile_bytes(
        "the step summary",
        &std::fs::read_to_string(&summary).unwrap(),
    );
    let json = s.json().to_string();
    assert!(!json.contains("hunter2pw"), "{json}");
    assert!(json.contains("-u REDACTED"), "{json}");
}

#[test]
fn a_phase_that_kills_the_phases_driver_fails_staging_saying_so() {
    // The phases run one after another under one shell of airgap-check's (the driver); a phase
    // that kills it cannot make the run take its word for how it ended.
    let s = Agc::stage(&["kill-driver"])
        .expect_exit(1)
        .expect_verdict("fail")
        .run();
    let notes = s.json()["notes"].to_string();
    assert!(
        notes.contains("the phases' driver was interfered with")
            && notes.contains("in the middle of a phase"),
        "{notes}"
    );
    let phases = s.json()["phases"].as_array().unwrap().clone();
    assert_eq!(phases.len(), 2, "{phases:?}");
    assert_eq!(phases[1]["name"], "supply");
    assert_eq!(phases[1]["exit_code"], 137);
    // Killed in detect, whose exit does not stop staging: no phase runs after it, and the run
    // fails all the same.
    let s = Agc::stage(&["kill-driver-in-detect"])
        .expect_exit(1)
        .expect_verdict("fail")
        .run();
    let phases = s.json()["phases"].as_array().unwrap().clone();
    assert_eq!(phases.len(), 1, "{phases:?}");
    assert!(s.json()["notes"]
        .to_string()
        .contains("the phases' driver was interfered with"));
}

#[test]
fn http_on_port_53_is_not_dns() {
    // The default DNS rules judge by port, with `content: dns`: an HTTP request is not DNS.
    let s = Agc::stage(&["leak-port53"])
        .expect_exit(1)
        .expect_disallowed(&[flow("tcp", "203.0.113.40", Some(53), "supply")])
        .run();
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
    // Only --context copy builds an image.
    let run = Agc::stage(&["clean"])
        .args(&["--context", "copy"])
        .no_reports()
        .expect_exit(3)
        .spawn();
    run.wait_for_stderr("building the staging image", UNTIL_SUPPLY);
    std::thread::sleep(Duration::from_millis(300));
    run.signal(Signal::SIGTERM);
    // No container, image (layers included) or network of the run is left: `finish` checks.
    let o = run.finish();
    assert!(o.run_id.is_some(), "the run id is printed: {}", o.stderr);
}

// Hostile app directories: what is staged of them (src/staging/tree.rs).

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
    let s = Agc::stage_app(&app, &bp).arg("-vv").expect_exit(0).run();
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
    // Peak RSS in KiB, from wait4.
    let o = Agc::stage_app(&app, &bp)
        .arg("-vv")
        .no_reports()
        .expect_exit(0)
        .run();
    assert!(o.stderr.contains("huge-app-checked"), "{}", o.stderr);
    let huge = o.max_rss_kib;
    // The same run with the 1-file hello app: what a run costs whatever the app.
    let base = Agc::stage(&["clean"])
        .no_reports()
        .expect_exit(0)
        .run()
        .max_rss_kib;
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
    let out = Agc::stage_app(&app, &root().join("fixtures/buildpacks/clean"))
        .no_reports()
        .expect_exit(2)
        .run();
    let stderr = &out.stderr;
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&format!("cannot read {}/{seg}/", app.display()))
            && stderr.contains("too long"),
        "{stderr}"
    );
    assert!(!stderr.contains("run "), "nothing was started: {stderr}");
    assert!(
        leftovers::temp_dirs(out.pid, None).is_empty(),
        "a temporary folder of the run survived"
    );
}
