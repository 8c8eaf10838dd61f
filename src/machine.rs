//! Who this machine is: its host name and its stable machine id.

/// This machine's name (conflict copy names, writer ids).
pub fn hostname() -> String {
    // uname's node name is what gethostname returns.
    let name = String::from_utf8_lossy(rustix::system::uname().nodename().to_bytes()).into_owned();
    if name.is_empty() {
        return "host".to_string();
    }
    name
}

/// The machine's own stable id: `DEVLOGD_MACHINE_ID` (containers, tests), else the
/// systemd/D-Bus machine id, else the platform UUID on macOS.
pub fn machine_id() -> Option<String> {
    if let Ok(id) = std::env::var("DEVLOGD_MACHINE_ID")
        && !id.trim().is_empty()
    {
        return Some(id.trim().to_string());
    }
    for path in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let Ok(id) = std::fs::read_to_string(path)
            && !id.trim().is_empty()
        {
            return Some(id.trim().to_string());
        }
    }
    #[cfg(target_os = "macos")]
    {
        let mut uuid = [0u8; 16];
        let wait = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        // SAFETY: a 16-byte buffer, as gethostuuid requires, and a valid timespec.
        // rustix has no gethostuuid (macOS only) and no other crate of its standing does.
        if unsafe { libc::gethostuuid(uuid.as_mut_ptr(), &wait) } == 0 {
            return Some(crate::fsutil::hex(&uuid));
        }
    }
    None
}

/// Keep secrets out of crash dumps: no core file (RLIMIT_CORE 0) and, on Linux, not
/// dumpable (PR_SET_DUMPABLE 0: no core, no ptrace attach by other processes of the user,
/// /proc/PID owned by root). Called first thing by every command; best effort.
pub fn forbid_core_dumps() {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let zero = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    let _ = setrlimit(Resource::Core, zero);
    #[cfg(target_os = "linux")]
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
}

/// Memory for upload buffers goes back to the system as soon as it is freed: with glibc's
/// default, large buffers freed on the many blocking threads are kept in per-thread arenas,
/// and the peak resident size grows with the number of threads that ever held a block.
/// Allocations from 256 KiB up are mapped and unmapped directly instead.
pub fn return_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
    // A glibc call: rustix wraps system calls, not the allocator, so this stays libc.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}
