//! Upload progress on stderr: a bar per blob on a terminal, one plain line per blob otherwise,
//! nothing with `-q`. Only sizes and digests are shown, never URLs with their query strings.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::image::Digest;

pub(crate) trait Progress: Sync {
    /// A blob starts; the returned handle counts its bytes.
    fn start(&self, digest: &Digest, size: u64, label: &str) -> Arc<dyn BlobProgress>;
}

pub(crate) trait BlobProgress: Send + Sync {
    fn advance(&self, bytes: u64);
    /// A retry starts over.
    fn restart(&self);
    /// `outcome`: "pushed", "exists", "mounted".
    fn finish(&self, outcome: &str);
}

pub(crate) struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &Digest, _: u64, _: &str) -> Arc<dyn BlobProgress> {
        Arc::new(QuietBlob)
    }
}

struct QuietBlob;

impl BlobProgress for QuietBlob {
    fn advance(&self, _: u64) {}
    fn restart(&self) {}
    fn finish(&self, _: &str) {}
}

/// Plain lines, for logs and CI.
pub(crate) struct Lines {
    pub(crate) destination: String,
}

struct LineBlob {
    destination: String,
    digest: String,
    size: u64,
    label: String,
    sent: AtomicU64,
}

impl Progress for Lines {
    fn start(&self, digest: &Digest, size: u64, label: &str) -> Arc<dyn BlobProgress> {
        Arc::new(LineBlob {
            destination: self.destination.clone(),
            digest: short(digest),
            size,
            label: label.to_string(),
            sent: AtomicU64::new(0),
        })
    }
}

impl BlobProgress for LineBlob {
    fn advance(&self, bytes: u64) {
        self.sent.fetch_add(bytes, Ordering::Relaxed);
    }
    fn restart(&self) {
        self.sent.store(0, Ordering::Relaxed);
    }
    fn finish(&self, outcome: &str) {
        eprintln!("{}: {outcome} {} {} ({})", self.destination, self.label, self.digest, human_size(self.size));
    }
}

/// indicatif bars on a terminal.
pub(crate) struct Bars {
    multi: MultiProgress,
    destination: String,
}

impl Bars {
    pub(crate) fn new(destination: &str) -> Self {
        Bars { multi: MultiProgress::new(), destination: destination.to_string() }
    }
}

struct BarBlob {
    bar: ProgressBar,
}

impl Progress for Bars {
    fn start(&self, digest: &Digest, size: u64, label: &str) -> Arc<dyn BlobProgress> {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template("{prefix} {msg:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{} {label} {}", self.destination, short(digest)));
        Arc::new(BarBlob { bar })
    }
}

impl BlobProgress for BarBlob {
    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
    fn restart(&self) {
        self.bar.set_position(0);
    }
    fn finish(&self, outcome: &str) {
        self.bar.set_message(outcome.to_string());
        self.bar.finish();
    }
}

/// The right reporter for stderr: bars on a terminal, lines elsewhere, nothing when quiet.
pub(crate) fn for_stderr(quiet: bool, destination: &str) -> Box<dyn Progress + Send> {
    if quiet {
        Box::new(Quiet)
    } else if std::io::stderr().is_terminal() {
        Box::new(Bars::new(destination))
    } else {
        Box::new(Lines { destination: destination.to_string() })
    }
}

fn short(digest: &Digest) -> String {
    format!("sha256:{}", &digest.hex()[..12])
}

pub(crate) fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
