//! The JUnit report: a testcase for the capture itself and one per destination (analyze) — the shape
//! GitHub Actions reporters, GitLab and Jenkins read. Text from outside (names, rules, notes, a
//! phase's output, manifests, commands) goes through the terminal escaper ([`safe`]) first, as on
//! the console, its credentials redacted; junit-report writes CDATA verbatim, so every text then
//! goes through [`xml_safe`].

use junit_report::{Duration, OffsetDateTime, ReportBuilder, TestCase, TestSuiteBuilder};

use crate::flows::decode::proto_label;
use crate::flows::Micros;
use crate::report::redact::redact_request;
use crate::report::text::terminal_safe as safe;
use crate::report::{endpoint, explain, relative, timestamp};
use crate::verdict::analysis::{by_destination, Analysis, Destination, Judged};
use crate::verdict::Verdict;

/// Remove characters XML 1.0 cannot carry and split any `]]>` so it cannot end a CDATA section.
pub fn xml_safe(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r')
                || (c >= ' ' && !matches!(c, '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}'))
        })
        .collect();
    cleaned.replace("]]>", "]]]]><![CDATA[>")
}

/// Attribute values are escaped by the writer; they only need the invalid characters removed.
fn attr_safe(s: &str) -> String {
    xml_safe(s).replace("]]]]><![CDATA[>", "]]>")
}

/// A span of microseconds as the `time` attribute's duration (never negative).
fn micros(us: Micros) -> Duration {
    Duration::microseconds(us.max(0))
}

fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn names_text(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", safe(&names.join(", ")))
    }
}

/// ` → node 20.11.1 from manifest.yml, not cached; by: nc … (under bin/supply)` for a
/// disallowed flow: what it was after, and the command that made it (any flow).
fn behind_text(a: &Analysis, f: &Judged) -> String {
    let mut s = String::new();
    if let Some(d) = (!f.allowed()).then(|| explain::dependency(a, f)).flatten() {
        s.push_str(&format!(" → {d}"));
    }
    if let Some(p) = &f.process {
        s.push_str(&format!("; by: {}", explain::command(p)));
    }
    s
}

/// `, request "GET /x HTTP/1.1"` when the flow's first bytes were a request. Not escaped again:
/// the request line was escaped when it was read (flows::naming).
fn request_text(f: &Judged) -> String {
    f.flow
        .app
        .as_ref()
        .and_then(|a| a.request())
        .map(|r| format!(", request \"{}\"", redact_request(&r)))
        .unwrap_or_default()
}

pub fn build(a: &Analysis) -> junit_report::Report {
    ReportBuilder::new().add_testsuite(testsuite(a)).build()
}

/// Several apps: one testsuite per app, named after it.
pub fn build_runs(runs: &[Analysis]) -> junit_report::Report {
    ReportBuilder::new()
        .add_testsuites(runs.iter().map(testsuite))
        .build()
}

/// The testsuite of one run.
fn testsuite(a: &Analysis) -> junit_report::TestSuite {
    let start = a.start_ts();
    let mut cases = vec![capture_case(a, start)];
    if a.stage.is_some() {
        cases.extend(phase_cases(a));
    } else {
        for (dest, flows) in by_destination(&a.flows) {
            cases.push(destination_case(a, dest, &flows, start));
        }
    }
    suite(a, cases)
}

/// The capture itself: can it be trusted?
fn capture_case(a: &Analysis, start: Option<Micros>) -> TestCase {
    let c = &a.counts;
    let health = format!(
        "{} packets ({} link), {} flows; housekeeping not judged: arp {}, ndp {}, mld {}, igmp {}; non-IP {}, truncated {}, invalid {}; dropped {}; canary {}",
        c.packets,
        a.capture.link_type,
        a.flows.len(),
        c.arp,
        c.ndp,
        c.mld,
        c.igmp,
        c.non_ip,
        c.truncated,
        c.invalid,
        a.capture.dropped.map_or("not measured".into(), |d| d.to_string()),
        a.capture.canary_seen.map_or("not applicable", |s| if s { "seen" } else { "NOT seen" }),
    );
    // Red whenever the capture left something unseen, even when the verdict is a fail: a failing
    // build with a cut capture may hide more than the failures it lists.
    let mut case = if a.capture_untrusted() {
        let why = safe(&a.note_texts().join("; ")).into_owned();
        let kind = if a.verdict == Verdict::Inconclusive {
            "inconclusive"
        } else {
            "untrusted-capture"
        };
        TestCase::error("capture", Duration::ZERO, kind, &attr_safe(&why))
    } else {
        TestCase::success("capture", Duration::ZERO)
    };
    case.set_classname("airgap-check.capture");
    let mut out = health;
    for m in &a.manifests {
        out.push('\n');
        out.push_str(&explain::manifest_summary(a, m));
    }
    for n in a.note_texts() {
        out.push_str("\nnote: ");
        out.push_str(&safe(&n));
    }
    for q in &a.dns_queries {
        out.push_str(&format!(
            "\ndns query: {} {} ({}, first {} ({}){})",
            q.qtype,
            safe(&q.name),
            plural(q.count, "time"),
            timestamp(q.first_seen),
            relative(q.first_seen, start),
            q.phase
                .as_deref()
                .map(|p| format!(", phase {p}"))
                .unwrap_or_default(),
        ));
    }
    case.set_system_out(&xml_safe(&out));
    case
}

/// Analyze and watch: one testcase per destination, failed when a flow to it is disallowed.
fn destination_case(
    a: &Analysis,
    dest: Destination,
    flows: &[&Judged],
    start: Option<Micros>,
) -> TestCase {
    let name = format!(
        "{} {}",
        proto_label(dest.proto),
        endpoint(dest.addr, dest.port)
    );
    let packets: u64 = flows.iter().map(|f| f.flow.stats.packets()).sum();
    let first = flows
        .iter()
        .map(|f| f.flow.stats.first_seen)
        .min()
        .unwrap_or(0);
    let mut names: Vec<String> = flows.iter().flat_map(|f| f.names.iter().cloned()).collect();
    names.sort();
    names.dedup();
    let phases: Vec<&str> = {
        let mut p: Vec<&str> = flows.iter().filter_map(|f| f.phase.as_deref()).collect();
        p.dedup();
        p
    };
    let details: Vec<String> = flows.iter().map(|f| flow_line(a, f, start, true)).collect();
    let disallowed = flows.iter().filter(|f| !f.allowed()).count();
    // The time from its first packet to its last: how long the destination was talked to.
    let last = flows
        .iter()
        .map(|f| f.flow.stats.last_seen)
        .max()
        .unwrap_or(first);
    let took = micros(last - first);
    let mut case = if disallowed > 0 {
        let denied: Vec<&str> = flows.iter().filter_map(|f| f.denied.as_deref()).collect();
        let why = match denied.first() {
            Some(rule) => format!("denied by rule \"{}\"", safe(rule)),
            None => "no allowlist rule matches".to_string(),
        };
        let message = format!(
            "disallowed: {} {}{} contacted{}: {} in {}, first seen {} ({}); {why}",
            proto_label(dest.proto),
            endpoint(dest.addr, dest.port),
            names_text(&names),
            if phases.is_empty() {
                String::new()
            } else {
                format!(" during {}", phases.join(", "))
            },
            plural(packets, "packet"),
            plural(flows.len() as u64, "flow"),
            timestamp(first),
            relative(first, start),
        );
        let mut tc = TestCase::failure(&attr_safe(&name), took, "disallowed", &attr_safe(&message));
        tc.set_system_out(&xml_safe(&details.join("\n")));
        tc
    } else {
        let mut tc = TestCase::success(&attr_safe(&name), took);
        tc.set_system_out(&xml_safe(&details.join("\n")));
        tc
    };
    case.set_classname("airgap-check.destinations");
    case
}

fn suite(a: &Analysis, cases: Vec<TestCase>) -> junit_report::TestSuite {
    let ts = a
        .start_ts()
        .and_then(|us| OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    TestSuiteBuilder::new(&attr_safe(&format!(
        "airgap-check {} {}",
        a.mode,
        safe(&a.input)
    )))
    .add_testcases(cases)
    .set_timestamp(ts)
    .build()
}

/// One line per flow, for system-out and failure bodies. A destination's testcase (analyze,
/// watch) also gives its last packet and its phase; a phase's does not need to.
fn flow_line(a: &Analysis, f: &Judged, start: Option<Micros>, destination: bool) -> String {
    let k = &f.flow.key;
    let (last, phase) = match (destination, f.phase.as_deref()) {
        (false, _) => (String::new(), String::new()),
        (true, p) => (
            format!(", last {}", timestamp(f.flow.stats.last_seen)),
            p.map(|p| format!(", phase {}", safe(p)))
                .unwrap_or_default(),
        ),
    };
    format!(
        "{} {} -> {}{}: {} out, {} in, {} bytes, state {}, first {} ({}){last}{}{phase}{}{}",
        proto_label(k.proto),
        endpoint(k.src, k.src_port),
        endpoint(k.dst, k.dst_port),
        names_text(&f.names),
        plural(f.flow.stats.packets_out, "packet"),
        plural(f.flow.stats.packets_in, "packet"),
        f.flow.stats.bytes(),
        f.flow.state().as_str(),
        timestamp(f.flow.stats.first_seen),
        relative(f.flow.stats.first_seen, start),
        request_text(f),
        match (&f.rule, &f.denied) {
            (Some(r), _) => format!(", allowed by rule \"{}\"", safe(r)),
            (None, Some(r)) => format!(", denied by rule \"{}\"", safe(r)),
            (None, None) => String::new(),
        },
        behind_text(a, f),
    )
}

/// Staging runs: a testcase per phase (and one for flows before the first phase, if any).
fn phase_cases(a: &Analysis) -> Vec<TestCase> {
    let start = a.start_ts();
    let mut cases = Vec::new();
    let mut units: Vec<(String, Option<&crate::verdict::analysis::PhaseRecord>)> = a
        .phases
        .iter()
        .map(|p| (safe(&p.label()).into_owned(), Some(p)))
        .collect();
    if a.flows.iter().any(|f| f.phase.as_deref() == Some("setup")) {
        units.insert(0, ("setup (before the first phase)".into(), None));
    }
    for (label, phase) in units {
        let flows: Vec<&crate::verdict::analysis::Judged> = a
            .flows
            .iter()
            .filter(|f| match phase {
                Some(p) => {
                    f.phase.as_deref() == Some(p.name.as_str())
                        && f.phase_buildpack == Some(p.buildpack)
                }
                None => f.phase.as_deref() == Some("setup"),
            })
            .collect();
        let bad: Vec<_> = flows.iter().filter(|f| !f.allowed()).collect();
        let mut body: Vec<String> = flows
            .iter()
            .map(|f| flow_line(a, f, start, false))
            .collect();
        if let Some(p) = phase {
            body.push(format!(
                "exit code {}; {:.1}s",
                p.exit_code
                    .map_or("none (timed out)".into(), |c| c.to_string()),
                (p.ended - p.started) as f64 / 1e6
            ));
            if !p.output_tail.is_empty() {
                body.push("--- output (last lines) ---".into());
                body.extend(p.output_tail.iter().map(|l| safe(l).into_owned()));
            }
        }
        let mut reasons = Vec::new();
        if let Some(p) = phase.filter(|p| p.failed()) {
            reasons.push(if p.timed_out {
                format!("{label} timed out")
            } else {
                format!("{label} {}", p.exited())
            });
        }
        if !bad.is_empty() {
            let dests: Vec<String> = bad
                .iter()
                .map(|f| {
                    format!(
                        "{} {}{} ({}, {}, first {}{}){}",
                        proto_label(f.flow.key.proto),
                        endpoint(f.remote_addr, f.remote_port),
                        names_text(&f.names),
                        plural(f.flow.stats.packets(), "packet"),
                        f.flow.state().as_str(),
                        relative(f.flow.stats.first_seen, start),
                        f.denied
                            .as_deref()
                            .map(|r| format!(", denied by rule \"{}\"", safe(r)))
                            .unwrap_or_default(),
                        behind_text(a, f)
                    )
                })
                .collect();
            reasons.push(format!(
                "{} contacted {}: {}",
                phase.map_or("setup", |p| p.name.as_str()),
                plural(bad.len() as u64, "disallowed destination"),
                dests.join(", ")
            ));
        }
        // A phase's testcase takes the phase's own duration (the setup one, none).
        let took = phase.map_or(Duration::ZERO, |p| micros(p.ended - p.started));
        let mut tc = if reasons.is_empty() {
            TestCase::success(&attr_safe(&label), took)
        } else {
            let kind = if phase.is_some_and(|p| p.failed()) {
                "staging-failed"
            } else {
                "disallowed"
            };
            TestCase::failure(
                &attr_safe(&label),
                took,
                kind,
                &attr_safe(&reasons.join("; ")),
            )
        };
        tc.set_classname("airgap-check.phases");
        tc.set_system_out(&xml_safe(&body.join("\n")));
        cases.push(tc);
    }
    cases
}

pub fn write(a: &Analysis, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    write_report(build(a), w)
}

/// Several apps' runs: one testsuite each.
pub fn write_runs(runs: &[Analysis], w: &mut dyn std::io::Write) -> std::io::Result<()> {
    write_report(build_runs(runs), w)
}

fn write_report(r: junit_report::Report, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    r.write_xml(&mut *w)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    w.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_and_secrets_stay_out_of_junit() {
        use crate::report::github::tests::{hostile, leaky, SECRETS};
        use crate::report::text::assert_terminal_clean;
        let mut out = Vec::new();
        write(&hostile(), &mut out).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert_terminal_clean(&xml, &SECRETS);
        assert!(xml.contains("curl -u REDACTED"), "{xml}");
        // Analyze runs have a testcase per destination, named by the flows' names and rules.
        let mut a = hostile();
        a.mode = crate::verdict::analysis::Mode::Analyze;
        a.stage = None;
        let mut out = Vec::new();
        write_runs(&[a, leaky()], &mut out).unwrap();
        assert_terminal_clean(&String::from_utf8(out).unwrap(), &SECRETS);
    }

    #[test]
    fn a_request_line_is_escaped_once() {
        use crate::flows::flow::AppInfo;
        // As flows::naming keeps it: escaped when it is read.
        let read = crate::report::text::terminal_safe("GET /a\\b\u{202e}?token=t HTTP/1.1");
        let mut a = crate::report::github::tests::leaky();
        a.flows[1].flow.app = Some(Box::new(AppInfo {
            request_line: Some(read.into_owned()),
            ..AppInfo::default()
        }));
        let mut out = Vec::new();
        write(&a, &mut out).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(
            xml.contains(r#"request "GET /a\\b\u{202e}?token=REDACTED HTTP/1.1""#),
            "{xml}"
        );
        assert!(
            !xml.contains(r"\\\\") && !xml.contains(r"\\u{202e}"),
            "{xml}"
        );
        assert!(!xml.contains('\u{202e}'), "{xml}");
    }

    #[test]
    fn xml_safe_strips_controls_and_splits_cdata_end() {
        assert_eq!(xml_safe("a\u{0}b\u{1b}[31mc\td\n"), "ab[31mc\td\n");
        assert_eq!(xml_safe("x]]>y"), "x]]]]><![CDATA[>y");
        assert_eq!(attr_safe("x]]>y\u{7}"), "x]]>y");
    }
}
