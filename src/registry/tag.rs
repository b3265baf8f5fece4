//! Tags: the names a manifest is stored under, in a registry repository or an OCI layout.
//!
//! The distribution spec's rule, `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`, and the words that explain it
//! live here once; every place that takes a tag (`--tag`, `oci:DIR:TAG`, references) parses a `Tag`.

use std::fmt;

/// A tag that follows the distribution spec's rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// The rule, as error messages and hints say it.
    pub(crate) const RULE: &'static str = "a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'";

    /// The tag used where none is named.
    pub(crate) fn latest() -> Tag {
        Tag("latest".to_string())
    }

    fn is_valid(text: &str) -> bool {
        let bytes = text.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 128
            && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
            && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    }
}

/// Text that is not a tag; says which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tag {0:?}: {rule}", rule = Tag::RULE)]
pub struct TagError(pub String);

impl std::str::FromStr for Tag {
    type Err = TagError;

    fn from_str(text: &str) -> Result<Self, TagError> {
        match Tag::is_valid(text) {
            true => Ok(Tag(text.to_string())),
            false => Err(TagError(text.to_string())),
        }
    }
}

impl std::ops::Deref for Tag {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Tag {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_rules() {
        for good in ["latest", "_v1.0-rc.1", "1", &"a".repeat(128)] {
            assert_eq!(good.parse::<Tag>().map(|t| t.to_string()), Ok(good.to_string()));
        }
        for bad in [".hidden", "-x", "", "a+b", "a/b", &"a".repeat(129)] {
            assert_eq!(bad.parse::<Tag>(), Err(TagError(bad.to_string())), "{bad:?}");
        }
        assert_eq!(
            "-x".parse::<Tag>().unwrap_err().to_string(),
            "invalid tag \"-x\": a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
        );
    }
}
