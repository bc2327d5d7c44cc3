//! `airgap-check analyze --pcap FILE`: judge a saved capture against an allowlist.

use crate::capture;
use crate::cli::{AnalyzeArgs, Verbosity};
use crate::error::Result;
use crate::flows::FlowTable;
use crate::report::{self, Outputs};
use crate::verdict::analysis::{CaptureHealth, Mode};
use crate::verdict::conclude::{conclude, Observation};

pub fn run(args: &AnalyzeArgs, v: Verbosity) -> Result<i32> {
    let allowlist = args.judge.load()?;
    args.reports.check_writable(None)?;
    let mut table = FlowTable::new();
    let read = capture::read_file(&args.pcap, &mut table, args.judge.filter.as_deref())?;
    let input = if args.pcap == std::path::Path::new("-") {
        "(stdin)".to_string()
    } else {
        args.pcap.display().to_string()
    };
    let mut seen = Observation::new(Mode::Analyze, input.clone(), &allowlist, table);
    seen.local = args.local.clone();
    seen.local_given = !args.local.is_empty();
    seen.capture = CaptureHealth {
        link_type: read.link_type,
        cut_short: read.cut_short,
        ts_clamped: read.ts_out_of_range,
        first_ts: read.first_ts,
        point: format!("file {input}"),
        filter: args.judge.filter.clone(),
        ..CaptureHealth::default()
    };
    let analysis = conclude(seen);
    // All reports or none: a run that fails to write one must not leave the others behind.
    report::deliver(
        &analysis,
        Outputs {
            reports: &args.reports,
            allowlist: &allowlist,
            pcap: Vec::new(),
            verbosity: v,
        },
    )
}
