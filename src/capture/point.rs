//! Observing a container on a real network: where to capture its packets, and how to prove the
//! capture sees them.
//!
//! A container on a bridge network is one end of a veth pair whose other end lives in the host's
//! namespace: the container's `/sys/class/net/eth0/iflink` is the host end's ifindex, and the host
//! end's `iflink` is the container end's. When both agree, the capture runs on the host end, outside
//! the container. Otherwise (macvlan, ipvlan, rootless networking, several interfaces, a peer in
//! another namespace) it runs inside the container's namespace, on every interface ("any"), from a
//! thread that entered it; the container cannot reach that thread either.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use crate::capture::sandbox::{self, SandboxError};

/// Where a capture of one container's traffic runs.
#[derive(Debug)]
pub struct CapturePoint {
    /// The namespace to capture in; `None`: this process's own (the host end of a veth).
    pub ns: Option<File>,
    /// The interface to capture on.
    pub iface: String,
    /// Whether this is the host end of the container's veth (outside the container).
    pub host_side: bool,
    /// For the reader: where the capture runs, and why there.
    pub describe: String,
    /// The container's interface whose frames a capture outside it sees (the host end's peer).
    pub container_if: Option<String>,
}

/// The MAC address of interface `iface` of the container whose first process is `pid`, as its own
/// sysfs shows it.
pub fn container_mac(pid: u32, iface: &str) -> Option<[u8; 6]> {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/root/sys/class/net/{iface}/address")).ok()?;
    let bytes: Vec<u8> = text
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    bytes.try_into().ok()
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Iface {
    name: String,
    ifindex: u32,
    iflink: u32,
}

fn read_u32(p: &Path) -> Option<u32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// The interfaces a sysfs `class/net` folder lists, loopback left out.
fn interfaces(class_net: &Path) -> std::io::Result<Vec<Iface>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(class_net)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "lo" {
            continue;
        }
        if let (Some(ifindex), Some(iflink)) = (
            read_u32(&e.path().join("ifindex")),
            read_u32(&e.path().join("iflink")),
        ) {
            out.push(Iface {
                name,
                ifindex,
                iflink,
            });
        }
    }
    out.sort_by_key(|i| i.ifindex);
    Ok(out)
}

/// The host end of the container's only interface, if the two ends name each other.
fn host_peer(container: &[Iface], host: &[Iface]) -> Result<(String, String), String> {
    let [c] = container else {
        return Err(format!(
            "the container has {} network interfaces besides lo",
            container.len()
        ));
    };
    if c.iflink == c.ifindex {
        return Err(format!(
            "its {} is not one end of a pair (macvlan, ipvlan or similar)",
            c.name
        ));
    }
    host.iter()
        .find(|h| h.ifindex == c.iflink && h.iflink == c.ifindex)
        .map(|h| (h.name.clone(), c.name.clone()))
        .ok_or_else(|| {
            format!(
                "the peer of its {} (ifindex {}) is not in this namespace",
                c.name, c.iflink
            )
        })
}

/// Find where to capture the container whose first process is `pid`.
pub fn capture_point(pid: u32) -> Result<CapturePoint, SandboxError> {
    let inside = Path::new("/proc")
        .join(pid.to_string())
        .join("root/sys/class/net");
    let found = interfaces(&inside)
        .map_err(|e| format!("cannot read {}: {e}", inside.display()))
        .and_then(|c| {
            let h = interfaces(Path::new("/sys/class/net"))
                .map_err(|e| format!("cannot read /sys/class/net: {e}"))?;
            host_peer(&c, &h)
        });
    match found {
        Ok((host_if, container_if)) => Ok(CapturePoint {
            ns: None,
            describe: format!(
                "host end {host_if} of the container's {container_if} (outside the container)"
            ),
            iface: host_if,
            host_side: true,
            container_if: Some(container_if),
        }),
        Err(why) => Ok(CapturePoint {
            ns: Some(sandbox::netns_of_pid(pid)?),
            iface: "any".into(),
            host_side: false,
            describe: format!(
                "every interface inside the container's network namespace, from a thread of airgap-check ({why})"
            ),
            container_if: None,
        }),
    }
}

/// The IPv4 default gateway of the namespace of `pid` (from /proc/PID/net/route).
pub fn default_gateway(pid: u32) -> Option<Ipv4Addr> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/route")).ok()?;
    parse_default_gateway(&table)
}

fn parse_default_gateway(table: &str) -> Option<Ipv4Addr> {
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 8 || f[1] != "00000000" || f[7] != "00000000" {
            return None;
        }
        // Little-endian hex, as the kernel prints it.
        let gw = u32::from_str_radix(f[2], 16).ok()?;
        (gw != 0).then(|| Ipv4Addr::from(gw.swap_bytes()))
    })
}

/// The addresses of this process's own namespace.
pub fn local_addresses() -> Vec<IpAddr> {
    nix::ifaddrs::getifaddrs()
        .map(|it| {
            it.filter_map(|a| {
                let a = a.address?;
                if let Some(v4) = a.as_sockaddr_in() {
                    Some(IpAddr::V4(v4.ip()))
                } else {
                    a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
                }
            })
            .collect()
        })
        .unwrap_or_default()
}

/// The addresses of the network namespace `ns`, loopback left out.
pub fn addresses_in(ns: &File) -> Result<Vec<IpAddr>, SandboxError> {
    let mut v = sandbox::in_netns(ns, local_addresses)?;
    v.retain(|a| !a.is_loopback());
    v.sort();
    v.dedup();
    Ok(v)
}

/// The transmit counters of the interfaces of namespace `ns`, loopback left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxCounters {
    /// Packets sent.
    pub packets: u64,
    /// Packets dropped on their way out: a veth whose peer's backlog is full drops there, before
    /// any capture on the other end could see them.
    pub dropped: u64,
}

impl TxCounters {
    /// What happened between `self` and a later reading.
    pub fn since(self, earlier: TxCounters) -> TxCounters {
        TxCounters {
            packets: self.packets.saturating_sub(earlier.packets),
            dropped: self.dropped.saturating_sub(earlier.dropped),
        }
    }
}

/// Frames the container's interfaces sent that the capture never saw (a raw socket with
/// PACKET_QDISC_BYPASS slips past every capture inside the container's namespace; a veth drops
/// what its peer has no room for): 0 when the capture cannot tell the container's frames apart
/// (`counts_sent` false: no address to tell them by, or a filter that passes only some).
pub fn unseen_by(
    tx: Option<TxCounters>,
    live: &crate::capture::LiveResult,
    counts_sent: bool,
) -> u64 {
    match tx {
        Some(t) if counts_sent => t.packets.saturating_sub(live.sent_out),
        _ => 0,
    }
}

pub fn unseen_note(n: u64) -> String {
    format!(
        "the container's interfaces sent {n} frame(s) more than the capture inside its namespace saw (a raw socket can bypass every capture there): counted as dropped"
    )
}

pub fn tx_counters_in(ns: &File) -> Option<TxCounters> {
    sandbox::in_netns(ns, || {
        std::fs::read_to_string("/proc/thread-self/net/dev")
            .ok()
            .map(|t| parse_tx(&t))
    })
    .ok()
    .flatten()
}

fn parse_tx(table: &str) -> TxCounters {
    table
        .lines()
        .skip(2)
        .filter_map(|l| {
            let (name, counters) = l.split_once(':')?;
            if name.trim() == "lo" {
                return None;
            }
            // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop
            let f: Vec<u64> = counters
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            Some(TxCounters {
                packets: *f.get(9)?,
                dropped: *f.get(11)?,
            })
        })
        .fold(TxCounters::default(), |a, b| TxCounters {
            packets: a.packets + b.packets,
            dropped: a.dropped + b.dropped,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(name: &str, ifindex: u32, iflink: u32) -> Iface {
        Iface {
            name: name.into(),
            ifindex,
            iflink,
        }
    }

    #[test]
    fn the_host_end_is_the_one_that_names_the_container_end_back() {
        let c = [i("eth0", 7, 8)];
        let host = [i("docker0", 3, 3), i("vethb", 9, 7), i("vetha", 8, 7)];
        assert_eq!(
            host_peer(&c, &host).unwrap(),
            ("vetha".into(), "eth0".into())
        );
        // Same index on the host, but it does not point back: the peer is elsewhere.
        let host = [i("vethx", 8, 42)];
        assert!(host_peer(&c, &host)
            .unwrap_err()
            .contains("not in this namespace"));
        // macvlan: iflink is the parent in another namespace; ipvlan/others: iflink == ifindex.
        assert!(host_peer(&[i("eth0", 2, 2)], &host)
            .unwrap_err()
            .contains("not one end of a pair"));
        assert!(host_peer(&[c[0].clone(), i("eth1", 10, 11)], &host)
            .unwrap_err()
            .contains("2 network interfaces"));
        assert!(host_peer(&[], &host).unwrap_err().contains("0 network"));
    }

    #[test]
    fn tx_drops_from_proc_net_dev() {
        let t = "Inter-|   Receive                                                |  Transmit\n\
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n\
    lo:    4193      49    0    0    0     0          0         0     4193      49    0    9    0     0       0          0\n\
  eth0: 1000 10 0 5 0 0 0 0 2000 20 0 7 0 0 0 0\n\
  eth1: 1000 10 0 0 0 0 0 0 2000 20 0 1 0 0 0 0\n";
        assert_eq!(
            parse_tx(t),
            TxCounters {
                packets: 40,
                dropped: 8
            }
        );
    }

    #[test]
    fn default_gateway_from_proc_net_route() {
        let t =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(parse_default_gateway(t), Some(Ipv4Addr::new(172, 18, 0, 1)));
        let t = "Iface\tDestination\tGateway\n eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\n";
        assert_eq!(parse_default_gateway(t), None);
    }
}
