//! The sealed network: a "sink" network namespace that airgap-check creates, joined to the staging
//! container's namespace by a veth pair, with no route anywhere else.
//!
//! Inside the sink, `local 0.0.0.0/0` and `local ::/0` routes make every address local, so a
//! connection to any address is answered (or refused) by the sink itself and goes nowhere: nothing
//! can leave the machine, by construction. The container gets default routes (IPv4 and IPv6) into
//! the sink, so every attempt becomes a packet on the sink's end of the veth, where the capture is.
//!
//! Namespaces are entered only on dedicated OS threads ([`in_netns`]), never on async workers. The
//! sink namespace lives as long as its file descriptor (and any socket opened in it); when
//! airgap-check exits, however it exits, the kernel destroys the namespace and with it the veth
//! pair. Nothing is named in /run/netns, so nothing is left behind.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::route::{RouteScope, RouteType};
use rtnetlink::{new_connection, Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// The sink's end of the veth.
pub const SINK_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// The container's end of the veth.
pub const CONTAINER_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
pub const V4_PREFIX: u8 = 30;
pub const SINK_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1);
pub const CONTAINER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 2);
pub const V6_PREFIX: u8 = 64;

/// Errors of the sandbox, with the step that failed.
#[derive(Debug, thiserror::Error)]
#[error("sealed network: {step}: {reason}")]
pub struct SandboxError {
    pub step: &'static str,
    pub reason: String,
}

fn fail(step: &'static str) -> impl FnOnce(String) -> SandboxError {
    move |reason| SandboxError { step, reason }
}

/// The capabilities the sealed run needs, checked before anything is created.
pub fn check_privileges() -> crate::error::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    let missing: Vec<&str> = [
        (21, "CAP_SYS_ADMIN (to create and enter network namespaces)"),
        (
            12,
            "CAP_NET_ADMIN (to create the veth pair, addresses and routes)",
        ),
        (13, "CAP_NET_RAW (to capture packets)"),
    ]
    .iter()
    .filter(|(bit, _)| eff & (1u64 << bit) == 0)
    .map(|(_, what)| *what)
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(crate::error::Error::Privilege {
            what: missing.join(", "),
        })
    }
}

/// Run `f` on a fresh OS thread that has joined the network namespace `ns`.
pub fn in_netns<R: Send>(ns: &File, f: impl FnOnce() -> R + Send) -> Result<R, SandboxError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(ns)?;
            Ok(f())
        })
        .join()
        .map_err(|_| SandboxError {
            step: "namespace thread",
            reason: "panicked".into(),
        })?
    })
}

/// Move the calling thread into the network namespace `ns` (only call on a dedicated thread).
pub fn enter_netns(ns: &File) -> Result<(), SandboxError> {
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| fail("setns")(format!("{e} (needs CAP_SYS_ADMIN)")))
}

/// Create a new, empty network namespace and return a handle to it.
pub fn new_netns() -> Result<File, SandboxError> {
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| fail("create namespace")(format!("unshare: {e} (needs CAP_SYS_ADMIN)")))?;
        File::open("/proc/thread-self/ns/net").map_err(|e| fail("create namespace")(e.to_string()))
    })
    .join()
    .map_err(|_| fail("create namespace")("thread panicked".into()))?
}

/// Open the network namespace of a process.
pub fn netns_of_pid(pid: u32) -> Result<File, SandboxError> {
    File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| fail("open container namespace")(format!("/proc/{pid}/ns/net: {e}")))
}

/// Run an rtnetlink conversation on the current thread (which is in the wanted namespace).
fn netlink<R>(
    step: &'static str,
    f: impl AsyncFnOnce(Handle) -> Result<R, rtnetlink::Error>,
) -> Result<R, SandboxError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(step)(e.to_string()))?;
    rt.block_on(async {
        let (conn, handle, _) = new_connection().map_err(|e| fail(step)(e.to_string()))?;
        let task = tokio::spawn(conn);
        let r = f(handle).await.map_err(|e| fail(step)(e.to_string()));
        task.abort();
        r
    })
}

async fn index_of(h: &Handle, name: &str) -> Result<u32, rtnetlink::Error> {
    let mut links = h.link().get().match_name(name).execute();
    match links.try_next().await? {
        Some(l) => Ok(l.header.index),
        None => Err(rtnetlink::Error::RequestFailed),
    }
}

async fn set_up(h: &Handle, index: u32) -> Result<(), rtnetlink::Error> {
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
}

async fn add_addr(
    h: &Handle,
    index: u32,
    addr: IpAddr,
    prefix: u8,
) -> Result<(), rtnetlink::Error> {
    let mut req = h.address().add(index, addr, prefix);
    if addr.is_ipv6() {
        // Skip duplicate address detection: nobody else is on this link, and DAD would delay use.
        let m = req.message_mut();
        m.header.flags = AddressHeaderFlags::Nodad;
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    req.execute().await
}

/// Write a sysctl of the calling thread's network namespace.
fn sysctl(path: &str, value: &str) -> Result<(), SandboxError> {
    std::fs::write(path, value).map_err(|e| fail("sysctl")(format!("{path}: {e}")))
}

/// The sealed network of one run. Dropping it closes the sink namespace; once the capture and
/// sinkhole threads have ended too, the kernel removes it and the veth pair.
pub struct Sandbox {
    pub sink: File,
    pub container: File,
    /// Name of the sink's end of the veth (inside the sink namespace).
    pub sink_if: String,
    /// Why TCP connections could not be redirected to the sinkhole's listener, if they could not:
    /// attempts are still caught (the sink refuses them), but their first bytes are not read.
    pub tcp_sink_error: Option<String>,
}

/// Redirect every TCP connection arriving on `iface` (but DNS) to the sinkhole's listener, with
/// iptables/ip6tables run inside the sink namespace (a child process inherits the namespace of the
/// thread that starts it). Returns what went wrong, if anything.
fn redirect_tcp(sink: &File, iface: &str) -> Option<String> {
    let port = crate::capture::sinkhole::TCP_SINK_PORT.to_string();
    let r = in_netns(sink, || {
        for tool in ["iptables", "ip6tables"] {
            let out = std::process::Command::new(tool)
                .args([
                    "-w",
                    "-t",
                    "nat",
                    "-A",
                    "PREROUTING",
                    "-i",
                    iface,
                    "-p",
                    "tcp",
                ])
                .args(["!", "--dport", "53", "-j", "REDIRECT", "--to-ports", &port])
                .output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    return Some(format!(
                        "{tool}: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    ))
                }
                Err(e) => return Some(format!("{tool}: {e}")),
            }
        }
        None
    });
    r.unwrap_or_else(|e| Some(e.to_string()))
}

impl Sandbox {
    /// Build the sealed network around the container whose first process is `pid`.
    /// `tag` makes interface names unique per run (at most 8 characters).
    pub fn seal(pid: u32, tag: &str) -> Result<Sandbox, SandboxError> {
        let sink = new_netns()?;
        let container = netns_of_pid(pid)?;
        let sink_if = format!("agcs{tag}");
        let peer_if = format!("agcc{tag}");
        let container_fd = container.as_raw_fd();
        in_netns(&sink, || build_sink(&sink_if, &peer_if, container_fd))??;
        in_netns(&container, || configure_container_end(&peer_if))??;
        let tcp_sink_error = redirect_tcp(&sink, &sink_if);
        Ok(Sandbox {
            sink,
            container,
            sink_if,
            tcp_sink_error,
        })
    }
}

/// In the sink (the calling thread's namespace): lo up, the veth pair with its container end
/// moved into the container's namespace, the sink's end addressed and up, and every address
/// local.
fn build_sink(sink_if: &str, peer_if: &str, container_fd: i32) -> Result<(), SandboxError> {
    sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "0")?;
    sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "0")?;
    netlink("create veth in sink", async |h| {
        let lo = index_of(&h, "lo").await?;
        set_up(&h, lo).await?;
        h.link()
            .add(LinkVeth::new(sink_if, peer_if).build())
            .execute()
            .await?;
        let peer = index_of(&h, peer_if).await?;
        h.link()
            .set(
                LinkUnspec::new_with_index(peer)
                    .setns_by_fd(container_fd)
                    .build(),
            )
            .execute()
            .await?;
        let s = index_of(&h, sink_if).await?;
        add_addr(&h, s, IpAddr::V4(SINK_V4), V4_PREFIX).await?;
        add_addr(&h, s, IpAddr::V6(SINK_V6), V6_PREFIX).await?;
        set_up(&h, s).await?;
        every_address_local(&h, lo, s).await
    })
}

/// `ip route add local 0.0.0.0/0 dev lo` (and ::/0): every address is the sink's own.
async fn every_address_local(h: &Handle, lo: u32, sink_end: u32) -> Result<(), rtnetlink::Error> {
    let local4 = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
        .output_interface(lo)
        .kind(RouteType::Local)
        .scope(RouteScope::Host)
        .table_id(255)
        .build();
    h.route().add(local4).execute().await?;
    let local6 = RouteMessageBuilder::<Ipv6Addr>::new()
        .destination_prefix(Ipv6Addr::UNSPECIFIED, 0)
        .output_interface(lo)
        .kind(RouteType::Local)
        .scope(RouteScope::Host)
        .table_id(255)
        .build();
    h.route().add(local6).execute().await?;
    // IPv6 consults the local table before main, so `local ::/0` would also swallow replies to
    // the container (they would loop to lo): route the link's own prefixes out of the veth from
    // the local table itself. IPv4 merges the tables, but say it explicitly there too.
    let link6 = |p: Ipv6Addr, len| {
        RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(p, len)
            .output_interface(sink_end)
            .table_id(255)
            .build()
    };
    h.route().add(link6(SINK_V6, V6_PREFIX)).execute().await?;
    h.route()
        .add(link6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 64))
        .execute()
        .await?;
    let link4 = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(Ipv4Addr::new(10, 99, 0, 0), V4_PREFIX)
        .output_interface(sink_end)
        .scope(RouteScope::Link)
        .table_id(255)
        .build();
    h.route().add(link4).execute().await
}

/// In the container (the calling thread's namespace): IPv6 on (Docker turns it off for network
/// "none"), the veth end named eth0 with its addresses, and default routes into the sink.
fn configure_container_end(peer_if: &str) -> Result<(), SandboxError> {
    for k in ["all", "default"] {
        sysctl(&format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"), "0")?;
    }
    let i = netlink("configure container end", async |h| {
        let i = index_of(&h, peer_if).await?;
        h.link()
            .set(LinkUnspec::new_with_index(i).name("eth0").build())
            .execute()
            .await?;
        Ok(i)
    })?;
    sysctl("/proc/sys/net/ipv6/conf/eth0/disable_ipv6", "0")?;
    netlink("configure container end", async |h| {
        add_addr(&h, i, IpAddr::V4(CONTAINER_V4), V4_PREFIX).await?;
        add_addr(&h, i, IpAddr::V6(CONTAINER_V6), V6_PREFIX).await?;
        set_up(&h, i).await?;
        let v4 = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(SINK_V4)
            .build();
        h.route().add(v4).execute().await?;
        let v6 = RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(SINK_V6)
            .build();
        h.route().add(v6).execute().await
    })
}
