//! `analyze`: the real `airgap-check` binary on committed captures (fixtures/pcap, made by
//! `make fixtures`) and on the tcpdump project's 830 regression captures
//! (../shared/corpus/tcpdump-tests).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{fixture, flow_, root, Agc, Outcome};

#[test]
fn clean_capture_passes_with_housekeeping_counted_not_judged() {
    let o = Agc::analyze(&fixture("clean.pcap"))
        .expect_exit(0)
        .expect_verdict("pass")
        .run();
    let j = o.json();
    assert_eq!(j["summary"]["flows"], 4);
    assert_eq!(j["summary"]["disallowed"], 0);
    let hk = &j["capture"]["housekeeping"];
    assert_eq!(
        (
            hk["arp"].as_u64(),
            hk["igmp"].as_u64(),
            hk["ndp"].as_u64(),
            hk["mld"].as_u64()
        ),
        (Some(2), Some(1), Some(1), Some(1))
    );
    assert_eq!(
        (
            j["capture"]["truncated"].as_u64(),
            j["capture"]["invalid"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(j["notes"], serde_json::json!([]));
    assert_eq!(j["capture"]["dropped"], Value::Null);
    assert_eq!(j["capture"]["canary_seen"], Value::Null);
    assert_eq!(j["local"], serde_json::json!(["10.1.0.2", "fd00:1::2"]));
    assert_eq!(o.flow("udp", "10.1.0.1", Some(53))["rule"], "dns");
    assert_eq!(o.flow("tcp", "10.1.0.1", Some(53))["rule"], "dns over tcp");
    let web = o.flow("tcp", "192.168.5.10", Some(8080));
    assert_eq!(web["rule"], "internal networks");
    assert_eq!(web["state"], "data");
    assert_eq!(web["src"], "10.1.0.2");
    assert_eq!(o.flow("tcp", "fd00:2::10", Some(443))["state"], "handshake");
    assert!(o.stdout.contains("PASS"), "{}", o.stdout);
    o.assert_junit_valid();
}

#[test]
fn leaky_capture_fails_with_every_leak_named() {
    let o = Agc::analyze(&fixture("leaky.pcap"))
        .expect_exit(1)
        .expect_verdict("fail")
        .expect_disallowed(&[
            flow_("icmp", "198.51.100.10", None),
            flow_("other/47", "203.0.113.20", None),
            flow_("tcp", "169.254.169.254", Some(80)),
            flow_("tcp", "198.51.100.7", Some(80)),
            flow_("tcp", "2001:db8::7", Some(80)),
            flow_("tcp", "203.0.113.5", Some(443)),
            flow_("tcp", "203.0.113.5", Some(443)),
            flow_("udp", "192.0.2.50", Some(514)),
            flow_("udp", "203.0.113.9", Some(5000)),
            flow_("udp", "8.8.8.8", Some(123)),
        ])
        .run();
    // What TCP got to, per flow.
    let syn = o.flows().iter().find(|f| f["src_port"] == 41000).unwrap();
    assert_eq!(
        (syn["state"].as_str(), syn["packets"].as_u64()),
        (Some("syn_only"), Some(3))
    );
    assert_eq!(o.flow("tcp", "198.51.100.7", Some(80))["state"], "refused");
    assert_eq!(o.flow("tcp", "169.254.169.254", Some(80))["state"], "data");
    assert_eq!(o.flow("icmp", "198.51.100.10", None)["state"], "answered");
    assert_eq!(o.flow("udp", "8.8.8.8", Some(123))["state"], "unanswered");
    // The snaplen-cut ACK still carried data on the wire.
    let cut = o.flows().iter().find(|f| f["src_port"] == 41010).unwrap();
    assert_eq!(cut["state"], "data");
    // Three fragments, last one first, make one flow with the first fragment's ports.
    let frag = o.flow("udp", "203.0.113.9", Some(5000));
    assert_eq!(frag["packets"], 3);
    assert_eq!(frag["src_port"], 41005);
    assert_eq!(o.json()["capture"]["fragments"], 3);
    // GRE is protocol "other" with its number; ICMP and other have null ports.
    let gre = o.flow("other", "203.0.113.20", None);
    assert_eq!(gre["protocol_number"], 47);
    assert_eq!(gre["src_port"], Value::Null);
    assert_eq!(gre["dst_port"], Value::Null);
    // Allowed: the incoming private connection (judged on its remote end), DNS over v4 and v6.
    let inbound = o.flow("tcp", "192.168.5.10", Some(50000));
    assert_eq!(
        (inbound["allowed"].as_bool(), inbound["dst_port"].as_u64()),
        (Some(true), Some(22))
    );
    assert_eq!(o.flow("udp", "2001:db8::53", Some(53))["rule"], "dns");
    // Broken frames are counted, never fatal, and said: what they held is unknown.
    let cap = &o.json()["capture"];
    assert_eq!(cap["truncated"], 1, "{cap}");
    assert_eq!(cap["invalid"], 1, "{cap}");
    assert_eq!(cap["non_ip"], 1, "{cap}");
    assert_eq!(
        o.json()["notes"],
        serde_json::json!([
            "1 frame was cut short (snaplen?) and could not be judged",
            "1 frame had invalid headers and could not be judged"
        ])
    );
    // Every field the README documents, on every flow.
    for f in o.flows() {
        for k in [
            "protocol",
            "src",
            "src_port",
            "dst",
            "dst_port",
            "packets",
            "bytes",
            "first_seen",
            "last_seen",
            "names",
            "allowed",
            "rule",
            "phase",
            "state",
        ] {
            assert!(f.get(k).is_some(), "flow lacks {k}: {f}");
        }
        assert_eq!(f["phase"], Value::Null);
    }
    // Console: the table names destination, port and state; a one-line verdict.
    assert!(
        o.stdout.contains("169.254.169.254") && o.stdout.contains("syn_only"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("FAIL: 10 disallowed flows to 9 destinations"),
        "{}",
        o.stdout
    );
    assert!(
        !o.stdout.contains('\u{1b}'),
        "no colour when not on a terminal"
    );
    // JUnit: a failure per disallowed destination, valid against the schema.
    let x = o.junit.as_deref().unwrap();
    assert_eq!(x.matches("<failure").count(), 9, "{x}");
    assert!(x.contains("name=\"tcp 203.0.113.5:443\""), "{x}");
    assert!(x.contains("name=\"tcp [2001:db8::7]:80\""), "{x}");
    o.assert_junit_valid();
}

#[test]
fn pcapng_reads_the_same_as_pcap() {
    let a = Agc::analyze(&fixture("leaky.pcap")).expect_exit(1).run();
    let b = Agc::analyze(&fixture("leaky.pcapng")).expect_exit(1).run();
    assert_eq!(a.json()["flows"], b.json()["flows"]);
}

#[test]
fn every_supported_link_type_gives_the_same_flows() {
    for name in [
        "sll.pcap",
        "sll2.pcap",
        "raw.pcap",
        "null.pcap",
        "loop.pcap",
        "vlan-qinq.pcap",
    ] {
        let o = Agc::analyze(&fixture(name))
            .expect_exit(1)
            .expect_disallowed(&[
                flow_("tcp", "2001:db8::7", Some(80)),
                flow_("tcp", "203.0.113.5", Some(443)),
            ])
            .run();
        assert_eq!(
            o.flow("udp", "10.1.0.1", Some(53))["allowed"],
            true,
            "{name}"
        );
    }
}

#[test]
fn allowlist_file_changes_the_verdict() {
    let o = Agc::analyze(&fixture("leaky.pcap"))
        .allowlist_text(
            "allow:\n  - name: everything v4\n    cidrs: [0.0.0.0/0]\n  - name: everything v6\n    cidrs: [\"::/0\"]\n",
        )
        // Nothing is disallowed any more; but leaky.pcap's truncated and invalid frames could
        // have held anything, so the best it can be is inconclusive.
        .expect_exit(3)
        .expect_disallowed(&[])
        .run();
    assert_eq!(o.json()["summary"]["disallowed"], 0);
    assert!(o.json()["allowlist"]
        .as_str()
        .unwrap()
        .ends_with("allow.yaml"));

    Agc::analyze(&fixture("clean.pcap"))
        .arg("--allowlist")
        .arg("allowlists/strict.yaml")
        // Strict: only DNS to private resolvers; the internal web and v6 flows now fail.
        .expect_exit(1)
        .expect_disallowed(&[
            flow_("tcp", "192.168.5.10", Some(8080)),
            flow_("tcp", "fd00:2::10", Some(443)),
        ])
        .run();
}

#[test]
fn local_option_decides_the_remote_end() {
    // Name the outside host as "local": the remote ends flip to 10.1.0.2, which is private.
    let o = Agc::analyze(&fixture("sll.pcap"))
        .arg("--local")
        .arg("203.0.113.5")
        // The IPv6 flow to 2001:db8::7 is still disallowed.
        .expect_exit(1)
        .run();
    let f = o.flow("tcp", "10.1.0.2", Some(42000));
    assert_eq!(f["allowed"], true);
    let o = Agc::analyze(&fixture("sll.pcap"))
        .arg("--local")
        .arg("10.0.0.0/33")
        .no_reports()
        .expect_exit(2)
        .run();
    assert!(o.stderr.contains("10.0.0.0/33"), "{}", o.stderr);
}

#[test]
fn port_scan_is_one_flow_per_port() {
    let o = Agc::analyze(&fixture("scan.pcap")).expect_exit(1).run();
    assert_eq!(o.json()["summary"]["flows"], 1000);
    assert_eq!(
        o.flow("tcp", "198.51.100.20", Some(22))["state"],
        "handshake"
    );
    assert_eq!(o.flow("tcp", "198.51.100.20", Some(23))["state"], "refused");
    // The console stays short; JSON has everything.
    assert!(o.stdout.lines().count() < 60, "{}", o.stdout);
    assert!(o
        .stdout
        .contains("more disallowed destinations (every flow is in --json)"));
    o.assert_junit_valid();
}

#[test]
fn bad_inputs_exit_2_with_one_clear_line_and_leave_nothing() {
    let cases: Vec<(Agc, &str)> = vec![
        (
            Agc::analyze("fixtures/pcap/does-not-exist.pcap"),
            "does-not-exist.pcap",
        ),
        (
            Agc::analyze(&fixture("not-a-capture.pcap")),
            "not-a-capture.pcap",
        ),
        (
            Agc::analyze(&fixture("unsupported-linktype.pcap")),
            "unsupported link type",
        ),
        (
            Agc::analyze(&fixture("clean.pcap"))
                .allowlist_text("allow:\n  - name: x\n    ports: [99999]\n"),
            "99999",
        ),
        (
            Agc::analyze(&fixture("clean.pcap"))
                .arg("--allowlist")
                .arg("/nonexistent/a.yaml"),
            "/nonexistent/a.yaml",
        ),
        (
            Agc::analyze(&fixture("clean.pcap")).allowlist_text(&format!("allow: {}", "[".repeat(5000))),
            "line 1: nested more than 64 levels deep",
        ),
        (
            Agc::analyze(&fixture("clean.pcap"))
                .allowlist_text(&format!("allow: []\n#{}\n", "x".repeat(1 << 20))),
            "larger than 1 MiB",
        ),
        (
            Agc::analyze(&fixture("clean.pcap")).allowlist_text(
                "allow:\n  - name: a\n    protocol: udp\n  - name: b\n    protocol: icmp\n    ports: [7]\n",
            ),
            "line 4 column 5: allow[1] (rule \"b\"): `ports` with protocol icmp:",
        ),
        (
            Agc::analyze(&fixture("clean.pcap"))
                .no_reports()
                .arg("--json")
                .arg("/nonexistent-dir/r.json"),
            "/nonexistent-dir/r.json",
        ),
        (
            Agc::analyze(&fixture("clean.pcap")).no_reports().arg("--bogus"),
            "--bogus",
        ),
    ];
    for (run, needle) in cases {
        let o = run.expect_exit(2).context(needle).run();
        let dir = o.dir().to_path_buf();
        assert!(o.stderr.contains(needle), "{needle}: {}", o.stderr);
        assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
        if !needle.starts_with("--") {
            assert_eq!(
                o.stderr.trim_end().lines().count(),
                1,
                "one line: {}",
                o.stderr
            );
        }
        // No report, no temporary file left in the output directory.
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "allow.yaml")
            .collect();
        assert!(left.is_empty(), "{needle}: left behind {left:?}");
    }
}

#[test]
fn unsupported_link_type_is_named() {
    let o = Agc::analyze(&fixture("unsupported-linktype.pcap"))
        .no_reports()
        .expect_exit(2)
        .run();
    assert!(o.stderr.contains("(147)"), "{}", o.stderr);
}

#[test]
fn empty_capture_is_inconclusive_not_pass() {
    let o = Agc::analyze(&fixture("empty.pcap"))
        .expect_exit(3)
        .expect_verdict("inconclusive")
        .run();
    assert!(o.stdout.contains("INCONCLUSIVE"));
    assert!(o.junit.as_deref().unwrap().contains("<error"));
    o.assert_junit_valid();
}

#[test]
fn capture_cut_mid_record_is_inconclusive_unless_it_already_fails() {
    let dir = tempfile::tempdir().unwrap();
    let clean = std::fs::read(root().join(fixture("clean.pcap"))).unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &clean[..clean.len() - 7]).unwrap();
    let o = Agc::analyze(cut.to_str().unwrap()).expect_exit(3).run();
    assert!(o.json()["capture"]["cut_short"].is_string());
    let leaky = std::fs::read(root().join(fixture("leaky.pcap"))).unwrap();
    std::fs::write(&cut, &leaky[..leaky.len() - 7]).unwrap();
    let o = Agc::analyze(cut.to_str().unwrap()).expect_exit(1).run();
    // The verdict is a fail, but the capture testcase is still red: it was cut.
    let x = o.junit.as_deref().unwrap();
    let capture = &x[x.find("<testcase name=\"capture\"").unwrap()..];
    let capture = &capture[..capture.find("</testcase>").unwrap()];
    assert!(
        capture.contains("<error type=\"untrusted-capture\""),
        "{capture}"
    );
    assert!(capture.contains("ends mid-record"), "{capture}");
    o.assert_junit_valid();
}

#[test]
fn far_future_timestamps_are_clamped_and_said_not_a_crash() {
    // if_tsresol 0 and a raw timestamp of 2^62 seconds: seconds * 10^6 overflows an i64.
    let o = Agc::analyze(&fixture("future.pcapng")).expect_exit(1).run();
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    let j = o.json();
    assert_eq!(j["capture"]["first_packet"], "9999-12-31T23:59:59.999999Z");
    for f in o.flows() {
        assert_eq!(f["first_seen"], "9999-12-31T23:59:59.999999Z", "{f}");
        assert_eq!(f["last_seen"], "9999-12-31T23:59:59.999999Z", "{f}");
    }
    assert!(
        j["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("2 packet timestamp(s) lay outside the years 0000-9999"),
        "{}",
        j["notes"]
    );
    assert!(
        o.stdout.contains("timestamp(s) lay outside"),
        "{}",
        o.stdout
    );
    o.assert_junit_valid();
}

#[test]
fn relative_times_count_from_the_earliest_packet_not_the_first_record() {
    let o = Agc::analyze(&fixture("out-of-order.pcap"))
        .expect_exit(1)
        .run();
    assert!(!o.stdout.contains("+-"), "{}", o.stdout);
    let row = |addr: &str| {
        o.stdout
            .lines()
            .find(|l| l.contains(addr))
            .unwrap_or_else(|| panic!("no row for {addr}: {}", o.stdout))
            .to_string()
    };
    assert!(row("203.0.113.5").contains("+2.750s"), "{}", o.stdout);
    assert!(row("198.51.100.7").contains("+0.000s"), "{}", o.stdout);
    assert_eq!(
        o.json()["capture"]["first_packet"],
        "2026-01-01T00:00:06.75Z"
    );
    let x = o.junit.as_deref().unwrap();
    assert!(!x.contains("+-"), "{x}");
    assert!(x.contains("(+2.750s)"), "{x}");
    o.assert_junit_valid();
}

#[test]
fn traffic_dressed_as_icmp_errors_or_housekeeping_is_judged() {
    let o = Agc::analyze(&fixture("disguised.pcap"))
        .expect_exit(1)
        .expect_disallowed(&[
            flow_("icmp", "203.0.113.99", None),
            flow_("icmpv6", "2001:db8::77", None),
            flow_("other/2", "203.0.113.77", None),
        ])
        .run();
    // "Port unreachable" sent to a third host is its own flow, not part of the DNS flow it quotes.
    assert_eq!(o.flow("icmp", "203.0.113.99", None)["packets"], 3);
    // The router's genuine error back to the querier still joins the DNS flow.
    let dns = o.flow("udp", "8.8.8.8", Some(53));
    assert_eq!(
        (dns["allowed"].as_bool(), dns["packets"].as_u64()),
        (Some(true), Some(3))
    );
    assert_eq!(dns["state"], "unreachable");
    // Neighbour solicitation and MLD to a global unicast address are not housekeeping.
    assert_eq!(o.flow("icmpv6", "2001:db8::77", None)["packets"], 2);
    let hk = &o.json()["capture"]["housekeeping"];
    assert_eq!(
        hk,
        &serde_json::json!({"arp": 0, "ndp": 0, "mld": 0, "igmp": 0})
    );
}

#[test]
fn a_capture_that_cannot_be_decoded_is_inconclusive_not_pass() {
    // tcpdump -s 14: every frame is an Ethernet header and nothing else.
    let o = Agc::analyze(&fixture("snaplen14.pcap"))
        .expect_exit(3)
        .expect_verdict("inconclusive")
        .run();
    assert_eq!(o.json()["capture"]["truncated"], 5);
    assert!(
        o.stdout
            .contains("5 frames were cut short (snaplen?) and could not be judged"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.lines().last().unwrap().starts_with("INCONCLUSIVE"));
    o.assert_junit_valid();
    // IP inside PPPoE: well-formed frames, none of them IP.
    let o = Agc::analyze(&fixture("pppoe.pcap")).expect_exit(3).run();
    assert_eq!(o.json()["capture"]["non_ip"], 5);
    assert!(
        o.stdout.contains("none of the 5 frames decoded as IP"),
        "{}",
        o.stdout
    );
    // Raw IP frames in a file that says Ethernet: the same.
    let raw = std::fs::read(root().join(fixture("raw.pcap"))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mislabelled = dir.path().join("mislabelled.pcap");
    let mut bytes = raw.clone();
    bytes[20..24].copy_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    std::fs::write(&mislabelled, &bytes).unwrap();
    Agc::analyze(mislabelled.to_str().unwrap())
        .expect_exit(3)
        .run();
}

#[test]
fn capture_on_any_finds_the_host_despite_loopback_and_judges_inbound_by_its_source() {
    let o = Agc::analyze(&fixture("any-lo.pcap"))
        .expect_exit(1)
        // The inbound connection from the Internet is judged on its source, not on this host.
        .expect_disallowed(&[flow_("tcp", "198.51.100.9", Some(50000))])
        .run();
    assert_eq!(o.json()["local"], serde_json::json!(["10.1.0.2"]));
    assert_eq!(o.flow("tcp", "127.0.0.1", Some(5432))["rule"], "loopback");
    assert_eq!(o.flow("udp", "10.1.0.1", Some(53))["rule"], "dns");
    assert_eq!(o.json()["notes"], serde_json::json!([]));
}

#[test]
fn pcapng_with_two_link_types_is_inconclusive_and_says_why() {
    let o = Agc::analyze(&fixture("multi-link.pcapng"))
        .expect_exit(3)
        .run();
    // The first packet (on the Ethernet interface) was read; the raw-IP interface stopped libpcap.
    assert_eq!(o.json()["capture"]["packets"], 1);
    assert!(o.json()["capture"]["cut_short"]
        .as_str()
        .unwrap()
        .contains("different from the type of the first interface"));
    let note = o.json()["notes"][0].as_str().unwrap();
    assert!(
        note.starts_with("the pcapng file has interfaces with different link types"),
        "{note}"
    );
    assert!(!o.stdout.contains("ends mid-record"), "{}", o.stdout);
    assert!(o
        .junit
        .as_deref()
        .unwrap()
        .contains("<error type=\"inconclusive\""));
    o.assert_junit_valid();
}

/// The process umask, from /proc/self/status (the binary under test inherits it).
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

#[test]
fn reports_are_written_together_or_not_at_all_and_readable() {
    use std::os::unix::fs::PermissionsExt;
    // The JUnit report cannot be written: the JSON one must not be left behind either.
    let run = Agc::analyze(&fixture("clean.pcap")).no_reports();
    let dir = run.dir().to_path_buf();
    let json = dir.join("ok.json");
    let o = run
        .arg("--json")
        .arg(json.to_str().unwrap())
        .arg("--junit")
        .arg("/proc/airgap-check-test.xml")
        .expect_exit(2)
        .run();
    assert!(
        o.stderr.contains("/proc/airgap-check-test.xml"),
        "{}",
        o.stderr
    );
    assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // Written reports are readable by others (0644, less the umask), not 0600.
    let o = Agc::analyze(&fixture("clean.pcap")).expect_exit(0).run();
    for p in [o.json_path(), o.junit_path()] {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644 & !umask(), "{}", p.display());
    }
}

/// names.pcap: a lookup then TLS, a lookup through a CNAME then a SYN, HTTP by address, a
/// ClientHello split over two segments, and DNS to a resolver on an odd port.
#[test]
fn every_attempt_is_named_by_sni_host_or_dns() {
    let o = Agc::analyze(&fixture("names.pcap")).expect_exit(1).run();
    let names = |remote: &str, port: u16| {
        let f = o.flow(if port == 5353 { "udp" } else { "tcp" }, remote, Some(port));
        f["names"].clone()
    };
    // SNI (and DNS for the same address), the CNAME chain, Host, the split ClientHello.
    assert_eq!(names("203.0.113.5", 443), json!(["pkg.example.com"]));
    assert_eq!(
        names("203.0.113.7", 443),
        json!(["www.example.com", "cdn.example.net"])
    );
    assert_eq!(names("198.51.100.60", 80), json!(["mirror.example.org"]));
    assert_eq!(names("198.51.100.61", 443), json!(["pkg.example.com"]));
    assert_eq!(names("198.51.100.53", 5353), json!([]));
    // What was asked for.
    let http = o.flow("tcp", "198.51.100.60", Some(80));
    assert_eq!(http["request"], "GET /dl/go1.22.tgz HTTP/1.1");
    assert_eq!(
        o.flow("tcp", "203.0.113.5", Some(443))["request"],
        Value::Null
    );
    assert_eq!(
        o.flow("udp", "198.51.100.53", Some(5353))["request"],
        "DNS query A odd.example.com"
    );
    assert_eq!(
        o.flow("udp", "10.1.0.1", Some(53))["request"],
        "DNS query A pkg.example.com"
    );
    // Every question, on port 53 or not.
    assert_eq!(
        o.json()["dns_queries"],
        json!([
            {"name": "pkg.example.com", "type": "A", "count": 1,
             "first_seen": "2026-01-01T00:00:00Z", "phase": null, "phase_buildpack": null},
            {"name": "www.example.com", "type": "A", "count": 1,
             "first_seen": "2026-01-01T00:00:00.003Z", "phase": null, "phase_buildpack": null},
            {"name": "odd.example.com", "type": "A", "count": 1,
             "first_seen": "2026-01-01T00:00:00.009Z", "phase": null, "phase_buildpack": null},
        ])
    );
    assert_eq!(o.json()["schema_version"], 1);
    // The console names them, and lists the questions.
    for want in [
        "www.example.com,cdn.example.net",
        "mirror.example.org",
        "dns queries: pkg.example.com A, www.example.com A, odd.example.com A",
    ] {
        assert!(o.stdout.contains(want), "{want}: {}", o.stdout);
    }
    assert_eq!(
        o.stdout.matches("pkg.example.com ").count(),
        3,
        "{}",
        o.stdout
    );
    // JUnit: each failure says what was contacted, by name; the flows say what was asked.
    let x = o.junit.as_deref().unwrap();
    for want in [
        "disallowed: tcp 198.51.100.60:80 (mirror.example.org) contacted",
        "disallowed: tcp 203.0.113.7:443 (cdn.example.net, www.example.com) contacted",
        "disallowed: tcp 198.51.100.61:443 (pkg.example.com) contacted",
        "request \"GET /dl/go1.22.tgz HTTP/1.1\"",
        "request \"DNS query A odd.example.com\"",
        "dns query: A odd.example.com",
    ] {
        assert!(
            x.contains(&want.replace('"', "&quot;")) || x.contains(want),
            "{want}: {x}"
        );
    }
    o.assert_junit_valid();
}

#[test]
fn hosts_rules_allow_by_name() {
    let base = "allow:\n  - name: dns\n    protocol: udp\n    ports: [53]\n";
    let o = Agc::analyze(&fixture("names.pcap"))
        .allowlist_text(&format!(
            "{base}  - name: mirror\n    hosts: [mirror.example.org]\n"
        ))
        .expect_exit(1)
        .expect_disallowed(&[
            flow_("tcp", "198.51.100.61", Some(443)),
            flow_("tcp", "203.0.113.5", Some(443)),
            flow_("tcp", "203.0.113.7", Some(443)),
            flow_("udp", "198.51.100.53", Some(5353)),
        ])
        .run();
    assert_eq!(o.flow("tcp", "198.51.100.60", Some(80))["rule"], "mirror");
    let o = Agc::analyze(&fixture("names.pcap"))
        .allowlist_text(&format!(
            "{base}  - name: ours\n    hosts: [\"*.example.com\"]\n    protocol: tcp\n"
        ))
        .expect_exit(1)
        .expect_disallowed(&[
            flow_("tcp", "198.51.100.60", Some(80)),
            flow_("udp", "198.51.100.53", Some(5353)),
        ])
        .run();
    for (remote, port) in [
        ("203.0.113.5", 443),
        ("198.51.100.61", 443),
        ("203.0.113.7", 443),
    ] {
        assert_eq!(
            o.flow("tcp", remote, Some(port))["rule"],
            "ours",
            "{remote}"
        );
    }
}

/// Run analyze with `--suggest-allowlist`, then again with the suggestion as the allowlist,
/// expecting exit `again_exit`.
fn suggest_round_trip(
    pcap: &str,
    base: Option<&str>,
    extra: &[&str],
    again_exit: i32,
) -> (String, Outcome) {
    let mut run = Agc::analyze(&fixture(pcap)).no_reports();
    if let Some(b) = base {
        run = run.allowlist_text(b);
    }
    for a in extra {
        run = run.arg(a);
    }
    let out = run.dir().join("suggested.yaml");
    let _first = run
        .arg("--suggest-allowlist")
        .arg(out.to_str().unwrap())
        .expect_exit_in(&[0, 1, 3])
        .run();
    let text = std::fs::read_to_string(&out).expect("the suggestion is written");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("allow.yaml");
    std::fs::write(&path, &text).unwrap();
    let mut again = Agc::analyze(&fixture(pcap))
        .arg("--allowlist")
        .arg(path.to_str().unwrap());
    for a in extra {
        again = again.arg(a);
    }
    let again = again
        .context(format!("the suggestion:\n{text}"))
        .expect_exit(again_exit)
        .run();
    (text, again)
}

#[test]
fn suggested_allowlist_makes_the_run_pass() {
    let (text, _) = suggest_round_trip("names.pcap", None, &[], 0);
    // The base rules first, then one rule per destination, by name where there is one.
    assert!(text.contains("  - name: \"internal networks\"\n"), "{text}");
    for want in [
        "    hosts: [\"pkg.example.com\"]\n",
        "    hosts: [\"www.example.com\"]\n",
        "    hosts: [\"mirror.example.org\"]\n",
        "    cidrs: [\"198.51.100.53/32\"]\n    ports: [5353]\n",
        "  # no phase; 9 packets in 2 flows; first seen 2026-01-01T00:00:00.001Z (+0.001s); addresses 203.0.113.5, 198.51.100.61\n",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
    assert_eq!(text.matches("  - name: \"suggested: ").count(), 4, "{text}");
    // A base allowlist with its own names and hosts is kept as it was.
    let base = "allow:\n  - name: \"our \\\"mirror\\\" #1\"\n    hosts: [\"*.example.org\"]\n    protocol: tcp\n    ports: [\"80-81\"]\n  - name: dns\n    protocol: udp\n    ports: [53]\n";
    let (_, o) = suggest_round_trip("names.pcap", Some(base), &[], 0);
    assert_eq!(
        o.flow("tcp", "198.51.100.60", Some(80))["rule"],
        "our \"mirror\" #1"
    );
    // With no local end, both ends of every flow must be allowed: the suggestion covers both.
    suggest_round_trip("names.pcap", None, &["--local", "192.0.2.1"], 0);
    // Every kind of destination in leaky.pcap (ICMP, GRE, fragments, IPv6): nothing is
    // disallowed any more but the metadata endpoint, which a deny rule keeps disallowed (so the
    // run still fails, and the file says the suggestion cannot make it pass).
    let (text, o) = suggest_round_trip("leaky.pcap", None, &[], 1);
    assert_eq!(o.json()["summary"]["disallowed"], 1, "{text}");
    assert!(o.flow("tcp", "169.254.169.254", Some(80))["denied_by"]
        .as_str()
        .unwrap()
        .starts_with("cloud metadata"));
    assert!(text.contains("protocol other/47 cannot be named"), "{text}");
    assert!(
        text.contains("# 1 flow matched a deny rule: none is suggested for them"),
        "{text}"
    );
    assert!(text.contains("\ndeny:\n"), "{text}");
    assert!(
        !text.contains("169.254.169.254/32\"]\n    ports: [80]"),
        "{text}"
    );
    // A port scan: a thousand destinations.
    let (text, _) = suggest_round_trip("scan.pcap", None, &[], 0);
    assert!(text.len() < 1 << 20);
}

/// `got` is byte for byte tests/golden/NAME; with UPDATE_GOLDEN set, it becomes it first.
fn assert_golden(name: &str, got: &str) {
    let p = root().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, got).unwrap();
    }
    let want = std::fs::read_to_string(&p).unwrap_or_else(|_| panic!("missing {}", p.display()));
    assert_eq!(
        got, want,
        "{name} differs from its golden file (UPDATE_GOLDEN=1 to accept)"
    );
}

/// Golden files: the JSON and JUnit for leaky.pcap are stable byte for byte.
/// Regenerate with `UPDATE_GOLDEN=1 cargo test --test integration golden`.
#[test]
fn golden_json_and_junit() {
    let o = Agc::analyze(&fixture("leaky.pcap")).expect_exit(1).run();
    assert_golden("leaky.json", o.json_text.as_deref().unwrap());
    assert_golden("leaky.junit.xml", o.junit.as_deref().unwrap());
}

/// Golden files: the console output (stdout, NO_COLOR=1) of a pass, a fail and an inconclusive
/// analyze, byte for byte.
#[test]
fn golden_console_pass() {
    let o = Agc::analyze(&fixture("clean.pcap")).expect_exit(0).run();
    assert_golden("clean.console.txt", &o.stdout);
}

#[test]
fn golden_console_fail() {
    let o = Agc::analyze(&fixture("leaky.pcap")).expect_exit(1).run();
    assert_golden("leaky.console.txt", &o.stdout);
}

#[test]
fn golden_console_inconclusive() {
    let o = Agc::analyze(&fixture("empty.pcap")).expect_exit(3).run();
    assert_golden("empty.console.txt", &o.stdout);
}

/// The tcpdump project's regression captures: every one is read with no panic, no hang and
/// bounded memory, and an unsupported link type is said clearly.
#[test]
fn tcpdump_corpus_reads_without_panic_hang_or_unbounded_memory() {
    // TCPDUMP_CORPUS points elsewhere; there is no skipping when it is absent.
    let dir = std::env::var_os("TCPDUMP_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/corpus/tcpdump-tests"));
    assert!(
        dir.is_dir(),
        "the tcpdump regression captures are not at {} (the folder shared/corpus/tcpdump-tests \
         beside the repository, or TCPDUMP_CORPUS=DIR)",
        dir.display()
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    assert!(files.len() > 800, "{} files", files.len());
    let mut tally = std::collections::BTreeMap::<i32, usize>::new();
    for f in &files {
        // 512 MiB of address space is far above what any of these needs; a leak or a runaway
        // allocation dies here instead of passing. Killed, hung or panicked is no exit 0-3.
        let o = Agc::new(&["analyze", "--pcap"])
            .arg(f)
            .wrapped_in(&["sh", "-c", "ulimit -v 524288; exec \"$@\"", "sh"])
            .hard_timeout(Duration::from_secs(20))
            .expect_exit_in(&[0, 1, 2, 3])
            .run();
        let (code, stderr) = (o.code, &o.stderr);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", f.display());
        if code == 2 {
            assert!(
                stderr.contains(&*f.file_name().unwrap().to_string_lossy())
                    && stderr.trim_end().lines().count() == 1,
                "{}: {stderr}",
                f.display()
            );
        }
        *tally.entry(code).or_default() += 1;
    }
    eprintln!("corpus exit codes: {tally:?}");
    // Most of the corpus is link types we read: make sure we did not refuse everything.
    assert!(
        tally.get(&2).copied().unwrap_or(0) < files.len() / 2,
        "{tally:?}"
    );
}

/// Under GitHub Actions: an ::error annotation per disallowed flow, and a Markdown summary appended
/// to $GITHUB_STEP_SUMMARY; neither appears elsewhere.
#[test]
fn github_actions_annotations_and_step_summary() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let out = Agc::new(&["analyze", "--pcap", "fixtures/pcap/names.pcap"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .expect_exit(1)
        .run();
    let stdout = &out.stdout;
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("::error "))
        .collect();
    assert_eq!(errors.len(), 5, "{stdout}");
    assert!(
        errors
            .iter()
            .any(|l| l.contains("tcp 203.0.113.5:443 (pkg.example.com)")),
        "{stdout}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("earlier step\n"),
        "appended, not overwritten: {md}"
    );
    assert!(
        md.contains("FAIL") && md.contains("mirror.example.org"),
        "{md}"
    );
    // Outside Actions: no workflow commands.
    let out = Agc::new(&["analyze", "--pcap", "fixtures/pcap/names.pcap"])
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .expect_exit(1)
        .run();
    assert!(!out.stdout.contains("::error"), "{}", out.stdout);
}

#[test]
fn filter_judges_only_what_passes_it_and_says_so() {
    let out = Agc::analyze(&fixture("leaky.pcap"))
        .arg("--filter")
        .arg("udp port 123 or host 198.51.100.7")
        .expect_exit(1)
        .run();
    let j = out.json();
    assert_eq!(j["capture"]["filter"], "udp port 123 or host 198.51.100.7");
    let mut remotes: Vec<&str> = j["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["remote"].as_str().unwrap())
        .collect();
    remotes.sort();
    assert_eq!(remotes, ["198.51.100.7", "8.8.8.8"]);
    // A filter that passes nothing leaves nothing proven.
    Agc::analyze(&fixture("leaky.pcap"))
        .arg("--filter")
        .arg("tcp port 1")
        .expect_exit(3)
        .run();
    // A bad expression is the user's mistake, told in libpcap's words.
    let out = Agc::analyze(&fixture("leaky.pcap"))
        .arg("--filter")
        .arg("port 99999")
        .no_reports()
        .expect_exit(2)
        .run();
    assert!(
        out.stderr.contains("--filter \"port 99999\""),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("libpcap says"), "{}", out.stderr);
}
