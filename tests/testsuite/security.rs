//! What another local user, a hostile remote or the network must not be able to do,
//! driven through the real binary.

use crate::common;

use common::TestEnv;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A journal pushing into a configured directory remote at `root/shared` (a group folder
/// or NAS mount others can write to).
fn shared_mirror() -> (TestEnv, PathBuf) {
    let env = TestEnv::new();
    let shared = env.root().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    env.write_config(&format!(
        "[remote]\nurl = \"file://{}\"\n",
        shared.display()
    ));
    (env, shared)
}

fn push(env: &TestEnv) -> common::RunOutput {
    env.run_with_timeout(&["push"], Duration::from_secs(60))
}

#[test]
fn a_symlinked_directory_in_the_remote_does_not_redirect_writes() {
    let (env, shared) = shared_mirror();
    let elsewhere = env.root().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, shared.join("notes")).unwrap();
    env.write_file("notes/today.md", b"journal text\n");
    env.write_file("other.md", b"other\n");
    let out = push(&env);
    out.assert_code(1);
    assert!(
        out.stdout.contains("symlink is in the way"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "a write went through the link"
    );
    assert_eq!(std::fs::read(shared.join("other.md")).unwrap(), b"other\n");
}

#[test]
fn a_symlink_at_the_lock_file_creates_nothing_at_its_target() {
    let (env, shared) = shared_mirror();
    let target = env.root().join("created-by-devlogd");
    std::os::unix::fs::symlink(&target, shared.join(".devlogd.lock")).unwrap();
    env.write_file("a.md", b"a\n");
    let out = push(&env);
    out.assert_code(1);
    assert!(!target.exists(), "the lock symlink was followed");
}

#[test]
fn a_symlink_or_fifo_in_place_of_a_blob_is_replaced_not_followed_and_hangs_nothing() {
    let (env, shared) = shared_mirror();
    let victim = env.root().join("victim.txt");
    std::fs::write(&victim, b"the owner's other file\n").unwrap();
    std::os::unix::fs::symlink(&victim, shared.join("linked.md")).unwrap();
    let fifo = shared.join("fifo.md");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    env.write_file("linked.md", b"journal one\n");
    env.write_file("fifo.md", b"journal two\n");
    let out = push(&env);
    out.assert_code(0);
    assert_eq!(std::fs::read(&victim).unwrap(), b"the owner's other file\n");
    for (name, want) in [("linked.md", "journal one\n"), ("fifo.md", "journal two\n")] {
        let p = shared.join(name);
        assert!(std::fs::symlink_metadata(&p).unwrap().is_file(), "{name}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), want);
    }
    // verify reads the remote the same way, and agrees.
    env.run_with_timeout(&["verify"], Duration::from_secs(60))
        .assert_code(0);
}

/// Files below `dir` that are not regular files or directories, or are symlinks.
fn links_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_symlink() {
                out.push(e.path());
            } else if t.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

#[test]
fn a_symlink_at_an_old_style_temporary_name_is_never_written_through() {
    // Older versions wrote to `.NAME.devlogd-tmp-PID-N` next to the blob: another user
    // could plant links at the next names. Whatever is planted there is left alone.
    let (env, shared) = shared_mirror();
    let victim = env.root().join("victim.txt");
    std::fs::write(&victim, b"untouched\n").unwrap();
    for pid in 1..200 {
        for n in 0..3 {
            let _ = std::os::unix::fs::symlink(
                &victim,
                shared.join(format!(".a.md.devlogd-tmp-{pid}-{n}")),
            );
        }
    }
    env.write_file("a.md", b"journal\n");
    push(&env).assert_code(0);
    assert_eq!(std::fs::read(&victim).unwrap(), b"untouched\n");
    assert_eq!(std::fs::read(shared.join("a.md")).unwrap(), b"journal\n");
    assert_eq!(
        links_below(&shared).len(),
        199 * 3,
        "the planted links stay links"
    );
}

#[test]
fn plain_http_to_another_host_is_refused_before_anything_is_sent() {
    let env = TestEnv::new().with_sas("sv=2024-01-01&sp=rwl&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D");
    env.write_config("[remote]\nurl = \"http://acct.blob.core.windows.net/journal\"\n");
    env.write_file("a.md", b"a\n");
    for args in [&["config", "check"][..], &["push"][..], &["verify"][..]] {
        let out = env.run(args);
        out.assert_code(2);
        assert!(
            out.stderr.contains("use https://"),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "one line: {}",
            out.stderr
        );
    }
}

#[test]
fn a_password_in_the_url_is_refused_and_never_echoed() {
    let env = TestEnv::new();
    env.write_config(
        "[remote]\nurl = \"https://someone:hunter2-the-password@acct.blob.core.windows.net/journal\"\n",
    );
    for args in [&["config", "check"][..], &["push"][..]] {
        let out = env.run(args);
        out.assert_code(2);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(all.contains("USER:PASSWORD@"), "{all}");
        assert!(!all.contains("hunter2"), "the password was echoed: {all}");
    }
}

/// A fake blob service on loopback that answers every request 400
/// InvalidQueryParameterValue with the request's signature repeated in its body, decoded,
/// without `sig=` in front (as a real service error does). Serves at most `max` requests.
fn echoing_service(max: usize) -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let sig = request_line
                .split(['?', '&', ' '])
                .find_map(|kv| kv.strip_prefix("sig="))
                .unwrap_or("");
            let decoded = percent_encoding::percent_decode_str(sig).decode_utf8_lossy();
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>InvalidQueryParameterValue</Code><Message>Value for one of the query parameters specified in the request URI is invalid.\nRequestId:1 {decoded}</Message><QueryParameterName>sig</QueryParameterName><QueryParameterValue>{decoded}</QueryParameterValue><Reason>Signature {decoded} did not match</Reason></Error>"
            );
            let response = format!(
                "HTTP/1.1 400 Value for one of the query parameters specified in the request URI is invalid.\r\nContent-Type: application/xml\r\nx-ms-error-code: InvalidQueryParameterValue\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

#[test]
fn a_signature_the_service_echoes_never_reaches_output_logs_or_status() {
    use common::daemon::Daemon;
    const SIG_DECODED: &str = "ZWNob2VkLXNpZ25hdHVyZS12YWx1ZQ+/=";
    let sig =
        percent_encoding::utf8_percent_encode(SIG_DECODED, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let port = echoing_service(200);
    let env = TestEnv::new().with_sas(format!("sv=2024-01-01&ss=b&srt=sco&sp=rwdlac&sig={sig}"));
    env.write_config(&format!(
        "[remote]\nurl = \"http://127.0.0.1:{port}/devstoreaccount1/journal\"\n"
    ));
    env.write_file("a.md", b"a\n");
    let leaks = |text: &str| {
        ["ZWNob2VkLXNpZ25hdHVy", "ZWNob2VkLXNpZ25hdHVyZS12YWx1ZQ%2B"]
            .iter()
            .any(|part| text.contains(part))
    };
    for args in [&["push"][..], &["push", "--json"][..], &["-v", "push"][..]] {
        let out = env.run_with_timeout(args, Duration::from_secs(60));
        assert_eq!(
            out.code(),
            Some(1),
            "{args:?}: {}{}",
            out.stdout,
            out.stderr
        );
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(all.contains("InvalidQueryParameterValue"), "{all}");
        assert!(!leaks(&all), "{args:?} leaked the signature: {all}");
    }
    let daemon = Daemon::start(&env);
    let out = env.run_with_timeout(&["ctl", "push", "--json"], Duration::from_secs(60));
    let status = env.run(&["ctl", "status", "--json"]);
    let log = daemon.log_text();
    drop(daemon);
    for text in [
        format!("{}{}", out.stdout, out.stderr),
        status.stdout.clone(),
        log.clone(),
    ] {
        assert!(!leaks(&text), "leaked: {text}");
    }
    assert!(log.contains("InvalidQueryParameterValue"), "{log}");
}

/// Runs `cmd` with umask 022, as a typical login shell does.
fn umask_022(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: umask is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        })
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_journal_and_the_state_index_are_private_whatever_the_umask() {
    let env = TestEnv::new();
    std::fs::remove_dir_all(env.journal()).unwrap(); // devlog creates it
    let new =
        umask_22_output(
            env.devlog()
                .args(["new", "-m", "my private diary", "--id", "diary1"]),
        );
    assert!(
        new.status.success(),
        "{}",
        String::from_utf8_lossy(&new.stderr)
    );
    assert_eq!(mode(&env.journal()), 0o700);
    let mut entries = Vec::new();
    let mut stack = vec![env.journal()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                assert_eq!(mode(&e.path()), 0o700, "{}", e.path().display());
                stack.push(e.path());
            } else {
                entries.push(e.path());
            }
        }
    }
    assert!(!entries.is_empty());
    for f in &entries {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    let push = umask_22_output(env.devlogd().arg("push"));
    assert!(
        push.status.success(),
        "{}",
        String::from_utf8_lossy(&push.stderr)
    );
    let state = env.state_home().join("devlog");
    assert_eq!(mode(&state), 0o700);
    for e in std::fs::read_dir(&state).unwrap().flatten() {
        if e.path().to_string_lossy().contains(".sqlite") {
            assert_eq!(mode(&e.path()), 0o600, "{}", e.path().display());
        }
    }
}

fn umask_22_output(cmd: &mut std::process::Command) -> std::process::Output {
    umask_022(cmd).output().unwrap()
}

#[test]
fn remote_names_with_control_characters_are_escaped_for_people_and_exact_in_json() {
    let (env, shared) = shared_mirror();
    env.write_file("a.md", b"a\n");
    push(&env).assert_code(0);
    let forged = "x.md\nAll files match.\u{1b}]0;pwned\u{7}.md";
    std::fs::write(shared.join(forged), b"planted").unwrap();
    for args in [&["verify"][..], &["push", "--all"][..]] {
        let out = env.run(args);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(
            !all.contains('\u{1b}') && !all.contains('\u{7}'),
            "{args:?}: {all:?}"
        );
        assert!(
            !all.lines().any(|l| l.starts_with("All files match")),
            "{args:?} printed a forged line: {all}"
        );
        assert!(all.contains("x.md\\nAll files match."), "{args:?}: {all}");
    }
    let json = env.run(&["verify", "--json"]);
    let report: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(
        report["only_on_remote"][0], forged,
        "JSON keeps the name exact"
    );
}

/// Hand the test's tree to `uid` (a second local user).
fn chown_tree(dir: &Path, uid: u32) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(uid), Some(uid)).unwrap();
        if p.is_dir() && !p.is_symlink() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
}

#[test]
fn the_daemon_leaves_no_core_dump_and_is_not_dumpable() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let env = TestEnv::new();
    chown_tree(env.root(), NOBODY);
    let _machine = common::machine::shared();
    let mut cmd = env.devlogd();
    cmd.arg("run")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    // The kernel hands the private /proc files of a process that is not dumpable to root
    // (so no other process of the user can read its memory or environment); its core
    // limit is 0.
    let seen = common::poll_until(Duration::from_secs(10), || {
        let owner = std::fs::metadata(format!("/proc/{pid}/environ"))
            .ok()?
            .uid();
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
        let core = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))?;
        let soft = core.split_whitespace().nth(4)?.to_string();
        (owner == 0 && soft == "0").then_some(())
    });
    let exited = child.try_wait().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.is_some(),
        "the daemon stayed dumpable, or may write a core file (exited early: {exited:?})"
    );
}

#[test]
fn ctl_refuses_a_socket_served_by_another_user() {
    let env = TestEnv::new();
    let dir = env.runtime_dir().join("devlog");
    std::fs::create_dir_all(&dir).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let socket = dir.join("devlogd.sock");
    // An impostor: binds where the daemon would, then listens as another user (the kernel
    // records the listener's credentials at listen()), and answers anything with "all fine".
    let impostor = std::process::Command::new("python3")
        .args([
            "-c",
            r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
os.setgid(65534); os.setuid(65534)
s.listen(1)
s.settimeout(20)
print("listening", flush=True)
try:
    c, _ = s.accept()
    c.settimeout(5)
    data = c.recv(4096)
    open(sys.argv[2], "wb").write(data)
    c.sendall(b'{"ok":true,"code":0,"message":"all files backed up"}\n')
except Exception:
    pass
"#,
        ])
        .arg(&socket)
        .arg(env.root().join("impostor-got"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut impostor = impostor;
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(impostor.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "listening");
    }
    let out = env.run(&["ctl", "stop"]);
    let _ = impostor.kill();
    let _ = impostor.wait();
    assert_ne!(out.code(), Some(0), "{}", out.stdout);
    assert!(out.stderr.contains("another user"), "{}", out.stderr);
    assert!(
        !env.root().join("impostor-got").exists()
            || std::fs::read(env.root().join("impostor-got"))
                .unwrap()
                .is_empty(),
        "a command was sent to the impostor"
    );
}

#[test]
fn ctl_refuses_a_runtime_directory_others_can_write() {
    let env = TestEnv::new();
    let dir = env.runtime_dir().join("devlog");
    std::fs::create_dir_all(&dir).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let out = env.run(&["ctl", "status"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("not a private directory"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_launchd_agent_runs_with_umask_077() {
    let env = TestEnv::new();
    let out = env.run(&["service", "install", "--dry-run", "--manager", "launchd"]);
    out.assert_code(0);
    let plist = out.stdout.clone();
    let parsed = std::process::Command::new("python3")
        .args([
            "-c",
            "import plistlib,sys; d=plistlib.loads(sys.stdin.buffer.read()); print(d['Umask'])",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let start = plist.find("<?xml").unwrap_or(0);
            let end = plist
                .find("</plist>")
                .map_or(plist.len(), |e| e + "</plist>".len());
            c.stdin
                .take()
                .unwrap()
                .write_all(&plist.as_bytes()[start..end])?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&parsed.stdout).trim(),
        "63",
        "{plist}"
    );
}
