//! The `WWW-Authenticate` header (RFC 7235): a scheme, then `key=value` parameters whose values may
//! be quoted strings holding commas (`scope="repository:a:pull,push"`) and backslash escapes.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercased: `bearer`, `basic`.
    pub scheme: String,
    /// Parameter names lowercased.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses every challenge in a header value. Malformed parts end the parse instead of failing:
/// what was read so far is returned.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut challenges = Vec::new();
    let mut rest = header.trim_start();
    while !rest.is_empty() {
        let scheme_end = rest.find(|c: char| c.is_whitespace() || c == ',').unwrap_or(rest.len());
        let scheme = &rest[..scheme_end];
        rest = rest[scheme_end..].trim_start_matches([' ', '\t']);
        if scheme.is_empty() || scheme.contains('=') {
            break;
        }
        let mut challenge = Challenge { scheme: scheme.to_ascii_lowercase(), params: BTreeMap::new() };
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            // A parameter is `token=`; anything else starts the next challenge.
            let Some(eq) = rest.find('=') else { break };
            let key = &rest[..eq];
            if key.is_empty() || key.contains([' ', ',', '"']) {
                break;
            }
            rest = &rest[eq + 1..];
            let value = if let Some(quoted) = rest.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        other => value.push(other),
                    }
                }
                rest = &quoted[end.unwrap_or(quoted.len())..];
                value
            } else {
                let end = rest.find([',', ' ', '\t']).unwrap_or(rest.len());
                let value = rest[..end].to_string();
                rest = &rest[end..];
                value
            };
            challenge.params.insert(key.to_ascii_lowercase(), value);
        }
        challenges.push(challenge);
        rest = rest.trim_start_matches([' ', '\t', ',']);
    }
    challenges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_quoted_commas() {
        let header =
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#;
        let challenges = parse(header);
        assert_eq!(challenges.len(), 1);
        let c = &challenges[0];
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:samalba/my-app:pull,push"));
    }

    #[test]
    fn basic_tokens_escapes_and_several_challenges() {
        let challenges = parse(r#"Basic realm="Registry \"Realm\"", Bearer realm=https://t.example/token, error=insufficient_scope"#);
        assert_eq!(challenges.len(), 2);
        assert_eq!(challenges[0].scheme, "basic");
        assert_eq!(challenges[0].param("realm"), Some("Registry \"Realm\""));
        assert_eq!(challenges[1].param("realm"), Some("https://t.example/token"));
        assert_eq!(challenges[1].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn garbage_does_not_panic() {
        for header in ["", "=", "Bearer", "Bearer realm=\"unterminated", "Bearer ,,,", "\"", "Bearer a=\"\\", "ü=ü"] {
            let _ = parse(header);
        }
        assert_eq!(parse("Bearer")[0].scheme, "bearer");
    }
}
