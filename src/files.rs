//! Durable file writes shared by every layer that leaves a file behind:
//! reports, sweep checkpoints and merges, FMU packages.
//!
//! A file is written to a temporary sibling, synced, then renamed into
//! place, so a reader never sees half of it and an interrupted run leaves
//! the earlier file whole.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Write `bytes` to `path` atomically (temporary sibling, sync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Temporary sibling of `path` that keeps its extension (plotters picks the
/// image format from it).
pub fn tmp_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("out");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("tmp");
    path.with_file_name(format!(".{stem}.partial.{ext}"))
}

/// The pretty-printed JSON of `v`, ending in a newline.
pub fn json_bytes<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(v).expect("plain data serializes");
    s.push(b'\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_name_keeps_the_extension_and_hides_the_file() {
        assert_eq!(tmp_path(Path::new("out/trace.png")), Path::new("out/.trace.partial.png"));
        assert_eq!(tmp_path(Path::new("README")), Path::new(".README.partial.tmp"));
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("mesobench-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.json");
        write_atomic(&p, b"old").unwrap();
        write_atomic(&p, &json_bytes(&[1, 2])).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "[\n  1,\n  2\n]\n");
        assert!(!tmp_path(&p).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
