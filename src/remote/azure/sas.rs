//! What a SAS token says about itself, read without asking the service: when it expires
//! (`se`) and what it allows (`sp`). Used to say "expired at …" precisely and to tell a
//! read-only token from one that can write, without writing.

/// The readable fields of a SAS token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SasInfo {
    /// `se`, unix seconds (`None` when absent or unreadable).
    pub expires_unix: Option<i64>,
    /// `sp`, the permission letters (`racwdl`…).
    pub permissions: Option<String>,
    /// `sr`: a service SAS's resource (`c` a container, `b` a blob).
    pub resource: Option<String>,
    /// `srt`: an account SAS's resource types (`s`, `c`, `o`).
    pub resource_types: Option<String>,
}

impl SasInfo {
    /// Parse the query string of a SAS (with or without a leading `?`).
    pub fn parse(token: &str) -> SasInfo {
        let mut info = SasInfo::default();
        for pair in token.trim_start_matches('?').split('&') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned();
            match key {
                "se" => {
                    info.expires_unix = time::OffsetDateTime::parse(
                        &value,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .ok()
                    .map(|t| t.unix_timestamp())
                    .or_else(|| date_only(&value));
                }
                "sp" => info.permissions = Some(value),
                "sr" => info.resource = Some(value),
                "srt" => info.resource_types = Some(value),
                _ => {}
            }
        }
        info
    }

    /// Whether the token may create and write blobs (`c` or `w`); `None` when it does not say.
    pub fn can_write(&self) -> Option<bool> {
        self.permissions
            .as_deref()
            .map(|p| p.contains('w') || p.contains('c'))
    }

    /// Whether the token may create a container: only an account SAS for containers (`srt`
    /// with `c`) that may create or write; never a service SAS (`sr`), which is scoped to one
    /// container or blob. `None` when the token says neither.
    pub fn can_create_container(&self) -> Option<bool> {
        if self.resource.is_some() {
            return Some(false);
        }
        let srt = self.resource_types.as_deref()?;
        let sp = self.permissions.as_deref().unwrap_or("");
        Some(srt.contains('c') && (sp.contains('c') || sp.contains('w')))
    }

    /// Why [`can_create_container`](Self::can_create_container) says no, for people.
    pub fn why_no_container(&self) -> String {
        if self.resource.is_some() {
            return "a SAS for one container or blob (sr) never creates containers".into();
        }
        let srt = self.resource_types.as_deref().unwrap_or("");
        if !srt.contains('c') {
            return format!("its resource types srt={srt} do not include containers (c)");
        }
        format!(
            "its permissions sp={} include neither create (c) nor write (w)",
            self.permissions.as_deref().unwrap_or("")
        )
    }

    /// The write permissions devlogd needs that the token lacks (`a`, `c`, `w`, `d`).
    pub fn missing_for_push(&self) -> Vec<char> {
        let Some(p) = self.permissions.as_deref() else {
            return Vec::new();
        };
        ['r', 'a', 'c', 'w', 'd', 'l']
            .into_iter()
            .filter(|c| !p.contains(*c))
            .collect()
    }
}

/// Why a token cannot be a SAS, seen without asking the service (which may answer a
/// garbled one with anything, an emulator with HTTP 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    #[error(
        "this does not look like a SAS token (it has no sig= part): copy the whole token, e.g. sv=...&sig=..."
    )]
    NoSignature,
    #[error("the SAS token has no version (sv=): copy the whole token, e.g. sv=...&sig=...")]
    NoVersion,
    #[error("the SAS token's signature (sig) is not valid base64: copy the whole token again")]
    BadSignature,
}

/// Check what a SAS token must have: a version (`sv`) and a signature (`sig`) made of base64
/// characters once percent-decoded. Only what is surely broken is refused (`%%%`, a space,
/// nothing): a signature of the wrong length is the service's to refuse, with a 403.
pub fn check(token: &str) -> Result<(), SasError> {
    let field = |name: &str| {
        token
            .trim_start_matches('?')
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    };
    let sig = field("sig").ok_or(SasError::NoSignature)?;
    let sig: Vec<u8> = percent_encoding::percent_decode_str(sig).collect();
    let data = sig.strip_suffix(b"=").unwrap_or(&sig);
    let data = data.strip_suffix(b"=").unwrap_or(data);
    let base64 = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/');
    if data.is_empty() || !data.iter().all(base64) {
        return Err(SasError::BadSignature);
    }
    if field("sv").is_none_or(str::is_empty) {
        return Err(SasError::NoVersion);
    }
    Ok(())
}

/// `se=2026-12-01` (a date alone is allowed): midnight UTC.
fn date_only(value: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, &format)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_and_permissions_are_read() {
        let s = SasInfo::parse("?sv=2022-11-02&ss=b&sp=rl&se=2026-11-20T10%3A00%3A00Z&sig=x");
        assert_eq!(s.expires_unix, Some(1_795_168_800));
        assert_eq!(s.permissions.as_deref(), Some("rl"));
        assert_eq!(s.can_write(), Some(false));
        assert_eq!(s.missing_for_push(), vec!['a', 'c', 'w', 'd']);
        let s = SasInfo::parse("sp=racwdl&se=2026-11-20");
        assert_eq!(s.expires_unix, Some(1_795_132_800));
        assert_eq!(s.can_write(), Some(true));
        assert!(s.missing_for_push().is_empty());
        assert_eq!(SasInfo::parse("sig=x"), SasInfo::default());
        assert_eq!(SasInfo::parse("sig=x").can_write(), None);
    }

    #[test]
    fn a_token_without_a_version_or_a_base64_signature_is_no_sas() {
        assert_eq!(check("?sv=2022-11-02&sp=r&sig=QUJDRA%3D%3D"), Ok(()));
        assert_eq!(check("sv=1&sig=ab+c/de="), Ok(()));
        assert_eq!(check("sv=1&sig=%%%"), Err(SasError::BadSignature));
        assert_eq!(check("sv=1&sig="), Err(SasError::BadSignature));
        assert_eq!(check("sv=1&sig=ab%20cd"), Err(SasError::BadSignature));
        assert_eq!(check("sv=1&sig=ab%3Dcd"), Err(SasError::BadSignature));
        assert_eq!(check("sv=1&sp=r"), Err(SasError::NoSignature));
        assert_eq!(check("sp=r&sig=QUJD"), Err(SasError::NoVersion));
    }
}
