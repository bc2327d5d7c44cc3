//! `--filter`: a libpcap filter expression, checked before anything is created.

use crate::error::{Error, Result};

/// Check a `--filter` expression before anything is created: libpcap compiles it for Ethernet
/// (the link type of every live capture point but "any"); a bad one is exit 2 with libpcap's words.
pub fn check_filter(expr: &str) -> Result<()> {
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(|e| Error::Capture {
        iface: "filter check".into(),
        reason: e.to_string(),
    })?;
    dead.compile(expr, true)
        .map(|_| ())
        .map_err(|e| bad_filter(expr, &e.to_string()))
}

pub(crate) fn bad_filter(expr: &str, why: &str) -> Error {
    Error::BadArgument {
        option: "--filter",
        value: expr.to_string(),
        expected: format!(
            "expected a libpcap filter expression (see pcap-filter(7)); libpcap says: {why}"
        ),
    }
}
