//! `airgap-check analyze --pcap FILE`: judge a saved capture against an allowlist.

use crate::capture;
use crate::cli::AnalyzeArgs;
use crate::error::Result;
use crate::flows::FlowTable;
use crate::report;
use crate::verdict::analysis::{
    decoding_problems, dns_queries, judge_named, local_notes, names_of, naming_notes,
    verdict_for_capture, Analysis, CaptureHealth,
};
use crate::verdict::policy::Allowlist;

pub fn run(args: &AnalyzeArgs) -> Result<i32> {
    let allowlist = match &args.allowlist {
        Some(p) => Allowlist::load(p)?,
        None => Allowlist::default_list(),
    };
    for out in [&args.json, &args.junit, &args.suggest_allowlist]
        .into_iter()
        .flatten()
    {
        report::check_writable(out)?;
    }
    let mut table = FlowTable::new();
    if let Some(f) = &args.filter {
        capture::check_filter(f)?;
    }
    let read = capture::read_file(&args.pcap, &mut table, args.filter.as_deref())?;
    let (flows, counts, dns) = table.finish();
    let (flows, local) = judge_named(flows, &allowlist, &args.local, &|flow, addr| {
        names_of(flow, addr, &dns)
    });

    let mut notes = Vec::new();
    if let Some(msg) = &read.cut_short {
        notes.push(capture::describe_read_stop(msg));
    }
    if counts.packets == 0 {
        notes.push("the capture holds no packets: it proves nothing".into());
    }
    notes.extend(decoding_problems(&counts));
    if read.ts_out_of_range > 0 {
        notes.push(format!(
            "{} packet timestamp(s) lay outside the years 0000-9999 (a broken or hostile capture file) and were clamped into that range: the times shown for those packets are not real",
            read.ts_out_of_range
        ));
    }
    notes.extend(local_notes(&flows, &local, !args.local.is_empty()));
    notes.extend(naming_notes(&counts, &dns));
    let health = CaptureHealth {
        link_type: read.link_type,
        dropped: None,
        canary_seen: None,
        cut_short: read.cut_short,
        first_ts: read.first_ts,
        error: None,
        point: format!("file {}", args.pcap.display()),
        filter: args.filter.clone(),
    };
    let verdict = verdict_for_capture(&flows, &health, &counts);
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
        phases: Vec::new(),
        stage: None,
        dns_queries: dns_queries(&dns, &[]),
    };
    // All reports or none: a run that fails to write one must not leave the others behind.
    report::deliver(
        &analysis,
        &allowlist,
        args.json.as_deref(),
        args.junit.as_deref(),
        args.suggest_allowlist.as_deref(),
        None,
    )
}
