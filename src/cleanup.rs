//! Nothing half-written survives an interrupt. Paths being created (staging folders, temporary
//! files, a new layout, blobs added to an existing layout) are registered here while they are
//! incomplete; on SIGINT, SIGTERM or SIGHUP they are removed, newest first, and the process exits
//! with 128 + the signal number. Registration ends when the work is committed (the guard drops).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

static PENDING: Mutex<Vec<(u64, PathBuf)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static INSTALL: Once = Once::new();

/// Keeps a path registered until dropped. Dropping does not delete the path: whoever created it
/// either committed it or removes it on its own error path.
#[must_use = "the path is unregistered when the guard drops"]
pub(crate) struct Guard {
    id: u64,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(mut pending) = PENDING.lock() {
            pending.retain(|(id, _)| *id != self.id);
        }
    }
}

/// Registers `path` (file or folder) for removal if the process is interrupted.
pub(crate) fn register(path: &Path) -> Guard {
    install();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut pending) = PENDING.lock() {
        pending.push((id, path.to_path_buf()));
    }
    Guard { id }
}

/// Starts the signal thread once.
pub fn install() {
    INSTALL.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else { return };
        std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                remove_pending();
                std::process::exit(128 + signal);
            }
        });
    });
}

fn remove_pending() {
    let pending = match PENDING.lock() {
        Ok(pending) => pending.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    for (_, path) in pending.iter().rev() {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => {
                let _ = std::fs::remove_dir_all(path);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(path);
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_unregister_without_deleting() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x");
        std::fs::write(&file, "x").unwrap();
        let guard = register(&file);
        assert!(PENDING.lock().unwrap().iter().any(|(_, p)| p == &file));
        drop(guard);
        assert!(!PENDING.lock().unwrap().iter().any(|(_, p)| p == &file));
        assert!(file.exists());
    }
}
