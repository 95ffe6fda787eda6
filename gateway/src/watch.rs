//! Watching files (API keys, TLS certificate and key) for changes.
//!
//! As the publisher does for its inputs, the *directories* holding the
//! files are watched, since renewals and editors replace files by renaming
//! new ones over them; events are debounced so that a file being written
//! is read once it has been quiet for a moment.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mimi_publisher::serve::watch::normalize;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use tracing::warn;

/// How long files must be quiet before they are read again.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// A running watch; dropping it stops watching.
pub struct FileWatcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileWatcher")
    }
}

/// Calls `on_change` (on the watcher's thread) whenever one of `files`
/// changed and has been quiet for [`DEBOUNCE`].
pub fn watch(
    files: &[&Path],
    on_change: impl Fn() + Send + 'static,
) -> Result<FileWatcher, notify::Error> {
    let files: Vec<PathBuf> = files.iter().map(|f| normalize(f)).collect();
    let dirs: BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    let handler = move |result: DebounceEventResult| {
        let hit = match result {
            Ok(events) => events.iter().any(|event| {
                if let EventKind::Access(kind) = event.kind {
                    if kind != AccessKind::Close(AccessMode::Write) {
                        return false;
                    }
                }
                event.need_rescan() || event.paths.iter().any(|p| files.contains(&normalize(p)))
            }),
            Err(errors) => {
                for e in errors {
                    warn!("file watch error: {e}");
                }
                true
            }
        };
        if hit {
            on_change();
        }
    };
    let mut debouncer = new_debouncer(DEBOUNCE, None, handler)?;
    for dir in &dirs {
        debouncer.watch(dir, RecursiveMode::NonRecursive)?;
    }
    Ok(FileWatcher {
        _debouncer: debouncer,
    })
}
