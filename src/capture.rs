//! Offline capture reading (pcap and pcapng, through libpcap) into the flow table.

use std::path::Path;

use crate::decode::{decode, LinkKind};
use crate::error::{Error, Result};
use crate::flow::{FlowTable, Micros};

/// What reading a capture file found besides the flows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOutcome {
    /// libpcap's name for the link type, e.g. "EN10MB".
    pub link_type: String,
    /// Set when the file ends in the middle of a record (a capture cut short): libpcap's message.
    pub cut_short: Option<String>,
    /// Timestamp of the first frame, if any.
    pub first_ts: Option<Micros>,
}

/// Open a capture file, check its link type, and feed every frame into `table`.
pub fn read_file(path: &Path, table: &mut FlowTable) -> Result<ReadOutcome> {
    // Tell a missing or unreadable file apart from a file that is not a capture.
    std::fs::File::open(path).map_err(|e| Error::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if path.is_dir() {
        return Err(Error::Unreadable {
            path: path.to_path_buf(),
            reason: "is a directory, expected a pcap or pcapng file".into(),
        });
    }
    let mut cap = pcap::Capture::from_file(path).map_err(|e| Error::BadCapture {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let dlt = cap.get_datalink();
    let link_name = dlt.get_name().unwrap_or_else(|_| format!("DLT_{}", dlt.0));
    let Some(link) = LinkKind::from_dlt(dlt.0) else {
        return Err(Error::UnsupportedLinkType {
            path: path.to_path_buf(),
            name: link_name,
            number: dlt.0,
        });
    };
    let mut out = ReadOutcome {
        link_type: link_name,
        ..ReadOutcome::default()
    };
    loop {
        match cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts.tv_sec * 1_000_000 + p.header.ts.tv_usec;
                if out.first_ts.is_none() {
                    out.first_ts = Some(ts);
                }
                table.add(ts, p.header.len, &decode(link, p.data));
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                // libpcap reports a file cut mid-record (or a later block it cannot read) this way;
                // what was read so far stands, and the caller must not call the result a pass.
                out.cut_short = Some(e.to_string());
                break;
            }
        }
    }
    Ok(out)
}
