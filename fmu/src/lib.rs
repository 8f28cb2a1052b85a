//! The mesobench plant as a co-simulation FMU binary: the C functions of
//! FMI 2.0 ([`fmi2`]) and FMI 3.0 ([`fmi3`]) over [`mesobench::fmi::Instance`].
//!
//! Every function checks its pointers, runs inside `catch_unwind` (a panic
//! never crosses into the importer: it becomes a fatal status and a log
//! message) and reports a refused call through the importer's logger with
//! mesobench's message. Nothing is global: each instance owns its model,
//! plant and state, so any number of instances run in one process.

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use mesobench::fmi::{Instance, Model, RESOURCE_SCENARIO};

pub mod fmi2;
pub mod fmi3;

/// Status codes shared by FMI 2.0 and 3.0 (same numbers).
pub mod status {
    /// All well.
    pub const OK: i32 = 0;
    /// Done, with a warning logged.
    pub const WARNING: i32 = 1;
    /// Not done; the simulation may go on.
    pub const DISCARD: i32 = 2;
    /// Refused; the instance must be reset or freed.
    pub const ERROR: i32 = 3;
    /// The instance is unusable.
    pub const FATAL: i32 = 4;
}

/// How an instance talks back to the importer.
pub trait Log {
    /// Deliver `message` at `status` (one of [`status`]).
    fn log(&self, status: i32, category: &str, message: &str);
}

/// An instance with its logger.
pub struct Component<L: Log> {
    /// The simulation.
    pub inst: Instance,
    /// The importer's logger.
    pub log: L,
    /// Debug logging requested (info messages); errors and warnings are always logged.
    pub logging_on: bool,
    /// Start time given before initialisation.
    pub start_time: f64,
}

impl<L: Log> Component<L> {
    /// Report a refused call and give its status.
    pub fn refuse(&self, status: i32, message: &str) -> i32 {
        let category = if status == status::WARNING { "logStatusWarning" } else { "logStatusError" };
        self.log.log(status, category, message);
        status
    }

    /// Log information when debug logging is on.
    pub fn info(&self, message: &str) {
        if self.logging_on {
            self.log.log(status::OK, "logEvents", message);
        }
    }
}

/// Run `f` on the component behind `c`, turning a null pointer, an error
/// and a panic into a status (the panic's message goes to the logger).
///
/// # Safety
/// `c` is null or a pointer this library returned from instantiate and has not freed.
pub unsafe fn with<L: Log>(
    c: *mut Component<L>,
    what: &str,
    f: impl FnOnce(&mut Component<L>) -> Result<i32, String>,
) -> i32 {
    if c.is_null() {
        return status::ERROR;
    }
    let comp = &mut *c;
    match catch_unwind(AssertUnwindSafe(|| f(comp))) {
        Ok(Ok(s)) => s,
        Ok(Err(message)) => comp.refuse(status::ERROR, &format!("{what}: {message}")),
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            comp.refuse(status::FATAL, &format!("{what}: internal error in mesobench (a bug): {text}"))
        }
    }
}

/// A C string as UTF-8 (None for null or invalid).
///
/// # Safety
/// `s` is null or points to a NUL-terminated string.
pub unsafe fn text<'a>(s: *const c_char) -> Option<&'a str> {
    if s.is_null() {
        None
    } else {
        CStr::from_ptr(s).to_str().ok()
    }
}

/// The folder of an FMI 2 resource location (`file:///path`, `file:/path`,
/// percent-encoded) or an FMI 3 resource path (a plain path).
pub fn resource_dir(location: &str) -> Result<PathBuf, String> {
    let path = if let Some(rest) = location.strip_prefix("file://") {
        // file://host/path: only the local host.
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        if !rest.starts_with('/') {
            return Err(format!("the resource location {location:?} names another host"));
        }
        percent_decode(rest)?
    } else if let Some(rest) = location.strip_prefix("file:") {
        percent_decode(rest)?
    } else {
        location.to_string()
    };
    Ok(PathBuf::from(path))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| format!("a bad escape in the resource location {s:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("a bad escape in the resource location {s:?}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("the resource location {s:?} is not UTF-8"))
}

/// The model in an FMU's resources, checked against the token its model description gives.
pub fn load_model(resources: &Path, token: Option<&str>) -> Result<Model, String> {
    let file = resources.join(RESOURCE_SCENARIO);
    let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let model = Model::new(&text, resources.to_path_buf()).map_err(|e| e.to_string())?;
    if let Some(t) = token {
        if t != model.token {
            return Err(format!(
                "the model description's token {t} does not match this binary's {} (the FMU was assembled from different builds)",
                model.token
            ));
        }
    }
    Ok(model)
}

/// `n` value references and values as slices (empty for n = 0, whatever the pointers).
///
/// # Safety
/// Non-null pointers point to at least `n` elements.
pub unsafe fn slices<'a, T>(vr: *const u32, n: usize, values: *mut T) -> Result<(&'a [u32], &'a mut [T]), String> {
    if n == 0 {
        return Ok((&[], &mut []));
    }
    if vr.is_null() || values.is_null() {
        return Err("a null array".into());
    }
    Ok((std::slice::from_raw_parts(vr, n), std::slice::from_raw_parts_mut(values, n)))
}
