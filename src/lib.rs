//! airgap-check: prove that a buildpack stages an app with no network egress.
//!
//! Data flows one way: capture → [`decode`] → [`flow`] → [`policy`] ([`analysis`]) → [`report`].

pub mod analysis;
pub mod capture;
pub mod cli;
pub mod context;
pub mod decode;
pub mod docker;
pub mod error;
pub mod flow;
pub mod lifecycle;
pub mod naming;
pub mod observe;
pub mod policy;
pub mod report;
pub mod sandbox;
pub mod sinkhole;
pub mod stage;
pub mod verdict;
pub mod watch;

use std::ffi::OsString;

use crate::analysis::{
    decoding_problems, dns_queries, judge_named, local_notes, names_of, naming_notes,
    verdict_for_capture, Analysis, CaptureHealth,
};
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
        Some(Command::Prune) => prune(),
        Some(Command::Watch(w)) => watch::run(&w),
        None if cli.stage.app.is_none() && cli.stage.buildpacks.is_empty() => {
            let _ = cli::parse(["airgap-check", "--help"]).map_err(|e| e.print());
            Ok(2)
        }
        None => stage::run(&cli.stage),
    }
}

fn analyze(args: &AnalyzeArgs) -> Result<i32> {
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

/// Remove what killed runs left: labelled containers and images whose airgap-check process is gone,
/// and their temporary folders. Namespaces and veths need nothing: the kernel removed them when the
/// process died.
fn prune() -> Result<i32> {
    let alive = |pid: Option<u32>| {
        pid.is_some_and(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "airgap-check")
        })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| error::Error::Docker {
            op: "runtime",
            reason: e.to_string(),
        })?;
    let (mut containers, mut images, mut networks) = (0, 0, 0);
    rt.block_on(async {
        let d = docker::connect().await?;
        let (cs, is) = docker::labelled(&d).await?;
        for (id, pid) in cs {
            if !alive(pid) {
                docker::remove_container(&d, &id).await?;
                println!("removed container {}", &id[..id.len().min(12)]);
                containers += 1;
            }
        }
        for (id, pid) in docker::labelled_networks(&d).await? {
            if !alive(pid) {
                docker::remove_network(&d, &id).await?;
                println!("removed network {}", &id[..id.len().min(12)]);
                networks += 1;
            }
        }
        for (id, pid) in is {
            if !alive(pid) {
                docker::remove_image(&d, &id).await?;
                println!("removed image {id}");
                images += 1;
            }
        }
        Ok::<_, error::Error>(())
    })?;
    let mut dirs = 0;
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("airgap-check-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_some() && !alive(pid) && std::fs::remove_dir_all(e.path()).is_ok() {
                println!("removed {}", e.path().display());
                dirs += 1;
            }
        }
    }
    println!(
        "pruned {containers} containers, {networks} networks, {images} images, {dirs} temporary folders"
    );
    Ok(0)
}
