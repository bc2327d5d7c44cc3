//! A live capture on its own thread (inside a network namespace, when given one), with the
//! canary recognised and every drop counted.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capture::canary::{Canary, CANARY_PORT};
use crate::capture::file::ts_micros;
use crate::capture::filter::bad_filter;
use crate::error::{Error, Result};
use crate::flows::decode::{decode, Decoded, Embedded, LinkKind, Transport};
use crate::flows::{now_micros, FlowTable, Micros};

/// What a live capture saw, handed back when it stops.
pub struct LiveResult {
    pub table: FlowTable,
    pub first_ts: Option<Micros>,
    /// Packets libpcap dropped (buffer full) plus those the interface dropped; `None` if unknown.
    pub dropped: Option<u64>,
    /// A capture error that ended the capture early.
    pub error: Option<String>,
    /// Frames seen leaving an interface other than loopback (cooked "any" captures only; 0 for
    /// others): compared with the interfaces' own transmit counters, it finds frames a socket
    /// sent past every capture in its namespace (PACKET_QDISC_BYPASS).
    pub sent_out: u64,
    /// When the capture stopped on `error`.
    pub error_at: Option<std::time::SystemTime>,
    /// The capture file (`save`) could not be written whole (a full disk): what went wrong. The
    /// flows are unaffected; the file is not to be kept.
    pub save_error: Option<String>,
    /// The drop counters could not be read at the end (the interface had gone): `dropped` is
    /// as read at most a second before the capture ended.
    pub stats_stale: bool,
    /// libpcap's name for the link type, e.g. "EN10MB", "LINUX_SLL".
    pub link_type: String,
    /// Canary datagrams seen, per family (IPv4, IPv6).
    pub canary_v4: bool,
    pub canary_v6: bool,
}

/// A capture running on its own thread (inside a network namespace, when given one).
pub struct LiveCapture {
    shared: Shared,
    thread: Option<std::thread::JoinHandle<LiveResult>>,
    iface: String,
}

const CANARY_V4: u8 = 1;
const CANARY_V6: u8 = 2;
/// Set when the capture loop stopped on an error (the interface went away, …).
const FAILED: u8 = 4;
/// The longest the kernel keeps captured packets in a ring block before handing it over (ms).
const BLOCK_MS: i32 = 20;
/// How long a stopping capture waits for the last packets: more than two block timeouts.
const DRAIN_MS: u16 = 100;
const _: () = assert!(DRAIN_MS as i32 > 2 * BLOCK_MS);
/// The longest a stopping capture waits for packets the socket took in but has not handed over.
const MAX_DRAIN: Duration = Duration::from_secs(2);

/// Packets the socket took in between two libpcap statistics readings `(received, dropped)` but
/// that were not among the `read` packets read in between. libpcap's `received` includes the
/// dropped; both counters are 32-bit and may wrap.
fn unread(base: (u32, u32), end: (u32, u32), read: u64) -> u64 {
    let received = u64::from(end.0.wrapping_sub(base.0));
    let dropped = u64::from(end.1.wrapping_sub(base.1));
    received.saturating_sub(dropped).saturating_sub(read)
}

/// Where and what a live capture captures.
pub struct CaptureSpec {
    /// The network namespace to capture in; `None`: this process's own.
    pub ns: Option<std::fs::File>,
    pub iface: String,
    /// How the canary is recognised (counted as the canary, not as a flow).
    pub canary: Option<Canary>,
    /// Write every packet here too (pcap).
    pub save: Option<PathBuf>,
    /// Only packets that pass this libpcap expression are seen at all.
    pub filter: Option<String>,
    /// The MAC address of the container's interface, for an Ethernet capture outside it: frames
    /// from it are the container's (`LiveResult::sent_out`).
    pub sender: Option<[u8; 6]>,
}

/// A stop request the capture thread sees at once: a flag, and an eventfd its poll also waits on,
/// so that a stop never waits out a poll's timeout (up to DRAIN_MS on every run's end).
struct Stop {
    asked: AtomicBool,
    wake: Option<nix::sys::eventfd::EventFd>,
}

impl Stop {
    fn new() -> Stop {
        Stop {
            asked: AtomicBool::new(false),
            // Without an eventfd (none left), a stop is seen at the poll's timeout, as before.
            wake: nix::sys::eventfd::EventFd::from_flags(
                nix::sys::eventfd::EfdFlags::EFD_CLOEXEC
                    | nix::sys::eventfd::EfdFlags::EFD_NONBLOCK,
            )
            .ok(),
        }
    }

    fn ask(&self) {
        self.asked.store(true, Ordering::SeqCst);
        if let Some(w) = &self.wake {
            let _ = w.write(1);
        }
    }

    fn asked(&self) -> bool {
        self.asked.load(Ordering::SeqCst)
    }
}

/// What the capture thread shares with the handle.
#[derive(Clone)]
struct Shared {
    stop: Arc<Stop>,
    /// Frames from the container the drain waits for (`u64::MAX`: none said).
    expected: Arc<AtomicU64>,
    /// CANARY_V4 | CANARY_V6 | FAILED.
    seen: Arc<AtomicU8>,
    /// The time window (µs since the epoch, inclusive) whose outgoing frames `sent_out` counts.
    window: Arc<[AtomicI64; 2]>,
}

impl LiveCapture {
    /// Open the capture and return once it is armed: every packet from then on is seen.
    pub fn start(spec: CaptureSpec) -> Result<LiveCapture> {
        let CaptureSpec {
            ns,
            iface,
            canary,
            save,
            filter,
            sender,
        } = spec;
        let iface = iface.as_str();
        let shared = Shared {
            stop: Arc::new(Stop::new()),
            expected: Arc::new(AtomicU64::new(u64::MAX)),
            seen: Arc::new(AtomicU8::new(0)),
            window: Arc::new([AtomicI64::new(i64::MIN), AtomicI64::new(i64::MAX)]),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let thread_shared = shared.clone();
        let name = iface.to_string();
        let thread = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let opened = Opened::open(ns, &name, filter.as_deref(), save);
                match opened {
                    Ok(o) => {
                        let _ = ready_tx.send(Ok(()));
                        o.run(canary, sender, thread_shared)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        empty_result()
                    }
                }
            })
            .map_err(|e| capture_error(iface, e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(LiveCapture {
                shared,
                thread: Some(thread),
                iface: iface.to_string(),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(capture_error(
                iface,
                "the capture thread ended before it was armed".into(),
            )),
        }
    }

    /// Whether the canary has been seen for both families so far.
    pub fn canary_seen(&self) -> (bool, bool) {
        let bits = self.shared.seen.load(std::sync::atomic::Ordering::SeqCst);
        (bits & CANARY_V4 != 0, bits & CANARY_V6 != 0)
    }

    /// Count outgoing frames (`LiveResult::sent_out`) from now on: call just before reading the
    /// interfaces' transmit counters they are to be compared with.
    pub fn count_sent_from_now(&self) {
        self.shared.window[0].store(now_micros(), std::sync::atomic::Ordering::SeqCst);
    }

    /// Stop counting outgoing frames after now: call just after the last counter reading.
    pub fn count_sent_until_now(&self) {
        self.shared.window[1].store(now_micros(), std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the capture has stopped on an error while running (see `LiveResult::error`).
    pub fn failed(&self) -> bool {
        self.shared.seen.load(std::sync::atomic::Ordering::SeqCst) & FAILED != 0
    }

    /// Stop, drain what is buffered, and hand back the result. With `expected`, the number of
    /// frames the container's interfaces sent since [`LiveCapture::count_sent_from_now`], the
    /// drain also waits (at most 2 s) until that many were seen coming from it.
    pub fn finish(mut self, expected: Option<u64>) -> Result<LiveResult> {
        if let Some(n) = expected {
            self.shared.expected.store(n, Ordering::SeqCst);
        }
        self.shared.stop.ask();
        let t = self.thread.take().expect("finish is called once");
        t.join().map_err(|_| Error::Capture {
            iface: self.iface.clone(),
            reason: "the capture thread panicked".into(),
        })
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        // A run that ends early (error, signal) still stops its capture thread.
        self.shared.stop.ask();
    }
}

fn capture_error(iface: &str, reason: String) -> Error {
    Error::Capture {
        iface: iface.to_string(),
        reason,
    }
}

fn empty_result() -> LiveResult {
    LiveResult {
        table: FlowTable::new(),
        first_ts: None,
        dropped: None,
        error: None,
        sent_out: 0,
        error_at: None,
        save_error: None,
        stats_stale: false,
        link_type: String::new(),
        canary_v4: false,
        canary_v6: false,
    }
}

/// The capture, opened and armed on its thread.
struct Opened {
    cap: pcap::Capture<pcap::Active>,
    link: LinkKind,
    saver: Option<(pcap::Savefile, PathBuf)>,
    out: LiveResult,
    /// libpcap's (received, dropped) before the first read.
    base: Option<(u32, u32)>,
}

impl Opened {
    /// Enter the namespace, open the device, apply the filter, open the capture file.
    fn open(
        ns: Option<std::fs::File>,
        iface: &str,
        filter: Option<&str>,
        save: Option<PathBuf>,
    ) -> Result<Opened> {
        if let Some(ns) = ns {
            crate::capture::sandbox::enter_netns(&ns)
                .map_err(|e| capture_error(iface, e.to_string()))?;
        }
        // No immediate mode: libpcap then uses TPACKET_V3, which packs packets into the ring's
        // blocks (the 32 MiB hold about 200,000 small ones). Immediate mode means TPACKET_V2, one
        // fixed frame per packet sized for the largest the veth can hand over (64 KiB with its
        // offloads): about 500 packets, which a burst fills within milliseconds
        // (bench/load.sh). The kernel hands a block over when it is full or after BLOCK_MS, so a
        // packet is readable within 2 × BLOCK_MS. Non-blocking, with our own bounded poll: a stop
        // request must not wait for a packet.
        let mut cap = pcap::Capture::from_device(iface)
            .and_then(|c| {
                c.immediate_mode(false)
                    .snaplen(262_144)
                    .buffer_size(32 << 20)
                    .timeout(BLOCK_MS)
                    .open()
            })
            .and_then(|c| c.setnonblock())
            .map_err(|e| capture_error(iface, e.to_string()))?;
        if let Some(f) = filter {
            cap.filter(f, true)
                .map_err(|e| bad_filter(f, &e.to_string()))?;
        }
        let saver = match save {
            Some(p) => {
                let file = cap.savefile(&p).map_err(|e| {
                    capture_error(iface, format!("cannot write the capture file: {e}"))
                })?;
                Some((file, p))
            }
            None => None,
        };
        let dlt = cap.get_datalink();
        let mut out = empty_result();
        out.link_type = dlt.get_name().unwrap_or_else(|_| format!("DLT_{}", dlt.0));
        let Some(link) = LinkKind::from_dlt(dlt.0) else {
            let why = format!("unsupported link type {} ({})", out.link_type, dlt.0);
            return Err(capture_error(iface, why));
        };
        // What the socket had taken in before the first read (a packet may arrive between
        // binding and ring setup, and would never be readable): the check at the end counts
        // from here.
        let base = cap.stats().ok().map(|st| (st.received, st.dropped));
        Ok(Opened {
            cap,
            link,
            saver,
            out,
            base,
        })
    }

    /// Read until asked to stop (and drained) or until the capture fails; then the result.
    fn run(self, canary: Option<Canary>, sender: Option<[u8; 6]>, shared: Shared) -> LiveResult {
        let Opened {
            mut cap,
            link,
            saver,
            out,
            base,
        } = self;
        let mut s = Session {
            link,
            saver,
            out,
            base,
            canary,
            sender,
            shared,
            read: 0,
            last_canary: None,
            saved: 24,
            last_stats: None,
            stats_at: Instant::now(),
        };
        s.read_until_stopped(&mut cap);
        s.end(&mut cap)
    }
}

/// The capture loop's state (the capture itself is passed in: a packet borrows it).
struct Session {
    link: LinkKind,
    saver: Option<(pcap::Savefile, PathBuf)>,
    out: LiveResult,
    base: Option<(u32, u32)>,
    canary: Option<Canary>,
    /// The container interface's MAC address (Ethernet captures outside it).
    sender: Option<[u8; 6]>,
    shared: Shared,
    /// Packets read.
    read: u64,
    /// When the canary was last seen.
    last_canary: Option<Micros>,
    /// Bytes the capture file should hold: libpcap's writes are buffered and report no error, so
    /// a full disk is found by comparing this with the file's size.
    saved: u64,
    /// Drop counters, read as the capture goes: if the interface disappears (a watched container
    /// that exits), the last reading is what is known.
    last_stats: Option<u64>,
    stats_at: Instant,
}

impl Session {
    fn read_until_stopped(&mut self, cap: &mut pcap::Capture<pcap::Active>) {
        let mut draining: Option<(Instant, u32)> = None;
        loop {
            match cap.next_packet() {
                Ok(p) => self.on_packet(p.header, p.data),
                Err(pcap::Error::TimeoutExpired) => {
                    // Nothing buffered. Asked to stop: the drain ends once every packet the
                    // socket took in was read and every frame the container was said to have sent
                    // was seen; without that count, after one more wait for packets in flight
                    // (longer than a block takes to be handed over). A block the kernel has not
                    // handed over yet (its retire timer runs late on a loaded machine) is waited
                    // for, up to MAX_DRAIN; what is still unread then counts as dropped.
                    if draining.is_none() && self.shared.stop.asked() {
                        draining = Some((Instant::now(), 0));
                    }
                    if let Some((since, waits)) = draining.as_mut() {
                        let exact = self.shared.expected.load(Ordering::SeqCst) != u64::MAX;
                        if (self.drained(cap) && (exact || *waits > 0))
                            || since.elapsed() >= MAX_DRAIN
                        {
                            return;
                        }
                        *waits += 1;
                    }
                    self.on_idle(cap);
                }
                Err(e) => {
                    self.out.error = Some(e.to_string());
                    self.out.error_at = Some(std::time::SystemTime::now());
                    self.shared.seen.fetch_or(FAILED, Ordering::SeqCst);
                    return;
                }
            }
        }
    }

    /// Whether the drain is done: every packet the socket took in was read, and every frame the
    /// container was said to have sent (`Shared::expected`) was seen.
    fn drained(&self, cap: &mut pcap::Capture<pcap::Active>) -> bool {
        let expected = self.shared.expected.load(Ordering::SeqCst);
        self.all_read(cap) && (expected == u64::MAX || self.out.sent_out >= expected)
    }

    /// Whether every packet the socket has taken in so far was read (or dropped by libpcap).
    fn all_read(&self, cap: &mut pcap::Capture<pcap::Active>) -> bool {
        match (self.base, cap.stats()) {
            (Some(b), Ok(st)) => unread(b, (st.received, st.dropped), self.read) == 0,
            _ => true,
        }
    }

    fn on_packet(&mut self, header: &pcap::PacketHeader, data: &[u8]) {
        self.read += 1;
        let ts = ts_micros(header.ts.tv_sec, header.ts.tv_usec).0;
        if from_container(self.link, data, self.sender) {
            let from = self.shared.window[0].load(Ordering::SeqCst);
            let until = self.shared.window[1].load(Ordering::SeqCst);
            self.out.sent_out += u64::from((from..=until).contains(&ts));
        }
        if let Some((saver, _)) = self.saver.as_mut() {
            saver.write(&pcap::Packet::new(header, data));
            self.saved += 16 + u64::from(header.caplen);
        }
        self.out.first_ts.get_or_insert(ts);
        let d = decode(self.link, data);
        if self.is_canary(&d, ts) {
            return;
        }
        self.out.table.add(ts, header.len, &d);
    }

    /// Whether a packet is the canary (or the ICMP error its target answered it with): counted
    /// as the canary, not as a flow.
    fn is_canary(&mut self, d: &Decoded<'_>, ts: Micros) -> bool {
        let (Decoded::Ip(ip), Some(c)) = (d, &self.canary) else {
            return false;
        };
        if matches!(
            ip.transport,
            Transport::Udp {
                dst_port: CANARY_PORT,
                ..
            }
        ) && ip.payload == c.payload.as_slice()
            && c.paths.contains(&(ip.src, ip.dst))
        {
            self.last_canary = Some(ts);
            let bit = if ip.src.is_ipv4() {
                CANARY_V4
            } else {
                CANARY_V6
            };
            self.shared.seen.fetch_or(bit, Ordering::SeqCst);
            return true;
        }
        // The canary's target may answer with an ICMP error (nothing listens on the discard
        // port of a real gateway): part of the canary, not a flow — within a second of a canary
        // only, so it cannot become a channel of its own.
        if let Transport::Icmp {
            about:
                Some(Embedded {
                    proto: 17,
                    src,
                    dst,
                    ports: Some((_, CANARY_PORT)),
                }),
            ..
        } = ip.transport
        {
            return c.paths.contains(&(src, dst))
                && (ip.src, ip.dst) == (dst, src)
                && self
                    .last_canary
                    .is_some_and(|t| (0..=1_000_000).contains(&(ts - t)));
        }
        false
    }

    /// Nothing to read: refresh the drop counters now and then, and wait for packets.
    fn on_idle(&mut self, cap: &mut pcap::Capture<pcap::Active>) {
        if self.stats_at.elapsed() >= Duration::from_secs(1) {
            if let Ok(st) = cap.stats() {
                self.last_stats = Some(u64::from(st.dropped) + u64::from(st.if_dropped));
            }
            self.stats_at = Instant::now();
        }
        wait_readable(cap, &self.shared.stop, DRAIN_MS);
    }

    /// Flush the capture file, read the drop counters one last time, and hand the result back.
    fn end(mut self, cap: &mut pcap::Capture<pcap::Active>) -> LiveResult {
        self.finish_save();
        let out = &mut self.out;
        match cap.stats() {
            Ok(st) => {
                // Packets the ring took but nobody read (a block not yet handed over when the
                // capture stopped) are as unknown as dropped ones.
                let missing = self
                    .base
                    .map_or(0, |b| unread(b, (st.received, st.dropped), self.read));
                out.dropped = Some(u64::from(st.dropped) + u64::from(st.if_dropped) + missing);
            }
            Err(_) if out.error.is_some() && self.last_stats.is_some() => {
                // The interface went away (the error above says so): the last reading.
                out.dropped = self.last_stats;
                out.stats_stale = true;
            }
            Err(e) => {
                out.error
                    .get_or_insert(format!("reading drop counters: {e}"));
            }
        }
        let bits = self.shared.seen.load(Ordering::SeqCst);
        out.canary_v4 = bits & CANARY_V4 != 0;
        out.canary_v6 = bits & CANARY_V6 != 0;
        self.out
    }

    /// A capture file that is shorter than what was written to it was not written whole.
    fn finish_save(&mut self) {
        let Some((saver, path)) = self.saver.as_mut() else {
            return;
        };
        let flushed = saver.flush();
        let size = std::fs::metadata(&*path).map_or(0, |m| m.len());
        self.out.save_error = match flushed {
            Err(e) => Some(e.to_string()),
            Ok(()) if size != self.saved => Some(format!(
                "{size} of {} bytes written (is the disk full?)",
                self.saved
            )),
            Ok(()) => None,
        };
    }
}

/// Whether a frame came from the container: on Ethernet, from its interface's address; in a cooked
/// capture inside its namespace ("any"), leaving an interface that is not loopback.
fn from_container(link: LinkKind, frame: &[u8], sender: Option<[u8; 6]>) -> bool {
    match link {
        LinkKind::Ethernet => sender.is_some_and(|m| frame.get(6..12) == Some(&m[..])),
        _ => outgoing_not_loopback(link, frame),
    }
}

/// Whether a cooked-capture frame ("any" device) left an interface that is not loopback.
/// SLL: packet type at bytes 0-1, ARPHRD type at 2-3; SLL2: ARPHRD at 8-9, packet type at 10.
fn outgoing_not_loopback(link: LinkKind, frame: &[u8]) -> bool {
    const OUTGOING: u16 = 4;
    const ARPHRD_LOOPBACK: u16 = 772;
    let be = |i: usize| {
        frame
            .get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (ptype, hatype) = match link {
        LinkKind::LinuxSll => (be(0), be(2)),
        LinkKind::LinuxSll2 => (frame.get(10).map(|b| u16::from(*b)), be(8)),
        _ => return false,
    };
    ptype == Some(OUTGOING) && hatype.is_some_and(|h| h != ARPHRD_LOOPBACK)
}

/// Wait until the capture has something to read, a stop is asked (the first time), or `ms`
/// milliseconds.
fn wait_readable(cap: &pcap::Capture<pcap::Active>, stop: &Stop, ms: u16) {
    use nix::poll::{PollFd, PollFlags};
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
    // SAFETY: the descriptor belongs to `cap`, which outlives this call.
    let fd = unsafe { BorrowedFd::borrow_raw(cap.as_raw_fd()) };
    let mut fds = vec![PollFd::new(fd, PollFlags::POLLIN)];
    // Once asked, the eventfd stays readable: it is polled no more, the drain's own waits follow.
    if let Some(w) = stop.wake.as_ref().filter(|_| !stop.asked()) {
        fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
    }
    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_taken_but_never_read_are_counted() {
        // Everything taken was read or dropped.
        assert_eq!(unread((3, 0), (1003, 10), 990), 0);
        // Packets in the ring before the first read are read, not missing.
        assert_eq!(unread((3, 0), (1003, 0), 1003), 0);
        // Forty packets still in a block when the capture stopped.
        assert_eq!(unread((0, 0), (1000, 10), 950), 40);
        // The 32-bit counters wrapped.
        assert_eq!(unread((u32::MAX - 9, 5), (90, 5), 100), 0);
        assert_eq!(unread((u32::MAX - 9, 5), (90, 5), 60), 40);
    }

    #[test]
    fn cooked_frames_leaving_an_interface_other_than_loopback() {
        let sll = |ptype: u16, hatype: u16| {
            let mut f = ptype.to_be_bytes().to_vec();
            f.extend(hatype.to_be_bytes());
            f.extend([0u8; 12]);
            f
        };
        assert!(outgoing_not_loopback(LinkKind::LinuxSll, &sll(4, 1)));
        assert!(!outgoing_not_loopback(LinkKind::LinuxSll, &sll(4, 772)));
        assert!(!outgoing_not_loopback(LinkKind::LinuxSll, &sll(0, 1)));
        assert!(!outgoing_not_loopback(LinkKind::LinuxSll, &[0, 4]));
        let mut sll2 = vec![0u8; 20];
        sll2[8..10].copy_from_slice(&1u16.to_be_bytes());
        sll2[10] = 4;
        assert!(outgoing_not_loopback(LinkKind::LinuxSll2, &sll2));
        assert!(!outgoing_not_loopback(LinkKind::Ethernet, &sll2));
    }
}
