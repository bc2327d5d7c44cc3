//! A container's processes as the host's /proc shows them: those in the container's cgroup (as
//! the idle first process's `/proc/PID/cgroup` names it), the sockets they hold (`socket:[INODE]`
//! among their open files), their argv, and their parent.

use std::collections::{HashMap, HashSet};
use std::io::Read;

/// At most this much of a command line is read.
const MAX_CMDLINE: u64 = 4096;

/// A process that made a connection attempt, as the container saw it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Process {
    /// Its pid inside the container (the last of /proc/PID/status's NSpid).
    pub pid: u32,
    /// Its argv.
    pub command: Vec<String>,
    /// Its parent's argv, when the parent is a process of the container too.
    pub parent: Option<Vec<String>>,
}

/// The processes of one container.
pub struct Procs {
    cgroup: String,
}

impl Procs {
    /// The container whose idle first process has the host pid `init`; `None` when it is gone.
    pub fn of(init: u32) -> Option<Procs> {
        let cgroup = std::fs::read_to_string(format!("/proc/{init}/cgroup")).ok()?;
        Some(Procs { cgroup })
    }

    /// Whether the host pid `pid` is a process of the container.
    fn contains(&self, pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c == self.cgroup)
    }

    /// Every process of the container (host pids).
    pub fn pids(&self) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&p| self.contains(p))
            .collect()
    }

    /// For each of `inodes`, the container's processes (host pids) that hold that socket.
    pub fn holders(&self, inodes: &HashSet<u32>) -> HashMap<u32, Vec<u32>> {
        let mut out: HashMap<u32, Vec<u32>> = HashMap::new();
        for pid in self.pids() {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                if let Some(inode) = socket_inode(&target.to_string_lossy()) {
                    if inodes.contains(&inode) && !out.get(&inode).is_some_and(|v| v.contains(&pid))
                    {
                        out.entry(inode).or_default().push(pid);
                    }
                }
            }
        }
        out
    }

    /// The one of `holders` (processes sharing a socket) that made the attempt: one that is no
    /// other holder's parent (a shell that forked keeps a copy of the socket; the child it started
    /// is the one using it), the newest of those.
    pub fn maker(&self, holders: &[u32]) -> Option<u32> {
        let parents: HashSet<u32> = holders.iter().filter_map(|&p| ppid(p)).collect();
        holders
            .iter()
            .copied()
            .filter(|p| !parents.contains(p))
            .max()
            .or_else(|| holders.iter().copied().max())
    }

    /// The process with host pid `pid`, as the container saw it; `None` when it is gone.
    pub fn process(&self, pid: u32) -> Option<Process> {
        let command = argv(pid)?;
        let parent = ppid(pid)
            .filter(|&pp| pp != 0 && self.contains(pp))
            .and_then(argv);
        Some(Process {
            pid: ns_pid(pid).unwrap_or(pid),
            command,
            parent,
        })
    }
}

/// "socket:[12345]" → 12345.
fn socket_inode(link: &str) -> Option<u32> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// A process's argv (at most [`MAX_CMDLINE`] bytes of it); `None` for a process that is gone or
/// has none (a zombie).
pub fn argv(pid: u32) -> Option<Vec<String>> {
    let mut bytes = Vec::new();
    std::fs::File::open(format!("/proc/{pid}/cmdline"))
        .and_then(|f| f.take(MAX_CMDLINE).read_to_end(&mut bytes))
        .ok()?;
    split_cmdline(&bytes)
}

/// NUL-separated arguments (the last NUL optional); `None` when there are none.
fn split_cmdline(bytes: &[u8]) -> Option<Vec<String>> {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if bytes.is_empty() {
        return None;
    }
    Some(
        bytes
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// A process's parent (host pid), from /proc/PID/stat.
pub fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ppid(&stat)
}

/// The fourth field of /proc/PID/stat, after the command in parentheses (which may hold spaces
/// and parentheses itself: the last ')' ends it).
fn parse_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A process's pid in the innermost pid namespace it is in (the container's).
fn ns_pid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_as_the_kernel_writes_them() {
        assert_eq!(socket_inode("socket:[4026]"), Some(4026));
        assert_eq!(socket_inode("pipe:[4026]"), None);
        assert_eq!(
            split_cmdline(b"nc\0deps.example.org\080\0"),
            Some(vec!["nc".into(), "deps.example.org".into(), "80".into()])
        );
        assert_eq!(split_cmdline(b""), None);
        assert_eq!(parse_ppid("42 (a) b) c) S 7 42 42 0"), Some(7));
    }

    #[test]
    fn this_process_holds_its_own_socket() {
        let me = std::process::id();
        let procs = Procs::of(me).unwrap();
        assert!(procs.pids().contains(&me));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut d = crate::capture::sock_diag::Diag::open().unwrap();
        let inode = d
            .dump(6)
            .unwrap()
            .into_iter()
            .find(|s| s.local == listener.local_addr().unwrap())
            .unwrap()
            .inode;
        let held = procs.holders(&HashSet::from([inode]));
        assert_eq!(held[&inode], [me]);
        assert_eq!(procs.maker(&held[&inode]), Some(me));
        let p = procs.process(me).unwrap();
        assert_eq!(p.command[0], std::env::args().next().unwrap());
    }
}
