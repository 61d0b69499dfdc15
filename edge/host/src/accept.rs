//! Accepting connections under load: a cap on open connections, and a pause after accept
//! errors that mean the process is out of a resource.
//!
//! When the process has no file descriptor left (`EMFILE`, `ENFILE`) or the kernel no buffer
//! (`ENOBUFS`, `ENOMEM`), `accept` fails at once, every time, until a connection closes. Retrying
//! at once would spin a core and starve the connections that could close. So such an error
//! pauses the accept loop, 5 ms at first and doubling up to 1 s, until an accept succeeds.
//! Errors of one connection only (aborted or reset before it was accepted) are skipped at once.
//!
//! The cap: a connection holds a permit of a semaphore of `http.max_connections` from accept to
//! close. With every permit taken, the loop stops accepting and the kernel's backlog holds new
//! connections, so memory stays bounded however many clients connect.
//!
//! The open-files limit: many systems start a process with a soft limit of 1024 files, far
//! below the default cap of 10 000 connections, so `accept` would pause on `EMFILE` long before
//! the cap. The server raises its soft limit to the cap plus [`RESERVED_FDS`] (never above the
//! hard limit, which only an administrator can raise) and warns when that is not enough.
//!
//! The descriptor table: the kernel keeps a process's open files in a table that it doubles
//! when a new descriptor does not fit (64, 128, 256, ... slots). In a process with more than one
//! thread, each doubling waits for an RCU grace period (`synchronize_rcu`, 15-25 ms measured on
//! the 2-core machines), and every other thread that opens a file, a socket or a connection
//! meanwhile waits with it. Under a rising load each doubling is a stall of the whole edge: the
//! votes pile up while `accept` waits, more clients connect, and the next doubling follows.
//! [`reserve_descriptor_table`] grows the table once, when the server starts, to the size the
//! connection cap needs; the kernel never shrinks it.

use std::io;
use std::time::Duration;

/// First pause after a resource error.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// Longest pause.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Open files kept for everything but client connections: queue and spill files, the
/// component's files, outbound connections, logs.
pub const RESERVED_FDS: u64 = 256;

/// Raises this process's soft limit on open files to `wanted`, or to the hard limit if that is
/// lower; never lowers it. Returns the soft limit now in force.
pub fn raise_open_files_limit(wanted: u64) -> io::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // `None` means unlimited.
    let soft = limit.current.unwrap_or(u64::MAX);
    let target = wanted.min(limit.maximum.unwrap_or(u64::MAX));
    if soft >= target {
        return Ok(soft);
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        },
    )?;
    Ok(target)
}

/// Grows this process's descriptor table to at least `slots` now (see the module docs), by
/// duplicating `fd` to descriptor number `slots - 1` and closing the copy; the table keeps its
/// size. `slots` is capped at the soft open-files limit (a descriptor at or above it cannot
/// exist). Returns the number of slots reserved.
pub fn reserve_descriptor_table(fd: impl rustix::fd::AsFd, slots: u64) -> io::Result<u64> {
    use rustix::process::{Resource, getrlimit};
    let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let slots = slots.min(soft).min(MAX_RESERVED_SLOTS);
    let Some(highest) = slots.checked_sub(1) else {
        return Ok(0);
    };
    let highest = i32::try_from(highest).map_err(io::Error::other)?;
    drop(rustix::io::fcntl_dupfd_cloexec(fd, highest)?);
    Ok(slots)
}

/// Most descriptor slots [`reserve_descriptor_table`] reserves (8 bytes each, plus bitmaps).
const MAX_RESERVED_SLOTS: u64 = 1 << 20;

/// Whether an accept error concerns one connection only: the next accept may succeed at once.
pub fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// The pause policy of one accept loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST_PAUSE }
    }
}

impl Backoff {
    /// How long to pause after `error`: nothing for an error of one connection, otherwise the
    /// current pause, which then doubles (up to `MAX_PAUSE`, one second).
    pub fn after(&mut self, error: &io::Error) -> Option<Duration> {
        if is_per_connection(error) {
            return None;
        }
        let pause = self.next;
        self.next = (self.next * 2).min(MAX_PAUSE);
        Some(pause)
    }

    /// An accept succeeded: the next resource error pauses briefly again.
    pub fn reset(&mut self) {
        self.next = FIRST_PAUSE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        // EMFILE on Linux and the BSDs: "too many open files".
        io::Error::from_raw_os_error(24)
    }

    #[test]
    fn resource_errors_pause_doubling_up_to_a_second_and_reset_on_success() {
        let mut backoff = Backoff::default();
        let pauses: Vec<Duration> = (0..10).filter_map(|_| backoff.after(&emfile())).collect();
        assert_eq!(pauses.len(), 10, "every resource error pauses");
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*pauses.last().expect("ten pauses"), MAX_PAUSE);
        backoff.reset();
        assert_eq!(backoff.after(&emfile()), Some(FIRST_PAUSE));
    }

    #[test]
    fn the_open_files_limit_is_raised_up_to_the_hard_limit_and_never_lowered() {
        use rustix::process::{Resource, getrlimit};
        let before = getrlimit(Resource::Nofile);
        let hard = before.maximum.unwrap_or(u64::MAX);
        let soft = raise_open_files_limit(u64::MAX).expect("raising up to the hard limit");
        assert_eq!(soft, hard, "raised to the hard limit");
        assert_eq!(
            getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX),
            hard
        );
        assert_eq!(
            raise_open_files_limit(1).expect("a no-op"),
            hard,
            "never lowered"
        );
        assert_eq!(getrlimit(Resource::Nofile).maximum, before.maximum);
    }

    /// The `FDSize:` line of `/proc/self/status`: the slots of this process's descriptor table.
    fn descriptor_slots() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .expect("an FDSize line");
        line.trim().parse().expect("a number")
    }

    #[test]
    fn the_descriptor_table_is_grown_once_and_no_descriptor_is_left_open() {
        let soft = raise_open_files_limit(u64::MAX).expect("raising the soft limit");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let wanted = (descriptor_slots() * 2).min(soft).min(MAX_RESERVED_SLOTS);
        let reserved = reserve_descriptor_table(&listener, wanted).expect("reserving");
        assert_eq!(reserved, wanted, "the soft limit allows it");
        assert!(descriptor_slots() >= wanted, "the table has grown");
        let copy = std::path::PathBuf::from(format!("/proc/self/fd/{}", wanted - 1));
        assert!(!copy.exists(), "the copy at the top of the table is closed");
        let grown = descriptor_slots();
        reserve_descriptor_table(&listener, 8).expect("a smaller reserve");
        assert_eq!(descriptor_slots(), grown, "the table never shrinks");
    }

    #[test]
    fn the_reserve_stays_below_the_open_files_limit() {
        // At the hard limit first: other tests of this binary raise the soft limit there too,
        // so it cannot move between the read below and the reserve.
        let soft = raise_open_files_limit(u64::MAX).expect("raising the soft limit");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let reserved = reserve_descriptor_table(&listener, u64::MAX).expect("capped, not refused");
        assert_eq!(reserved, soft.min(MAX_RESERVED_SLOTS));
        assert_eq!(reserve_descriptor_table(&listener, 0).expect("nothing"), 0);
    }

    #[test]
    fn an_error_of_one_connection_is_skipped_at_once() {
        let mut backoff = Backoff::default();
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(backoff.after(&aborted), None);
        assert_eq!(backoff.after(&emfile()), Some(FIRST_PAUSE));
    }
}
