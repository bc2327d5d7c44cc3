//! The command behind each attempt, best effort. The sinkhole of a sealed run accepts every TCP
//! connection and answers every DNS query; while it holds one, the client's socket still exists
//! in the container's namespace. The sinkhole asks the [`Attributor`] who holds it and waits for
//! the answer ([`WAIT`] at most) before it goes on: a thread of its own, inside the container's
//! namespace, finds the socket by its address (sock_diag), then the container process that holds
//! it (its open files, within the container's cgroup), and records its argv and its parent's. The
//! thread runs at the lowest priority, and ends (joined by [`Attribution::finish`]) once the
//! sinkhole has stopped.
//!
//! It never touches the capture and never changes a verdict: a flow it could not tell gets no
//! process. Asks beyond [`QUEUE`] waiting, or beyond [`MAX_FOUND`] answered, are not attributed.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use crate::capture::procs::Process;
use crate::capture::procs::{Known, Procs};
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
/// An attribution of an unconnected UDP socket (no other end to check) names a flow from its
/// address only when the two are at most this far apart.
const UNCONNECTED_WITHIN: Micros = 5_000_000;
/// The longest [`Attribution::finish`] waits for the thread to end once nothing can ask any more.
const FINISH_WAIT: Duration = Duration::from_secs(5);

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
    /// Where the client was going (its socket's other end), when the sinkhole knows it.
    dst: Option<SocketAddr>,
    at: Micros,
    done: tokio::sync::oneshot::Sender<()>,
}

/// Asks the attribution's thread who holds the sinkhole's connections; shared by the sinkhole's
/// tasks. The thread ends once every one is dropped.
pub struct Attributor {
    tx: SyncSender<Ask>,
    /// [`MAX_FOUND`] attributions are in: nothing more is asked, and nothing waits.
    full: Arc<AtomicBool>,
}

/// The attribution's thread, and what it found: read by [`Attribution::finish`], once every
/// [`Attributor`] is gone.
pub struct Attribution {
    found: Arc<Mutex<Vec<Attributed>>>,
    thread: JoinHandle<()>,
    /// Disconnected when the thread ends.
    ended: Receiver<()>,
}

impl Attributor {
    /// Start attributing in the container whose namespace is `container_ns` and whose idle first
    /// process has the host pid `init`; why not, when it cannot. Blocks until the thread is in
    /// the namespace: call it off the async runtime's workers.
    pub fn start(container_ns: &File, init: u32) -> Result<(Arc<Attributor>, Attribution), String> {
        let ns = container_ns.try_clone().map_err(|e| e.to_string())?;
        let procs = Procs::of(init).ok_or("the container's first process is gone")?;
        let (tx, rx) = sync_channel(QUEUE);
        let found = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (ended_tx, ended) = std::sync::mpsc::channel::<()>();
        let keep = found.clone();
        let full = Arc::new(AtomicBool::new(false));
        let is_full = full.clone();
        let thread = std::thread::Builder::new()
            .name("attribution".into())
            .spawn(move || {
                let _ended = ended_tx;
                lower_priority();
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
        Ok((
            Arc::new(Attributor { tx, full }),
            Attribution {
                found,
                thread,
                ended,
            },
        ))
    }

    /// Find who holds the client end `peer` of a `proto` (TCP or UDP) exchange the sinkhole
    /// holds, whose client was going to `dst` (when known); returns once that is known, or after
    /// [`WAIT`].
    pub async fn attribute(&self, proto: u8, peer: SocketAddr, dst: Option<SocketAddr>) {
        if self.full.load(Ordering::Relaxed) {
            return;
        }
        let (done, answered) = tokio::sync::oneshot::channel();
        let ask = Ask {
            proto,
            peer: canonical(peer),
            dst: dst.map(canonical),
            at: now_micros(),
            done,
        };
        if self.tx.try_send(ask).is_ok() {
            let _ = tokio::time::timeout(WAIT, answered).await;
        }
    }
}

impl Attribution {
    /// Every attribution, once the thread has answered every ask: call it after every
    /// [`Attributor`] is dropped (the sinkhole stopped), off the async runtime's workers.
    pub fn finish(self) -> Vec<Attributed> {
        match self.ended.recv_timeout(FINISH_WAIT) {
            // Something still asks (it never should): what is in so far, the thread left to end.
            Err(RecvTimeoutError::Timeout) => {}
            _ => {
                let _ = self.thread.join();
            }
        }
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *found)
    }
}

/// Give the calling thread the lowest priority (nice 19), so that on a busy host the capture
/// and the staging itself come first; an attribution that comes too late is only a `null`.
fn lower_priority() {
    let me = nix::unistd::gettid().as_raw() as libc::id_t;
    // SAFETY: plain integers in, an int out. On Linux, PRIO_PROCESS with a thread id sets that
    // thread's nice value only (the others of airgap-check keep theirs).
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, me, 19);
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
    let mut known = Known::default();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < QUEUE {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        if !full.load(Ordering::Relaxed) {
            let new = attribute_batch(&batch, &mut diag, procs, &mut known);
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

/// The socket of each ask, then the process holding it.
fn attribute_batch(
    batch: &[Ask],
    diag: &mut Diag,
    procs: &Procs,
    known: &mut Known,
) -> Vec<Attributed> {
    let mut dump = Vec::new();
    for proto in [PROTO_TCP, PROTO_UDP] {
        if batch.iter().any(|a| a.proto == proto) {
            let of = diag.dump(proto).unwrap_or_default();
            dump.extend(of.into_iter().map(|s| (proto, s)));
        }
    }
    let sockets = Sockets::new(dump);
    let asked: Vec<(&Ask, SocketInfo)> = batch
        .iter()
        .filter_map(|a| Some((a, sockets.socket_of(a.proto, a.peer, a.dst)?)))
        .collect();
    let inodes: HashSet<u32> = asked.iter().map(|(_, s)| s.inode).collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let holders = procs.holders(&inodes);
    asked
        .into_iter()
        .filter_map(|(a, s)| {
            let pid = procs.maker(holders.get(&s.inode)?)?;
            Some(Attributed {
                proto: a.proto,
                src: a.peer,
                dst: (!unspecified(s.remote)).then_some(s.remote),
                at: a.at,
                process: procs.process(pid, known)?,
            })
        })
        .collect()
}

/// A dump of the namespace's sockets (those a process holds), by protocol and local address.
struct Sockets(HashMap<(u8, SocketAddr), Vec<SocketInfo>>);

impl Sockets {
    fn new(dump: impl IntoIterator<Item = (u8, SocketInfo)>) -> Sockets {
        let mut by: HashMap<(u8, SocketAddr), Vec<SocketInfo>> = HashMap::new();
        for (proto, s) in dump {
            if s.inode != 0 {
                by.entry((proto, s.local)).or_default().push(s);
            }
        }
        Sockets(by)
    }

    /// The client's socket at `peer`. TCP: a connected socket there (never a listener that
    /// shares its port), the one whose other end is `dst` when that is known. UDP: the socket
    /// bound to `peer`, else to every address at its port (an unconnected socket). `None` when
    /// there is none, or several that cannot be told apart.
    fn socket_of(
        &self,
        proto: u8,
        peer: SocketAddr,
        dst: Option<SocketAddr>,
    ) -> Option<SocketInfo> {
        let at = |local: SocketAddr| self.0.get(&(proto, local)).into_iter().flatten();
        if proto == PROTO_UDP {
            let port = peer.port();
            let mut any = vec![SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))];
            if peer.is_ipv4() {
                any.insert(0, SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
            }
            return one(at(peer)).or_else(|| one(any.into_iter().flat_map(at)));
        }
        one(at(peer)
            .filter(|s| !unspecified(s.remote))
            .filter(|s| dst.is_none_or(|d| s.remote == d)))
    }
}

/// The one socket of `of`; `None` when it holds none, or several (which one cannot be told).
fn one<'a>(of: impl IntoIterator<Item = &'a SocketInfo>) -> Option<SocketInfo> {
    let mut of = of.into_iter();
    let first = *of.next()?;
    of.all(|s| s.inode == first.inode).then_some(first)
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
    /// client end (and of its other end, when the socket named one; an unconnected socket's only
    /// within [`UNCONNECTED_WITHIN`]), the nearest in time (a port may be used again).
    pub fn process_for(&self, key: &FlowKey, first_seen: Micros) -> Option<Arc<Process>> {
        let src = canonical(SocketAddr::new(key.src, key.src_port?));
        let dst = key.dst_port.map(|p| canonical(SocketAddr::new(key.dst, p)));
        self.0
            .get(&(key.proto, src))?
            .iter()
            .filter(|a| match a.dst {
                Some(d) => Some(d) == dst,
                None => (a.at - first_seen).abs() <= UNCONNECTED_WITHIN,
            })
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
        // An unconnected socket's port, much later, is some other socket's.
        assert_eq!(
            cmd(&key(40002, "198.18.0.5", 53), 5_001_000).as_deref(),
            Some("udp-like")
        );
        assert_eq!(cmd(&key(40002, "198.18.0.5", 53), 5_002_000), None);
        assert_eq!(cmd(&key(40002, "198.18.0.5", 53), -5_000_000), None);
    }

    fn socket(local: &str, remote: &str, inode: u32) -> SocketInfo {
        SocketInfo {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            inode,
        }
    }

    #[test]
    fn a_tcp_client_is_never_taken_for_a_listener() {
        let listener = socket("0.0.0.0:8080", "0.0.0.0:0", 11);
        let peer: SocketAddr = "10.99.0.2:8080".parse().unwrap();
        let dst = Some("198.18.0.1:80".parse().unwrap());
        let only = |proto| Sockets::new([(proto, listener)]);
        assert_eq!(only(PROTO_TCP).socket_of(PROTO_TCP, peer, dst), None);
        assert_eq!(only(PROTO_TCP).socket_of(PROTO_TCP, peer, None), None);
        // An unconnected UDP socket bound to every address is the client's.
        assert_eq!(
            only(PROTO_UDP).socket_of(PROTO_UDP, peer, None),
            Some(listener)
        );
        let v6_any = socket("[::]:8080", "[::]:0", 12);
        assert_eq!(
            Sockets::new([(PROTO_UDP, v6_any)]).socket_of(PROTO_UDP, peer, None),
            Some(v6_any),
            "a dual-stack socket takes IPv4 too"
        );
        // A listener and the connections it accepted share its address; clients sharing one
        // (SO_REUSEADDR) are told apart by where they were going.
        let accepted = socket("10.99.0.2:8080", "10.99.0.9:5000", 13);
        let client = socket("10.99.0.2:8080", "198.18.0.1:80", 14);
        let bound = socket("10.99.0.2:8080", "0.0.0.0:0", 15);
        let all = Sockets::new([accepted, client, bound].map(|s| (PROTO_TCP, s)));
        assert_eq!(all.socket_of(PROTO_TCP, peer, dst), Some(client));
        assert_eq!(
            all.socket_of(PROTO_TCP, peer, None),
            None,
            "two to choose from"
        );
        let one_client = Sockets::new([client, bound].map(|s| (PROTO_TCP, s)));
        assert_eq!(one_client.socket_of(PROTO_TCP, peer, None), Some(client));
        assert_eq!(
            one_client.socket_of(PROTO_TCP, peer, Some("198.18.0.2:80".parse().unwrap())),
            None,
            "going elsewhere: another connection"
        );
        // A socket no process holds (TIME_WAIT) is nobody's.
        let gone = Sockets::new([(PROTO_TCP, socket("10.99.0.2:8080", "198.18.0.1:80", 0))]);
        assert_eq!(gone.socket_of(PROTO_TCP, peer, dst), None);
    }

    fn ask(peer: SocketAddr, dst: Option<SocketAddr>) -> Ask {
        Ask {
            proto: PROTO_TCP,
            peer,
            dst,
            at: 0,
            done: tokio::sync::oneshot::channel().0,
        }
    }

    #[test]
    fn a_process_asked_about_again_is_the_same_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(to).unwrap();
        let _server = listener.accept().unwrap();
        let from = client.local_addr().unwrap();
        let me = std::process::id();
        let procs = Procs::of(me).unwrap();
        let mut diag = Diag::open().unwrap();
        let mut known = Known::default();
        let mut batch = |asks: &[Ask]| attribute_batch(asks, &mut diag, &procs, &mut known);
        // A test forking at the same moment holds a copy of the socket until its child execs
        // (and is then taken for its maker): ask until both answers are about one process.
        let (first, again) = (0..50)
            .map(|_| (batch(&[ask(from, Some(to))]), batch(&[ask(from, None)])))
            .find(|(a, b)| a.len() == 1 && b.len() == 1 && a[0].process.pid == b[0].process.pid)
            .expect("this process, twice");
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].dst, Some(to));
        assert_eq!(
            first[0].process.command[0],
            std::env::args().next().unwrap()
        );
        assert!(Arc::ptr_eq(&first[0].process, &again[0].process));
        // A listener's address is no client's.
        let lonely = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(batch(&[ask(lonely.local_addr().unwrap(), None)]), []);
    }
}
