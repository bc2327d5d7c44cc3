//! The command behind each attempt, best effort. The sinkhole of a sealed run accepts every TCP
//! connection and answers every DNS query; while it holds one, the client's socket still exists
//! in the container's namespace. The sinkhole asks the [`Attributor`] who holds it and waits for
//! the answer ([`WAIT`] at most) before it goes on: a thread of its own, inside the container's
//! namespace, finds the socket by its address (sock_diag), then the container process that holds
//! it (its open files, within the container's cgroup), and records its argv and its parent's.
//!
//! It never touches the capture and never changes a verdict: a flow it could not tell gets no
//! process. Asks beyond [`QUEUE`] waiting, or beyond [`MAX_FOUND`] answered, are not attributed.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::capture::procs::Process;
use crate::capture::procs::Procs;
use crate::capture::sandbox::enter_netns;
use crate::capture::sock_diag::{canonical, unspecified, Diag, SocketInfo};
use crate::flows::decode::{PROTO_TCP, PROTO_UDP};
use crate::flows::{now_micros, FlowKey, Micros};

/// The longest the sinkhole holds a connection (or a DNS answer) waiting for its attribution.
pub const WAIT: Duration = Duration::from_millis(250);
/// At most this many asks wait at once.
pub const QUEUE: usize = 1024;
/// At most this many attributions are kept (a port scan would make one per connection).
pub const MAX_FOUND: usize = 100_000;

/// One attempt, attributed: the client's end, the other end its socket named (`None` for an
/// unconnected UDP socket), when, and the process holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributed {
    pub proto: u8,
    pub src: SocketAddr,
    pub dst: Option<SocketAddr>,
    pub at: Micros,
    pub process: Arc<Process>,
}

struct Ask {
    proto: u8,
    peer: SocketAddr,
    at: Micros,
    done: tokio::sync::oneshot::Sender<()>,
}

/// Attributes the sinkhole's connections to the container's processes, on a thread of its own.
pub struct Attributor {
    tx: SyncSender<Ask>,
    found: Arc<Mutex<Vec<Attributed>>>,
    /// [`MAX_FOUND`] attributions are in: nothing more is asked, and nothing waits.
    full: Arc<AtomicBool>,
}

impl Attributor {
    /// Start attributing in the container whose namespace is `container_ns` and whose idle first
    /// process has the host pid `init`; why not, when it cannot.
    pub fn start(container_ns: &File, init: u32) -> Result<Arc<Attributor>, String> {
        let ns = container_ns.try_clone().map_err(|e| e.to_string())?;
        let procs = Procs::of(init).ok_or("the container's first process is gone")?;
        let (tx, rx) = sync_channel(QUEUE);
        let found = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let keep = found.clone();
        let full = Arc::new(AtomicBool::new(false));
        let is_full = full.clone();
        std::thread::Builder::new()
            .name("attribution".into())
            .spawn(move || {
                let diag = enter_netns(&ns)
                    .map_err(|e| e.to_string())
                    .and_then(|()| Diag::open().map_err(|e| format!("sock_diag: {e}")));
                drop(ns);
                match diag {
                    Ok(d) => {
                        let _ = ready_tx.send(Ok(()));
                        serve(&rx, d, &procs, &keep, &is_full);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        ready_rx
            .recv()
            .map_err(|_| "the attribution thread ended".to_string())??;
        Ok(Arc::new(Attributor { tx, found, full }))
    }

    /// Find who holds the client end `peer` of a `proto` (TCP or UDP) exchange the sinkhole
    /// holds; returns once that is known, or after [`WAIT`].
    pub async fn attribute(&self, proto: u8, peer: SocketAddr) {
        if self.full.load(Ordering::Relaxed) {
            return;
        }
        let (done, answered) = tokio::sync::oneshot::channel();
        let ask = Ask {
            proto,
            peer: canonical(peer),
            at: now_micros(),
            done,
        };
        if self.tx.try_send(ask).is_ok() {
            let _ = tokio::time::timeout(WAIT, answered).await;
        }
    }

    /// Every attribution so far.
    pub fn found(&self) -> Vec<Attributed> {
        self.found.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

/// Answer asks in batches (one socket dump and one look at the processes per batch) until every
/// sender is gone.
fn serve(
    rx: &Receiver<Ask>,
    mut diag: Diag,
    procs: &Procs,
    found: &Mutex<Vec<Attributed>>,
    full: &AtomicBool,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < QUEUE {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        if !full.load(Ordering::Relaxed) {
            let new = attribute_batch(&batch, &mut diag, procs);
            if let Ok(mut f) = found.lock() {
                let room = MAX_FOUND.saturating_sub(f.len());
                f.extend(new.into_iter().take(room));
                full.store(f.len() >= MAX_FOUND, Ordering::Relaxed);
            }
        }
        for ask in batch {
            let _ = ask.done.send(());
        }
    }
}

/// The socket of each ask (by its local address; an unconnected UDP socket bound to every
/// address by its port), then the process holding it.
fn attribute_batch(batch: &[Ask], diag: &mut Diag, procs: &Procs) -> Vec<Attributed> {
    let mut sockets: HashMap<(u8, SocketAddr), SocketInfo> = HashMap::new();
    for proto in [PROTO_TCP, PROTO_UDP] {
        if !batch.iter().any(|a| a.proto == proto) {
            continue;
        }
        for s in diag.dump(proto).unwrap_or_default() {
            if s.inode != 0 {
                sockets.insert((proto, s.local), s);
            }
        }
    }
    let socket_of = |a: &Ask| {
        let any = SocketAddr::new(
            if a.peer.is_ipv4() {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            },
            a.peer.port(),
        );
        sockets
            .get(&(a.proto, a.peer))
            .or_else(|| sockets.get(&(a.proto, any)))
            .copied()
    };
    let asked: Vec<(&Ask, SocketInfo)> = batch
        .iter()
        .filter_map(|a| Some((a, socket_of(a)?)))
        .collect();
    let inodes: HashSet<u32> = asked.iter().map(|(_, s)| s.inode).collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let holders = procs.holders(&inodes);
    let mut known: HashMap<u32, Option<Arc<Process>>> = HashMap::new();
    asked
        .into_iter()
        .filter_map(|(a, s)| {
            let pid = procs.maker(holders.get(&s.inode)?)?;
            let process = known
                .entry(pid)
                .or_insert_with(|| procs.process(pid).map(Arc::new))
                .clone()?;
            Some(Attributed {
                proto: a.proto,
                src: a.peer,
                dst: (!unspecified(s.remote)).then_some(s.remote),
                at: a.at,
                process,
            })
        })
        .collect()
}

/// Attributions by the client's end, for looking flows up.
pub struct Index<'a>(HashMap<(u8, SocketAddr), Vec<&'a Attributed>>);

impl<'a> Index<'a> {
    pub fn new(found: &'a [Attributed]) -> Index<'a> {
        let mut by: HashMap<(u8, SocketAddr), Vec<&Attributed>> = HashMap::new();
        for a in found {
            by.entry((a.proto, a.src)).or_default().push(a);
        }
        Index(by)
    }

    /// The process behind the flow `key` that started at `first_seen`: an attribution of its
    /// client end (and of its other end, when the socket named one), the nearest in time (a port
    /// may be used again).
    pub fn process_for(&self, key: &FlowKey, first_seen: Micros) -> Option<Arc<Process>> {
        let src = canonical(SocketAddr::new(key.src, key.src_port?));
        let dst = key.dst_port.map(|p| canonical(SocketAddr::new(key.dst, p)));
        self.0
            .get(&(key.proto, src))?
            .iter()
            .filter(|a| a.dst.is_none() || a.dst == dst)
            .min_by_key(|a| (a.at - first_seen).unsigned_abs())
            .map(|a| a.process.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributed(src: &str, dst: Option<&str>, at: Micros, cmd: &str) -> Attributed {
        Attributed {
            proto: PROTO_TCP,
            src: src.parse().unwrap(),
            dst: dst.map(|d| d.parse().unwrap()),
            at,
            process: Arc::new(Process {
                pid: 7,
                command: vec![cmd.into()],
                parent: None,
            }),
        }
    }

    #[test]
    fn flows_find_their_attribution_by_both_ends_and_time() {
        let found = [
            attributed("10.99.0.2:40000", Some("198.18.0.1:80"), 1_000, "first"),
            attributed("10.99.0.2:40000", Some("198.18.0.1:80"), 9_000_000, "again"),
            attributed("10.99.0.2:40001", Some("198.18.0.9:443"), 1_000, "other"),
            attributed("10.99.0.2:40002", None, 1_000, "udp-like"),
        ];
        let index = Index::new(&found);
        let key = |sp: u16, dst: &str, dp: u16| FlowKey {
            proto: PROTO_TCP,
            src: "10.99.0.2".parse().unwrap(),
            src_port: Some(sp),
            dst: dst.parse().unwrap(),
            dst_port: Some(dp),
        };
        let cmd = |k: &FlowKey, t| index.process_for(k, t).map(|p| p.command[0].clone());
        assert_eq!(
            cmd(&key(40000, "198.18.0.1", 80), 900).as_deref(),
            Some("first")
        );
        assert_eq!(
            cmd(&key(40000, "198.18.0.1", 80), 8_999_000).as_deref(),
            Some("again")
        );
        assert_eq!(
            cmd(&key(40001, "198.18.0.1", 80), 0),
            None,
            "other end differs"
        );
        assert_eq!(
            cmd(&key(40002, "198.18.0.5", 53), 0).as_deref(),
            Some("udp-like")
        );
        // An IPv4-mapped client address is the IPv4 one.
        let mapped = FlowKey {
            src: "::ffff:10.99.0.2".parse().unwrap(),
            ..key(40002, "10.99.0.1", 53)
        };
        assert_eq!(cmd(&mapped, 0).as_deref(), Some("udp-like"));
    }
}
