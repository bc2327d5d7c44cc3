//! The flow table, end to end: the input is a capture file (pcap or pcapng, read with pcap-file
//! in memory), each frame is decoded and fed to a FlowTable, which is finished, named and judged
//! against the default allowlist as `airgap-check analyze` does, and written as every report.
//! No panic (integer overflow included: fuzz builds check it), the JSON report is JSON, and the
//! suggested allowlist reads back and allows every flow of the run (its documented promise).
#![no_main]

use std::sync::LazyLock;

use airgap_check::capture::ts_micros;
use airgap_check::flows::decode::{decode, LinkKind};
use airgap_check::flows::{FlowTable, Micros};
use airgap_check::report::{console, github, json, junit, suggest};
use airgap_check::verdict::analysis::{Analysis, CaptureHealth, Mode};
use airgap_check::verdict::conclude::{conclude, Observation};
use airgap_check::verdict::policy::Allowlist;
use libfuzzer_sys::fuzz_target;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};

static DEFAULT: LazyLock<Allowlist> = LazyLock::new(Allowlist::default_list);

/// A frame as libpcap would hand it over: (timestamp, length on the wire, bytes).
type Frame = (Micros, u32, Vec<u8>);

/// The link type and frames of a capture, up to the first record that does not read (as
/// libpcap stops there too), or up to an interface of another link type (pcapng).
fn frames(data: &[u8]) -> Option<(u32, Vec<Frame>)> {
    let micros = |d: std::time::Duration| {
        ts_micros(
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            i64::from(d.subsec_micros()),
        )
        .0
    };
    let mut out = Vec::new();
    if let Ok(mut r) = PcapReader::new(data) {
        let dlt = u32::from(r.header().datalink);
        while let Some(Ok(p)) = r.next_packet() {
            out.push((micros(p.timestamp), p.orig_len, p.data.into_owned()));
        }
        return Some((dlt, out));
    }
    let mut r = PcapNgReader::new(data).ok()?;
    let mut dlt: Option<u32> = None;
    while let Some(Ok(block)) = r.next_block() {
        match block {
            Block::InterfaceDescription(i) => {
                let l = u32::from(i.linktype);
                if dlt.is_some_and(|d| d != l) {
                    break;
                }
                dlt = Some(l);
            }
            Block::EnhancedPacket(p) => {
                out.push((micros(p.timestamp), p.original_len, p.data.into_owned()))
            }
            Block::SimplePacket(p) => out.push((0, p.original_len, p.data.into_owned())),
            _ => {}
        }
    }
    Some((dlt?, out))
}

/// Judge the frames as `airgap-check analyze` does.
fn analyze(dlt: u32, link: LinkKind, frames: &[Frame], allowlist: &Allowlist) -> Analysis {
    let mut table = FlowTable::new();
    let mut first_ts: Option<Micros> = None;
    for (ts, len, bytes) in frames {
        first_ts = Some(first_ts.map_or(*ts, |f| f.min(*ts)));
        table.add(*ts, *len, &decode(link, bytes));
    }
    let mut seen = Observation::new(Mode::Analyze, "fuzz".into(), allowlist, table);
    seen.capture = CaptureHealth {
        link_type: format!("DLT {dlt}"),
        first_ts,
        ..CaptureHealth::default()
    };
    conclude(seen)
}

fuzz_target!(|data: &[u8]| {
    let Some((dlt, frames)) = frames(data) else {
        return;
    };
    let Some(link) = i32::try_from(dlt).ok().and_then(LinkKind::from_dlt) else {
        return;
    };
    let allowlist = &*DEFAULT;
    let analysis = analyze(dlt, link, &frames, allowlist);

    let mut buf = Vec::new();
    json::write(&analysis, &mut buf).unwrap();
    serde_json::from_slice::<serde_json::Value>(&buf).expect("the JSON report is JSON");
    buf.clear();
    junit::write(&analysis, &mut buf).unwrap();
    buf.clear();
    console::write(&analysis, &mut buf).unwrap();
    buf.clear();
    github::annotations(&analysis, &mut buf).unwrap();
    let _ = github::step_summary(&analysis);

    // The suggested allowlist reads back and allows every flow that no deny rule denies.
    buf.clear();
    suggest::write(&analysis, allowlist, &mut buf).unwrap();
    let text = String::from_utf8(buf).expect("the suggested allowlist is UTF-8");
    let suggested = Allowlist::parse(&text, "suggested")
        .unwrap_or_else(|e| panic!("the suggested allowlist does not read back: {e}\n{text}"));
    if !text.contains("destinations were left out") {
        for j in &analyze(dlt, link, &frames, &suggested).flows {
            assert!(
                j.allowed() || j.denied.is_some(),
                "the suggested allowlist does not allow {:?} (remote {} {:?}, names {:?}):\n{text}",
                j.flow.key,
                j.remote_addr,
                j.remote_port,
                j.names
            );
        }
    }
});
