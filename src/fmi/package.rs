//! The `.fmu` archive: a zip of `modelDescription.xml`, the binary and
//! `resources/scenario.toml`, byte for byte the same for the same inputs
//! (fixed entry order and time stamps).

use super::{xml, Model, Version, RESOURCE_SCENARIO};
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the FMU binary that `cargo build` makes (crate `mesobench-fmu`).
pub const LIBRARY_FILE: &str = "libmesobench_fmu.so";

/// Why an FMU could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The binary cannot be read.
    #[error("cannot read the FMU binary {}: {source}", path.display())]
    Library {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The archive cannot be written.
    #[error("cannot write {}: {message}", path.display())]
    Write {
        /// Path.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// The FMU binary next to the running executable (`target/<profile>/`), or
/// in its parent (a test binary in `target/<profile>/deps/`).
pub fn library_near(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    [dir.join(LIBRARY_FILE), dir.parent()?.join(LIBRARY_FILE)].into_iter().find(|p| p.is_file())
}

/// The archive's bytes.
pub fn fmu_bytes(model: &Model, version: Version, library: &[u8]) -> Result<Vec<u8>, String> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::DEFAULT)
        .unix_permissions(0o644);
    let binary = format!("{}/{}.so", version.binary_dir(), model.model_identifier());
    let description = xml::model_description(model, version);
    let resource = format!("resources/{RESOURCE_SCENARIO}");
    let entries: [(&str, &[u8]); 3] =
        [("modelDescription.xml", description.as_bytes()), (&binary, library), (&resource, model.text.as_bytes())];
    for (name, bytes) in entries {
        zip.start_file(name, options).map_err(|e| e.to_string())?;
        zip.write_all(bytes).map_err(|e| e.to_string())?;
    }
    Ok(zip.finish().map_err(|e| e.to_string())?.into_inner())
}

/// Write the FMU of `model` to `out`, with the binary at `library`.
pub fn write_fmu(model: &Model, version: Version, library: &Path, out: &Path) -> Result<(), PackageError> {
    let lib = std::fs::read(library).map_err(|source| PackageError::Library { path: library.to_owned(), source })?;
    let write = |message: String| PackageError::Write { path: out.to_owned(), message };
    let bytes = fmu_bytes(model, version, &lib).map_err(write)?;
    crate::files::write_atomic(out, &bytes).map_err(|e| write(e.to_string()))
}
