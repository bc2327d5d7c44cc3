//! airgap-check: prove that a buildpack stages an app with no network egress.
//!
//! Data flows one way: capture → [`decode`] → [`flow`] → [`policy`] ([`analysis`]) → [`report`].

pub mod analysis;
pub mod capture;
pub mod cli;
pub mod decode;
pub mod error;
pub mod flow;
pub mod policy;
pub mod report;
pub mod verdict;

use std::ffi::OsString;
use std::io::Write;

use crate::analysis::{judge, verdict_for, Analysis, CaptureHealth};
use crate::cli::{AnalyzeArgs, Command};
use crate::error::Result;
use crate::flow::FlowTable;
use crate::policy::Allowlist;

/// Run the tool with these arguments; the `Ok` value is the exit code.
pub fn run<I, T>(args: I) -> Result<i32>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match cli::parse(args) {
        Ok(c) => c,
        Err(e) => {
            // clap prints help/version (exit 0) and usage errors (exit 2) itself.
            let _ = e.print();
            return Ok(e.exit_code());
        }
    };
    match cli.command {
        Some(Command::Analyze(a)) => analyze(&a),
        None => {
            let _ = cli::parse(["airgap-check", "--help"]).map_err(|e| e.print());
            Ok(2)
        }
    }
}

fn analyze(args: &AnalyzeArgs) -> Result<i32> {
    let allowlist = match &args.allowlist {
        Some(p) => Allowlist::load(p)?,
        None => Allowlist::default_list(),
    };
    for out in [&args.json, &args.junit].into_iter().flatten() {
        report::check_writable(out)?;
    }
    let mut table = FlowTable::new();
    let read = capture::read_file(&args.pcap, &mut table)?;
    let (flows, counts) = table.finish();
    let (flows, local) = judge(flows, &allowlist, &args.local);

    let mut notes = Vec::new();
    if let Some(msg) = &read.cut_short {
        notes.push(format!(
            "the capture file ends mid-record ({msg}); whatever came after is unknown"
        ));
    }
    if counts.packets == 0 {
        notes.push("the capture holds no packets: it proves nothing".into());
    }
    if local.is_empty() && !flows.is_empty() {
        notes.push(
            "no address is present in every flow; each flow is judged on its responder (name this host with --local)".into(),
        );
    }
    let health = CaptureHealth {
        link_type: read.link_type,
        dropped: None,
        canary_seen: None,
        cut_short: read.cut_short,
        first_ts: read.first_ts,
    };
    let mut verdict = verdict_for(&flows, &health);
    if counts.packets == 0 {
        verdict = verdict::Verdict::Inconclusive;
    }
    let analysis = Analysis {
        mode: "analyze",
        input: args.pcap.display().to_string(),
        allowlist: allowlist.source.clone(),
        local,
        flows,
        counts,
        capture: health,
        verdict,
        notes,
    };
    if let Some(p) = &args.json {
        report::write_atomically(p, |w| report::json::write(&analysis, w))?;
    }
    if let Some(p) = &args.junit {
        report::write_atomically(p, |w| report::junit::write(&analysis, w))?;
    }
    let mut out = anstream::stdout().lock();
    let _ = report::console::write(&analysis, &mut out);
    let _ = out.flush();
    Ok(analysis.verdict.exit_code())
}
