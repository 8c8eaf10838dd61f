//! Proves the integration-test harness itself (tests/testsuite/common), not Azurite: that our
//! REST helpers encode, sign and parse awkward names (round trip, paging, XML), that a
//! persistent instance restarts on its port with its data, that a taken port fails loudly,
//! that an emulator dies with its test process, and that `TestEnv` is private.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{
    ACCOUNT_KEY, Azurite, BlobInfo, TestEnv, account_sas_signed_with, encode_blob_path, md5_b64,
    parse_blob_list, unique_container, wait_for, xml_text, xml_unescape,
};

/// Names that break naive URL building or XML parsing.
const AWKWARD: &[&str] = &[
    "a b/#1 %2?+é.md",
    "dir/x.md",
    "amp & <lt> \"quote\" 'apos'.md",
    "unicode/日本語/ñandú 🦀.md",
    "punct/+=;,@!$()*~.md",
    "100%25 literal.md",
];

fn names(blobs: &[BlobInfo]) -> Vec<String> {
    let mut names: Vec<String> = blobs.iter().map(|b| b.name.clone()).collect();
    names.sort();
    names
}

#[test]
fn shared_azurite_round_trips_awkward_names() {
    let az = Azurite::shared();
    let container = unique_container("smoke-names");
    az.create_container(&container);

    let content = |name: &str| format!("content of {name}\n").into_bytes();
    for name in AWKWARD {
        az.put_blob(&container, name, &content(name));
    }

    let listed = az.list_blobs(&container);
    let mut want: Vec<String> = AWKWARD.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names(&listed), want);
    for blob in &listed {
        let bytes = content(&blob.name);
        assert_eq!(blob.size, bytes.len() as u64, "size of {:?}", blob.name);
        assert_eq!(
            blob.content_md5_b64.as_deref(),
            Some(md5_b64(&bytes).as_str()),
            "Content-MD5 of {:?}",
            blob.name
        );
        assert!(!blob.etag.is_empty(), "ETag of {:?}", blob.name);
        assert_eq!(az.get_blob(&container, &blob.name), Some(bytes));
    }

    // The helpers' answers for a deleted and a missing blob.
    assert!(az.delete_blob(&container, "a b/#1 %2?+é.md"));
    assert_eq!(az.get_blob(&container, "a b/#1 %2?+é.md"), None);
    assert!(!az.delete_blob(&container, "a b/#1 %2?+é.md"));
    assert_eq!(az.list_blobs(&container).len(), AWKWARD.len() - 1);
    assert_eq!(az.get_blob(&container, "no/such blob.md"), None);
}

#[test]
fn list_blobs_follows_next_marker() {
    let az = Azurite::shared();
    let container = unique_container("smoke-paging");
    az.create_container(&container);
    let want: Vec<String> = (0..7).map(|i| format!("p/{i} & more.md")).collect();
    for name in &want {
        az.put_blob(&container, name, name.as_bytes());
    }
    // 3 per page: only complete if the NextMarker chain (whose marker holds `&`) is followed.
    assert_eq!(names(&az.list_blobs_paged(&container, Some(3))), want);
    assert_eq!(names(&az.list_blobs(&container)), want);
}

#[test]
fn persistent_azurite_keeps_blobs_across_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut az = Azurite::start_persistent(data.path(), None);
    let port = az.port();
    let container = unique_container("smoke-persist");
    az.create_container(&container);
    az.put_blob(&container, "notes/keep me.md", b"still here");

    az.stop();
    assert!(!az.is_listening(), "port {port} still open after stop");
    az.restart();
    assert_eq!(az.port(), port, "restart must reuse the port");
    assert_eq!(
        az.get_blob(&container, "notes/keep me.md").as_deref(),
        Some(&b"still here"[..])
    );
    let listed = az.list_blobs(&container);
    assert_eq!(names(&listed), ["notes/keep me.md"]);
    assert_eq!(listed[0].content_md5_b64, Some(md5_b64(b"still here")));

    // A second instance on the same port and directory sees the same data too.
    drop(az);
    let again = Azurite::start_persistent(data.path(), Some(port));
    assert_eq!(
        again.get_blob(&container, "notes/keep me.md").as_deref(),
        Some(&b"still here"[..])
    );
}

#[test]
fn a_taken_fixed_port_fails_loudly() {
    let data = tempfile::tempdir().unwrap();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = squatter.local_addr().unwrap().port();
    let result = std::panic::catch_unwind(|| Azurite::start_persistent(data.path(), Some(port)));
    let message = match result {
        Ok(_) => panic!("Azurite started on port {port}, which another socket holds"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default(),
    };
    assert!(
        message.contains("already in use") && message.contains(&port.to_string()),
        "{message}"
    );
}

const CHILD_ENV: &str = "DEVLOGD_HARNESS_SMOKE_CHILD";

/// Not a test by itself: the child process of `azurite_dies_with_its_test_process`. Starts an
/// Azurite, prints its port, and blocks until killed.
#[test]
#[ignore = "helper process for azurite_dies_with_its_test_process"]
fn child_holds_azurite_until_killed() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let az = Azurite::start();
    println!("AZURITE_PORT={}", az.port());
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

#[test]
fn azurite_dies_with_its_test_process() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "harness_smoke::child_holds_azurite_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line.strip_prefix("AZURITE_PORT=") {
                let _ = tx.send(port.parse::<u16>().unwrap());
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child test process never reported its Azurite port");
    let open = |p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok();
    assert!(open(port), "the child's Azurite is not listening");
    assert_ne!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the child's Azurite log dir should exist while it runs"
    );

    child.kill().unwrap(); // SIGKILL: no destructor runs in the child
    child.wait().unwrap();

    wait_for(
        Duration::from_secs(20),
        "the orphaned Azurite to exit",
        || (!open(port)).then_some(()),
    );
    wait_for(
        Duration::from_secs(20),
        "the wrapper to remove the log dir",
        || (std::fs::read_dir(tmp.path()).unwrap().count() == 0).then_some(()),
    );
}

#[test]
fn blob_paths_are_encoded_per_segment() {
    assert_eq!(
        encode_blob_path("a b/#1 %2?+é.md"),
        "a%20b/%231%20%252%3F%2B%C3%A9.md"
    );
    assert_eq!(encode_blob_path("dir/x.md"), "dir/x.md");
}

#[test]
fn list_xml_parsing_handles_attributes_empty_tags_and_entities() {
    let xml = "<B><Name Encoded=\"false\">a &amp;b &lt;&gt;&quot;&apos;&#233;&#x41;</Name>\
               <NameX>no</NameX><NextMarker/><Content-MD5 /></B>";
    assert_eq!(xml_text(xml, "Name").unwrap(), "a &b <>\"'éA");
    assert_eq!(xml_text(xml, "NextMarker").unwrap(), "");
    assert_eq!(xml_text(xml, "Content-MD5").unwrap(), "");
    assert_eq!(xml_text(xml, "Missing"), None);
    assert_eq!(xml_unescape("5 & 6 &bogus; &amp"), "5 & 6 &bogus; &amp");

    let list = "<EnumerationResults><Blobs><Blob><Name>x &amp; y</Name><Properties>\
                <Etag>0x1</Etag><Content-Length>3</Content-Length><Content-MD5 />\
                </Properties></Blob></Blobs><NextMarker/></EnumerationResults>";
    assert_eq!(
        parse_blob_list(list),
        [BlobInfo {
            name: "x & y".into(),
            content_md5_b64: None,
            etag: "\"0x1\"".into(),
            size: 3
        }]
    );
}

#[test]
fn container_names_are_valid_and_unique() {
    let mut seen = std::collections::HashSet::new();
    for prefix in ["Push--Test_", "", "---", &"x".repeat(100), "é"] {
        let name = unique_container(prefix);
        assert!((3..=63).contains(&name.len()), "{name}");
        assert!(
            !name.contains("--") && !name.starts_with('-') && !name.ends_with('-'),
            "{name}"
        );
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
        assert!(seen.insert(name.clone()), "{name} handed out twice");
    }
}

#[test]
fn md5_and_sas_are_well_formed() {
    use base64::Engine as _;
    assert_eq!(md5_b64(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    let sas = account_sas_signed_with(ACCOUNT_KEY);
    let (fields, sig) = sas.split_once("&sig=").expect("sig comes last");
    assert_eq!(
        fields,
        "sv=2021-08-06&ss=b&srt=sco&sp=rwdlacup&se=2099-01-01T00%3A00%3A00Z&spr=https%2Chttp"
    );
    let sig = percent_encoding::percent_decode_str(sig)
        .decode_utf8()
        .unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sig.as_bytes())
        .unwrap();
    assert_eq!(raw.len(), 32, "an HMAC-SHA256");
}

#[test]
fn test_env_lays_out_a_private_world() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new().with_sas("sv=x&sig=y");
    let file = env.write_file("2024/day one.md", "# hi\n");
    assert_eq!(std::fs::read(&file).unwrap(), b"# hi\n");
    assert!(file.starts_with(env.home().join(".devlog")));
    let config = env.write_config("root = \"/x\"\n");
    assert_eq!(config, env.config_home().join("devlog/config.toml"));
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let cmd = env.devlogd();
    let vars: std::collections::HashMap<_, _> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.map(|v| v.to_owned())))
        .collect();
    assert_eq!(vars["HOME"], Some(env.home().into_os_string()));
    assert_eq!(
        vars["XDG_STATE_HOME"],
        Some(env.state_home().into_os_string())
    );
    assert_eq!(vars["AZURE_STORAGE_SAS_TOKEN"], Some("sv=x&sig=y".into()));
    assert!(
        !matches!(vars.get("RUST_LOG"), Some(Some(_))),
        "RUST_LOG must not be passed"
    );

    let out = env.run(&["--version"]);
    assert!(
        out.success(),
        "devlogd --version: {} {}",
        out.stdout,
        out.stderr
    );
}
