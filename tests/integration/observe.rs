//! Integration tests of observe mode (`--network bridge|NAME`), `watch CONTAINER` and `--filter`:
//! the real binary and the real Docker engine. Every packet goes to a container the test started on
//! a network the test created (subnets in 198.18.0.0/15, outside the private ranges, so the default
//! allowlist flags them), or to that network's own gateway on this host (the canary). Needs root
//! and Docker, like tests/stage.rs.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::{ensure_stack, flow_, prune_lock, root, Agc, STACK_IMAGE};

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs")
}

fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A Docker network of the test's own, with containers on it; all removed on drop.
struct TestNet {
    name: String,
    /// "198.18.N" — the /24 this network holds.
    prefix: String,
    containers: Vec<String>,
}

impl TestNet {
    /// `n` picks the subnet (198.18.n.0/24): one per test, so tests can run in parallel.
    fn new(n: u8) -> TestNet {
        ensure_stack();
        let name = format!("agc-test-{}-{n}", std::process::id());
        let prefix = format!("198.18.{n}");
        let _ = docker(&["network", "rm", &name]);
        docker_ok(&[
            "network",
            "create",
            "--subnet",
            &format!("{prefix}.0/24"),
            "--label",
            "io.airgap-check.test=1",
            &name,
        ]);
        TestNet {
            name,
            prefix,
            containers: Vec::new(),
        }
    }

    fn addr(&self, host: u8) -> String {
        format!("{}.{host}", self.prefix)
    }

    /// Start a container of the fixture stack on this network at .host, running `script`.
    fn run(&mut self, role: &str, host: u8, script: &str) -> String {
        let name = format!("{}-{role}", self.name);
        let _ = docker(&["rm", "-f", &name]);
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &self.name,
            "--ip",
            &self.addr(host),
            "--label",
            "io.airgap-check.test=1",
            "--entrypoint",
            "/bin/sh",
            STACK_IMAGE,
            "-c",
            script,
        ]);
        self.containers.push(name.clone());
        name
    }

    /// An HTTP responder at .10 (busybox httpd).
    fn responder(&mut self) -> String {
        self.run(
            "responder",
            10,
            "mkdir -p /www && echo hello-from-the-responder > /www/index.html && exec httpd -f -p 80 -h /www",
        )
    }

    /// A client at .host that asks the responder for a page with this Host every second.
    fn client(&mut self, host: u8, host_header: &str) -> String {
        let script = format!(
            "while true; do printf 'GET /index.html HTTP/1.0\\r\\nHost: {host_header}\\r\\n\\r\\n' | nc -w 2 {} 80 >/dev/null; sleep 1; done",
            self.addr(10)
        );
        self.run("client", host, &script)
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        let _ = docker(&["network", "rm", &self.name]);
    }
}

/// A second network of the test's own that a container of a [`TestNet`] is connected to;
/// disconnected and removed on drop.
struct SecondNet {
    name: String,
    container: String,
}

impl SecondNet {
    fn connect(name: String, subnet: &str, container: &str) -> SecondNet {
        let _ = docker(&["network", "rm", &name]);
        docker_ok(&[
            "network",
            "create",
            "--subnet",
            subnet,
            "--label",
            "io.airgap-check.test=1",
            &name,
        ]);
        let net = SecondNet {
            name,
            container: container.to_string(),
        };
        docker_ok(&["network", "connect", &net.name, container]);
        net
    }
}

impl Drop for SecondNet {
    fn drop(&mut self) {
        let _ = docker(&["network", "disconnect", "-f", &self.name, &self.container]);
        let _ = docker(&["network", "rm", &self.name]);
    }
}

fn stage_args<'a>(bp: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--app",
        "fixtures/apps/hello",
        "--buildpack",
        bp,
        "--stack-image",
        STACK_IMAGE,
        "--timeout",
        "120s",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn observe_on_a_per_run_bridge_passes_a_clean_buildpack_and_removes_its_network() {
    let r = Agc::stage(&["clean"])
        .args(&["--network", "bridge"])
        .expect_exit(0)
        // The canary and the gateway's answer to it are not flows.
        .expect_disallowed(&[])
        .run();
    let j = r.json();
    let net = j["stage"]["network"].as_str().unwrap();
    assert!(net.starts_with("airgap-check-"), "{net}");
    assert_eq!(j["capture"]["canary_seen"], true);
    assert_eq!(j["capture"]["dropped"], 0);
    let point = j["capture"]["point"].as_str().unwrap();
    assert!(point.starts_with("host end veth"), "{point}");
    assert!(r.stderr.contains("observing on network airgap-check-"));
    // Nothing of the run is left (the builder checked); nor the network, by its name.
    let nets = docker_ok(&["network", "ls", "-q", "--filter", &format!("name={net}")]);
    assert!(nets.is_empty(), "the per-run network is gone: {nets}");
}

#[test]
fn observe_on_a_network_of_ones_own_catches_a_fetch_with_its_name_and_phase() {
    let mut net = TestNet::new(1);
    net.responder();
    let (addr, env_addr) = (net.addr(10), format!("FETCH_ADDR={}", net.addr(10)));
    let r = Agc::stage(&["fetch-env"])
        .args(&[
            "--network",
            &net.name,
            "--env",
            &env_addr,
            "--env",
            "FETCH_HOST=mirror.example.org",
        ])
        .expect_exit(1)
        .run();
    let j = r.json();
    assert_eq!(j["stage"]["network"], net.name.as_str());
    let flows: Vec<&Value> = j["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["remote"] == addr.as_str())
        .collect();
    assert_eq!(flows.len(), 1, "{flows:?}");
    let f = flows[0];
    assert_eq!(f["remote_port"], 80);
    assert_eq!(f["phase"], "supply");
    assert_eq!(f["allowed"], false);
    assert_eq!(f["names"][0], "mirror.example.org");
    // The responder really answered: this ran on a real network, not a sinkhole.
    assert_eq!(f["state"], "data");
    assert!(f["packets_in"].as_u64().unwrap() > 0, "{f}");
    assert!(r.stdout.contains("mirror.example.org"), "{}", r.stdout);
    r.assert_junit_valid();
    // The network was the user's: it stays; the run's own things do not.
    assert_eq!(
        docker_ok(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("name=^{}$", net.name)
        ])
        .len(),
        12
    );
}

#[test]
fn filter_limits_what_is_captured_and_says_so() {
    let mut net = TestNet::new(2);
    net.responder();
    let env_addr = format!("FETCH_ADDR={}", net.addr(10));
    let r = Agc::stage(&["fetch-env"])
        .args(&[
            "--network",
            &net.name,
            "--env",
            &env_addr,
            "--filter",
            "not tcp port 80",
        ])
        // The fetch is outside the filter: unseen, so the verdict covers the rest only, and
        // says so.
        .expect_exit(0)
        .expect_disallowed(&[])
        .run();
    let j = r.json();
    assert_eq!(j["capture"]["filter"], "not tcp port 80");
    assert!(
        r.stdout.contains("only packets that pass the filter"),
        "{}",
        r.stdout
    );
    // A filter that also hides the canary cannot give a pass.
    let r = Agc::stage(&["clean"])
        .args(&["--network", &net.name, "--filter", "tcp"])
        .expect_exit(3)
        .run();
    assert_eq!(r.json()["capture"]["canary_seen"], false);
}

#[test]
fn a_bad_filter_or_network_is_exit_2_with_one_line_and_nothing_created() {
    ensure_stack();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            stage_args("fixtures/buildpacks/clean", &["--filter", "port nonsense"]),
            "--filter \"port nonsense\"",
        ),
        (
            vec![
                "analyze",
                "--pcap",
                "fixtures/pcap/leaky.pcap",
                "--filter",
                "tcp and and",
            ],
            "libpcap says",
        ),
        (
            vec!["watch", "whatever", "--filter", "host 999.1.1.1"],
            "expected a libpcap filter expression",
        ),
        (
            stage_args("fixtures/buildpacks/clean", &["--network", "host"]),
            "--network \"host\"",
        ),
        (
            stage_args(
                "fixtures/buildpacks/clean",
                &["--network", "no-such-net-agc"],
            ),
            "no Docker network has this name",
        ),
        (
            vec!["watch", "no-such-container-agc"],
            "no container has this name or id",
        ),
        (
            vec!["watch", "x", "--duration", "soon"],
            "--duration \"soon\"",
        ),
    ];
    for (args, want) in cases {
        // Whatever got as far as a run id left nothing carrying it, nor its pid: the builder
        // checks.
        let out = Agc::new(&args)
            .context(format!("{args:?}"))
            .expect_exit(2)
            .run();
        let err = &out.stderr;
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(
            err.lines()
                .filter(|l| l.starts_with("airgap-check: error:"))
                .count(),
            1,
            "{args:?}: one error line: {err}"
        );
        assert!(
            !err.contains("building"),
            "{args:?}: nothing was built: {err}"
        );
    }
}

#[test]
fn watch_judges_a_running_container_until_duration() {
    let mut net = TestNet::new(3);
    net.responder();
    let client = net.client(11, "watch.example.org");
    let r = Agc::watch(&client)
        .args(&["--duration", "3s"])
        .expect_exit(1)
        .run();
    let j = r.json();
    assert_eq!(j["mode"], "watch");
    assert_eq!(j["capture"]["canary_seen"], true);
    assert!(j["capture"]["point"]
        .as_str()
        .unwrap()
        .starts_with("host end veth"));
    assert_eq!(j["local"][0], net.addr(11).as_str());
    let d = r.disallowed();
    assert!(d.len() >= 2, "a request a second for 3 s: {d:?}");
    for f in &d {
        assert_eq!(f, &flow_("tcp", &net.addr(10), Some(80)));
    }
    for names in r.disallowed_names() {
        assert_eq!(names, vec!["watch.example.org".to_string()]);
    }
    assert!(r.stdout.contains("until --duration 3s"), "{}", r.stdout);
    r.assert_junit_valid();
    // The pcap it wrote judges the same offline.
    let out = Agc::new(&["analyze", "--pcap"])
        .arg(r.pcap_path())
        .expect_exit(1)
        .run();
    assert!(out.stdout.contains("watch.example.org"), "{}", out.stdout);
    // Watching does not disturb the container.
    assert_eq!(
        docker_ok(&["inspect", "-f", "{{.State.Running}}", &client]),
        "true"
    );
}

#[test]
fn watch_ends_when_the_container_exits() {
    let mut net = TestNet::new(4);
    net.responder();
    let script = format!(
        "sleep 2; printf 'GET / HTTP/1.0\\r\\nHost: once.example.org\\r\\n\\r\\n' | nc -w 2 {} 80 >/dev/null; sleep 1; exit 7",
        net.addr(10)
    );
    let c = net.run("once", 12, &script);
    let t = Instant::now();
    let r = Agc::watch(&c)
        .args(&["--duration", "60s"])
        .expect_exit(1)
        .run();
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(
        r.stdout.contains("the container exited (code 7)"),
        "{}",
        r.stdout
    );
    // Its interface went with it, and that is not a capture failure.
    assert!(r.json()["capture"]["dropped"].is_u64());
    let d = r.disallowed();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        r.disallowed_names(),
        vec![vec!["once.example.org".to_string()]]
    );
}

#[test]
fn watch_stops_on_ctrl_c_and_a_quiet_container_passes() {
    let mut net = TestNet::new(5);
    let quiet = net.run("quiet", 13, "exec sleep 300");
    // The canary proves the capture saw the container; nothing else came: an earned pass.
    let mut run = Agc::watch(&quiet).json_only().expect_exit(0).spawn();
    // Wait for it to be armed, then Ctrl-C.
    std::thread::sleep(Duration::from_secs(3));
    run.signal(Signal::SIGINT);
    run.wait(Duration::from_secs(20));
    let r = run.finish();
    assert!(r.stdout.contains("until Ctrl-C"), "{}", r.stdout);
    assert_eq!(r.json()["capture"]["canary_seen"], true);
}

#[test]
fn watch_captures_inside_the_namespace_when_the_container_has_two_interfaces() {
    let mut net = TestNet::new(6);
    net.responder();
    let client = net.client(14, "twoif.example.org");
    let second = SecondNet::connect(format!("{}-second", net.name), "198.19.6.0/24", &client);
    let r = Agc::watch(&client)
        .args(&["--duration", "3s"])
        .expect_exit(1)
        .run();
    drop(second);
    let j = r.json();
    let point = j["capture"]["point"].as_str().unwrap();
    assert!(
        point.contains("inside the container's network namespace")
            && point.contains("2 network interfaces"),
        "{point}"
    );
    assert_eq!(j["capture"]["link_type"], "LINUX_SLL");
    assert_eq!(j["capture"]["canary_seen"], true);
    assert!(r
        .disallowed_names()
        .iter()
        .any(|n| n == &vec!["twoif.example.org".to_string()]));
}

#[test]
fn prune_removes_a_network_a_dead_run_left() {
    ensure_stack();
    let _prune = prune_lock();
    // A network labelled as a killed run's (a pid that is not airgap-check) goes; a live one stays.
    let dead = "agc-test-prune-dead";
    let _ = docker(&["network", "rm", dead]);
    docker_ok(&[
        "network",
        "create",
        "--label",
        "io.airgap-check=1",
        "--label",
        "io.airgap-check.run=deadbeef0000",
        "--label",
        "io.airgap-check.pid=999999999",
        dead,
    ]);
    let out = Agc::prune().expect_exit(0).run();
    assert!(out.stdout.contains("removed network"), "{}", out.stdout);
    assert!(docker_ok(&["network", "ls", "-q", "--filter", &format!("name=^{dead}$")]).is_empty());
}

#[test]
fn watch_is_inconclusive_when_the_capture_dies_under_a_running_container() {
    // The container's interface is replaced mid-watch (disconnect, reconnect): the capture on the
    // old one ends, the container goes on. That is not the end of the container, and no pass.
    let mut net = TestNet::new(7);
    let quiet = net.run("swapped", 15, "exec sleep 300");
    let run = Agc::watch(&quiet)
        .args(&["--duration", "20s"])
        .json_only()
        .expect_exit(3)
        .expect_verdict("inconclusive")
        .spawn();
    std::thread::sleep(Duration::from_secs(2));
    docker_ok(&["network", "disconnect", &net.name, &quiet]);
    docker_ok(&["network", "connect", &net.name, &quiet]);
    let r = run.finish();
    assert!(
        r.stdout
            .contains("the capture failed while the container still ran"),
        "{}",
        r.stdout
    );
}

#[test]
fn frames_sent_past_a_capture_inside_the_namespace_are_not_a_pass() {
    // A container with two interfaces is captured from inside its namespace; a raw socket with
    // PACKET_QDISC_BYPASS sends past every capture there. Its interface counters give it away.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bypass");
    let cc = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(root().join("tests/integration/support/bypass.c"))
        .output()
        .expect("gcc runs");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let mut net = TestNet::new(8);
    // The frames go to the responder's address: a host of the test's own.
    net.responder();
    let name = format!("{}-raw", net.name);
    let _ = docker(&["rm", "-f", &name]);
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--user",
        "root",
        "--network",
        &net.name,
        "--ip",
        &net.addr(16),
        "--label",
        "io.airgap-check.test=1",
        "--entrypoint",
        "/bin/sh",
        STACK_IMAGE,
        "-c",
        "exec sleep 300",
    ]);
    net.containers.push(name.clone());
    let second = SecondNet::connect(format!("{}-second", net.name), "198.19.8.0/24", &name);
    docker_ok(&["cp", bin.to_str().unwrap(), &format!("{name}:/bypass")]);
    let send = |bypass: &str| {
        docker_ok(&[
            "exec",
            &name,
            "/bypass",
            "eth0",
            &net.addr(16),
            &net.addr(10),
            bypass,
            "ff:ff:ff:ff:ff:ff",
        ])
    };
    let watch = |bypass: &'static str, exit: i32| {
        let run = Agc::watch(&name)
            .args(&["--duration", "4s"])
            .json_only()
            .expect_exit(exit)
            .spawn();
        std::thread::sleep(Duration::from_secs(2));
        send(bypass);
        run.finish()
    };
    // Without the bypass the frames are seen, and judged: 198.18.8.10 is not allowed.
    let r = watch("0", 1);
    assert_eq!(r.json()["capture"]["link_type"], "LINUX_SLL");
    // With it they are not seen; the counters say something was sent: not a pass.
    let r = watch("1", 3);
    drop(second);
    assert!(
        r.stdout
            .contains("more than the capture inside its namespace saw"),
        "{}",
        r.stdout
    );
}
