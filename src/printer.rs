//! The one place that writes to the terminal. stdout carries results only (references or JSON);
//! everything else goes to stderr, and `-q` silences it. When an archive goes to stdout, the
//! results go to stderr too.

use std::io::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Verbosity {
    Quiet,
    Normal,
    Verbose,
    Debug,
}

#[derive(Clone, Copy, Debug)]
pub struct Printer {
    verbosity: Verbosity,
    /// Result lines go to stderr: stdout carries an archive.
    results_on_stderr: bool,
}

impl Printer {
    pub fn new(quiet: bool, verbose: u8) -> Self {
        let verbosity = match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, 1) => Verbosity::Verbose,
            _ => Verbosity::Debug,
        };
        Printer { verbosity, results_on_stderr: false }
    }

    /// The same printer, with result lines on stderr: for a pack that writes an archive to stdout
    /// (`oci-archive:/dev/stdout`), whose bytes must be all that stdout carries.
    pub(crate) fn with_results_on_stderr(self) -> Self {
        Printer { results_on_stderr: true, ..self }
    }

    pub(crate) fn is_debug(&self) -> bool {
        self.verbosity >= Verbosity::Debug
    }

    pub(crate) fn is_quiet(&self) -> bool {
        self.verbosity == Verbosity::Quiet
    }

    /// A result line on stdout. A closed pipe is not an error worth a panic.
    pub(crate) fn result(&self, line: &str) {
        if self.results_on_stderr {
            eprintln!("{line}");
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    pub(crate) fn info(&self, message: impl std::fmt::Display) {
        if self.verbosity >= Verbosity::Normal {
            eprintln!("{message}");
        }
    }

    pub(crate) fn verbose(&self, message: impl std::fmt::Display) {
        if self.verbosity >= Verbosity::Verbose {
            eprintln!("{message}");
        }
    }

    pub(crate) fn debug(&self, message: impl std::fmt::Display) {
        if self.verbosity >= Verbosity::Debug {
            eprintln!("debug: {message}");
        }
    }

    pub(crate) fn warn(&self, message: impl std::fmt::Display) {
        if self.verbosity >= Verbosity::Normal {
            eprintln!("warning: {message}");
        }
    }
}
