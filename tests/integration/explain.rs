//! Every leak explained, on sealed staging runs of the cached fixture buildpacks (laid out as
//! cloudfoundry/libbuildpack's packager lays out a cached buildpack): the manifest dependency each
//! disallowed flow was after, and the command that made it, in the JSON, the console, JUnit, and
//! the GitHub annotations and step summary. Needs root and Docker, like the other staging tests.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::{flow, Agc, Outcome};

/// The flow of this protocol to this remote port.
fn flow_to<'a>(flows: &'a [Value], proto: &str, port: u16) -> &'a Value {
    flows
        .iter()
        .find(|f| f["protocol"] == proto && f["remote_port"] == port)
        .unwrap_or_else(|| panic!("no {proto} flow to port {port} in {flows:#?}"))
}

#[test]
fn a_cached_buildpack_names_the_missing_dependency_and_the_command_behind_the_flow() {
    let agc = Agc::stage(&["cached-http"]).args(&["--stack", "cflinuxfs4"]);
    let summary = agc.dir().join("summary.md");
    let s = agc
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .expect_exit(1)
        .expect_verdict("fail")
        .expect_disallowed(&[flow("tcp", "198.18.0.1", Some(80), "supply")])
        .run();
    let j = s.json();
    assert_eq!(
        j["manifests"],
        json!([{
            "buildpack": 0,
            "stack": "cflinuxfs4",
            "dependencies": 3,
            "cached": 2,
            "missing": [{
                "name": "node",
                "version": "20.11.1",
                "uri": "http://deps.example.org/node/node-20.11.1-linux-x64.tgz"
            }]
        }])
    );
    let flows = s.flows();
    let http = flow_to(flows, "tcp", 80);
    assert_eq!(
        http["request"],
        "GET /node/node-20.11.1-linux-x64.tgz HTTP/1.1"
    );
    assert_eq!(
        http["dependency"],
        json!({
            "buildpack": 0,
            "name": "node",
            "version": "20.11.1",
            "uri": "http://deps.example.org/node/node-20.11.1-linux-x64.tgz",
            "cached": false,
            "matched_by": "url"
        }),
        "the exact URL of the request, though three entries share its host"
    );
    assert_eq!(http["candidates"], 1);
    // nc, started by the supply script (a shell running it), holds the client's socket.
    let p = &http["process"];
    assert_eq!(p["command"], json!(["nc", "deps.example.org", "80"]), "{p}");
    assert_eq!(
        p["parent"],
        json!([
            "/bin/sh",
            "/tmp/buildpacks/0/bin/supply",
            "/tmp/app",
            "/tmp/cache",
            "/tmp/deps",
            "0"
        ])
    );
    assert!(p["pid"].as_u64().is_some_and(|pid| pid > 1), "{p}");
    // The lookup before it (UDP to the sink's resolver) was made by the same nc.
    let dns = flow_to(flows, "udp", 53);
    assert_eq!(dns["allowed"], true);
    assert_eq!(dns["process"]["command"], p["command"], "{dns}");

    every_report_says(&s, &summary);
}

/// The console, the annotation, JUnit and the step summary of the cached-http run each name the
/// dependency and the command behind its flow.
fn every_report_says(s: &Outcome, summary: &Path) {
    let by = "by: nc deps.example.org 80 (under bin/supply)";
    let after = "→ node 20.11.1 from manifest.yml, not cached";
    let out = &s.stdout;
    assert!(
        out.contains(
            "  manifest: 3 dependencies for cflinuxfs4, 2 cached; missing: node 20.11.1\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(&format!("      {after}\n      {by}\n")),
        "{out}"
    );
    // The annotation says it all on its line.
    let annotation = out
        .lines()
        .find(|l| l.starts_with("::error title=airgap-check%3A disallowed egress::"))
        .unwrap_or_else(|| panic!("no annotation in {out}"));
    assert!(
        annotation.contains("::supply contacted tcp 198.18.0.1:80 (deps.example.org), ")
            && annotation.ends_with(&format!(" {after}; {by}")),
        "{annotation}"
    );
    // The phase's failure message, and its flow in system-out.
    let x = s.junit.as_deref().unwrap();
    assert!(
        x.contains("message=\"supply contacted 1 disallowed destination: tcp 198.18.0.1:80 (deps.example.org) (")
            && x.contains(&format!(" {after}; {by}\"")),
        "{x}"
    );
    assert!(
        x.contains(&format!(
            "GET /node/node-20.11.1-linux-x64.tgz HTTP/1.1\" {after}; {by}"
        )),
        "{x}"
    );
    s.assert_junit_valid();
    let md = std::fs::read_to_string(summary).unwrap();
    assert!(
        md.contains("manifest: 3 dependencies for cflinuxfs4, 2 cached; missing: node 20.11.1"),
        "{md}"
    );
    assert!(
        md.contains("node 20.11.1 from manifest.yml, not cached; by nc deps.example.org 80 (under bin/supply)"),
        "{md}"
    );
}

#[test]
fn an_https_download_is_matched_by_host_preferring_the_entry_not_cached() {
    let s = Agc::stage(&["cached-https"])
        .args(&["--stack", "cflinuxfs4"])
        .expect_exit(1)
        .expect_disallowed(&[flow("tcp", "198.18.0.1", Some(443), "supply")])
        .run();
    let tls = flow_to(s.flows(), "tcp", 443);
    assert_eq!(tls["names"], json!(["pkg.example.com"]));
    assert_eq!(tls["request"], Value::Null, "TLS: no URL to see");
    assert_eq!(
        tls["dependency"],
        json!({
            "buildpack": 0,
            "name": "node",
            "version": "20.11.1",
            "uri": "https://pkg.example.com/node/node-20.11.1-linux-x64.tgz",
            "cached": false,
            "matched_by": "host"
        })
    );
    assert_eq!(
        tls["candidates"], 2,
        "tool (cached) and node share the host"
    );
    assert_eq!(
        tls["process"]["command"],
        json!(["nc", "-w", "2", "pkg.example.com", "443"])
    );
    assert!(
        s.stdout.contains(
            "→ node 20.11.1 from manifest.yml, not cached (by host: the likeliest of 2 entries)"
        ),
        "{}",
        s.stdout
    );
}

#[test]
fn only_the_runs_stack_is_counted_and_matched() {
    // cflinuxfs3 has one dependency (node 18.19.0), not the node 20.11.1 that supply fetches.
    let s = Agc::stage(&["cached-http"])
        .args(&["--stack", "cflinuxfs3"])
        .expect_exit(1)
        .expect_disallowed(&[flow("tcp", "198.18.0.1", Some(80), "supply")])
        .run();
    let j = s.json();
    assert_eq!(j["manifests"][0]["dependencies"], 1);
    assert_eq!(j["manifests"][0]["cached"], 0);
    assert_eq!(j["manifests"][0]["missing"][0]["version"], "18.19.0");
    let http = flow_to(s.flows(), "tcp", 80);
    assert_eq!(
        (&http["dependency"], &http["candidates"]),
        (&Value::Null, &json!(0))
    );
    assert!(
        s.stdout
            .contains("→ no manifest.yml entry for cflinuxfs3 matches it"),
        "{}",
        s.stdout
    );
    // The fixture stack's own name (the default CF_STACK): the manifest has nothing for it, and
    // a note says so.
    let s = Agc::stage(&["cached-http"])
        .json_only()
        .expect_exit(1)
        .run();
    let notes = s.json()["notes"].to_string();
    assert!(
        notes.contains("manifest.yml lists no dependency for stack airgap-check-fixture-stack (it names cflinuxfs4, cflinuxfs3): is --stack right?"),
        "{notes}"
    );
}

#[test]
fn a_broken_manifest_never_stops_the_egress_check() {
    let s = Agc::stage(&["broken-manifest"])
        .args(&["--stack", "cflinuxfs4"])
        .expect_exit(0)
        .expect_verdict("pass")
        .expect_disallowed(&[])
        .run();
    let j = s.json();
    assert_eq!(j["manifests"], json!([]));
    let note = "buildpack 0 (fixtures/buildpacks/broken-manifest): manifest.yml cannot be read: line 8 column 3: dependencies[1]: missing field `uri`";
    assert!(j["notes"].to_string().contains(note), "{}", j["notes"]);
    assert!(s.stdout.contains(note), "{}", s.stdout);
}

#[test]
fn the_command_behind_a_tcp_attempt_is_the_child_of_the_phase_script() {
    // leak-http's finalize pipes a request into nc: nc holds the socket, the script is its parent.
    let s = Agc::stage(&["leak-http"])
        .expect_exit(1)
        .expect_disallowed(&[flow("tcp", "198.51.100.60", Some(80), "finalize")])
        .run();
    let http = flow_to(s.flows(), "tcp", 80);
    assert_eq!(
        http["process"]["command"],
        json!(["nc", "-w", "2", "198.51.100.60", "80"])
    );
    assert_eq!(
        http["process"]["parent"][1], "/tmp/buildpacks/0/bin/finalize",
        "{}",
        http["process"]
    );
    // No manifest: nothing to match, and nothing said about it.
    assert_eq!(s.json()["manifests"], json!([]));
    assert_eq!(
        (&http["dependency"], &http["candidates"]),
        (&Value::Null, &json!(0))
    );
    let by = "by: nc -w 2 198.51.100.60 80 (under bin/finalize)";
    assert!(s.stdout.contains(&format!("      {by}\n")), "{}", s.stdout);
    assert!(!s.stdout.contains("→"), "{}", s.stdout);
    assert!(s.junit.as_deref().unwrap().contains(by));
}

#[test]
fn each_app_of_several_explains_its_own_flows() {
    let other = tempfile::tempdir().unwrap();
    for f in ["index.html", "Procfile"] {
        std::fs::copy(
            crate::support::root().join("fixtures/apps/hello").join(f),
            other.path().join(f),
        )
        .unwrap();
    }
    let s = Agc::stage(&["cached-http"])
        .arg("--app")
        .arg(other.path())
        .args(&["--stack", "cflinuxfs4"])
        .json_only()
        .expect_exit(1)
        .run();
    let runs = s.json()["runs"]
        .as_array()
        .expect("runs[] for several apps");
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert_eq!(r["manifests"][0]["missing"][0]["name"], "node", "{r}");
        let flows = r["flows"].as_array().unwrap();
        let http = flow_to(flows, "tcp", 80);
        assert_eq!(http["dependency"]["version"], "20.11.1", "{r}");
        assert_eq!(
            http["process"]["command"],
            json!(["nc", "deps.example.org", "80"]),
            "each run's own sinkhole attributes its own flows: {r}"
        );
    }
}

/// A staging run of a buildpack whose manifest holds ESC, BEL and U+202E in its names and
/// credentials in its uri, whose supply downloads through a shell holding credentials in its
/// argv, beside a buildpack whose manifest names only a hostile stack: the console (colour
/// forced, as a terminal gets it), the JUnit report, the annotations and the step summary show
/// none of those bytes and neither secret; the JSON report neither secret.
#[test]
fn hostile_manifests_and_argv_are_escaped_and_redacted_in_every_report() {
    use crate::inspect::{assert_no_hostile_bytes, hostile_buildpack, HOSTILE, SECRETS};
    let bp = hostile_buildpack();
    // nc's parent: `sh -c SCRIPT curl -u user:SECRET URL-WITH-SECRETS`. The request is for the
    // node entry's exact URL, its token too (userinfo is not sent).
    let supply = r#"#!/bin/sh
set -e
echo "-----> Downloading node"
sh -c 'printf "GET /node/node%%1B]0;pwn%%07%%E2%%80%%AE.tgz?token=tok3nvalue&v=1 HTTP/1.1\r\nHost: deps.example.org\r\n\r\n" | nc deps.example.org 80 >/dev/null || :' \
  curl -u user:hunter2pw "http://user:hunter2pw@deps.example.org/node/x.tgz?token=tok3nvalue"
"#;
    std::fs::write(bp.path().join("bin/supply"), supply).unwrap();
    let other = tempfile::tempdir().unwrap();
    let clean = crate::support::root().join("fixtures/buildpacks/clean");
    std::fs::create_dir_all(other.path().join("bin")).unwrap();
    for f in ["detect", "supply", "finalize", "release"] {
        std::fs::copy(clean.join("bin").join(f), other.path().join("bin").join(f)).unwrap();
    }
    std::fs::write(
        other.path().join("manifest.yml"),
        "dependencies:\n- {name: x, version: '1', uri: 'http://h/x', cf_stacks: [\"only\\e]0;pwn\\a\\u202E\"]}\n",
    )
    .unwrap();
    let agc = Agc::stage(&[other.path().to_str().unwrap(), bp.path().to_str().unwrap()])
        .args(&["--stack", "cflinuxfs4"]);
    let summary = agc.dir().join("summary.md");
    let s = agc
        .env("CLICOLOR_FORCE", "1")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .expect_exit(1)
        .expect_disallowed(&[flow("tcp", "198.18.0.1", Some(80), "supply")])
        .run();
    assert_no_hostile_bytes("the console", &s.stdout);
    assert_no_hostile_bytes("JUnit", s.junit.as_deref().unwrap());
    assert_no_hostile_bytes(
        "the step summary",
        &std::fs::read_to_string(&summary).unwrap(),
    );
    let json = s.json().to_string();
    for secret in SECRETS {
        assert!(
            !json.contains(secret),
            "the JSON report holds {secret}: {json}"
        );
    }
    let out = &s.stdout;
    // The note naming the other buildpack's stacks, and the run's manifest summary, escaped.
    assert!(
        out.contains("(it names only\\u{1b}]0;pwn\\u{7}\\u{202e}): is --stack right?"),
        "{out}"
    );
    assert!(
        out.contains("missing: node\\u{1b}]0;pwn\\u{7}\\u{202e} 20.11.1"),
        "{out}"
    );
    // The command behind the flow: nc under the shell whose argv held the credentials.
    assert!(
        out.contains("by: nc deps.example.org 80 (under sh -c "),
        "{out}"
    );
    // (Cut at 160 characters, inside the script; the JSON has the whole argv.)
    assert!(out.contains(".tgz?token=REDACTED&v=1 HTTP/1.1"), "{out}");
    let j = s.json();
    let http = flow_to(s.flows(), "tcp", 80);
    assert_eq!(
        http["dependency"]["name"],
        format!("node{HOSTILE}"),
        "matched by host, raw in JSON"
    );
    assert!(
        http["dependency"]["uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://-redacted-@deps.example.org/")),
        "{http}"
    );
    assert_eq!(http["process"]["parent"][4], "-u", "{http}");
    assert_eq!(http["process"]["parent"][5], "REDACTED", "{http}");
    assert_eq!(
        http["process"]["parent"][6],
        "http://-redacted-@deps.example.org/node/x.tgz?token=REDACTED",
        "{http}"
    );
    assert!(
        http["request"]
            .as_str()
            .is_some_and(|r| r.contains("?token=REDACTED&v=1 HTTP/1.1")),
        "{http}"
    );
    assert!(
        j["manifests"]
            .to_string()
            .contains("-redacted-@deps.example.org"),
        "{j}"
    );
}

#[test]
fn an_allowed_flow_names_its_command_but_no_dependency() {
    // cached-http's supply fetches node from deps.example.org: allowed here, so the run passes and
    // nothing is explained, though the command behind it is still told.
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("mirror.yaml");
    std::fs::write(
        &allow,
        "allow:\n  - name: dns\n    protocol: udp\n    ports: [53]\n  - name: deps\n    hosts: [deps.example.org]\n    protocol: tcp\n    ports: [80]\n",
    )
    .unwrap();
    let s = Agc::stage(&["cached-http"])
        .args(&["--stack", "cflinuxfs4"])
        .arg("--allowlist")
        .arg(allow.display().to_string())
        .json_only()
        .expect_exit(0)
        .expect_verdict("pass")
        .run();
    let http = flow_to(s.flows(), "tcp", 80);
    assert_eq!(http["rule"], "deps", "{http}");
    assert_eq!(
        (&http["dependency"], &http["candidates"]),
        (&Value::Null, &json!(0)),
        "an allowed flow needs no explaining: {http}"
    );
    assert_eq!(
        http["process"]["command"],
        json!(["nc", "deps.example.org", "80"]),
        "{http}"
    );
    // Attribution started: no note says otherwise.
    let notes = s.json()["notes"].to_string();
    assert!(!notes.contains("could not be told"), "{notes}");
}
