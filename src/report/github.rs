//! Output for GitHub Actions: workflow commands that become annotations in the job log and on the
//! pull request, and a Markdown summary for `$GITHUB_STEP_SUMMARY`.
//!
//! Everything here is written from one [`Analysis`], like the other reports. Text that comes from
//! outside (phase output, DNS names, buildpack names, manifests, commands, notes) goes through the
//! terminal escaper ([`safe`]) first, its credentials redacted, then through the workflow command's
//! or Markdown's own escaping, so that it can never drive the log's terminal, end a workflow
//! command early, start a new one, or inject Markdown or HTML into the summary.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::flows::decode::proto_label;
use crate::report::text::terminal_safe as safe;
use crate::report::{endpoint, explain, relative};
use crate::verdict::analysis::{by_destination, Analysis, Judged, PhaseRecord};
use crate::verdict::Verdict;

/// At most this many flow annotations; GitHub shows only the first few of a step anyway, and the
/// JSON report has every flow.
const MAX_FLOW_ANNOTATIONS: usize = 50;
/// At most this many lines of a failed phase's output in its annotation.
const MAX_TAIL_LINES: usize = 10;
/// At most this many rows in a summary table.
const MAX_SUMMARY_ROWS: usize = 100;

/// One workflow command per disallowed flow (`::error title=…::supply contacted tcp
/// 203.0.113.5:443 (pkg.example.com), 3 packets, refused, first at +0.301s`), one per failed
/// phase, and a `::warning` when the capture left something unseen (an inconclusive run, or a
/// failing one whose capture cannot be trusted either).
pub fn annotations(a: &Analysis, w: &mut dyn Write) -> io::Result<()> {
    let start = a.start_ts();
    let bad: Vec<&Judged> = a.flows.iter().filter(|f| !f.allowed()).collect();
    for f in bad.iter().take(MAX_FLOW_ANNOTATIONS) {
        command(
            w,
            "error",
            "airgap-check: disallowed egress",
            &flow_sentence(a, f, start),
        )?;
    }
    if bad.len() > MAX_FLOW_ANNOTATIONS {
        command(
            w,
            "error",
            "airgap-check: disallowed egress",
            &format!(
                "… and {} more disallowed flows (every flow is in the JSON report)",
                bad.len() - MAX_FLOW_ANNOTATIONS
            ),
        )?;
    }
    for p in a.phases.iter().filter(|p| p.failed()) {
        command(
            w,
            "error",
            "airgap-check: staging failed",
            &phase_failure(p),
        )?;
    }
    if a.verdict == Verdict::Inconclusive {
        command(
            w,
            "warning",
            "airgap-check: inconclusive",
            &format!("no verdict: {}", untrusted_reason(a)),
        )?;
    } else if a.capture_untrusted() {
        command(
            w,
            "warning",
            "airgap-check: capture incomplete",
            &format!(
                "the capture also left something unseen: {}",
                untrusted_reason(a)
            ),
        )?;
    }
    Ok(())
}

/// A Markdown summary for `$GITHUB_STEP_SUMMARY`: the verdict, the phases (staging runs) and the
/// disallowed flows, with the notes the reader must know.
pub fn step_summary(a: &Analysis) -> String {
    let mut s = String::new();
    let bad: Vec<&Judged> = a.flows.iter().filter(|f| !f.allowed()).collect();
    summary_head(a, bad.len(), &mut s);
    if !a.phases.is_empty() {
        summary_phases(a, &mut s);
    }
    if !bad.is_empty() {
        summary_flows(a, &bad, &mut s);
        summary_behind(a, &bad, &mut s);
    }
    for p in a
        .phases
        .iter()
        .filter(|p| p.failed() && !p.output_tail.is_empty())
    {
        let lines: Vec<String> = p.output_tail.iter().map(|l| safe(l).into_owned()).collect();
        let body = lines.join("\n");
        let fence = "`".repeat(longest_backtick_run(&body).max(2) + 1);
        let _ = writeln!(
            s,
            "<details><summary>{}: last lines of output</summary>\n\n{fence}text\n{body}\n{fence}\n\n</details>\n",
            html(&safe(&p.label()))
        );
    }
    if !a.notes.is_empty() {
        s.push_str("Notes:\n\n");
        for n in &a.notes {
            let _ = writeln!(s, "- {}", text(&n.to_string()));
        }
        s.push('\n');
    }
    s
}

/// The verdict, what was judged, what was staged, and the capture's health.
fn summary_head(a: &Analysis, disallowed: usize, s: &mut String) {
    let verdict = match a.verdict {
        Verdict::Pass => "✅ PASS",
        Verdict::Fail => "❌ FAIL",
        Verdict::Inconclusive => "⚠️ INCONCLUSIVE",
    };
    let _ = writeln!(s, "### airgap-check: {verdict}\n");
    let _ = writeln!(
        s,
        "**{}** {} · allowlist {} · {} packets, {} flows, {} disallowed\n",
        a.mode,
        text(&a.input),
        text(&a.allowlist),
        a.counts.packets,
        a.flows.len(),
        disallowed
    );
    if let Some(st) = &a.stage {
        let bps: Vec<String> = st
            .buildpacks
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{i}: {}", text(b)))
            .collect();
        let _ = writeln!(
            s,
            "Stack image {} (stack {}), user {}, buildpacks {}; run id {}\n",
            text(&st.stack_image),
            text(&st.stack),
            text(&st.user),
            bps.join(", "),
            text(&st.run_id)
        );
    }
    for m in &a.manifests {
        let _ = writeln!(s, "{}\n", md(&explain::manifest_summary(a, m)));
    }
    let c = &a.capture;
    if c.canary_seen.is_some() || c.dropped.is_some() {
        let _ = writeln!(
            s,
            "Capture: canary {}, {} packets dropped\n",
            match c.canary_seen {
                Some(true) => "seen",
                Some(false) => "**NOT seen**",
                None => "not sent",
            },
            c.dropped.map_or("unknown".into(), |d| d.to_string())
        );
    }
}

/// A table row per phase.
fn summary_phases(a: &Analysis, s: &mut String) {
    s.push_str("| phase | buildpack | result | duration | disallowed flows |\n");
    s.push_str("|---|---|---|---|---|\n");
    for p in &a.phases {
        let flows = a
            .flows
            .iter()
            .filter(|f| !f.allowed() && in_phase(f, p))
            .count();
        let _ = writeln!(
            s,
            "| {} | {}: {} | {} | {:.1}s | {} |",
            text(&p.name),
            p.buildpack,
            text(&p.buildpack_name),
            phase_result(p),
            p.ended.saturating_sub(p.started) as f64 / 1e6,
            flows
        );
    }
    s.push('\n');
}

/// A table row per disallowed flow, at most [`MAX_SUMMARY_ROWS`].
fn summary_flows(a: &Analysis, bad: &[&Judged], s: &mut String) {
    let start = a.start_ts();
    let dests = by_destination(&a.flows)
        .iter()
        .filter(|(_, fs)| fs.iter().any(|f| !f.allowed()))
        .count();
    let _ = writeln!(
        s,
        "#### Disallowed flows: {} to {} destination{}\n",
        bad.len(),
        dests,
        if dests == 1 { "" } else { "s" }
    );
    s.push_str(
        "| proto | destination | names | state | packets | first seen | phase | denied by |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    for f in bad.iter().take(MAX_SUMMARY_ROWS) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            proto_label(f.flow.key.proto),
            md(&endpoint(f.remote_addr, f.remote_port)),
            names_cell(&f.names),
            f.flow.state().as_str(),
            f.flow.stats.packets(),
            relative(f.flow.stats.first_seen, start),
            f.phase.as_deref().map_or("-".into(), text),
            f.denied.as_deref().map_or("-".into(), text)
        );
    }
    if bad.len() > MAX_SUMMARY_ROWS {
        let _ = writeln!(
            s,
            "\n… and {} more disallowed flows (every flow is in the JSON report)",
            bad.len() - MAX_SUMMARY_ROWS
        );
    }
    s.push('\n');
}

/// "supply contacted tcp 203.0.113.5:443 (pkg.example.com), 3 packets, refused, first at
/// +0.301s"; analyze runs have no phase: "contacted …".
fn flow_sentence(a: &Analysis, f: &Judged, start: Option<crate::flows::Micros>) -> String {
    let who = match (&f.phase, f.phase_buildpack) {
        // Several buildpacks, or a CNB's (named by its id): the buildpack too.
        (Some(phase), Some(i))
            if a.stage
                .as_ref()
                .is_some_and(|s| s.buildpacks.len() > 1 || s.cnb.is_some()) =>
        {
            let name = a
                .phases
                .iter()
                .find(|p| p.buildpack == i)
                .map_or(String::new(), |p| format!(": {}", safe(&p.buildpack_name)));
            format!("{} (buildpack {i}{name}) ", safe(phase))
        }
        (Some(phase), _) => format!("{} ", safe(phase)),
        (None, _) => String::new(),
    };
    let names = if f.names.is_empty() {
        String::new()
    } else {
        format!(" ({})", safe(&f.names.join(", ")))
    };
    let packets = f.flow.stats.packets();
    let mut s = format!(
        "{who}contacted {} {}{names}, {packets} packet{}, {}, first at {}{}",
        proto_label(f.flow.key.proto),
        endpoint(f.remote_addr, f.remote_port),
        if packets == 1 { "" } else { "s" },
        f.flow.state().as_str(),
        relative(f.flow.stats.first_seen, start),
        f.denied
            .as_deref()
            .map(|r| format!("; denied by rule \"{}\"", safe(r)))
            .unwrap_or_default()
    );
    if let Some(d) = explain::dependency(a, f) {
        s.push_str(&format!(" → {d}"));
    }
    if let Some(p) = &f.process {
        s.push_str(&format!("; by: {}", explain::command(p)));
    }
    s
}

/// Under the flows table: for each disallowed flow with something behind it, the dependency it was
/// after and the command that made it.
fn summary_behind(a: &Analysis, bad: &[&Judged], s: &mut String) {
    let start = a.start_ts();
    let mut lines = Vec::new();
    for f in bad.iter().take(MAX_SUMMARY_ROWS) {
        let dep = explain::dependency(a, f);
        if dep.is_none() && f.process.is_none() {
            continue;
        }
        let mut line = format!(
            "- {} {} ({}) at {}",
            proto_label(f.flow.key.proto),
            md(&endpoint(f.remote_addr, f.remote_port)),
            names_cell(&f.names),
            relative(f.flow.stats.first_seen, start)
        );
        if let Some(d) = dep {
            line.push_str(&format!(": {}", md(&d)));
        }
        if let Some(p) = &f.process {
            line.push_str(&format!("; by {}", md(&explain::command(p))));
        }
        lines.push(line);
    }
    if !lines.is_empty() {
        s.push_str("What they were after, and the commands behind them:\n\n");
        for l in lines {
            let _ = writeln!(s, "{l}");
        }
        s.push('\n');
    }
}

/// "finalize (buildpack 0: go) exited 1", then the last lines of its output.
fn phase_failure(p: &PhaseRecord) -> String {
    let mut msg = match (p.timed_out, p.exit_code) {
        (true, _) => format!("{} timed out", safe(&p.label())),
        (false, Some(_)) => format!("{} {}", safe(&p.label()), p.exited()),
        (false, None) => format!("{} ended with no exit code", safe(&p.label())),
    };
    let skip = p.output_tail.len().saturating_sub(MAX_TAIL_LINES);
    for l in &p.output_tail[skip..] {
        msg.push('\n');
        msg.push_str(&safe(l));
    }
    msg
}

fn phase_result(p: &PhaseRecord) -> String {
    match (p.timed_out, p.exit_code) {
        (true, _) => "**timed out**".into(),
        (false, Some(0)) => "exit 0".into(),
        (false, Some(c)) if p.must_succeed && p.oom_killed => {
            format!("**exit {c} (out of memory)**")
        }
        (false, Some(c)) if p.must_succeed => format!("**exit {c}**"),
        (false, Some(c)) => format!("exit {c} (not fatal)"),
        (false, None) => "**no exit code**".into(),
    }
}

/// Whether a flow started in this phase (of this buildpack).
fn in_phase(f: &Judged, p: &PhaseRecord) -> bool {
    f.phase.as_deref() == Some(p.name.as_str()) && f.phase_buildpack == Some(p.buildpack)
}

/// Why the capture cannot be trusted: the notes that say what went unseen or unproven; a generic
/// sentence when there are none.
fn untrusted_reason(a: &Analysis) -> String {
    let why: Vec<String> = a
        .notes
        .iter()
        .filter(|n| n.undermines_the_capture())
        .map(|n| safe(&n.to_string()).into_owned())
        .collect();
    if why.is_empty() {
        "the capture cannot be trusted".into()
    } else {
        why.join("; ")
    }
}

/// Write one workflow command: `::NAME title=TITLE::MESSAGE`.
fn command(w: &mut dyn Write, name: &str, title: &str, message: &str) -> io::Result<()> {
    writeln!(
        w,
        "::{name} title={}::{}",
        escape_property(title),
        escape_data(message)
    )
}

/// A workflow command's message: `%`, CR and LF are escaped (the runner turns them back), so the
/// command stays on one line whatever the text holds.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: as [`escape_data`], and `:` and `,` too, which would end
/// the property.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Text for a Markdown table cell or paragraph: ASCII punctuation that Markdown or HTML would act
/// on is backslash-escaped (`|` included, which GitHub tables honour), line breaks become spaces.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\r' | '\n' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '!' | '#' | '&' => {
                out.push('\\');
                out.push(ch);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Text from outside for Markdown: through the terminal escaper, then [`md`]. (Text the explain
/// module wrote is escaped already, and goes through [`md`] alone.)
fn text(s: &str) -> String {
    md(&safe(s))
}

/// Text inside an HTML element (the `<summary>` of a phase's output).
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\r', '\n'], " ")
}

fn longest_backtick_run(s: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for ch in s.chars() {
        run = if ch == '`' { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// A flow's names for the step summary: `-` when it has none.
fn names_cell(names: &[String]) -> String {
    if names.is_empty() {
        "-".to_string()
    } else {
        text(&names.join(", "))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::flows::{Counts, Flow, FlowTable, Micros};
    use crate::verdict::analysis::{CaptureHealth, Mode, StageInfo};
    use crate::verdict::notes::Note;

    const T0: Micros = 1_700_000_000_000_000;

    fn tcp(src: &str, dst: &str, sp: u16, dp: u16, flags: &str) -> Vec<u8> {
        let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        let b = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                etherparse::PacketBuilder::ipv4(s.octets(), d.octets(), 64)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                etherparse::PacketBuilder::ipv6(s.octets(), d.octets(), 64)
            }
            _ => panic!("mixed families"),
        };
        let mut b = b.tcp(sp, dp, 1, 1000);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('R') {
            b = b.rst();
        }
        if flags.contains('A') {
            b = b.ack(2);
        }
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    }

    /// Flows from raw IP packets at the given offsets (microseconds after T0).
    fn flows(packets: &[(i64, Vec<u8>)]) -> Vec<Flow> {
        let mut t = FlowTable::new();
        for (at, p) in packets {
            let d = crate::flows::decode::decode(crate::flows::decode::LinkKind::RawIp, p);
            t.add(T0 + at, p.len() as u32, &d);
        }
        t.finish().0
    }

    fn judged(
        flow: Flow,
        rule: Option<&str>,
        names: &[&str],
        phase: Option<(&str, usize)>,
    ) -> Judged {
        Judged {
            remote_addr: flow.key.dst,
            remote_port: flow.key.dst_port,
            flow,
            names: names.iter().map(|n| n.to_string()).collect(),
            rule: rule.map(String::from),
            denied: None,
            phase: phase.map(|(p, _)| p.to_string()),
            phase_buildpack: phase.map(|(_, b)| b),
            process: None,
            dependency: None,
            candidates: 0,
        }
    }

    fn phase(name: &str, bp: usize, started: i64, exit: Option<i64>) -> PhaseRecord {
        PhaseRecord {
            name: name.into(),
            buildpack: bp,
            buildpack_name: format!("bp{bp}"),
            started: T0 + started,
            ended: T0 + started + 100_000,
            exit_code: exit,
            timed_out: exit.is_none(),
            must_succeed: name != "detect",
            oom_killed: false,
            output_tail: Vec::new(),
        }
    }

    /// A staging run where supply contacted 203.0.113.5:443 by name (SYN, RST, SYN: 3 packets,
    /// refused), beside an allowed DNS flow. The one place an `Analysis` is built by hand.
    pub(crate) fn leaky() -> Analysis {
        let f = flows(&[
            (0, tcp("10.99.0.2", "10.99.0.1", 5000, 53, "S")),
            (300_000, tcp("10.99.0.2", "203.0.113.5", 40000, 443, "S")),
            (300_100, tcp("203.0.113.5", "10.99.0.2", 443, 40000, "RA")),
            (1_300_000, tcp("10.99.0.2", "203.0.113.5", 40000, 443, "S")),
        ]);
        let mut it = f.into_iter();
        let dns = it.next().unwrap();
        let leak = it.next().unwrap();
        Analysis {
            mode: Mode::Stage,
            input: "fixtures/apps/hello".into(),
            allowlist: "(default)".into(),
            local: vec!["10.99.0.2".parse().unwrap()],
            flows: vec![
                judged(dns, Some("dns"), &[], Some(("detect", 0))),
                judged(leak, None, &["pkg.example.com"], Some(("supply", 0))),
            ],
            counts: Counts {
                packets: 4,
                ip_packets: 4,
                ..Counts::default()
            },
            capture: CaptureHealth {
                link_type: "EN10MB".into(),
                dropped: Some(0),
                canary_seen: Some(true),
                first_ts: Some(T0),
                ..CaptureHealth::default()
            },
            verdict: Verdict::Fail,
            notes: Vec::new(),
            phases: vec![
                phase("detect", 0, 0, Some(0)),
                phase("supply", 0, 200_000, Some(0)),
                phase("finalize", 0, 1_500_000, Some(0)),
                phase("release", 0, 1_700_000, Some(0)),
            ],
            stage: Some(StageInfo {
                run_id: "run-1".into(),
                stack_image: "cloudfoundry/cflinuxfs4".into(),
                stack: "cflinuxfs4".into(),
                buildpacks: vec!["fixtures/buildpacks/leak-dns".into()],
                user: "vcap".into(),
                network: "sealed".into(),
                ..StageInfo::default()
            }),
            dns_queries: Vec::new(),
            manifests: Vec::new(),
        }
    }

    /// What a hostile buildpack can put in a run: ESC, BEL and U+202E in every name it chooses,
    /// credentials in its manifest's uri and in the command that leaked.
    pub(crate) const HOSTILE: &str = "n\u{1b}]0;pwn\u{7}\u{202e}x\u{9b}2J\u{2028}\u{1b}[8m";
    /// The secrets [`hostile`] holds, none of which a report may show.
    pub(crate) const SECRETS: [&str; 3] = ["hunter2pw", "tok3nvalue", "s3cretheader"];

    /// [`leaky`], with everything a buildpack or the staged code chooses made hostile.
    pub(crate) fn hostile() -> Analysis {
        use crate::capture::attribution::Process;
        use crate::manifest::{Dependency, NoneForStack, StackDeps};
        use crate::verdict::explain::{DependencyRef, MatchedBy};
        let h = HOSTILE;
        let uri = "https://user:hunter2pw@pkg.example.com/x.tgz?token=tok3nvalue&v=1";
        let mut a = leaky();
        a.input = format!("app{h}");
        a.flows[1].names = vec![format!("pkg{h}")];
        a.flows[1].denied = Some(format!("rule{h}"));
        a.phases[1].buildpack_name = format!("bp{h}");
        a.phases[1].exit_code = Some(1);
        a.phases[1].output_tail = vec![format!("out{h}")];
        a.stage.as_mut().unwrap().buildpacks = vec![format!("bp{h}")];
        a.notes = vec![Note::NoDependencyForStack(NoneForStack {
            buildpack: 0,
            source: format!("bp{h}"),
            stack: "cflinuxfs4".into(),
            stacks: vec![format!("stack{h}")],
        })];
        a.manifests = vec![StackDeps {
            buildpack: 0,
            source: format!("bp{h}"),
            stack: format!("stack{h}"),
            dependencies: vec![Dependency {
                name: format!("name{h}"),
                version: format!("1{h}"),
                uri: uri.into(),
                sha256: None,
                cached: None,
                default: false,
            }],
            stacks: vec![format!("stack{h}")],
        }];
        a.flows[1].dependency = Some(DependencyRef {
            buildpack: 0,
            name: format!("name{h}"),
            version: format!("1{h}"),
            uri: uri.into(),
            cached: false,
            matched_by: MatchedBy::Url,
        });
        a.flows[1].process = Some(std::sync::Arc::new(Process {
            pid: 7,
            command: vec![
                "curl".into(),
                "-u".into(),
                "u:hunter2pw".into(),
                "-H".into(),
                "Authorization: Bearer s3cretheader".into(),
                format!("https://pkg.example.com/x{h}?token=tok3nvalue"),
            ],
            parent: Some(
                vec![
                    "sh".into(),
                    "-c".into(),
                    "curl -u u:hunter2pw https://a:hunter2pw@h/x".into(),
                ]
                .into(),
            ),
        }));
        a
    }

    #[test]
    fn hostile_names_and_secrets_stay_out_of_annotations_and_summary() {
        use crate::report::text::assert_terminal_clean;
        let a = hostile();
        let out = annotate(&a);
        // No line of its own: one per disallowed flow, one for the failed phase.
        assert_eq!(out.lines().count(), 2, "{out}");
        assert_terminal_clean(&out, &SECRETS);
        assert!(
            out.contains("by: curl -u REDACTED -H 'Authorization: REDACTED'"),
            "{out}"
        );
        let s = step_summary(&a);
        assert_terminal_clean(&s, &SECRETS);
        assert!(s.contains("namen\\\\u{1b}\\]0;pwn"), "{s}");
    }

    fn annotate(a: &Analysis) -> String {
        let mut out = Vec::new();
        annotations(a, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn one_error_per_disallowed_flow() {
        let out = annotate(&leaky());
        assert_eq!(
            out,
            "::error title=airgap-check%3A disallowed egress::supply contacted tcp 203.0.113.5:443 (pkg.example.com), 3 packets, refused, first at +0.300s\n"
        );
    }

    #[test]
    fn workflow_command_escaping() {
        assert_eq!(escape_data("50% a\r\nb"), "50%25 a%0D%0Ab");
        assert_eq!(escape_property("a: b, c%"), "a%3A b%2C c%25");
        // A hostile name cannot start a command of its own or end this one.
        let mut a = leaky();
        a.flows[1].names = vec!["x\n::add-mask::y".into()];
        let out = annotate(&a);
        assert_eq!(out.lines().count(), 1, "{out}");
        // The line feed is escaped before the workflow command's own escaping sees it.
        assert!(out.contains("(x\\n::add-mask::y)"), "{out}");
    }

    #[test]
    fn failed_phase_and_multi_buildpack_labels() {
        let mut a = leaky();
        a.stage.as_mut().unwrap().buildpacks.push("second".into());
        a.phases[2].exit_code = Some(7);
        a.phases[2].output_tail = (0..15).map(|i| format!("line {i}")).collect();
        let out = annotate(&a);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(
            lines[0].contains("::supply (buildpack 0: bp0) contacted tcp"),
            "{out}"
        );
        assert!(
            lines[1].starts_with(
                "::error title=airgap-check%3A staging failed::finalize (buildpack 0: bp0) exited 7%0Aline 5%0A"
            ),
            "{out}"
        );
        assert!(lines[1].ends_with("%0Aline 14"), "{out}");
        // A timeout says so.
        a.phases[2].exit_code = None;
        a.phases[2].timed_out = true;
        assert!(annotate(&a).contains("::finalize (buildpack 0: bp0) timed out%0A"));
    }

    #[test]
    fn inconclusive_is_a_warning() {
        let mut a = leaky();
        a.flows.truncate(1);
        a.verdict = Verdict::Inconclusive;
        a.capture.canary_seen = Some(false);
        a.notes = vec![Note::CanaryNotSeen {
            why: Some("never".into()),
            mode: Mode::Stage,
        }];
        let out = annotate(&a);
        assert_eq!(
            out,
            "::warning title=airgap-check%3A inconclusive::no verdict: the canary was not seen (never): the capture did not see the container, so nothing was staged\n"
        );
        // A pass says nothing at all.
        a.verdict = Verdict::Pass;
        a.capture.canary_seen = Some(true);
        a.notes.clear();
        assert_eq!(annotate(&a), "");
        // A fail whose capture dropped packets is still a fail, with a warning beside it.
        let mut a = leaky();
        a.capture.dropped = Some(4);
        a.notes = vec![Note::Dropped {
            packets: 4,
            by_interface: 0,
        }];
        let out = annotate(&a);
        assert!(out.contains("\n::warning title=airgap-check%3A capture incomplete::the capture also left something unseen: the capture dropped 4 packets: what they held is unknown\n"), "{out}");
    }

    #[test]
    fn flow_annotations_are_capped() {
        let mut a = leaky();
        let leak = a.flows[1].clone();
        a.flows = vec![leak; MAX_FLOW_ANNOTATIONS + 3];
        let out = annotate(&a);
        assert_eq!(out.lines().count(), MAX_FLOW_ANNOTATIONS + 1);
        assert!(out.ends_with("… and 3 more disallowed flows (every flow is in the JSON report)\n"));
    }

    #[test]
    fn analyze_runs_have_no_phase_words() {
        let mut a = leaky();
        a.mode = Mode::Analyze;
        a.stage = None;
        a.phases.clear();
        for f in &mut a.flows {
            f.phase = None;
            f.phase_buildpack = None;
        }
        assert!(annotate(&a).contains("::contacted tcp 203.0.113.5:443"));
        let s = step_summary(&a);
        assert!(!s.contains("| phase | buildpack |"), "{s}");
        assert!(
            s.contains(
                "| tcp | 203.0.113.5:443 | pkg.example.com | refused | 3 | +0.300s | - | - |"
            ),
            "{s}"
        );
    }

    #[test]
    fn summary_has_verdict_phases_and_flows() {
        let s = step_summary(&leaky());
        assert!(s.starts_with("### airgap-check: ❌ FAIL\n\n"), "{s}");
        assert!(s.contains("**stage** fixtures/apps/hello · allowlist (default) · 4 packets, 2 flows, 1 disallowed"), "{s}");
        assert!(s.contains("Stack image cloudfoundry/cflinuxfs4 (stack cflinuxfs4), user vcap, buildpacks 0: fixtures/buildpacks/leak-dns; run id run-1"), "{s}");
        assert!(s.contains("Capture: canary seen, 0 packets dropped"), "{s}");
        assert!(
            s.contains("| detect | 0: bp0 | exit 0 | 0.1s | 0 |\n"),
            "{s}"
        );
        assert!(
            s.contains("| supply | 0: bp0 | exit 0 | 0.1s | 1 |\n"),
            "{s}"
        );
        assert!(
            s.contains("#### Disallowed flows: 1 to 1 destination\n"),
            "{s}"
        );
        assert!(
            s.contains(
                "| tcp | 203.0.113.5:443 | pkg.example.com | refused | 3 | +0.300s | supply | - |\n"
            ),
            "{s}"
        );
        let mut a = leaky();
        a.flows.truncate(1);
        a.verdict = Verdict::Pass;
        let s = step_summary(&a);
        assert!(s.starts_with("### airgap-check: ✅ PASS"), "{s}");
        assert!(!s.contains("Disallowed flows"), "{s}");
    }

    #[test]
    fn explained_flows_say_what_they_were_after_and_which_command() {
        use crate::capture::attribution::Process;
        use crate::manifest::{Dependency, StackDeps};
        use crate::verdict::explain::{DependencyRef, MatchedBy};
        let dep = |name: &str, version: &str, cached: bool| Dependency {
            name: name.into(),
            version: version.into(),
            uri: format!("https://pkg.example.com/{name}.tgz"),
            sha256: None,
            cached: cached.then(|| "dependencies/x".into()),
            default: false,
        };
        let mut a = leaky();
        a.manifests = vec![StackDeps {
            buildpack: 0,
            source: "bp".into(),
            stack: "cflinuxfs4".into(),
            dependencies: vec![dep("node", "20.11.1", false), dep("tool", "1.2.3", true)],
            stacks: vec!["cflinuxfs4".into()],
        }];
        a.flows[1].dependency = Some(DependencyRef {
            buildpack: 0,
            name: "node".into(),
            version: "20.11.1".into(),
            uri: "https://pkg.example.com/node.tgz".into(),
            cached: false,
            matched_by: MatchedBy::Host,
        });
        a.flows[1].candidates = 2;
        a.flows[1].process = Some(std::sync::Arc::new(Process {
            pid: 31,
            command: vec![
                "curl".into(),
                "-fsSL".into(),
                "https://pkg.example.com/node.tgz".into(),
            ],
            parent: Some(
                vec![
                    "/bin/bash".into(),
                    "/tmp/buildpacks/0/bin/supply".into(),
                    "/tmp/app".into(),
                ]
                .into(),
            ),
        }));
        assert_eq!(
            annotate(&a),
            "::error title=airgap-check%3A disallowed egress::supply contacted tcp 203.0.113.5:443 (pkg.example.com), 3 packets, refused, first at +0.300s → node 20.11.1 from manifest.yml, not cached (by host: the likeliest of 2 entries); by: curl -fsSL https://pkg.example.com/node.tgz (under bin/supply)\n"
        );
        let s = step_summary(&a);
        assert!(
            s.contains(
                "manifest: 2 dependencies for cflinuxfs4, 1 cached; missing: node 20.11.1\n"
            ),
            "{s}"
        );
        assert!(s.contains("- tcp 203.0.113.5:443 (pkg.example.com) at +0.300s: node 20.11.1 from manifest.yml, not cached (by host: the likeliest of 2 entries); by curl -fsSL https://pkg.example.com/node.tgz (under bin/supply)\n"), "{s}");
        // A run whose buildpacks have manifests says so of a flow none of them explains.
        a.flows[1].dependency = None;
        assert!(annotate(&a).contains(
            "first at +0.300s → no manifest.yml entry for cflinuxfs4 matches it; by: curl"
        ));
    }

    #[test]
    fn summary_escapes_what_the_staged_code_chose() {
        let mut a = leaky();
        a.flows[1].names = vec!["a|b<script>*x*\nc".into()];
        a.phases[1].exit_code = Some(1);
        a.phases[1].buildpack_name = "<b>bp</b>".into();
        a.phases[1].output_tail = vec!["```".into(), "</details><img src=x>".into()];
        a.notes = vec![Note::CaptureFailed("[click](http://x)".into())];
        let s = step_summary(&a);
        assert!(s.contains("| a\\|b\\<script\\>\\*x\\*\\\\nc |"), "{s}");
        assert!(
            s.contains("| supply | 0: \\<b\\>bp\\</b\\> | **exit 1** |"),
            "{s}"
        );
        // The output sits in a fence longer than any backtick run it holds.
        assert!(s.contains("<summary>supply (buildpack 0: &lt;b&gt;bp&lt;/b&gt;): last lines of output</summary>\n\n````text\n```\n</details><img src=x>\n````\n\n</details>"), "{s}");
        assert!(
            s.contains("- the capture failed: \\[click\\](http://x)"),
            "{s}"
        );
        assert_eq!(longest_backtick_run("a``b```c`"), 3);
    }
}
