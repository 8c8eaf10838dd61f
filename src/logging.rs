//! Logging setup: tracing to stderr, filtered by `RUST_LOG` or `-v`, every line scrubbed of
//! secrets before it is written (see `redact.rs`), whatever module produced it.

use std::io::Write;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Install the global subscriber. `default_level` applies when `RUST_LOG` is unset;
/// `verbose` raises it (see [`verbosity_filter`]).
pub fn init(default_level: &str, verbose: u8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() && verbose == 0 => EnvFilter::new(v),
        _ => EnvFilter::new(verbosity_filter(default_level, verbose)),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(ScrubbedStderr { ansi })
        .with_ansi(ansi)
        .with_target(verbose > 0)
        .try_init();
}

/// `-v`: devlogd's own decisions (its debug lines), the libraries as usual; `-vv`: also the
/// HTTP traffic (the Azure SDK, hyper, reqwest at debug); `-vvv`: everything at trace.
fn verbosity_filter(default_level: &str, verbose: u8) -> String {
    match verbose {
        0 => format!("{default_level},hyper_util=info,reqwest=info,rustls=info"),
        1 => format!("{default_level},devlogd=debug,hyper_util=info,reqwest=info,rustls=info"),
        2 => format!(
            "{default_level},devlogd=debug,azure_core=debug,azure_storage_blob=debug,typespec_client_core=debug,hyper_util=debug,reqwest=debug,rustls=info"
        ),
        _ => "trace".to_string(),
    }
}

/// Hands out one [`ScrubbedLine`] per event.
struct ScrubbedStderr {
    /// Colours on (an interactive terminal): the line carries our own escape sequences.
    ansi: bool,
}

impl<'a> MakeWriter<'a> for ScrubbedStderr {
    type Writer = ScrubbedLine;
    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedLine {
            buf: Vec::with_capacity(256),
            escape_controls: !self.ansi,
        }
    }
}

/// Buffers one formatted event and writes it, scrubbed, when dropped. Without colours
/// (a service's log), control characters in it are escaped, so a file name cannot forge
/// log lines.
struct ScrubbedLine {
    buf: Vec<u8>,
    escape_controls: bool,
}

impl Write for ScrubbedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ScrubbedLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let clean = crate::redact::scrub(&text);
        let _ = if self.escape_controls {
            let line = clean.strip_suffix('\n').unwrap_or(&clean);
            let escaped = crate::redact::printable(line);
            std::io::stderr().write_all(format!("{escaped}\n").as_bytes())
        } else {
            std::io::stderr().write_all(clean.as_bytes())
        };
    }
}
