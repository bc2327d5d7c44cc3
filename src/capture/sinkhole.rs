//! Services inside the sink namespace: a DNS responder, a listener that takes every TCP
//! connection, and a discard port for the canary; each connection and query it takes can be
//! attributed to the container process that made it ([`Attributor`]).
//!
//! Offline, a name lookup fails and the attempt never becomes a connection: the leak is invisible.
//! The responder answers every A and AAAA query, on UDP and TCP port 53 of *every* address (all
//! addresses are local to the sink), with an address of its own outside the private ranges — one per
//! name, from 198.18.0.0/15 and 2001:db8:5ee::/64 — so the buildpack's next step is a visible
//! connection attempt, and the flow to that address carries the name.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use crate::capture::attribution::Attributor;
use crate::capture::canary::CANARY_PORT;
use crate::capture::sandbox::{enter_netns, SandboxError};
use crate::capture::sock_diag::canonical;
use crate::flows::decode::{PROTO_TCP, PROTO_UDP};
use crate::flows::now_micros;

/// Every TCP connection into the sink (but DNS) is redirected here, whatever its port.
pub const TCP_SINK_PORT: u16 = 4;
/// How much of what a client sends first is read before the connection is closed.
const FIRST_BYTES: usize = 16 * 1024;

/// One name the responder was asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lookup {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
    /// Query types asked, with counts.
    pub types: BTreeMap<String, u64>,
    /// When the name was first asked (microseconds since the epoch).
    pub first: i64,
}

/// What the responder answered: names and the addresses it handed out.
#[derive(Default, Debug)]
pub struct DnsLog {
    pub names: BTreeMap<String, Lookup>,
    next: u32,
}

impl DnsLog {
    fn address_for(&mut self, name: &str, v6: bool, now: i64) -> IpAddr {
        let next = &mut self.next;
        let entry = self
            .names
            .entry(name.to_string())
            .or_insert_with(|| Lookup {
                first: now,
                ..Lookup::default()
            });
        if v6 {
            let a = *entry.v6.get_or_insert_with(|| {
                *next += 1;
                Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0x5ee,
                    0,
                    0,
                    0,
                    (*next >> 16) as u16,
                    *next as u16,
                )
            });
            IpAddr::V6(a)
        } else {
            let a = *entry.v4.get_or_insert_with(|| {
                *next += 1;
                // 198.18.0.0/15 holds 131,070 host addresses; wrap rather than overflow.
                let n = (*next - 1) % 131_070 + 1;
                Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + n)
            });
            IpAddr::V4(a)
        }
    }

    /// The name that was given this address, if any.
    pub fn name_of(&self, addr: IpAddr) -> Option<&str> {
        self.names
            .iter()
            .find(|(_, l)| l.v4.map(IpAddr::V4) == Some(addr) || l.v6.map(IpAddr::V6) == Some(addr))
            .map(|(n, _)| n.as_str())
    }
}

/// Build the answer to one DNS query; `None` for what is not a query.
pub fn answer(query: &[u8], log: &Mutex<DnsLog>) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    if q.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut r = Message::response(q.metadata.id, q.metadata.op_code);
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.metadata.authoritative = true;
    let now = now_micros();
    let mut log = log.lock().ok()?;
    for query in &q.queries {
        r.add_query(query.clone());
        let name = query
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let t = query.query_type();
        let entry_types = |log: &mut DnsLog| {
            let e = log.names.entry(name.clone()).or_insert_with(|| Lookup {
                first: now,
                ..Lookup::default()
            });
            *e.types.entry(t.to_string()).or_default() += 1;
        };
        match t {
            RecordType::A => {
                if let IpAddr::V4(a) = log.address_for(&name, false, now) {
                    r.add_answer(Record::from_rdata(query.name().clone(), 60, RData::A(A(a))));
                }
            }
            RecordType::AAAA => {
                if let IpAddr::V6(a) = log.address_for(&name, true, now) {
                    r.add_answer(Record::from_rdata(
                        query.name().clone(),
                        60,
                        RData::AAAA(AAAA(a)),
                    ));
                }
            }
            _ => {}
        }
        entry_types(&mut log);
    }
    if q.queries.is_empty() {
        r.metadata.response_code = ResponseCode::FormErr;
    }
    r.to_vec().ok()
}

async fn serve_udp(sock: UdpSocket, log: Arc<Mutex<DnsLog>>, who: Option<Arc<Attributor>>) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let Some(resp) = answer(&buf[..n], &log) else {
            continue;
        };
        match &who {
            // The client waits for the answer, so its socket is there to be found: answer once
            // it is (or after the attribution's bound).
            Some(who) => {
                let (sock, who) = (sock.clone(), who.clone());
                tokio::spawn(async move {
                    who.attribute(PROTO_UDP, from, None).await;
                    let _ = sock.send_to(&resp, from).await;
                });
            }
            None => {
                let _ = sock.send_to(&resp, from).await;
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, log: Arc<Mutex<DnsLog>>, who: Option<Arc<Attributor>>) {
    loop {
        let Ok((mut conn, peer)) = listener.accept().await else {
            continue;
        };
        let (log, who) = (log.clone(), who.clone());
        tokio::spawn(async move {
            if let Some(who) = who {
                // Not redirected: the address it asked is the one it reached.
                who.attribute(PROTO_TCP, peer, conn.local_addr().ok()).await;
            }
            // Bounded: a connection gets at most 64 queries and 10 s.
            let work = async {
                for _ in 0..64 {
                    let len = conn.read_u16().await.ok()? as usize;
                    let mut msg = vec![0u8; len];
                    conn.read_exact(&mut msg).await.ok()?;
                    let resp = answer(&msg, &log)?;
                    conn.write_u16(resp.len() as u16).await.ok()?;
                    conn.write_all(&resp).await.ok()?;
                }
                Some(())
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), work).await;
        });
    }
}

/// Accept every connection, find who made it (while the client waits, its socket is there to be
/// found), read what the client sends first (a TLS ClientHello, an HTTP request: the capture sees
/// it and names the flow), answer an HTTP request with 503 so the client gives up quickly, and
/// close. Bounded: the attribution's wait, then 16 KiB and 3 s per connection.
async fn serve_tcp_sink(listener: TcpListener, who: Option<Arc<Attributor>>) {
    loop {
        let Ok((mut conn, peer)) = listener.accept().await else {
            continue;
        };
        let who = who.clone();
        tokio::spawn(async move {
            if let Some(who) = who {
                who.attribute(PROTO_TCP, peer, original_dst(&conn, peer))
                    .await;
            }
            let mut buf = vec![0u8; FIRST_BYTES];
            let mut n = 0;
            let read = async {
                while n < buf.len() {
                    match conn.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        let _ = conn
                            .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .await;
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), read).await;
        });
    }
}

/// Where the client of a redirected connection was going (its socket's other end): the address
/// before the sink's REDIRECT, from conntrack; `None` when the kernel cannot tell.
fn original_dst(conn: &tokio::net::TcpStream, peer: SocketAddr) -> Option<SocketAddr> {
    use nix::sys::socket::{getsockopt, sockopt};
    if canonical(peer).is_ipv4() {
        let a = getsockopt(conn, sockopt::OriginalDst).ok()?;
        let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
        Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
    } else {
        let a = getsockopt(conn, sockopt::Ip6tOriginalDst).ok()?;
        let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
        Some(SocketAddr::from((ip, u16::from_be(a.sin6_port))))
    }
}

async fn serve_discard(sock: UdpSocket) {
    let mut buf = vec![0u8; 2048];
    loop {
        let _ = sock.recv_from(&mut buf).await;
    }
}

/// The sinkhole of a sealed run, serving inside the sink namespace on a thread of its own until
/// [`Sinkhole::stop`]ped (or dropped: then the thread ends on its own).
pub struct Sinkhole {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// What it answered.
    pub log: Arc<Mutex<DnsLog>>,
}

impl Sinkhole {
    /// Start the services inside the namespace `sink`; returns once they listen. With `who`, every
    /// connection and DNS query it takes is attributed to the process that made it; the thread
    /// holds the only `who`, so that once it ends, nothing asks any more.
    pub async fn start(
        sink: &std::fs::File,
        who: Option<Arc<Attributor>>,
    ) -> Result<Sinkhole, SandboxError> {
        let failed = |e: std::io::Error| SandboxError {
            step: "sinkhole",
            reason: e.to_string(),
        };
        let log = Arc::new(Mutex::new(DnsLog::default()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sink = sink.try_clone().map_err(failed)?;
        let thread_log = log.clone();
        let thread = std::thread::Builder::new()
            .name("sinkhole".into())
            .spawn(move || {
                if let Err(e) = enter_netns(&sink) {
                    let _ = ready_tx.send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
                drop(sink);
                run(thread_log, who, ready_tx, stop_rx);
            })
            .map_err(failed)?;
        tokio::task::spawn_blocking(move || ready_rx.recv())
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_else(|| Err(std::io::Error::other("the sinkhole thread ended")))
            .map_err(failed)?;
        Ok(Sinkhole {
            stop: Some(stop_tx),
            thread: Some(thread),
            log,
        })
    }

    /// The names it handed out, with the addresses it gave each.
    pub fn handed_out(&self) -> Vec<(String, Vec<IpAddr>)> {
        let log = self.log.lock().map(|l| l.names.clone()).unwrap_or_default();
        log.into_iter()
            .map(|(name, l)| {
                let addrs = l.v4.map(IpAddr::V4).into_iter().chain(l.v6.map(IpAddr::V6));
                (name, addrs.collect())
            })
            .collect()
    }

    /// Stop serving and wait for the thread to end: no connection is served, and nothing asks
    /// for an attribution, any more. Blocks: call it off the async runtime's workers.
    pub fn stop(&mut self) {
        self.stop_now();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Sinkhole {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Bind the services (on the calling thread, which must be in the sink) and serve them until
/// `stop` fires. Binding errors are returned before serving starts, through `ready`.
fn run(
    log: Arc<Mutex<DnsLog>>,
    who: Option<Arc<Attributor>>,
    ready: std::sync::mpsc::Sender<std::io::Result<()>>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    rt.block_on(async move {
        let bind = || {
            let udp = dual_stack(socket2::Type::DGRAM, 53)?;
            let tcp = dual_stack(socket2::Type::STREAM, 53)?;
            let discard = dual_stack(socket2::Type::DGRAM, CANARY_PORT)?;
            let sink = dual_stack(socket2::Type::STREAM, TCP_SINK_PORT)?;
            tcp.listen(128)?;
            sink.listen(1024)?;
            Ok::<_, std::io::Error>((
                UdpSocket::from_std(udp.into())?,
                TcpListener::from_std(tcp.into())?,
                UdpSocket::from_std(discard.into())?,
                TcpListener::from_std(sink.into())?,
            ))
        };
        let (udp, tcp, discard, sink) = match bind() {
            Ok(s) => {
                let _ = ready.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        tokio::select! {
            _ = serve_udp(udp, log.clone(), who.clone()) => {}
            _ = serve_tcp(tcp, log.clone(), who.clone()) => {}
            _ = serve_discard(discard) => {}
            _ = serve_tcp_sink(sink, who) => {}
            _ = stop => {}
        }
    });
}

/// A socket on [::]:port that takes IPv4 too (as v4-mapped addresses), non-blocking for tokio.
fn dual_stack(ty: socket2::Type, port: u16) -> std::io::Result<socket2::Socket> {
    let s = socket2::Socket::new(socket2::Domain::IPV6, ty, None)?;
    s.set_only_v6(false)?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
    s.set_nonblocking(true)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn ask(name: &str, t: RecordType, log: &Mutex<DnsLog>) -> Message {
        let mut q = Message::query();
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        Message::from_vec(&answer(&q.to_vec().unwrap(), log).unwrap()).unwrap()
    }

    #[test]
    fn every_name_gets_its_own_stable_address_outside_private_ranges() {
        let log = Mutex::new(DnsLog::default());
        let a = ask("buildpacks.cloudfoundry.org.", RecordType::A, &log);
        let b = ask("github.com.", RecordType::A, &log);
        let a2 = ask("Buildpacks.CloudFoundry.org.", RecordType::A, &log);
        let six = ask("github.com.", RecordType::AAAA, &log);
        let addr = |m: &Message| match &m.answers[0].data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            other => panic!("{other:?}"),
        };
        assert_eq!(addr(&a), "198.18.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(addr(&b), "198.18.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(addr(&a2), addr(&a));
        assert!(addr(&six).to_string().starts_with("2001:db8:5ee::"));
        let log = log.lock().unwrap();
        assert_eq!(log.name_of(addr(&b)), Some("github.com"));
        assert_eq!(log.name_of(addr(&six)), Some("github.com"));
        assert_eq!(log.names["buildpacks.cloudfoundry.org"].types["A"], 2);
    }

    #[test]
    fn garbage_is_not_answered() {
        let log = Mutex::new(DnsLog::default());
        assert!(answer(&[1, 2, 3], &log).is_none());
        assert!(answer(&[], &log).is_none());
    }
}
