//! The console summary: a short table of the disallowed flows and a one-line verdict.
//! Colour only on a terminal (anstream strips it otherwise, and honours NO_COLOR).

use std::io::Write;

use anstyle::{AnsiColor, Style};

use crate::flows::decode::proto_label;
use crate::report::relative;
use crate::verdict::analysis::{by_destination, Analysis};
use crate::verdict::Verdict;

/// At most this many rows; the JSON report has them all.
const MAX_ROWS: usize = 40;

pub fn write(a: &Analysis, w: &mut dyn Write) -> std::io::Result<()> {
    let bold = Style::new().bold();
    let red = AnsiColor::Red.on_default().bold();
    let green = AnsiColor::Green.on_default().bold();
    let yellow = AnsiColor::Yellow.on_default().bold();
    let c = &a.counts;
    writeln!(
        w,
        "{bold}airgap-check {}{bold:#} {}: {} packets, {} flows ({} link), allowlist {}",
        a.mode,
        a.input,
        c.packets,
        a.flows.len(),
        a.capture.link_type,
        a.allowlist
    )?;
    let start = a.start_ts();
    if a.stage.is_some() {
        writeln!(w)?;
        for p in &a.phases {
            let status = match (p.exit_code, p.timed_out) {
                (_, true) => "timed out".to_string(),
                (Some(c), _) if c != 0 && !p.must_succeed => format!("exit {c} (not fatal)"),
                (Some(c), _) if p.oom_killed => format!("exit {c} (OOM)"),
                (Some(c), _) => format!("exit {c}"),
                (None, _) => "no exit code".to_string(),
            };
            let style = if p.failed() { red } else { Style::new() };
            writeln!(
                w,
                "  {:<9} {:<32} {style}{:<18}{style:#} {:>6.1}s",
                p.name,
                format!("buildpack {}: {}", p.buildpack, p.buildpack_name),
                status,
                (p.ended - p.started) as f64 / 1e6
            )?;
            if p.failed() {
                for l in p
                    .output_tail
                    .iter()
                    .rev()
                    .take(10)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                {
                    writeln!(w, "      | {l}")?;
                }
            }
        }
        match (a.capture.canary_seen, a.capture.dropped) {
            (Some(true), Some(0)) => writeln!(w, "  capture: canary seen, 0 packets dropped")?,
            (seen, dropped) => writeln!(
                w,
                "  {yellow}capture: canary {}, {} packets dropped{yellow:#}",
                if seen == Some(true) {
                    "seen"
                } else {
                    "NOT seen"
                },
                dropped.map_or("unknown".into(), |d| d.to_string())
            )?,
        }
    }
    let bad: Vec<_> = a.flows.iter().filter(|f| !f.allowed()).collect();
    if !bad.is_empty() {
        let header = [
            "PROTO",
            "DESTINATION",
            "PORT",
            "NAMES",
            "STATE",
            "PACKETS",
            "FIRST SEEN",
            "PHASE",
        ];
        let rows: Vec<[String; 8]> = bad
            .iter()
            .take(MAX_ROWS)
            .map(|f| {
                [
                    proto_label(f.flow.key.proto).into_owned(),
                    f.remote_addr.to_string(),
                    f.remote_port.map_or("-".into(), |p| p.to_string()),
                    if f.names.is_empty() {
                        "-".into()
                    } else {
                        f.names.join(",")
                    },
                    f.flow.state().as_str().to_string(),
                    f.flow.stats.packets().to_string(),
                    relative(f.flow.stats.first_seen, start),
                    f.phase.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let mut width = header.map(str::len);
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
        writeln!(w, "{bold}{}{bold:#}", line(&header.map(String::from)))?;
        for r in &rows {
            writeln!(w, "{}", line(r))?;
        }
        if bad.len() > MAX_ROWS {
            writeln!(
                w,
                "  … and {} more disallowed flows (all of them are in --json)",
                bad.len() - MAX_ROWS
            )?;
        }
        writeln!(w)?;
    }
    let allowed = a.flows.len() - bad.len();
    if allowed > 0 {
        let mut by_rule: Vec<(&str, usize)> = Vec::new();
        for f in a.flows.iter().filter_map(|f| f.rule.as_deref()) {
            match by_rule.iter_mut().find(|(r, _)| *r == f) {
                Some((_, n)) => *n += 1,
                None => by_rule.push((f, 1)),
            }
        }
        let parts: Vec<String> = by_rule.iter().map(|(r, n)| format!("{r}: {n}")).collect();
        writeln!(w, "  allowed: {allowed} flows ({})", parts.join(", "))?;
    }
    if !a.dns_queries.is_empty() {
        const SHOWN: usize = 8;
        let mut asked: Vec<String> = a
            .dns_queries
            .iter()
            .take(SHOWN)
            .map(|q| format!("{} {}", q.name, q.qtype))
            .collect();
        if a.dns_queries.len() > SHOWN {
            asked.push(format!(
                "… {} more (all of them are in --json)",
                a.dns_queries.len() - SHOWN
            ));
        }
        writeln!(w, "  dns queries: {}", asked.join(", "))?;
    }
    writeln!(
        w,
        "  not judged: arp {}, ndp {}, mld {}, igmp {} (link housekeeping); non-IP {}, truncated {}, invalid {}",
        c.arp, c.ndp, c.mld, c.igmp, c.non_ip, c.truncated, c.invalid
    )?;
    for n in &a.notes {
        writeln!(w, "  {yellow}note:{yellow:#} {n}")?;
    }
    let dests = by_destination(&a.flows)
        .iter()
        .filter(|(_, fs)| fs.iter().any(|f| !f.allowed()))
        .count();
    match a.verdict {
        Verdict::Pass => writeln!(w, "{green}PASS{green:#}: no disallowed flow in {} flows", a.flows.len()),
        Verdict::Fail => {
            let mut why = Vec::new();
            if let Some(p) = a.phases.iter().find(|p| p.failed()) {
                why.push(if p.timed_out {
                    format!("staging timed out in {}", p.label())
                } else {
                    format!("{} {}", p.label(), p.exited())
                });
            }
            if !bad.is_empty() {
                why.push(format!(
                    "{} disallowed flow{} to {} destination{}",
                    bad.len(),
                    if bad.len() == 1 { "" } else { "s" },
                    dests,
                    if dests == 1 { "" } else { "s" }
                ));
            }
            writeln!(w, "{red}FAIL{red:#}: {}", why.join("; "))
        }
        Verdict::Inconclusive => writeln!(
            w,
            "{yellow}INCONCLUSIVE{yellow:#}: the capture cannot be trusted ({}); this is not a pass",
            a.note_texts().join("; ")
        ),
    }
}
