//! Who this machine is: its host name and its stable machine id.

/// This machine's name (conflict copy names, writer ids).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..end]).into_owned();
        if !name.is_empty() {
            return name;
        }
    }
    "host".to_string()
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
        // SAFETY: a 16-byte buffer, as gethostuuid requires.
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
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on this process with valid arguments.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Memory for upload buffers goes back to the system as soon as it is freed: with glibc's
/// default, large buffers freed on the many blocking threads are kept in per-thread arenas,
/// and the peak resident size grows with the number of threads that ever held a block.
/// Allocations from 256 KiB up are mapped and unmapped directly instead.
pub fn return_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}
