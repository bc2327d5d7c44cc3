//! The console summary: a short table of the disallowed flows and a one-line verdict.
//! Colour only on a terminal (anstream strips it otherwise, and honours NO_COLOR).

use std::io::Write;

use anstyle::{AnsiColor, Style};

use crate::flows::decode::proto_label;
use crate::flows::Micros;
use crate::report::text::terminal_safe as safe;
use crate::report::{explain, relative};
use crate::verdict::analysis::{by_destination, Analysis, Judged};
use crate::verdict::Verdict;

/// At most this many rows; the JSON report has them all.
const MAX_ROWS: usize = 40;
/// At most this many commands under a destination's row.
const MAX_BEHIND: usize = 3;

const BOLD: Style = Style::new().bold();
const RED: Style = AnsiColor::Red.on_default().bold();
const GREEN: Style = AnsiColor::Green.on_default().bold();
const YELLOW: Style = AnsiColor::Yellow.on_default().bold();

type Out<'w> = &'w mut dyn Write;

/// The whole summary: a headline, the phases (staging runs), the disallowed flows, what was
/// allowed and asked, the notes, and the verdict.
pub fn write(a: &Analysis, w: Out<'_>) -> std::io::Result<()> {
    writeln!(
        w,
        "{BOLD}airgap-check {}{BOLD:#} {}: {} packets, {} flows ({} link), allowlist {}",
        a.mode,
        safe(&a.input),
        a.counts.packets,
        a.flows.len(),
        a.capture.link_type,
        safe(&a.allowlist)
    )?;
    if a.stage.is_some() {
        writeln!(w)?;
        phases(a, w)?;
        canary(a, w)?;
        for m in &a.manifests {
            writeln!(w, "  {}", explain::manifest_summary(a, m))?;
        }
    }
    let bad: Vec<&Judged> = a.flows.iter().filter(|f| !f.allowed()).collect();
    if !bad.is_empty() {
        disallowed(a, &bad, w)?;
    }
    allowed(a, bad.len(), w)?;
    dns(a, w)?;
    let c = &a.counts;
    writeln!(
        w,
        "  not judged: arp {}, ndp {}, mld {}, igmp {} (link housekeeping); non-IP {}, truncated {}, invalid {}",
        c.arp, c.ndp, c.mld, c.igmp, c.non_ip, c.truncated, c.invalid
    )?;
    // A note may quote a manifest or a container (a stack's name, a phase's error): escaped here,
    // where it reaches the terminal.
    for n in &a.notes {
        writeln!(w, "  {YELLOW}note:{YELLOW:#} {}", safe(&n.to_string()))?;
    }
    verdict(a, bad.len(), w)
}

/// Several apps: each app's summary, then one line per app with its verdict.
pub fn write_runs(runs: &[Analysis], w: Out<'_>) -> std::io::Result<()> {
    for a in runs {
        write(a, w)?;
        writeln!(w)?;
    }
    writeln!(w, "{BOLD}airgap-check: {} apps{BOLD:#}", runs.len())?;
    for a in runs {
        let (style, word) = verdict_word(a.verdict);
        let why = match a.verdict {
            Verdict::Pass => format!("no disallowed flow in {} flows", a.flows.len()),
            Verdict::Fail => why_failed(a, a.flows.iter().filter(|f| !f.allowed()).count()),
            Verdict::Inconclusive => untrusted_reason(a),
        };
        writeln!(
            w,
            "  {style}{word:<12}{style:#} {}: {}",
            safe(&a.input),
            safe(&why)
        )?;
    }
    runs_verdict_line(runs, w)
}

/// Several apps, with -q: the verdict of them all, one line.
pub fn runs_verdict_line(runs: &[Analysis], w: Out<'_>) -> std::io::Result<()> {
    let all = crate::verdict::Verdict::of_all(runs.iter().map(|a| a.verdict));
    let (style, word) = verdict_word(all);
    let pass = runs.iter().filter(|a| a.verdict == Verdict::Pass).count();
    writeln!(
        w,
        "{style}{word}{style:#}: {pass} of {} apps pass",
        runs.len()
    )
}

fn verdict_word(v: Verdict) -> (Style, &'static str) {
    match v {
        Verdict::Pass => (GREEN, "PASS"),
        Verdict::Fail => (RED, "FAIL"),
        Verdict::Inconclusive => (YELLOW, "INCONCLUSIVE"),
    }
}

/// One row per phase; a failed one with the last lines of its output.
fn phases(a: &Analysis, w: Out<'_>) -> std::io::Result<()> {
    let label = |p: &crate::verdict::analysis::PhaseRecord| {
        format!("buildpack {}: {}", p.buildpack, safe(&p.buildpack_name))
    };
    // As wide as the longest (a CNB is named by its id, often longer than a folder's name).
    let width = a
        .phases
        .iter()
        .map(|p| label(p).chars().count())
        .max()
        .unwrap_or(0)
        .max(32);
    for p in &a.phases {
        let status = match (p.exit_code, p.timed_out) {
            (_, true) => "timed out".to_string(),
            (Some(c), _) if c != 0 && !p.must_succeed => format!("exit {c} (not fatal)"),
            (Some(c), _) if p.oom_killed => format!("exit {c} (OOM)"),
            (Some(c), _) => format!("exit {c}"),
            (None, _) => "no exit code".to_string(),
        };
        let style = if p.failed() { RED } else { Style::new() };
        writeln!(
            w,
            "  {:<9} {:<width$} {style}{:<18}{style:#} {:>6.1}s",
            p.name,
            label(p),
            status,
            (p.ended - p.started) as f64 / 1e6
        )?;
        if p.failed() {
            let from = p.output_tail.len().saturating_sub(10);
            for l in &p.output_tail[from..] {
                writeln!(w, "      | {}", safe(l))?;
            }
        }
    }
    Ok(())
}

/// Whether the capture was proven and complete.
fn canary(a: &Analysis, w: Out<'_>) -> std::io::Result<()> {
    match (a.capture.canary_seen, a.capture.dropped) {
        (Some(true), Some(0)) => writeln!(w, "  capture: canary seen, 0 packets dropped"),
        (seen, dropped) => writeln!(
            w,
            "  {YELLOW}capture: canary {}, {} packets dropped{YELLOW:#}",
            if seen == Some(true) {
                "seen"
            } else {
                "NOT seen"
            },
            dropped.map_or("unknown".into(), |d| d.to_string())
        ),
    }
}

/// The table of disallowed flows: one row per destination (protocol, address, port), its
/// attempts counted (six retries to one host are one row, "6" attempts; the JSON keeps every
/// flow), at most [`MAX_ROWS`] rows. A DENIED BY column names the deny rule, when one matched.
fn disallowed(a: &Analysis, bad: &[&Judged], w: Out<'_>) -> std::io::Result<()> {
    let groups = by_destination_owned(bad);
    let denied = bad.iter().any(|f| f.denied.is_some());
    let mut header = vec![
        "PROTO",
        "DESTINATION",
        "PORT",
        "NAMES",
        "STATE",
        "ATTEMPTS",
        "PACKETS",
        "FIRST SEEN",
        "PHASE",
    ];
    if denied {
        header.push("DENIED BY");
    }
    let start = a.start_ts();
    let rows: Vec<Vec<String>> = groups
        .iter()
        .take(MAX_ROWS)
        .map(|g| {
            let mut r = row(g, start);
            if !denied {
                r.pop();
            }
            r
        })
        .collect();
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, cell) in r.iter().enumerate() {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::from(" ");
        for (i, cell) in cells.iter().enumerate() {
            s.push(' ');
            s.push_str(cell);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(width[i] - cell.chars().count() + 1));
            }
        }
        s
    };
    writeln!(w)?;
    let header: Vec<String> = header.into_iter().map(String::from).collect();
    writeln!(w, "{BOLD}{}{BOLD:#}", line(&header))?;
    for (g, r) in groups.iter().zip(&rows) {
        writeln!(w, "{}", line(r))?;
        behind(a, g, w)?;
    }
    if groups.len() > MAX_ROWS {
        writeln!(
            w,
            "  … and {} more disallowed destinations (every flow is in --json)",
            groups.len() - MAX_ROWS
        )?;
    }
    writeln!(w)
}

/// Under a destination's row: the dependencies its attempts were after, and the commands that
/// made them (each said once; at most [`MAX_BEHIND`] commands).
fn behind(a: &Analysis, g: &[&Judged], w: Out<'_>) -> std::io::Result<()> {
    let mut deps: Vec<String> = Vec::new();
    let mut commands: Vec<String> = Vec::new();
    for f in g {
        if let Some(d) = explain::dependency(a, f).filter(|d| !deps.contains(d)) {
            deps.push(d);
        }
        if let Some(c) = f.process.as_deref().map(explain::command) {
            if !commands.contains(&c) {
                commands.push(c);
            }
        }
    }
    for d in &deps {
        writeln!(w, "      → {d}")?;
    }
    for c in commands.iter().take(MAX_BEHIND) {
        writeln!(w, "      by: {c}")?;
    }
    if commands.len() > MAX_BEHIND {
        writeln!(
            w,
            "      … and {} more commands (every flow's is in --json)",
            commands.len() - MAX_BEHIND
        )?;
    }
    Ok(())
}

/// The disallowed flows grouped by destination, in order of each one's first flow.
fn by_destination_owned<'a>(bad: &[&'a Judged]) -> Vec<Vec<&'a Judged>> {
    let mut order: Vec<Vec<&Judged>> = Vec::new();
    let mut index = ahash::AHashMap::new();
    for f in bad {
        let i = *index.entry(f.destination()).or_insert_with(|| {
            order.push(Vec::new());
            order.len() - 1
        });
        order[i].push(*f);
    }
    order
}

/// One destination's row: its attempts, their packets, states, phases and names together.
fn row(g: &[&Judged], start: Option<Micros>) -> Vec<String> {
    let first = g[0];
    let mut names: Vec<&str> = Vec::new();
    let mut states: Vec<&str> = Vec::new();
    let mut phases: Vec<&str> = Vec::new();
    for f in g {
        for n in &f.names {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        let s = f.flow.state().as_str();
        if !states.contains(&s) {
            states.push(s);
        }
        if let Some(p) = f.phase.as_deref() {
            if !phases.contains(&p) {
                phases.push(p);
            }
        }
    }
    let or_dash = |v: &[&str], sep: &str| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(sep)
        }
    };
    let first_seen = g.iter().map(|f| f.flow.stats.first_seen).min().unwrap_or(0);
    vec![
        proto_label(first.flow.key.proto).into_owned(),
        first.remote_addr.to_string(),
        first.remote_port.map_or("-".into(), |p| p.to_string()),
        safe(&or_dash(&names, ",")).into_owned(),
        or_dash(&states, ","),
        g.len().to_string(),
        g.iter()
            .map(|f| f.flow.stats.packets())
            .sum::<u64>()
            .to_string(),
        relative(first_seen, start),
        or_dash(&phases, ","),
        g.iter()
            .find_map(|f| f.denied.as_deref())
            .map_or_else(|| "-".into(), |d| safe(d).into_owned()),
    ]
}

/// How many flows were allowed, by rule.
fn allowed(a: &Analysis, disallowed: usize, w: Out<'_>) -> std::io::Result<()> {
    let allowed = a.flows.len() - disallowed;
    if allowed == 0 {
        return Ok(());
    }
    let mut by_rule: Vec<(&str, usize)> = Vec::new();
    for f in a.flows.iter().filter_map(|f| f.rule.as_deref()) {
        match by_rule.iter_mut().find(|(r, _)| *r == f) {
            Some((_, n)) => *n += 1,
            None => by_rule.push((f, 1)),
        }
    }
    let parts: Vec<String> = by_rule
        .iter()
        .map(|(r, n)| format!("{}: {n}", safe(r)))
        .collect();
    writeln!(w, "  allowed: {allowed} flows ({})", parts.join(", "))
}

/// The first names asked of DNS.
fn dns(a: &Analysis, w: Out<'_>) -> std::io::Result<()> {
    const SHOWN: usize = 8;
    if a.dns_queries.is_empty() {
        return Ok(());
    }
    let mut asked: Vec<String> = a
        .dns_queries
        .iter()
        .take(SHOWN)
        .map(|q| format!("{} {}", safe(&q.name), q.qtype))
        .collect();
    if a.dns_queries.len() > SHOWN {
        asked.push(format!(
            "… {} more (all of them are in --json)",
            a.dns_queries.len() - SHOWN
        ));
    }
    writeln!(w, "  dns queries: {}", asked.join(", "))
}

/// The verdict line alone (`-q`).
pub fn verdict_line(a: &Analysis, w: Out<'_>) -> std::io::Result<()> {
    let bad = a.flows.iter().filter(|f| !f.allowed()).count();
    verdict(a, bad, w)
}

/// The verdict line, with why.
fn verdict(a: &Analysis, disallowed: usize, w: Out<'_>) -> std::io::Result<()> {
    match a.verdict {
        Verdict::Pass => writeln!(
            w,
            "{GREEN}PASS{GREEN:#}: no disallowed flow in {} flows",
            a.flows.len()
        ),
        Verdict::Fail => writeln!(w, "{RED}FAIL{RED:#}: {}", safe(&why_failed(a, disallowed))),
        Verdict::Inconclusive => writeln!(
            w,
            "{YELLOW}INCONCLUSIVE{YELLOW:#}: the capture cannot be trusted ({}); this is not a pass",
            safe(&untrusted_reason(a))
        ),
    }
}

/// Why an inconclusive run's capture cannot be trusted: the notes that undermine it (as the
/// GitHub output gives it), not the informational ones (a manifest aside comes first in the
/// notes); every note only when none undermines it. Raw: the caller escapes.
fn untrusted_reason(a: &Analysis) -> String {
    let why: Vec<String> = a
        .notes
        .iter()
        .filter(|n| n.undermines_the_capture())
        .map(ToString::to_string)
        .collect();
    if why.is_empty() {
        a.note_texts().join("; ")
    } else {
        why.join("; ")
    }
}

fn why_failed(a: &Analysis, disallowed: usize) -> String {
    let mut why = Vec::new();
    if let Some(p) = a.phases.iter().find(|p| p.failed()) {
        why.push(if p.timed_out {
            format!("staging timed out in {}", p.label())
        } else {
            format!("{} {}", p.label(), p.exited())
        });
    } else if let Some(n) = a
        .notes
        .iter()
        .find(|n| matches!(n, crate::verdict::notes::Note::StagingFailed(_)))
    {
        // Staging failed after its phases succeeded (a CNB group whose plans do not resolve).
        why.push(n.to_string());
    }
    if disallowed > 0 {
        let dests = by_destination(&a.flows)
            .iter()
            .filter(|(_, fs)| fs.iter().any(|f| !f.allowed()))
            .count();
        why.push(format!(
            "{} disallowed flow{} to {} destination{}",
            disallowed,
            if disallowed == 1 { "" } else { "s" },
            dests,
            if dests == 1 { "" } else { "s" }
        ));
    }
    why.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::FlowTable;
    use crate::verdict::judge::judge;
    use crate::verdict::policy::Allowlist;

    /// Six SYNs from six source ports to one destination (a client's retries), one to another.
    fn retries() -> Vec<Judged> {
        let mut t = FlowTable::new();
        let mut at = 0;
        for (dst, sport) in (40000..40006)
            .map(|p| ([203, 0, 113, 5], p))
            .chain([([198, 51, 100, 7], 41000)])
        {
            let mut v = Vec::new();
            etherparse::PacketBuilder::ipv4([10, 1, 0, 2], dst, 64)
                .tcp(sport, 443, 1, 1000)
                .syn()
                .write(&mut v, &[])
                .unwrap();
            let d = crate::flows::decode::decode(crate::flows::decode::LinkKind::RawIp, &v);
            at += 1_000_000;
            t.add(at, v.len() as u32, &d);
        }
        let (flows, _, _) = t.finish();
        judge(flows, &Allowlist::default_list(), &[]).0
    }

    #[test]
    fn hostile_names_and_secrets_stay_off_the_terminal() {
        use crate::report::github::tests::{hostile, SECRETS};
        use crate::report::text::assert_terminal_clean;
        let mut a = hostile();
        a.notes.push(crate::verdict::notes::Note::Skipped(
            crate::staging::tree::Skipped {
                path: "/app/fi\nfo".into(),
                kind: "a FIFO (named pipe)",
            },
        ));
        let mut out = Vec::new();
        write(&a, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_terminal_clean(&out, &SECRETS);
        // The note quoting the manifest's stack names, escaped where it is printed.
        assert!(
            out.contains("(it names stackn\\u{1b}]0;pwn\\u{7}\\u{202e}x"),
            "{out}"
        );
        assert!(out.contains("by: curl -u REDACTED"), "{out}");
        // A skipped file's name, escaped once (a line feed reads `\n`, not `\\n`).
        assert!(out.contains("/app/fi\\nfo: not staged"), "{out}");
        let mut out = Vec::new();
        write_runs(&[a], &mut out).unwrap();
        assert_terminal_clean(&String::from_utf8(out).unwrap(), &SECRETS);
    }

    #[test]
    fn an_inconclusive_app_gives_what_undermines_its_capture() {
        use crate::verdict::notes::Note;
        let mut a = crate::report::github::tests::hostile();
        // The manifest's aside comes first; it is not why the capture cannot be trusted.
        a.notes.push(Note::NoPackets);
        a.verdict = Verdict::Inconclusive;
        let mut out = Vec::new();
        write_runs(&[a], &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let per_app = out
            .lines()
            .rev()
            .find(|l| l.contains("INCONCLUSIVE") && l.contains(": the capture holds no packets"))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(!per_app.contains("names stack"), "{per_app}");
        let summary = out
            .lines()
            .find(|l| l.contains("the capture cannot be trusted ("))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(
            summary.contains("(the capture holds no packets"),
            "{summary}"
        );
        assert!(!summary.contains("names stack"), "{summary}");
    }

    #[test]
    fn repeated_attempts_to_one_destination_are_one_row() {
        let flows = retries();
        assert_eq!(flows.len(), 7);
        let bad: Vec<&Judged> = flows.iter().collect();
        let groups = by_destination_owned(&bad);
        assert_eq!(groups.len(), 2);
        let r = row(&groups[0], Some(0));
        assert_eq!(
            r,
            [
                "tcp",
                "203.0.113.5",
                "443",
                "-",
                "syn_only",
                "6",
                "6",
                "+1.000s",
                "-",
                "-"
            ]
        );
        assert_eq!(row(&groups[1], Some(0))[5], "1");
    }
}
