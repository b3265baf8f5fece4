//! Fieldless enums that users spell by name (`--compression zstd`, `tzdata = "no"` in cargo
//! metadata): one table gives each its `NAMES`, `FromStr` and `Display`, so flags, metadata and
//! messages agree.

/// `spelled_enum!(Type { Variant => "name", … })`.
macro_rules! spelled_enum {
    ($type:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $type {
            /// Every value, as users spell it.
            pub const NAMES: &'static [&'static str] = &[$($name),+];
        }

        impl std::str::FromStr for $type {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, String> {
                match text {
                    $($name => Ok($type::$variant),)+
                    _ => Err(format!("{text:?}: expected {}", $crate::spelled::one_of($type::NAMES))),
                }
            }
        }

        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(match self {
                    $($type::$variant => $name,)+
                })
            }
        }
    };
}

/// `a, b or c`.
pub(crate) fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => only.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn choices_are_listed_as_people_write_them() {
        assert_eq!(super::one_of(&["gzip", "zstd"]), "gzip or zstd");
        assert_eq!(super::one_of(&["auto", "yes", "no"]), "auto, yes or no");
    }
}
