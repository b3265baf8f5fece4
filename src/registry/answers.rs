//! What a registry or token server says back, read as hostile input: token answers and error
//! bodies parsed from bytes read under a cap, and registry text made safe to print.
//!
//! Every body is read with [`read_capped`], never whole: an endless or huge answer ends at its cap
//! (as go-containerregistry caps its reads). Every text a registry sends that reaches an error or a
//! log goes through [`registry_text`]: control characters are escaped (no terminal escape and no
//! forged `error:` line), credentials are redacted, and the text is shortened.

use std::io::Read;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The most bytes read of a token server's answer.
pub const MAX_TOKEN_BODY: u64 = 4 << 20;
/// The most bytes read of an error body; past it the body is not parsed. A registry's error JSON
/// is a few hundred bytes, and up to four uploads may read one at once.
pub const MAX_ERROR_BODY: u64 = 1 << 20;
/// The most bytes read of a manifest or index (4 MiB: the limit registries apply to manifests).
pub const MAX_MANIFEST_BODY: u64 = 4 << 20;
/// The longest registry text shown, in characters.
const MAX_SHOWN_CHARS: usize = 1024;

/// The distribution spec's default token lifetime.
const DEFAULT_TOKEN_SECONDS: u64 = 60;
/// The longest lifetime believed: a token that claims more is renewed after a day.
pub const MAX_TOKEN_SECONDS: u64 = 24 * 60 * 60;
/// Tokens are renewed this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

/// A cap in MiB, as errors name it.
pub fn mib(limit: u64) -> u64 {
    limit >> 20
}

/// Reads `from` to its end, at most `limit` bytes: `None` when there is more.
pub fn read_capped(from: impl Read, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    from.take(limit.saturating_add(1)).read_to_end(&mut body)?;
    Ok((body.len() as u64 <= limit).then_some(body))
}

#[derive(Deserialize)]
struct TokenJson {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Why a token answer is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadToken {
    NotJson,
    NoToken,
}

impl BadToken {
    pub fn detail(self) -> &'static str {
        match self {
            BadToken::NotJson => "the answer is not token JSON",
            BadToken::NoToken => "the answer has no token",
        }
    }
}

/// A token server's answer: the token, and when to renew it (asked at `started`). A lifetime
/// past [`MAX_TOKEN_SECONDS`] is cut to it, so no answer makes the expiry overflow.
pub fn token_answer(body: &[u8], started: Instant) -> Result<(String, Instant), BadToken> {
    let answer: TokenJson = serde_json::from_slice(body).map_err(|_| BadToken::NotJson)?;
    let token = answer.token.or(answer.access_token).filter(|t| !t.is_empty()).ok_or(BadToken::NoToken)?;
    let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(DEFAULT_TOKEN_SECONDS).min(MAX_TOKEN_SECONDS));
    let renew_after = lifetime.saturating_sub(TOKEN_MARGIN.min(lifetime / 2));
    Ok((token, started.checked_add(renew_after).unwrap_or(started)))
}

#[derive(Deserialize)]
struct ErrorJson {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: serde_json::Value,
    #[serde(default)]
    message: serde_json::Value,
}

/// The first error of a distribution-spec error body: its code and message, made safe to print
/// ([`registry_text`]). Anything else gives no code and an empty message.
pub fn error_body(body: &[u8]) -> (Option<String>, String) {
    match serde_json::from_slice::<ErrorJson>(body) {
        Ok(parsed) if !parsed.errors.is_empty() => {
            let first = &parsed.errors[0];
            let code = first.code.as_str().map(registry_text).filter(|c| !c.is_empty());
            (code, first.message.as_str().map(registry_text).unwrap_or_default())
        }
        _ => (None, String::new()),
    }
}

/// Text from a registry as errors and logs show it: credentials replaced by `<redacted>` (every
/// secret this process holds, and any `Basic`/`Bearer` credential), control characters (C0, DEL,
/// C1) escaped as `\u{1b}`, and at most 1024 characters.
pub fn registry_text(text: &str) -> String {
    // Only the start is shown: redact a window that holds it and any secret that begins in it,
    // not the whole of a text that may be megabytes long.
    let window = MAX_SHOWN_CHARS + super::auth::longest_held() + 16;
    let cut = text.char_indices().nth(window).map_or(text.len(), |(at, _)| at);
    let redacted = super::auth::redact(&text[..cut]);
    let mut shown = String::with_capacity(redacted.len().min(MAX_SHOWN_CHARS * 4 + 8));
    let mut chars = redacted.chars();
    for c in chars.by_ref().take(MAX_SHOWN_CHARS) {
        if c.is_control() {
            shown.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            shown.push(c);
        }
    }
    if chars.next().is_some() || cut < text.len() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_reads_stop_at_the_cap() {
        assert_eq!(read_capped(&b"abcd"[..], 4).unwrap(), Some(b"abcd".to_vec()));
        assert_eq!(read_capped(&b"abcde"[..], 4).unwrap(), None);
        assert_eq!(read_capped(std::io::repeat(b'x'), 1 << 20).unwrap(), None);
    }

    #[test]
    fn token_lifetimes_are_bounded() {
        let now = Instant::now();
        let (token, expires) = token_answer(br#"{"token":"t","expires_in":18446744073709551615}"#, now).unwrap();
        assert_eq!(token, "t");
        assert_eq!(expires - now, Duration::from_secs(MAX_TOKEN_SECONDS) - TOKEN_MARGIN);
        let (_, expires) = token_answer(br#"{"access_token":"a"}"#, now).unwrap();
        assert_eq!(expires - now, Duration::from_secs(50));
        assert_eq!(token_answer(br#"{"token":""}"#, now), Err(BadToken::NoToken));
        assert_eq!(token_answer(b"<html>", now), Err(BadToken::NotJson));
    }

    #[test]
    fn registry_text_is_escaped_and_shortened() {
        let (code, message) =
            error_body(b"{\"errors\":[{\"code\":\"DENIED\",\"message\":\"\\u001b[2K\\rerror: forged\\n\\u009b\\u007f\"}]}");
        assert_eq!(code.as_deref(), Some("DENIED"));
        assert_eq!(message, "\\u{1b}[2K\\u{d}error: forged\\u{a}\\u{9b}\\u{7f}");
        assert_eq!(registry_text(&"é".repeat(5000)).chars().count(), 1025);
        assert_eq!(error_body(br#"{"errors":[{"code":7,"message":["x"]}]}"#), (None, String::new()));
    }
}
