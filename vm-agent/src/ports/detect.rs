//! Which TCP ports a workspace's processes listen on.
//!
//! The kernel lists the TCP sockets of the agent's network namespace in
//! `/proc/net/tcp` and `/proc/net/tcp6`, each with its state and inode; a
//! process holds a socket when one of its `/proc/<pid>/fd/*` links reads
//! `socket:[<inode>]`. A listening socket is the workspace's when one of
//! the workspace's processes holds it:
//!
//! - a process of the agent's user whose working directory is inside the
//!   workspace's directory (the very set the host runtime's stop ends,
//!   [`processes_in`]), or
//! - a descendant, or a member of the session, of one of the workspace's
//!   running terminal shells (a server started from a terminal after a
//!   `cd /tmp` is still the workspace's).
//!
//! The agent's own sockets never count, even when a child holds a copy.
//! Everything read from `/proc` may vanish or be unreadable half-way (a
//! process exits, another user's process): such entries are skipped, never
//! an error.
//!
//! A dev container's apps listen in the container's own network namespace
//! and run under the container runtime, not under the agent's terminals:
//! this scan reports them only when the container shares the host's
//! network and its processes show up as above.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use rustix::process::getpid;
use serde::Serialize;

use crate::workspaces::processes_in;

/// The `st` column of a listening socket (`TCP_LISTEN`).
pub(crate) const TCP_LISTEN: u8 = 0x0A;

/// A listening socket of a workspace, as `GET /workspaces/{id}/ports`
/// lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub(crate) struct Listener {
    pub(crate) port: u16,
    pub(crate) address: IpAddr,
}

/// One line of `/proc/net/tcp` or `/proc/net/tcp6`, the parts that matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpEntry {
    pub(crate) local: SocketAddr,
    /// The kernel's TCP state (`TCP_ESTABLISHED` = 1 … [`TCP_LISTEN`]).
    pub(crate) state: u8,
    pub(crate) inode: u64,
}

/// Parses one line of `/proc/net/tcp{,6}`:
///
/// ```text
///   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
///    0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 …
/// ```
///
/// Addresses are the kernel's `in_addr`/`in6_addr` printed as 32-bit words
/// in host byte order (`%08X` each), ports in hex. `None` for the header
/// and anything malformed.
pub(crate) fn parse_tcp_line(line: &str) -> Option<TcpEntry> {
    let mut fields = line.split_whitespace();
    fields.next()?.strip_suffix(':')?;
    let local = parse_socket_addr(fields.next()?)?;
    parse_socket_addr(fields.next()?)?;
    let state = fields.next().filter(|s| s.len() == 2).and_then(hex_u8)?;
    // tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, timeout, then inode.
    let inode = fields.nth(5)?.parse().ok()?;
    Some(TcpEntry {
        local,
        state,
        inode,
    })
}

fn hex_u8(text: &str) -> Option<u8> {
    text.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| u8::from_str_radix(text, 16).ok())
        .flatten()
}

/// A 32-bit word of an address, as the kernel printed it (`%08X`).
fn hex_word(text: &str) -> Option<[u8; 4]> {
    (text.len() == 8 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(text, 16).ok())
        .flatten()
        // The word was the address's bytes read as a native integer.
        .map(u32::to_ne_bytes)
}

fn parse_socket_addr(text: &str) -> Option<SocketAddr> {
    let (address, port) = text.split_once(':')?;
    if port.len() != 4 || !port.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match address.len() {
        8 => IpAddr::V4(Ipv4Addr::from(hex_word(address)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (chunk, word) in bytes.chunks_exact_mut(4).zip(0..) {
                let at = word * 8;
                chunk.copy_from_slice(&hex_word(address.get(at..at + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Parent and session id from a `/proc/<pid>/stat` line, read after the
/// parenthesised command name (which may contain anything, spaces and `)`
/// included).
pub(crate) fn parse_stat(stat: &str) -> Option<(i32, i32)> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace();
    // state, ppid, pgrp, session
    let ppid = fields.nth(1)?.parse().ok()?;
    let session = fields.nth(1)?.parse().ok()?;
    Some((ppid, session))
}

/// The inode of a `/proc/<pid>/fd/<n>` link's target, if it is a socket.
pub(crate) fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Every listening TCP socket of the agent's network namespace.
fn listening(proc_dir: &Path) -> Vec<TcpEntry> {
    let mut found = Vec::new();
    for table in ["net/tcp", "net/tcp6"] {
        // No IPv6 in the kernel: no tcp6 table, nothing to list.
        let Ok(text) = std::fs::read_to_string(proc_dir.join(table)) else {
            continue;
        };
        found.extend(
            text.lines()
                .filter_map(parse_tcp_line)
                .filter(|entry| entry.state == TCP_LISTEN && entry.inode != 0),
        );
    }
    found
}

/// The socket inodes process `pid` holds (none if it is gone or not ours
/// to read).
fn socket_inodes(proc_dir: &Path, pid: i32) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(proc_dir.join(pid.to_string()).join("fd")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|target| socket_inode(target.to_str()?))
        .collect()
}

/// `(pid, ppid, session)` of every process still there when read.
fn process_table(proc_dir: &Path) -> Vec<(i32, i32, i32)> {
    let Ok(entries) = std::fs::read_dir(proc_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (parent, session) = parse_stat(&stat)?;
            Some((pid, parent, session))
        })
        .collect()
}

/// The shells themselves, their descendants and the members of their
/// sessions, from a process table.
pub(crate) fn shell_family(table: &[(i32, i32, i32)], shells: &[i32]) -> HashSet<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let mut family: HashSet<i32> = HashSet::new();
    for &(pid, ppid, session) in table {
        children.entry(ppid).or_default().push(pid);
        if shells.contains(&session) {
            family.insert(pid);
        }
    }
    let mut queue: Vec<i32> = shells.to_vec();
    queue.extend(family.iter().copied());
    while let Some(pid) = queue.pop() {
        family.insert(pid);
        for child in children.get(&pid).into_iter().flatten() {
            if !family.contains(child) {
                queue.push(*child);
            }
        }
    }
    family
}

/// The workspace's processes (see the module documentation), never the
/// agent itself.
fn workspace_processes(proc_dir: &Path, dir: &Path, shells: &[i32]) -> HashSet<i32> {
    let mut pids: HashSet<i32> = std::fs::canonicalize(dir)
        .map(|dir| {
            processes_in(proc_dir, &dir)
                .into_iter()
                .map(|pid| pid.as_raw_nonzero().get())
                .collect()
        })
        .unwrap_or_default();
    if !shells.is_empty() {
        pids.extend(shell_family(&process_table(proc_dir), shells));
    }
    pids.remove(&getpid().as_raw_nonzero().get());
    pids
}

/// The listening sockets of the workspace whose directory is `dir` and
/// whose running terminal shells are `shells`: sorted by port, then
/// address, without duplicates (sockets shared by forked workers, or bound
/// again with `SO_REUSEPORT`, are listed once). Blocking (reads `/proc`).
pub(crate) fn detect(proc_dir: &Path, dir: &Path, shells: &[i32]) -> Vec<Listener> {
    let listening = listening(proc_dir);
    if listening.is_empty() {
        return Vec::new();
    }
    let own: HashSet<u64> = socket_inodes(proc_dir, getpid().as_raw_nonzero().get())
        .into_iter()
        .collect();
    let held: HashSet<u64> = workspace_processes(proc_dir, dir, shells)
        .into_iter()
        .flat_map(|pid| socket_inodes(proc_dir, pid))
        .filter(|inode| !own.contains(inode))
        .collect();
    let mut found: Vec<Listener> = listening
        .into_iter()
        .filter(|entry| held.contains(&entry.inode))
        .map(|entry| Listener {
            port: entry.local.port(),
            address: entry.local.ip(),
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    // The kernel prints address words in host byte order; these lines are
    // what a little-endian machine shows.
    #[cfg(target_endian = "little")]
    #[test]
    fn ipv4_lines_give_address_port_state_and_inode() {
        let line = "   1: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            parse_tcp_line(line),
            Some(TcpEntry {
                local: "127.0.0.1:3000".parse().unwrap(),
                state: TCP_LISTEN,
                inode: 4242,
            })
        );
        let any = "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0 100 0 0 10 0";
        assert_eq!(
            parse_tcp_line(any).unwrap().local,
            "0.0.0.0:8080".parse().unwrap()
        );
        // An established connection: state 01, remote filled in.
        let established = "   2: 0100007F:0BB8 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0 20 4 30 10 -1";
        let entry = parse_tcp_line(established).unwrap();
        assert_eq!((entry.state, entry.inode), (1, 4343));
        let lan = "   3: 0501A8C0:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9 1 0 100 0 0 10 0";
        assert_eq!(
            parse_tcp_line(lan).unwrap().local,
            "192.168.1.5:80".parse().unwrap()
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn ipv6_lines_give_their_addresses() {
        for (hex, expected) in [
            ("00000000000000000000000000000000", "[::]:5173"),
            ("00000000000000000000000001000000", "[::1]:5173"),
            (
                "0000000000000000FFFF00000100007F",
                "[::ffff:127.0.0.1]:5173",
            ),
            ("B80D0120000000000000000001000000", "[2001:db8::1]:5173"),
        ] {
            let line = format!(
                "   0: {hex}:1435 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 777 1 0 100 0 0 10 0"
            );
            let entry = parse_tcp_line(&line).unwrap();
            assert_eq!(entry.local, expected.parse().unwrap(), "{hex}");
            assert_eq!((entry.state, entry.inode), (TCP_LISTEN, 777));
        }
    }

    #[test]
    fn headers_and_malformed_lines_are_skipped() {
        for line in [
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
            "",
            "   0: 0100007F:0BB8",
            "   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0",
            "   0: 0100007G:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1",
            "   0: 0100007F:BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1",
            "   0: 100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1",
            "   0: +100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1",
            "   0: 0100007F:0BB8 00000000:0000 XX 00000000:00000000 00:00000000 00000000  1000        0 1",
            "   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 -1",
            "   0 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1",
        ] {
            assert_eq!(parse_tcp_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn the_kernel_s_own_table_shows_a_listener_of_ours() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = listening(Path::new("/proc"));
        let entry = found
            .iter()
            .find(|entry| entry.local.port() == port)
            .expect("our listener is in /proc/net/tcp");
        assert_eq!(entry.local.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        // And its inode is one of ours.
        let me = getpid().as_raw_nonzero().get();
        assert!(socket_inodes(Path::new("/proc"), me).contains(&entry.inode));
        // But the agent's own sockets are never a workspace's, wherever it
        // runs and whatever it started.
        let cwd = std::env::current_dir().unwrap();
        let found = detect(Path::new("/proc"), &cwd, &[me]);
        assert!(found.iter().all(|l| l.port != port), "{found:?}");
    }

    #[test]
    fn stat_lines_give_parent_and_session() {
        let stat = "4242 (my (odd) cmd) S 17 4242 4240 34816 4242 4194560 0 0";
        assert_eq!(parse_stat(stat), Some((17, 4240)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (init) S"), None);
    }

    #[test]
    fn socket_links_give_their_inode() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        for link in ["pipe:[12345]", "/dev/null", "socket:[]", "socket:[12"] {
            assert_eq!(socket_inode(link), None, "{link}");
        }
    }

    #[test]
    fn a_shell_s_family_is_its_descendants_and_its_session() {
        // (pid, ppid, session): shell 10 started 11, which started 12 (in
        // a session of its own); 13 was reparented to init but stayed in
        // the shell's session; 20 and 21 are strangers.
        let table = [
            (1, 0, 1),
            (10, 5, 10),
            (11, 10, 10),
            (12, 11, 12),
            (13, 1, 10),
            (14, 13, 10),
            (20, 1, 20),
            (21, 20, 20),
        ];
        let mut family: Vec<i32> = shell_family(&table, &[10]).into_iter().collect();
        family.sort_unstable();
        assert_eq!(family, [10, 11, 12, 13, 14]);
        assert!(shell_family(&table, &[]).is_empty());
    }
}
