//! The size budget: `--max-size` fails a pack whose image is larger, before anything is published;
//! without it, an image over [`WARN_OVER`] gets a warning. Either way, the message says what each
//! layer costs, compressed, and which files weigh most in it.
//!
//! "The image" is what a registry stores for one platform: its compressed layers and its config.
//! With several platforms, each platform's image must fit on its own.

use std::fmt;
use std::str::FromStr;

use crate::image::Image;
use crate::rootfs::{Content, EntryKind, FileTree};

/// Without `--max-size`, an image larger than this gets a warning: the size scratchpack promises.
pub(crate) const WARN_OVER: u64 = 10_000_000;

/// How many files of a layer the message names.
const FILES_NAMED: usize = 3;

/// A size in bytes, as `--max-size` takes it: `10MB` (10,000,000 bytes), `10MiB` (10,485,760),
/// `500kB`, `2GB`, `1.5MB`, or plain bytes. Keeps the text it was written as, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ByteSize {
    pub(crate) bytes: u64,
    text: String,
}

const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1_000),
    ("kb", 1_000),
    ("m", 1_000_000),
    ("mb", 1_000_000),
    ("g", 1_000_000_000),
    ("gb", 1_000_000_000),
    ("t", 1_000_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let expected = || format!("{text:?} is not a size such as 10MB, 10MiB, 500kB or 1048576 (bytes)");
        let trimmed = text.trim();
        let split = trimmed.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let unit = unit.trim_start().to_ascii_lowercase();
        let &(_, scale) = UNITS.iter().find(|(name, _)| *name == unit).ok_or_else(expected)?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || number.ends_with('.') || fraction.len() > 12 {
            return Err(expected());
        }
        // Exactly, in u128: whole × scale + fraction × scale / 10^digits, rounded up.
        let whole: u128 = whole.parse().map_err(|_| format!("{text:?} is too large a size"))?;
        let fraction_value: u128 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| expected())? };
        let denominator = 10u128.pow(fraction.len() as u32);
        let bytes = whole.checked_mul(scale as u128).and_then(|w| w.checked_add((fraction_value * scale as u128).div_ceil(denominator)));
        let bytes = bytes.and_then(|b| u64::try_from(b).ok()).ok_or_else(|| format!("{text:?} is too large a size"))?;
        if bytes == 0 {
            return Err(format!("{text:?}: the size must be more than 0 bytes"));
        }
        Ok(ByteSize { bytes, text: trimmed.to_string() })
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `bytes` for people, in decimal units with one decimal: `117 B`, `3.2 kB`, `12.4 MB`, `2.1 GB`.
pub(crate) fn human(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", bytes as f64 / 1e6),
        _ => format!("{:.1} GB", bytes as f64 / 1e9),
    }
}

/// One layer of an image: what it holds, what it costs compressed, and its largest files
/// (image path, uncompressed size), largest first.
#[derive(Clone, Debug)]
pub(crate) struct LayerCost {
    pub(crate) what: String,
    pub(crate) compressed: u64,
    pub(crate) files: Vec<(String, u64)>,
}

/// The regular files of `tree` with their sizes, largest first (then by path).
pub(crate) fn largest_files(tree: &FileTree) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = tree
        .iter()
        .filter_map(|(path, entry)| match &entry.kind {
            EntryKind::File(Content::Bytes(bytes)) => Some((format!("/{path}"), bytes.len() as u64)),
            EntryKind::File(Content::HostFile { size, .. }) => Some((format!("/{path}"), *size)),
            EntryKind::Dir | EntryKind::Symlink(_) => None,
        })
        .collect();
    files.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    files
}

/// What one platform's image costs: every layer and the config, compressed.
#[derive(Clone, Debug)]
pub(crate) struct ImageCost {
    /// The platform, named when the pack made several.
    pub(crate) platform: Option<String>,
    pub(crate) total: u64,
    pub(crate) layers: Vec<LayerCost>,
}

impl ImageCost {
    /// The cost of `image`, whose layers (bottom first) `layers` describes.
    pub(crate) fn of(image: &Image, layers: Vec<LayerCost>, several: bool) -> ImageCost {
        let total = image.layers.iter().map(|layer| layer.blob.size).sum::<u64>() + image.config.size;
        ImageCost { platform: several.then(|| image.platform.to_string()), total, layers }
    }

    /// "the image is 12.4 MB", or "the linux/arm64 image is …"; with the exact bytes when the
    /// rounded figure would read as `limit`'s.
    fn headline(&self, limit: &str, limit_bytes: u64) -> String {
        let which = self.platform.as_ref().map(|p| format!("{p} ")).unwrap_or_default();
        let size = human(self.total);
        let exact = if size == human(limit_bytes) { format!(" ({} bytes, over {limit_bytes})", self.total) } else { String::new() };
        format!("the {which}image is {size}{exact}, over {limit}")
    }

    /// The layers, costliest first, one line each, with their largest files.
    fn listing(&self) -> String {
        let mut layers: Vec<&LayerCost> = self.layers.iter().collect();
        layers.sort_by_key(|layer| std::cmp::Reverse(layer.compressed));
        let mut text = String::new();
        for layer in layers {
            text.push_str(&format!("\n  {:>8}  {}", human(layer.compressed), layer.what));
            if !layer.files.is_empty() {
                let named: Vec<String> =
                    layer.files.iter().take(FILES_NAMED).map(|(path, size)| format!("{path} ({})", human(*size))).collect();
                text.push_str(&format!(": {}", named.join(", ")));
                if layer.files.len() > FILES_NAMED {
                    text.push_str(&format!(" and {} more files", layer.files.len() - FILES_NAMED));
                }
            }
        }
        text.push_str("\n  (layers compressed; files uncompressed)");
        text
    }
}

/// `--max-size` refused the image.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SizeError {
    #[error("{}{}", cost.headline(&format!("--max-size {limit}"), limit.bytes), cost.listing())]
    TooLarge { cost: Box<ImageCost>, limit: ByteSize },
}

impl SizeError {
    pub(crate) fn hint(&self) -> Option<String> {
        Some(format!("{SHRINK_HINT}; or raise --max-size"))
    }
}

const SHRINK_HINT: &str = "shrink the largest layers: --strip drops a program's debug info, a static build needs no libraries layer";

/// Fails with the first image over `limit`; without a limit, the warning for each image over
/// [`WARN_OVER`] (the lines to print after `warning: `).
pub(crate) fn check(costs: &[ImageCost], limit: Option<&ByteSize>) -> Result<Vec<String>, SizeError> {
    match limit {
        Some(limit) => match costs.iter().find(|cost| cost.total > limit.bytes) {
            Some(cost) => Err(SizeError::TooLarge { cost: Box::new(cost.clone()), limit: limit.clone() }),
            None => Ok(Vec::new()),
        },
        None => Ok(costs
            .iter()
            .filter(|cost| cost.total > WARN_OVER)
            .map(|cost| {
                format!("{}{}\nhint: {SHRINK_HINT}; --max-size SIZE makes this an error", cost.headline("10 MB", WARN_OVER), cost.listing())
            })
            .collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> Result<u64, String> {
        text.parse::<ByteSize>().map(|size| size.bytes)
    }

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        assert_eq!(bytes("10MB"), Ok(10_000_000));
        assert_eq!(bytes("10MiB"), Ok(10_485_760));
        assert_eq!(bytes("500kB"), Ok(500_000));
        assert_eq!(bytes("500KB"), Ok(500_000));
        assert_eq!(bytes("2GB"), Ok(2_000_000_000));
        assert_eq!(bytes("3GiB"), Ok(3 << 30));
        assert_eq!(bytes("1048576"), Ok(1_048_576));
        assert_eq!(bytes("1048576B"), Ok(1_048_576));
        assert_eq!(bytes("10 MB"), Ok(10_000_000));
        assert_eq!(bytes("1.5MB"), Ok(1_500_000));
        assert_eq!(bytes("0.5KiB"), Ok(512));
        assert_eq!(bytes("18446744073709551615"), Ok(u64::MAX));
        assert_eq!("10MB".parse::<ByteSize>().unwrap().to_string(), "10MB");
    }

    #[test]
    fn bad_sizes_are_refused_by_name() {
        let refused = |text: &str| format!("{text:?} is not a size such as 10MB, 10MiB, 500kB or 1048576 (bytes)");
        for text in ["", "MB", "10XB", "-1MB", "1.MB", ".5MB", "1.2.3MB", "10 M B", "ten"] {
            assert_eq!(bytes(text), Err(refused(text)), "{text:?}");
        }
        assert_eq!(bytes("0MB"), Err("\"0MB\": the size must be more than 0 bytes".into()));
        assert_eq!(bytes("18446744073709551616"), Err("\"18446744073709551616\" is too large a size".into()));
        assert_eq!(bytes("20000000TiB"), Err("\"20000000TiB\" is too large a size".into()));
    }

    #[test]
    fn sizes_read_in_decimal_units() {
        assert_eq!(human(117), "117 B");
        assert_eq!(human(3_210), "3.2 kB");
        assert_eq!(human(12_400_000), "12.4 MB");
        assert_eq!(human(2_100_000_000), "2.1 GB");
    }

    fn cost(total: u64) -> ImageCost {
        ImageCost {
            platform: None,
            total,
            layers: vec![
                LayerCost {
                    what: "base layer".into(),
                    compressed: 100_000,
                    files: vec![("/etc/ssl/certs/ca-certificates.crt".into(), 220_000)],
                },
                LayerCost {
                    what: "program layer".into(),
                    compressed: total - 100_000,
                    files: vec![("/usr/local/bin/app".into(), 31_000_000)],
                },
            ],
        }
    }

    #[test]
    fn the_message_lists_the_costliest_layer_first() {
        let limit: ByteSize = "10MB".parse().unwrap();
        let error = check(&[cost(12_400_000)], Some(&limit)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the image is 12.4 MB, over --max-size 10MB\n\
             \x20  12.3 MB  program layer: /usr/local/bin/app (31.0 MB)\n\
             \x20 100.0 kB  base layer: /etc/ssl/certs/ca-certificates.crt (220.0 kB)\n\
             \x20 (layers compressed; files uncompressed)"
        );
        assert!(check(&[cost(10_000_000)], Some(&limit)).unwrap().is_empty());
        let close = check(&[cost(10_000_001)], Some(&limit)).unwrap_err().to_string();
        assert!(close.starts_with("the image is 10.0 MB (10000001 bytes, over 10000000), over --max-size 10MB\n"), "{close}");
    }

    #[test]
    fn without_a_limit_only_images_over_10_mb_warn() {
        assert!(check(&[cost(10_000_000)], None).unwrap().is_empty());
        let warnings = check(&[cost(12_400_000)], None).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("the image is 12.4 MB, over 10 MB\n   12.3 MB  program layer"), "{}", warnings[0]);
    }
}
