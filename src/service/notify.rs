//! The sd_notify protocol without libsystemd: datagrams such as `READY=1` sent to the socket
//! named by `$NOTIFY_SOCKET` (a path, or an abstract name starting with `@`).

use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Talks to the service manager; does nothing when not started by one.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            socket: None,
            watchdog: None,
        }
    }

    /// Reads the protocol's variables as the caller read them from the environment:
    /// `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    pub fn from_env(
        notify_socket: Option<OsString>,
        watchdog_usec: Option<String>,
        watchdog_pid: Option<String>,
    ) -> Notifier {
        let Some(path) = notify_socket.filter(|p| !p.is_empty()) else {
            return Notifier::disabled();
        };
        let address = match address_of(&path) {
            Ok(address) => address,
            Err(error) => {
                tracing::warn!(error = %error, "NOTIFY_SOCKET is unusable; not notifying the service manager.");
                return Notifier::disabled();
            }
        };
        let socket = match UnixDatagram::unbound() {
            Ok(socket) => socket,
            Err(error) => {
                tracing::warn!(error = %error, "Cannot open a notify socket.");
                return Notifier::disabled();
            }
        };
        let for_us = watchdog_pid
            .as_deref()
            .map(|pid| pid.trim().parse::<u32>().ok() == Some(std::process::id()))
            .unwrap_or(true);
        let watchdog = watchdog_usec
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && for_us)
            .map(Duration::from_micros);
        Notifier {
            socket: Some((socket, address)),
            watchdog,
        }
    }

    /// The watchdog timeout asked for by `WatchdogSec=`, if any.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Startup finished.
    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// Re-reading the configuration. systemd (`Type=notify-reload`) wants the time of the
    /// request on CLOCK_MONOTONIC, to tell this reload from an earlier one.
    pub fn reloading(&self) {
        let monotonic_usec = crate::time::monotonic().as_micros();
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}"));
    }

    /// Shutting down.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// A keep-alive for the watchdog.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// A one-line status shown by `systemctl status`.
    pub fn status(&self, text: &str) {
        self.send(&format!("STATUS={}", text.replace('\n', " ")));
    }

    fn send(&self, message: &str) {
        if let Some((socket, address)) = &self.socket
            && let Err(error) = socket.send_to_addr(message.as_bytes(), address)
        {
            tracing::debug!(error = %error, message, "sd_notify message not delivered.");
        }
    }
}

fn address_of(path: &OsString) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    match bytes.strip_prefix(b"@") {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name),
        None => std::os::unix::net::SocketAddr::from_pathname(std::path::Path::new(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_listening_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::from_env(
            Some(path.clone().into_os_string()),
            Some("2000000".into()),
            None,
        );
        assert_eq!(notifier.watchdog_timeout(), Some(Duration::from_secs(2)));
        notifier.ready();
        notifier.watchdog();
        let mut buffer = [0u8; 256];
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1");
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"WATCHDOG=1");
    }

    #[test]
    fn reloading_carries_clock_monotonic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::from_env(Some(path.into_os_string()), None, None);
        let before = crate::time::monotonic().as_micros();
        notifier.reloading();
        let after = crate::time::monotonic().as_micros();
        let mut buffer = [0u8; 256];
        let n = listener.recv(&mut buffer).unwrap();
        let message = std::str::from_utf8(&buffer[..n]).unwrap();
        let usec: u128 = message
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .unwrap_or_else(|| panic!("unexpected message {message:?}"))
            .parse()
            .unwrap();
        // /proc/uptime (CLOCK_BOOTTIME in 10 ms steps) fell outside this bracket.
        assert!(
            before <= usec && usec <= after,
            "{before} <= {usec} <= {after}"
        );
    }

    #[test]
    fn watchdog_for_another_pid_is_ignored() {
        let notifier = Notifier::from_env(
            Some("/nonexistent/socket".into()),
            Some("1000000".into()),
            Some("1".into()),
        );
        assert_eq!(notifier.watchdog_timeout(), None);
        assert!(Notifier::from_env(None, None, None).socket.is_none());
    }
}
