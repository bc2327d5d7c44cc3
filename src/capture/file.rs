//! Reading a saved capture (pcap and pcapng, through libpcap) into the flow table.

use std::path::Path;

use crate::capture::filter::bad_filter;
use crate::error::{Error, Result};
use crate::flows::decode::{decode, LinkKind};
use crate::flows::{FlowTable, Micros};

/// What reading a capture file found besides the flows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOutcome {
    /// libpcap's name for the link type, e.g. "EN10MB".
    pub link_type: String,
    /// Set when libpcap stopped before the end of the file (a capture cut mid-record, a record it
    /// refuses, a pcapng interface of another link type): libpcap's message.
    pub cut_short: Option<String>,
    /// Timestamp of the earliest frame, if any (not necessarily the first record).
    pub first_ts: Option<Micros>,
    /// Frames whose timestamp was outside what the reports can write (years 0000-9999) and was
    /// clamped into it.
    pub ts_out_of_range: u64,
}

/// The earliest timestamp the reports can write as RFC 3339: 0000-01-01T00:00:00Z.
pub const MIN_MICROS: Micros = -62_167_219_200 * 1_000_000;
/// The latest: 9999-12-31T23:59:59.999999Z.
pub const MAX_MICROS: Micros = 253_402_300_799 * 1_000_000 + 999_999;

/// A libpcap timestamp (seconds, microseconds) as microseconds since the epoch, clamped to
/// [`MIN_MICROS`]..=[`MAX_MICROS`]; the flag says whether it had to be clamped. Never overflows,
/// whatever a (possibly hostile) pcapng file claims.
pub fn ts_micros(sec: i64, usec: i64) -> (Micros, bool) {
    match sec.checked_mul(1_000_000).and_then(|s| s.checked_add(usec)) {
        Some(t) if (MIN_MICROS..=MAX_MICROS).contains(&t) => (t, false),
        Some(t) if t < MIN_MICROS => (MIN_MICROS, true),
        Some(_) => (MAX_MICROS, true),
        None if sec < 0 => (MIN_MICROS, true),
        None => (MAX_MICROS, true),
    }
}

/// What it means that libpcap stopped reading a file with this message (`ReadOutcome::cut_short`),
/// for the reader: whatever the reason, the rest of the file was not judged.
pub fn describe_read_stop(msg: &str) -> String {
    if msg.contains("different from the type of the first interface") {
        format!(
            "the pcapng file has interfaces with different link types, which libpcap cannot read ({msg}); reading stopped at the first interface of another type, and every packet after it is unknown (capture on one interface, or on \"any\", to get a single link type)"
        )
    } else if msg.contains("truncated") {
        format!("the capture file ends mid-record ({msg}); whatever came after is unknown")
    } else {
        format!(
            "libpcap could not read the capture file to its end ({msg}); whatever came after is unknown"
        )
    }
}

/// Open a capture file, check its link type, and feed every frame into `table` (only the frames
/// that pass `filter`, a libpcap expression, when one is given). `-` is stdin (libpcap reads it
/// as `tcpdump -r -` does).
pub fn read_file(path: &Path, table: &mut FlowTable, filter: Option<&str>) -> Result<ReadOutcome> {
    let stdin = path == Path::new("-");
    // Tell a missing or unreadable file apart from a file that is not a capture.
    if !stdin {
        std::fs::File::open(path).map_err(|e| Error::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
    }
    if !stdin && path.is_dir() {
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
    if let Some(f) = filter {
        cap.filter(f, true)
            .map_err(|e| bad_filter(f, &e.to_string()))?;
    }
    let mut out = ReadOutcome {
        link_type: link_name,
        ..ReadOutcome::default()
    };
    loop {
        match cap.next_packet() {
            Ok(p) => {
                let (ts, clamped) = ts_micros(p.header.ts.tv_sec, p.header.ts.tv_usec);
                out.ts_out_of_range += u64::from(clamped);
                // Records need not be in time order (mergecap -a, several interfaces): keep the
                // earliest, which relative times are measured from.
                out.first_ts = Some(out.first_ts.map_or(ts, |f| f.min(ts)));
                table.add(ts, p.header.len, &decode(link, p.data));
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                // libpcap reports a file cut mid-record, a record it will not read (a length over
                // its limit) or a later interface of another link type this way; what was read
                // so far stands, and the caller must not call the result a pass
                // (describe_read_stop says which it was).
                out.cut_short = Some(e.to_string());
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_never_overflow_and_say_when_clamped() {
        assert_eq!(
            ts_micros(1_767_225_600, 250),
            (1_767_225_600_000_250, false)
        );
        assert_eq!(ts_micros(-1, 0), (-1_000_000, false));
        assert_eq!(ts_micros(1 << 62, 0), (MAX_MICROS, true));
        assert_eq!(ts_micros(i64::MAX, i64::MAX), (MAX_MICROS, true));
        assert_eq!(ts_micros(i64::MIN, -1), (MIN_MICROS, true));
        assert_eq!(ts_micros(253_402_300_800, 0), (MAX_MICROS, true));
        assert_eq!(ts_micros(-62_167_219_201, 0), (MIN_MICROS, true));
        assert!(ts_micros(i64::MAX / 1_000_000, 0).1);
    }

    #[test]
    fn read_stops_are_named_for_what_they_are() {
        let d = describe_read_stop(
            "an interface has a type 101 different from the type of the first interface",
        );
        assert!(d.starts_with("the pcapng file has interfaces with different link types"));
        let d =
            describe_read_stop("truncated dump file; tried to read 16 header bytes, only got 9");
        assert!(d.starts_with("the capture file ends mid-record"));
        let d = describe_read_stop(
            "invalid packet capture length 300000, bigger than snaplen of 65535",
        );
        assert!(d.starts_with("libpcap could not read the capture file to its end"));
    }
}
