//! Real-size buildpacks and many apps: several apps in one run, the buildpack mounted or sent in
//! a build context, zips extracted once and bounded. The real binary against the real engine, as
//! in stage.rs; every packet stays in the runs' sealed networks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::{flow, root, Agc, Flow};

/// The disallowed flows of one run of a several-apps JSON report.
fn disallowed(run: &Value) -> Vec<Flow> {
    run["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["allowed"] == false)
        .map(|f| {
            flow(
                f["protocol"].as_str().unwrap(),
                f["remote"].as_str().unwrap(),
                f["remote_port"].as_u64().map(|p| p as u16),
                f["phase"].as_str().unwrap_or("-"),
            )
        })
        .collect()
}

#[test]
fn several_apps_stage_apart_and_one_leak_fails_the_run() {
    // A third app: the hello app under another path (each app is staged on its own).
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("app");
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["index.html", "Procfile"] {
        std::fs::copy(root().join("fixtures/apps/hello").join(f), copy.join(f)).unwrap();
    }
    let a = Agc::stage_apps(
        &["hello", "fetching", copy.to_str().unwrap()],
        &["leak-if-asked"],
    );
    let pcaps = a.dir().join("captures");
    let junit = a.dir().join("runs.xml");
    let o = a
        .args(&["--jobs", "2", "--junit"])
        .arg(&junit)
        .arg("--pcap")
        .arg(&pcaps)
        .expect_exit(1)
        .run();
    let j = o.json();
    assert_eq!(j["verdict"], "fail", "{j}");
    assert_eq!(j["summary"]["runs"], 3);
    assert_eq!(
        (j["summary"]["pass"].as_u64(), j["summary"]["fail"].as_u64()),
        (Some(2), Some(1))
    );
    let runs = j["runs"].as_array().unwrap();
    let apps: Vec<&str> = runs.iter().map(|r| r["app"].as_str().unwrap()).collect();
    assert_eq!(apps[..2], ["fixtures/apps/hello", "fixtures/apps/fetching"]);
    // Each run is a whole report of its own, and sees only its own traffic.
    assert_eq!(runs[0]["verdict"], "pass");
    assert_eq!(disallowed(&runs[0]), Vec::<Flow>::new());
    assert_eq!(
        disallowed(&runs[1]),
        vec![flow("tcp", "203.0.113.60", Some(80), "supply")]
    );
    assert_eq!(runs[2]["verdict"], "pass");
    let ids: std::collections::HashSet<&str> = runs
        .iter()
        .map(|r| r["stage"]["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "one sealed container and network per app");
    for r in runs {
        assert_eq!(r["capture"]["canary_seen"], true);
        assert_eq!(r["capture"]["dropped"], 0);
        assert_eq!(r["stage"]["context"], "mount");
    }
    // JUnit: a testsuite per app, named after it; schema-valid.
    let x = std::fs::read_to_string(&junit).unwrap();
    for app in &apps {
        assert!(
            x.contains(&format!("name=\"airgap-check stage {app}\"")),
            "{app} in {x}"
        );
    }
    crate::support::assert_junit_valid(&junit, Some(&x));
    // A capture per app in the --pcap folder.
    let mut files: Vec<String> = std::fs::read_dir(&pcaps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["0-hello.pcap", "1-fetching.pcap", "2-app.pcap"]);
    // The console: a block per app, then a line per app with its verdict.
    assert!(o.stdout.contains("airgap-check: 3 apps"), "{}", o.stdout);
    assert!(
        o.stdout
            .contains("FAIL         fixtures/apps/fetching: 1 disallowed flow to 1 destination"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("FAIL: 2 of 3 apps pass"), "{}", o.stdout);
}

#[test]
fn ctrl_c_stops_every_app_and_leaves_nothing() {
    let run = Agc::stage_apps(&["hello", "fetching"], &["hang"])
        .no_reports()
        .expect_exit(3)
        .spawn();
    // Both apps reach supply (the hang), then the interrupt.
    let seen = run.wait_for_stderr("supply (buildpack 0: hang)", Duration::from_secs(180));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while run.stderr().matches("supply (buildpack 0: hang)").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{seen}");
        std::thread::sleep(Duration::from_millis(100));
    }
    run.signal(Signal::SIGINT);
    // No container, network or folder of either app is left: `finish` checks.
    let o = run.finish();
    assert!(
        o.stderr
            .contains("interrupted: removing what this run created"),
        "{}",
        o.stderr
    );
}

#[test]
fn a_build_context_gives_the_same_verdicts_as_mounts() {
    for context in ["copy", "mount"] {
        let s = Agc::stage(&["leak-dns"])
            .args(&["--context", context])
            .expect_exit(1)
            .expect_disallowed(&[flow("tcp", "198.18.0.1", Some(443), "supply")])
            .run();
        assert_eq!(s.json()["stage"]["context"], context);
        let dockerfile = &s.json()["stage"]["dockerfile"];
        if context == "copy" {
            let d = dockerfile.as_str().unwrap();
            assert!(d.contains("COPY --chown=") && !d.contains("RUN"), "{d}");
        } else {
            assert!(dockerfile.is_null());
            assert!(s.json()["stage"]["mounts"]
                .to_string()
                .contains("/tmp/buildpacks/0"));
        }
        Agc::stage(&["clean"])
            .args(&["--context", context])
            .expect_exit(0)
            .expect_verdict("pass")
            .run();
    }
}

/// Run the binary in a mount namespace of its own, with its temporary folder (TMPDIR, where its
/// workspace goes) on a tmpfs mounted over `hidden` there only: out of the engine's sight, as it
/// is for an engine on another host.
fn private_tmp(hidden: &Path) -> Vec<String> {
    let script = format!(
        "mount --make-rprivate / && mount -t tmpfs tmpfs '{d}' && TMPDIR='{d}' exec \"$@\"",
        d = hidden.display()
    );
    ["unshare", "-m", "sh", "-c", &script, "sh"]
        .map(String::from)
        .to_vec()
}

#[test]
fn an_engine_that_cannot_see_this_hosts_files_gets_a_build_context() {
    let hidden = tempfile::tempdir().unwrap();
    let s = Agc::stage(&["leak-udp"])
        .arg("-v")
        .wrapped_in(&private_tmp(hidden.path()))
        .expect_exit(1)
        .expect_disallowed(&[flow("udp", "203.0.113.30", Some(69), "supply")])
        .run();
    assert!(
        s.stderr
            .contains("the engine does not see this host's files"),
        "{}",
        s.stderr
    );
    assert_eq!(s.json()["stage"]["context"], "copy");
    assert!(
        s.stderr.contains("COPY buildpacks /tmp/buildpacks"),
        "the Dockerfile at -v"
    );
    // --context mount says what to do instead.
    let s = Agc::stage(&["clean"])
        .args(&["--context", "mount"])
        .wrapped_in(&private_tmp(hidden.path()))
        .no_reports()
        .expect_exit(2)
        .run();
    assert!(s.stderr.contains("use --context copy"), "{}", s.stderr);
}

/// A zip of the clean fixture's scripts with these modes (a zip made without Unix modes has none).
fn clean_zip(at: &Path, mode: Option<u32>) -> PathBuf {
    let z = at.join("clean.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&z).unwrap());
    for s in ["detect", "supply", "finalize", "release"] {
        let mut o = zip::write::SimpleFileOptions::default();
        if let Some(m) = mode {
            o = o.unix_permissions(m);
        }
        w.start_file(format!("bin/{s}"), o).unwrap();
        w.write_all(&std::fs::read(root().join("fixtures/buildpacks/clean/bin").join(s)).unwrap())
            .unwrap();
    }
    w.finish().unwrap();
    z
}

#[test]
fn a_zip_is_extracted_once_and_prune_empties_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let z = clean_zip(dir.path(), Some(0o755));
    let first = Agc::stage(&[z.to_str().unwrap()])
        .env("AIRGAP_CHECK_CACHE", &cache)
        .no_reports()
        .expect_exit(0)
        .run();
    assert!(
        first.stderr.contains("extracted into the cache"),
        "{}",
        first.stderr
    );
    let second = Agc::stage(&[z.to_str().unwrap()])
        .env("AIRGAP_CHECK_CACHE", &cache)
        .no_reports()
        .expect_exit(0)
        .run();
    assert!(
        second.stderr.contains("taken from the cache"),
        "{}",
        second.stderr
    );
    let _lock = crate::support::prune_lock();
    let p = Agc::prune()
        .env("AIRGAP_CHECK_CACHE", &cache)
        .expect_exit(0)
        .run();
    assert!(
        p.stdout.contains("1 extracted buildpack zips"),
        "{}",
        p.stdout
    );
    assert_eq!(
        std::fs::read_dir(cache.join("zips"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count(),
        0
    );
}

#[test]
fn a_zip_bomb_is_exit_2_naming_the_limit_and_its_option() {
    let dir = tempfile::tempdir().unwrap();
    let z = dir.path().join("bomb.zip");
    {
        let mut w = zip::ZipWriter::new(std::fs::File::create(&z).unwrap());
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for s in ["supply", "finalize"] {
            w.start_file(format!("bin/{s}"), o).unwrap();
            w.write_all(b"#!/bin/sh\n").unwrap();
        }
        // 2 GiB of zeros in a zip of about 2 MB.
        w.start_file("dependencies/huge", o).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..2048 {
            w.write_all(&zeros).unwrap();
        }
        w.finish().unwrap();
    }
    let t = std::time::Instant::now();
    let o = Agc::stage(&[z.to_str().unwrap()])
        .no_reports()
        .expect_exit(2)
        .run();
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "stopped before extracting: {:?}",
        t.elapsed()
    );
    let line = o
        .stderr
        .lines()
        .find(|l| l.contains("error:"))
        .unwrap_or_default();
    assert!(
        line.contains(&z.display().to_string()),
        "names the zip: {line}"
    );
    assert!(line.contains("2.0 GiB"), "says how much: {line}");
    assert!(line.contains("--max-unzipped"), "names the option: {line}");
    // Raised, it would be extracted (stopped here by the limit itself, not the default).
    let o = Agc::stage(&[z.to_str().unwrap()])
        .args(&["--max-unzipped", "1g"])
        .no_reports()
        .expect_exit(2)
        .run();
    assert!(
        o.stderr.contains("1.0 GiB (--max-unzipped)"),
        "{}",
        o.stderr
    );
}

#[test]
fn scripts_that_are_not_executable_are_said_before_staging() {
    let dir = tempfile::tempdir().unwrap();
    let z = clean_zip(dir.path(), None);
    let s = Agc::stage(&[z.to_str().unwrap()])
        .expect_exit(1)
        .expect_verdict("fail")
        .run();
    let warned = s
        .stderr
        .lines()
        .position(|l| l.contains("not executable"))
        .unwrap_or_else(|| panic!("no warning: {}", s.stderr));
    let staged = s
        .stderr
        .lines()
        .position(|l| l.contains("detect (buildpack 0"))
        .unwrap();
    assert!(warned < staged, "before staging: {}", s.stderr);
    assert!(
        s.stderr
            .contains("bin/detect (mode 0644), bin/supply (mode 0644)"),
        "{}",
        s.stderr
    );
    assert!(s.json()["notes"].to_string().contains("exit 126"));
    assert_eq!(s.json()["phases"][1]["exit_code"], 126);
}
