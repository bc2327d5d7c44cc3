//! The sockets of a network namespace, from the kernel's sock_diag (inet_diag) interface over
//! netlink: each TCP or UDP socket's local and remote address and its inode, which names it among
//! a process's open files (`socket:[INODE]`). The netlink socket belongs to the namespace of the
//! thread that opens it: open it on a thread that has entered the namespace to be read.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr as NetlinkAddr};

/// One socket: its own end, the other end (unspecified for an unconnected UDP socket), and its
/// inode (0 for a socket no process holds any more, e.g. in TIME_WAIT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketInfo {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub inode: u32,
}

/// A sock_diag conversation in the namespace it was opened in.
pub struct Diag {
    socket: Socket,
    seq: u32,
}

/// An address as the flows key it: an IPv4-mapped IPv6 address is the IPv4 address.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

impl Diag {
    /// Open sock_diag in the calling thread's network namespace.
    pub fn open() -> std::io::Result<Diag> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        socket.bind_auto()?;
        socket.connect(&NetlinkAddr::new(0, 0))?;
        // A kernel that never answers must not hold the caller for ever.
        socket2::SockRef::from(&socket.as_fd()).set_read_timeout(Some(Duration::from_secs(1)))?;
        Ok(Diag { socket, seq: 0 })
    }

    /// Every socket of `protocol` (IPPROTO_TCP or IPPROTO_UDP), IPv4 and IPv6, in any state.
    pub fn dump(&mut self, protocol: u8) -> std::io::Result<Vec<SocketInfo>> {
        let mut out = self.dump_family(AF_INET, protocol)?;
        out.extend(self.dump_family(AF_INET6, protocol)?);
        Ok(out)
    }

    fn dump_family(&mut self, family: u8, protocol: u8) -> std::io::Result<Vec<SocketInfo>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.seq;
        let mut request = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol,
                extensions: ExtensionFlags::empty(),
                states: StateFlags::all(),
                socket_id: if family == AF_INET {
                    SocketId::new_v4()
                } else {
                    SocketId::new_v6()
                },
            })
            .into(),
        );
        request.finalize();
        let mut buf = vec![0u8; request.buffer_len()];
        request.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        self.receive()
    }

    /// Read the dump's answers up to its end.
    fn receive(&mut self) -> std::io::Result<Vec<SocketInfo>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let size = self.socket.recv(&mut &mut buf[..], 0)?;
            let mut at = 0;
            while at < size {
                let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&buf[at..size])
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == self.seq {
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(out),
                        NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                        NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                            let id = &r.header.socket_id;
                            out.push(SocketInfo {
                                local: canonical(SocketAddr::new(
                                    id.source_address,
                                    id.source_port,
                                )),
                                remote: canonical(SocketAddr::new(
                                    id.destination_address,
                                    id.destination_port,
                                )),
                                inode: r.header.inode,
                            });
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                at += len;
            }
        }
    }
}

/// Whether `remote` says nothing (an unconnected UDP socket): 0.0.0.0:0 or [::]:0.
pub fn unspecified(remote: SocketAddr) -> bool {
    remote.port() == 0 && remote.ip().is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_loopback_connection_of_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let mut d = Diag::open().expect("sock_diag in this namespace");
        let all = d.dump(6).unwrap();
        let me = all
            .iter()
            .find(|s| s.local == client.local_addr().unwrap())
            .expect("the client's socket is in the dump");
        assert_eq!(me.remote, listener.local_addr().unwrap());
        assert_ne!(me.inode, 0);
        assert!(unspecified("0.0.0.0:0".parse().unwrap()));
        assert_eq!(
            canonical("[::ffff:10.99.0.2]:5".parse().unwrap()),
            "10.99.0.2:5".parse::<SocketAddr>().unwrap()
        );
    }
}
