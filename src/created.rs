//! `--created`: the time an image says it was made (its config's `created` and history), as
//! `now`, `commit`, `epoch` or an RFC 3339 time, resolved to whole seconds since 1970.
//!
//! Owns parsing that value, reading the clock and asking git for a commit's time. It must not touch
//! the layers' mtimes: those follow `SOURCE_DATE_EPOCH` only, so that a layer's bytes do not change
//! with the date an image claims.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What `--created` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Created {
    /// The clock, when the pack runs: not reproducible.
    Now,
    /// The commit time of `HEAD` of the git repository holding a folder.
    Commit,
    /// 1970-01-01T00:00:00Z.
    Epoch,
    /// A time given, in seconds since 1970.
    At(u64),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CreatedError {
    #[error("--created {value:?}: {reason}")]
    Syntax { value: String, reason: &'static str },
    #[error("--created commit: {} is not in a git repository with a commit ({detail})", dir.display())]
    NoCommit { dir: PathBuf, detail: String },
    #[error("--created now: the clock says a time before 1970")]
    Clock,
}

impl CreatedError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            CreatedError::Syntax { .. } => Some(format!("for example {}", EXAMPLES)),
            CreatedError::NoCommit { .. } => Some("run it inside the repository, or give --created epoch, now or a time".into()),
            CreatedError::Clock => None,
        }
    }
}

const EXAMPLES: &str = "--created now, commit, epoch, 2026-01-02T03:04:05Z or 2026-01-02T04:04:05+01:00";
const EXPECTED: &str = "expected now, commit, epoch or an RFC 3339 time (YYYY-MM-DDTHH:MM:SS with Z or an offset such as +01:00)";

impl std::str::FromStr for Created {
    type Err = CreatedError;

    fn from_str(text: &str) -> Result<Created, CreatedError> {
        match text {
            "now" => Ok(Created::Now),
            "commit" => Ok(Created::Commit),
            "epoch" => Ok(Created::Epoch),
            _ => rfc3339_seconds(text).map(Created::At).map_err(|reason| CreatedError::Syntax { value: text.to_string(), reason }),
        }
    }
}

impl Created {
    /// The time, in seconds since 1970; `commit` asks git about the repository holding `dir`.
    pub(crate) fn resolve(self, dir: &Path) -> Result<u64, CreatedError> {
        match self {
            Created::Epoch => Ok(0),
            Created::At(seconds) => Ok(seconds),
            Created::Now => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_secs())
                .map_err(|_| CreatedError::Clock),
            Created::Commit => commit_time(dir),
        }
    }
}

/// `git log -1 --format=%ct` in `dir`.
pub(crate) fn commit_time(dir: &Path) -> Result<u64, CreatedError> {
    let no_commit = |detail: String| CreatedError::NoCommit { dir: dir.to_path_buf(), detail };
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["log", "-1", "--format=%ct"])
        .output()
        .map_err(|e| no_commit(format!("cannot run git: {e}")))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let first = said.lines().next().unwrap_or("").trim();
        return Err(no_commit(format!("git log: {}", if first.is_empty() { "failed" } else { first })));
    }
    text.trim().parse().map_err(|_| no_commit(format!("git log printed {:?}, not a time", text.trim())))
}

/// An RFC 3339 time, strictly: `YYYY-MM-DDTHH:MM:SS`, optional fraction, then `Z` or `±HH:MM`.
/// The fraction is dropped: images record whole seconds. Times before 1970 are refused.
fn rfc3339_seconds(text: &str) -> Result<u64, &'static str> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = bytes.get(range)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
    };
    let at = |i: usize, expected: &[u8]| bytes.get(i).is_some_and(|b| expected.contains(b));
    if bytes.len() < 20 || !at(4, b"-") || !at(7, b"-") || !at(10, b"Tt") || !at(13, b":") || !at(16, b":") {
        return Err(EXPECTED);
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (digits(0..4), digits(5..7), digits(8..10), digits(11..13), digits(14..16), digits(17..19))
    else {
        return Err(EXPECTED);
    };
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction.find(|c: char| !c.is_ascii_digit()).unwrap_or(fraction.len());
        if end == 0 {
            return Err(EXPECTED);
        }
        rest = &fraction[end..];
    }
    let offset: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let pair = |a: u8, b: u8| (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'));
            let (Some(hours), Some(minutes)) = (pair(*h1, *h2), pair(*m1, *m2)) else { return Err(EXPECTED) };
            if hours > 23 || minutes > 59 {
                return Err("the offset is out of range (at most ±23:59)");
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'+' {
                seconds
            } else {
                -seconds
            }
        }
        _ => return Err(EXPECTED),
    };
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err("no such date");
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("no such time of day (leap seconds are not taken)");
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let seconds = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset;
    u64::try_from(seconds).map_err(|_| "the time is before 1970-01-01T00:00:00Z")
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's days-from-civil, the inverse of `config::rfc3339`'s).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::config::rfc3339;

    fn parse(text: &str) -> Result<Created, String> {
        text.parse::<Created>().map_err(|e| e.to_string())
    }

    #[test]
    fn names_and_times_parse() {
        assert_eq!(parse("now"), Ok(Created::Now));
        assert_eq!(parse("commit"), Ok(Created::Commit));
        assert_eq!(parse("epoch"), Ok(Created::Epoch));
        assert_eq!(parse("2026-01-02T03:04:05Z"), Ok(Created::At(1_767_323_045)));
        assert_eq!(parse("2026-01-02t03:04:05z"), Ok(Created::At(1_767_323_045)));
        assert_eq!(parse("2026-01-02T04:04:05+01:00"), Ok(Created::At(1_767_323_045)));
        assert_eq!(parse("2026-01-01T22:34:05-04:30"), Ok(Created::At(1_767_323_045)));
        assert_eq!(parse("2026-01-02T03:04:05.999999Z"), Ok(Created::At(1_767_323_045)), "the fraction is dropped");
        assert_eq!(parse("1970-01-01T00:00:00Z"), Ok(Created::At(0)));
        assert_eq!(parse("2000-02-29T00:00:00Z"), Ok(Created::At(951_782_400)));
    }

    #[test]
    fn times_round_trip_through_the_config_format() {
        for seconds in [0, 59, 86_399, 86_400, 951_782_400, 1_700_000_000, 4_102_444_799, 253_402_300_799] {
            assert_eq!(parse(&rfc3339(seconds)), Ok(Created::At(seconds)), "{seconds}");
        }
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        let expected = format!("--created \"2026-01-02\": {EXPECTED}");
        assert_eq!(parse("2026-01-02"), Err(expected));
        for bad in [
            "yesterday",
            "",
            "2026-01-02T03:04:05",
            "2026-01-02 03:04:05Z",
            "2026-1-02T03:04:05Z",
            "2026-01-02T03:04:05.Z",
            "2026-01-02T03:04:05+0100",
            "2026-01-02T03:04:05+01",
            "+2026-01-02T03:04:05Z",
            "2026-01-02T03:04:05Z ",
            "1767323045",
        ] {
            assert!(parse(bad).unwrap_err().ends_with(EXPECTED), "{bad:?}");
        }
        assert_eq!(parse("2025-02-29T00:00:00Z"), Err("--created \"2025-02-29T00:00:00Z\": no such date".into()));
        assert_eq!(parse("2026-13-01T00:00:00Z"), Err("--created \"2026-13-01T00:00:00Z\": no such date".into()));
        assert!(parse("2026-01-01T24:00:00Z").unwrap_err().ends_with("no such time of day (leap seconds are not taken)"));
        assert!(parse("2026-01-01T23:59:60Z").unwrap_err().ends_with("no such time of day (leap seconds are not taken)"));
        assert!(parse("2026-01-01T00:00:00+24:00").unwrap_err().ends_with("the offset is out of range (at most ±23:59)"));
        assert!(parse("1969-12-31T23:59:59Z").unwrap_err().ends_with("the time is before 1970-01-01T00:00:00Z"));
        assert!(parse("1970-01-01T00:30:00+01:00").unwrap_err().ends_with("the time is before 1970-01-01T00:00:00Z"));
    }

    #[test]
    fn commit_outside_a_repository_is_an_error_that_names_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let err = Created::Commit.resolve(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("--created commit: {} is not in a git repository with a commit (git log: ", dir.path().display())),
            "{err}"
        );
    }

    #[test]
    fn now_is_the_clock() {
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let now = Created::Now.resolve(Path::new(".")).unwrap();
        assert!(now >= before && now < before + 60);
    }
}
