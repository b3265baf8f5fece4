//! Clues from the ELF: what a program will look for at run time beyond its libraries, each with
//! the evidence that suggests it. (`inspect` lists them as "hints"; in the code `hint` is the advice
//! printed under an error.)
//!
//! - NSS: glibc's name services (getaddrinfo, getpwnam…); our nsswitch.conf names only `files` and
//!   `dns`, which glibc has built in since 2.34; an older glibc needs its libnss_files/libnss_dns.
//! - Time zones: zoneinfo paths or `TZDIR` in the binary, or calls to localtime/mktime/strftime.
//! - TLS: a TLS stack that verifies certificates (OpenSSL, GnuTLS, rustls, Go's crypto/x509).
//!
//! Strings are searched in the program's read-only data and dynamic string table only, in one pass,
//! so a large binary costs little. Those sections are read in windows of [`WINDOW`] bytes into one
//! reused buffer, never through a map of the file: a program whose `.rodata` holds hundreds of MB of
//! assets costs no more memory than a small one (mapped pages would count in its resident size).
//! Nothing here decides what goes into the image.

use std::collections::BTreeSet;
use std::path::Path;

use goblin::elf::Elf;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ClueKind {
    Nss,
    TimeZones,
    Tls,
}

impl ClueKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ClueKind::Nss => "nss",
            ClueKind::TimeZones => "time-zones",
            ClueKind::Tls => "tls",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Clue {
    pub(crate) kind: ClueKind,
    /// What was found: `symbol getaddrinfo`, `string "/usr/share/zoneinfo"`, `library libssl.so.3`.
    pub(crate) evidence: Vec<String>,
}

const NSS_SYMBOLS: &[&str] = &[
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname2",
    "gethostbyname_r",
    "getpwnam",
    "getpwnam_r",
    "getpwuid",
    "getpwuid_r",
    "getgrnam",
    "getgrnam_r",
    "getgrgid",
    "getgrgid_r",
    "getgrouplist",
    "initgroups",
    "getnameinfo",
];
const NSS_STRINGS: &[&str] = &["libnss_%s.so", "/etc/nsswitch.conf"];
const TZ_SYMBOLS: &[&str] = &["localtime", "localtime_r", "mktime", "tzset", "strftime", "timelocal"];
/// `TZDIR` alone is no evidence: static glibc carries it whenever any of its time code is linked.
const TZ_STRINGS: &[&str] = &["/usr/share/zoneinfo", "/etc/localtime", "zoneinfo.zip"];
const TLS_SYMBOLS: &[&str] =
    &["SSL_CTX_set_verify", "X509_verify_cert", "SSL_CTX_load_verify_locations", "gnutls_certificate_set_x509_system_trust"];
const TLS_STRINGS: &[&str] = &["crypto/x509", "rustls", "webpki", "SSL_CERT_FILE", "ca-certificates.crt", "/etc/ssl/certs"];
const TLS_LIBRARIES: &[&str] = &["libssl.so", "libgnutls.so", "libnss3.so", "libmbedtls.so", "libwolfssl.so"];

/// Sections whose bytes are searched for strings.
const STRING_SECTIONS: &[&str] = &[".rodata", ".dynstr", ".data.rel.ro", ".go.buildinfo", ".rdata"];

/// Hints for one object (the program, or a bundled library), given the names it needs.
pub fn detect(path: &Path, needed: &[String]) -> std::io::Result<Vec<Clue>> {
    let file = std::fs::File::open(path)?;
    // SAFETY: read-only private map; goblin checks bounds. Only the headers, `.dynsym` and `.dynstr`
    // are read through it (a few pages); the string sections are read window by window below.
    let bytes = unsafe { memmap2::Mmap::map(&file) }?;
    let Ok(elf) = crate::elf::parse(&bytes) else { return Ok(Vec::new()) };
    let imports: BTreeSet<&str> = elf
        .dynsyms
        .iter()
        .filter(|sym| sym.is_import())
        .filter_map(|sym| elf.dynstrtab.get_at(sym.st_name))
        .map(|name| name.split('@').next().unwrap_or(name))
        .collect();
    let strings = find_strings(&elf, &file)?;
    let mut clues = Vec::new();
    let mut add = |kind, symbols: &[&str], wanted_strings: &[&str], libraries: &[&str]| {
        let mut evidence: Vec<String> = symbols.iter().filter(|s| imports.contains(**s)).map(|s| format!("symbol {s}")).collect();
        evidence.extend(wanted_strings.iter().filter(|s| strings.contains(**s)).map(|s| format!("string {s:?}")));
        evidence.extend(needed.iter().filter(|n| libraries.iter().any(|l| n.starts_with(l))).map(|n| format!("library {n}")));
        if !evidence.is_empty() {
            clues.push(Clue { kind, evidence });
        }
    };
    add(ClueKind::Nss, NSS_SYMBOLS, NSS_STRINGS, &[]);
    add(ClueKind::TimeZones, TZ_SYMBOLS, TZ_STRINGS, &[]);
    add(ClueKind::Tls, TLS_SYMBOLS, TLS_STRINGS, TLS_LIBRARIES);
    Ok(clues)
}

/// Which of the known strings occur in the string-holding sections, in one pass over each (see
/// [`Searcher`]), read from `file` window by window.
fn find_strings(elf: &Elf, file: &std::fs::File) -> std::io::Result<BTreeSet<&'static str>> {
    let needles: Vec<&'static str> = NSS_STRINGS.iter().chain(TZ_STRINGS).chain(TLS_STRINGS).copied().collect();
    let searcher = Searcher::new(&needles);
    let size = file.metadata()?.len();
    let mut window = Vec::new();
    let mut found = BTreeSet::new();
    for section in &elf.section_headers {
        let name = elf.shdr_strtab.get_at(section.sh_name).unwrap_or("");
        if !STRING_SECTIONS.contains(&name) || section.sh_type == goblin::elf::section_header::SHT_NOBITS {
            continue;
        }
        // A section that does not fit in the file is not searched: `inspect` says what is wrong
        // with the file.
        if section.sh_offset.checked_add(section.sh_size).is_none_or(|end| end > size) {
            continue;
        }
        searcher.find_in_file(file, section.sh_offset, section.sh_size, WINDOW, &mut window, &mut found)?;
        if found.len() == needles.len() {
            break;
        }
    }
    Ok(found)
}

/// How many bytes of a section are read and searched at a time: large enough that the search, not
/// the read calls, takes the time; small enough that a window is still in the CPU cache when it is
/// searched (2 MiB windows were no faster on a 200 MiB `.rodata`), and a pack's memory
/// does not grow with the program.
const WINDOW: usize = 256 << 10;

/// Finds which of a few needles occur in a haystack, each occurrence of each, overlapping ones
/// included. Where the CPU has the instructions (x86-64, aarch64), a SIMD multi-substring search
/// (Teddy, from aho-corasick's `packed` module) finds where any needle may start, and each such
/// place is checked against every needle: one pass over the reference qemu's 4.3 MB of strings
/// takes 0.3 ms, where one memmem pass per needle took 0.8 ms. Elsewhere, an automaton that reports
/// overlapping matches: exact too, several times slower (the needles share prefixes such as `/`,
/// which defeat its prefilter).
enum Searcher<'n> {
    Teddy { teddy: aho_corasick::packed::Searcher, needles: &'n [&'static str] },
    Automaton { automaton: aho_corasick::AhoCorasick, needles: &'n [&'static str] },
}

impl<'n> Searcher<'n> {
    fn new(needles: &'n [&'static str]) -> Self {
        match aho_corasick::packed::Config::new().builder().extend(needles).build() {
            Some(teddy) => Searcher::Teddy { teddy, needles },
            None => Self::automaton(needles),
        }
    }

    fn automaton(needles: &'n [&'static str]) -> Self {
        let automaton = aho_corasick::AhoCorasick::new(needles).expect("a handful of short needles fit any automaton");
        Searcher::Automaton { automaton, needles }
    }

    /// Adds to `found` each needle that occurs in the `len` bytes of `file` at `offset`, read with
    /// `pread` into `buffer` at most `window` bytes at a time. Each window starts (longest needle − 1)
    /// bytes before the end of the one before, so a needle that straddles two windows is whole in the
    /// second: every occurrence is found, as in one pass over the whole range.
    fn find_in_file(
        &self,
        file: &std::fs::File,
        offset: u64,
        len: u64,
        window: usize,
        buffer: &mut Vec<u8>,
        found: &mut BTreeSet<&'static str>,
    ) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let needles = match self {
            Searcher::Teddy { needles, .. } | Searcher::Automaton { needles, .. } => needles,
        };
        let overlap = needles.iter().map(|n| n.len()).max().unwrap_or(1).saturating_sub(1);
        let window = window.max(overlap + 1);
        let end = offset + len;
        let mut at = offset;
        while at < end {
            let take = usize::try_from(end - at).map_or(window, |rest| rest.min(window));
            buffer.resize(take, 0);
            file.read_exact_at(buffer, at)?;
            self.find_in(buffer, found);
            if at + take as u64 >= end || found.len() == needles.len() {
                break;
            }
            at += (take - overlap) as u64;
        }
        Ok(())
    }

    /// Adds to `found` each needle that occurs in `data`.
    fn find_in(&self, data: &[u8], found: &mut BTreeSet<&'static str>) {
        match self {
            Searcher::Teddy { teddy, needles } => {
                let mut from = 0;
                while let Some(hit) = teddy.find_in(data, aho_corasick::Span::from(from..data.len())) {
                    // Every needle that starts here, not only the one reported: another may start
                    // inside it (`/usr/share/zoneinfo.zip`), so the search goes on from the next byte.
                    found.extend(needles.iter().filter(|needle| data[hit.start()..].starts_with(needle.as_bytes())));
                    from = hit.start() + 1;
                }
            }
            Searcher::Automaton { automaton, needles } => {
                found.extend(automaton.find_overlapping_iter(data).map(|hit| needles[hit.pattern().as_usize()]));
            }
        }
    }
}

/// Merges clues of the program and its libraries: one clue per kind, evidence from all.
pub(crate) fn merge(all: impl IntoIterator<Item = (String, Vec<Clue>)>) -> Vec<Clue> {
    let mut merged: Vec<Clue> = Vec::new();
    for (object, clues) in all {
        for clue in clues {
            let evidence = clue.evidence.into_iter().map(|e| if object.is_empty() { e } else { format!("{e} in {object}") });
            match merged.iter_mut().find(|h| h.kind == clue.kind) {
                Some(existing) => existing.evidence.extend(evidence),
                None => merged.push(Clue { kind: clue.kind, evidence: evidence.collect() }),
            }
        }
    }
    merged.sort_by_key(|h| h.kind);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_uses_nss_and_tls() {
        let clues = detect(Path::new("/usr/bin/curl"), &["libcurl.so.4".into()]).unwrap();
        let kinds: Vec<ClueKind> = clues.iter().map(|h| h.kind).collect();
        assert!(kinds.contains(&ClueKind::Tls) || kinds.contains(&ClueKind::Nss), "{clues:?}");
        let libcurl = detect(Path::new("/lib/x86_64-linux-gnu/libcurl.so.4"), &["libssl.so.3".into()]).unwrap();
        let tls = libcurl.iter().find(|h| h.kind == ClueKind::Tls).expect("libcurl does TLS");
        assert!(tls.evidence.contains(&"library libssl.so.3".to_string()), "{tls:?}");
        let nss = libcurl.iter().find(|h| h.kind == ClueKind::Nss).expect("libcurl resolves names");
        assert!(nss.evidence.contains(&"symbol getaddrinfo".to_string()), "{nss:?}");
    }

    #[test]
    fn true_needs_nothing_of_the_kind() {
        let clues = detect(Path::new("/bin/true"), &["libc.so.6".into()]).unwrap();
        assert!(clues.iter().all(|h| h.kind != ClueKind::Tls), "{clues:?}");
    }

    #[test]
    fn needles_inside_or_at_the_start_of_others_are_all_found_by_both_searchers() {
        let needles = ["/usr/share/zoneinfo", "zoneinfo.zip", "/etc/ssl/certs", "/etc/ssl/certs/ca", "rustls"];
        let teddy = Searcher::new(&needles);
        if !matches!(teddy, Searcher::Teddy { .. }) {
            eprintln!("no SIMD multi-substring search on this CPU: only the automaton is tested");
        }
        for searcher in [teddy, Searcher::automaton(&needles)] {
            let mut found = BTreeSet::new();
            searcher.find_in(b"\0/usr/share/zoneinfo.zip\0/etc/ssl/certs/ca-bundle\0", &mut found);
            assert_eq!(found, BTreeSet::from(["/usr/share/zoneinfo", "zoneinfo.zip", "/etc/ssl/certs", "/etc/ssl/certs/ca"]));
            let mut none = BTreeSet::new();
            searcher.find_in(b"rustl webpk /usr/share/zoneinf", &mut none);
            assert!(none.is_empty(), "{none:?}");
        }
    }

    #[test]
    fn needles_straddling_a_window_boundary_are_found_wherever_they_fall() {
        use std::io::Write;
        let needles = ["/usr/share/zoneinfo", "zoneinfo.zip", "rustls"];
        let window = 64;
        for searcher in [Searcher::new(&needles), Searcher::automaton(&needles)] {
            // The needle starts at every offset around the first and second window ends, and at the
            // very end of the searched range; the range starts 7 bytes into the file.
            for at in (window - 25..window + 3).chain(2 * window - 40..2 * window).chain([200 - 23]) {
                let mut data = vec![b'x'; 200];
                data[at..at + 23].copy_from_slice(b"/usr/share/zoneinfo.zip");
                let mut file = tempfile::tempfile().unwrap();
                file.write_all(b"rustls\0").unwrap();
                file.write_all(&data).unwrap();
                file.write_all(b"rustls").unwrap();
                let (mut buffer, mut found) = (Vec::new(), BTreeSet::new());
                searcher.find_in_file(&file, 7, data.len() as u64, window, &mut buffer, &mut found).unwrap();
                assert_eq!(found, BTreeSet::from(["/usr/share/zoneinfo", "zoneinfo.zip"]), "needle at {at}");
                assert_eq!(buffer.capacity(), window, "the buffer holds one window");
            }
        }
    }

    #[test]
    fn the_reference_binary_names_its_zoneinfo_and_nss_files() {
        let reference = Path::new("/usr/bin/qemu-riscv64-static");
        if !reference.exists() {
            return;
        }
        let clues = detect(reference, &[]).unwrap();
        let evidence: Vec<&str> = clues.iter().flat_map(|h| h.evidence.iter().map(String::as_str)).collect();
        assert_eq!(
            evidence,
            ["string \"libnss_%s.so\"", "string \"/etc/nsswitch.conf\"", "string \"/usr/share/zoneinfo\"", "string \"/etc/localtime\""]
        );
    }

    #[test]
    fn merge_keeps_one_hint_per_kind() {
        let a = vec![Clue { kind: ClueKind::Tls, evidence: vec!["string \"rustls\"".into()] }];
        let b = vec![
            Clue { kind: ClueKind::Tls, evidence: vec!["library libssl.so.3".into()] },
            Clue { kind: ClueKind::Nss, evidence: vec!["symbol getpwnam".into()] },
        ];
        let merged = merge([(String::new(), a), ("libx.so".to_string(), b)]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].kind, ClueKind::Nss);
        assert_eq!(merged[1].evidence, vec!["string \"rustls\"", "library libssl.so.3 in libx.so"]);
    }
}
