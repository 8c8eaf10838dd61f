//! Secret scrubbing for everything devlogd prints or logs.
//!
//! Credentials are registered here once, when they are resolved; every error message that
//! comes from the SDK or the network, and every log line (see `logging.rs`), passes through
//! [`scrub`] before it reaches a terminal, a log or a status reply. Besides the registered
//! values, any `sig=` query parameter (a SAS signature) is masked, so a SAS pasted into a
//! URL that we never registered still does not leak.
//!
//! Also [`printable`] (and [`printable_lines`]): names and messages as shown to a person, with
//! control and invisible format characters escaped.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const MASK: &str = "***";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remember a secret value so that [`scrub`] masks it wherever it appears.
pub fn register_secret(value: &str) {
    // Very short values would mask ordinary words; real tokens and keys are long.
    if value.len() < 8 {
        return;
    }
    if let Ok(mut secrets) = SECRETS.write()
        && !secrets.iter().any(|s| s == value)
    {
        secrets.push(value.to_string());
        // Percent-encoded copies appear in URLs.
        let encoded =
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        if encoded != value {
            secrets.push(encoded);
        }
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
    // A SAS: its signature alone is the secret part, and services echo it in any of its
    // encodings (raw, percent-decoded, re-encoded), not always behind `sig=`.
    for pair in value.trim_start_matches('?').split('&') {
        if let Some((key, sig)) = pair.split_once('=')
            && key.eq_ignore_ascii_case("sig")
        {
            register_signature(sig);
        }
    }
}

fn register_signature(sig: &str) {
    let decoded = percent_encoding::percent_decode_str(sig)
        .decode_utf8_lossy()
        .into_owned();
    let encoded =
        percent_encoding::utf8_percent_encode(&decoded, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let lower_hex = lowercase_escapes(&encoded);
    let Ok(mut secrets) = SECRETS.write() else {
        return;
    };
    for form in [sig.to_string(), decoded, encoded, lower_hex] {
        if form.len() >= 8 && !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    // Longest first, so a secret that contains another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `%2B` → `%2b`: some services write escapes in lower case.
fn lowercase_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            for h in chars.by_ref().take(2) {
                out.push(h.to_ascii_lowercase());
            }
        }
    }
    out
}

/// Return `text` with every registered secret and every SAS signature masked.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    if let Ok(secrets) = SECRETS.read() {
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
    }
    for key in [
        "sig=",
        "Sig=",
        "SIG=",
        "AccountKey=",
        "SharedAccessSignature=",
    ] {
        if out.contains(key) {
            out = Cow::Owned(mask_values_after(&out, key));
        }
    }
    out
}

/// Mask the value that follows each occurrence of `key` up to a delimiter.
fn mask_values_after(text: &str, key: &str) -> String {
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(key) {
        let (head, tail) = rest.split_at(pos + key.len());
        result.push_str(head);
        let end = tail
            .find(['&', ';', ' ', '"', '\'', ')', '>', '\n', ','])
            .unwrap_or(tail.len());
        if end > 0 && !tail[..end].starts_with(MASK) {
            result.push_str(MASK);
        } else {
            result.push_str(&tail[..end]);
        }
        rest = &tail[end..];
    }
    result.push_str(rest);
    result
}

/// A name as shown to a person: control characters escaped (`\n`, `\u{1b}`) and so are
/// invisible format characters (bidi overrides and isolates, zero-width characters, the BOM,
/// the soft hyphen: `\u{202e}`) and the line and paragraph separators, so a name cannot forge
/// lines, send escape sequences to the terminal, or show other text than it holds. JSON output
/// does not use this: JSON escaping keeps names exact.
pub fn printable(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else if needs_escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A message that may hold names, as shown to a person: each line as by [`printable`], the
/// line breaks kept.
pub fn printable_lines(text: &str) -> String {
    text.split('\n')
        .map(printable)
        .collect::<Vec<_>>()
        .join("\n")
}

fn needs_escape(c: char) -> bool {
    c.is_control() || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Unicode general category Cf (format characters), Unicode 16.
pub fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
}

/// A secret value: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap and register a secret.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register_secret(&value);
        Secret(value)
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    /// Zero the value in memory, its whole buffer (cheap, so done); the scrubber keeps its
    /// own copies for masking for the life of the process (SECURITY.md says what else does).
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

/// The longest host in a name (a conflict file's, a blob's metadata).
pub const MAX_HOST_CHARS: usize = 40;

/// A host as a name segment: ASCII letters, digits and `-` (anything else, `/`, `.`,
/// control and bidi characters included, becomes `-`), no `-` at either end, at most
/// [`MAX_HOST_CHARS`]; `unknown` when nothing is left. Hosts are claims: never trusted.
pub fn safe_host(host: &str) -> String {
    let mapped: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(MAX_HOST_CHARS)
        .collect();
    let trimmed = mapped.trim_matches('-');
    if trimmed.is_empty() {
        "unknown".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_echoed_without_sig_is_masked_in_every_encoding() {
        let _sas = Secret::new("sv=2024-01-01&sp=rwl&sig=QmFzZTY0U2lnbmF0dXJlKy8%3D");
        for echoed in [
            "QmFzZTY0U2lnbmF0dXJlKy8=",
            "QmFzZTY0U2lnbmF0dXJlKy8%3D",
            "QmFzZTY0U2lnbmF0dXJlKy8%3d",
        ] {
            let text = format!("<QueryParameterValue>{echoed}</QueryParameterValue>");
            assert!(
                !scrub(&text).contains("QmFzZTY0"),
                "{echoed}: {}",
                scrub(&text)
            );
        }
    }

    #[test]
    fn masks_sas_signature_in_urls() {
        let url = "http://h/a/c/x.md?sv=2021&sp=rw&sig=abc%2Bdef%3D&se=2030 (os error 111)";
        let out = scrub(url);
        assert_eq!(
            out,
            "http://h/a/c/x.md?sv=2021&sp=rw&sig=***&se=2030 (os error 111)"
        );
    }

    #[test]
    fn masks_registered_secrets_and_their_encoding() {
        let secret = Secret::new("s3cr3t/value+with=chars");
        let plain = format!(
            "token {} and {}",
            secret.expose(),
            "s3cr3t%2Fvalue%2Bwith%3Dchars"
        );
        let out = scrub(&plain);
        assert!(!out.contains("s3cr3t"), "{out}");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
    }

    #[test]
    fn masks_connection_string_parts() {
        let cs =
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFy==;EndpointSuffix=x";
        assert_eq!(
            scrub(cs),
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=***;EndpointSuffix=x"
        );
    }

    #[test]
    fn printable_escapes_bidi_zero_width_and_other_format_characters() {
        assert_eq!(
            printable("invoice\u{202e}dm.exe\u{200b}.md"),
            "invoice\\u{202e}dm.exe\\u{200b}.md"
        );
        let format_chars = "\u{ad}\u{61c}\u{200b}\u{200c}\u{200d}\u{200e}\u{200f}\u{202a}\u{202b}\
            \u{202c}\u{202d}\u{202e}\u{2060}\u{2064}\u{2066}\u{2067}\u{2068}\u{2069}\u{feff}\
            \u{2028}\u{2029}\u{e0041}";
        for c in format_chars.chars() {
            let shown = printable(&format!("a{c}b")).into_owned();
            assert_eq!(shown, format!("a\\u{{{:x}}}b", c as u32), "{:x}", c as u32);
        }
        // Visible text, accents and emoji stay as they are.
        assert!(matches!(printable("café 日本 🦀 a-b.md"), Cow::Borrowed(_)));
        assert_eq!(printable("tab\there"), "tab\\there");
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        assert!(matches!(scrub("uploaded 3 files"), Cow::Borrowed(_)));
    }
}
