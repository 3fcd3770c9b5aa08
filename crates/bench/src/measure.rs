//! Child processes: wall time, CPU time and peak RSS of one child (`wait4`), and guards that
//! stop long-running helpers (the fake API, tansu) whatever happens to the bench.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// What one or more child processes cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    /// Wall time from spawn to exit.
    pub wall: Duration,
    /// User + system CPU time of the children.
    pub cpu: Duration,
    /// Largest peak resident set size of any of them, in KiB.
    pub max_rss_kib: u64,
}

impl Cost {
    /// Adds another child's CPU time; keeps the larger peak RSS. Wall time is not touched.
    pub fn absorb(&mut self, other: Cost) {
        self.cpu += other.cpu;
        self.max_rss_kib = self.max_rss_kib.max(other.max_rss_kib);
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

/// Spawns `cmd` and waits for it, measuring that one process (not its siblings).
pub fn run(cmd: &mut Command) -> Result<(ExitStatus, Cost)> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let started = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    wait(child, started).with_context(|| format!("waiting for {program}"))
}

/// Reaps `child` with `wait4`, which reports the rusage of exactly that process.
pub fn wait(child: Child, started: Instant) -> io::Result<(ExitStatus, Cost)> {
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; `pid` is our own unreaped child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let wall = started.elapsed();
    // `child` is reaped; dropping it only closes our ends of its pipes.
    drop(child);
    Ok((
        ExitStatus::from_raw(status),
        Cost {
            wall,
            cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
            max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        },
    ))
}

/// A helper process that is stopped (SIGINT, then SIGKILL after `grace`) when dropped.
pub struct Guard {
    child: Option<Child>,
    grace: Duration,
}

impl Guard {
    pub fn new(child: Child, grace: Duration) -> Guard {
        Guard {
            child: Some(child),
            grace,
        }
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("a running guarded child")
    }

    /// Whether the process has already exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child_mut().try_wait(), Ok(Some(_)))
    }

    /// Stops the process now.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            let deadline = Instant::now() + self.grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}
