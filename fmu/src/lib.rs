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

#[cfg(test)]
mod tests {
    //! The C functions called as C would call them (FMI 2.0).
    use super::fmi2::*;
    use std::ffi::{c_char, c_int, c_void, CStr, CString};

    /// A logger that appends to the `Vec<String>` behind the environment.
    unsafe extern "C" fn collect(
        env: *mut c_void,
        _name: *const c_char,
        _s: c_int,
        _cat: *const c_char,
        msg: *const c_char,
    ) {
        (*(env as *mut Vec<String>)).push(CStr::from_ptr(msg).to_string_lossy().into_owned());
    }

    fn resources() -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("mesobench-fmu-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = mesobench::scenario::Source::default_scenario();
        let text = mesobench::fmi::plant_scenario(&source, &[], "reference").unwrap();
        std::fs::write(dir.join(mesobench::fmi::RESOURCE_SCENARIO), text).unwrap();
        dir
    }

    fn instantiate(log: &mut Vec<String>, guid: Option<&str>) -> Fmi2Component {
        let dir = resources();
        let model =
            mesobench::fmi::Model::new(&std::fs::read_to_string(dir.join("scenario.toml")).unwrap(), dir.clone())
                .unwrap();
        let guid = CString::new(guid.unwrap_or(&model.token)).unwrap();
        let location = CString::new(format!("file://{}", dir.display())).unwrap();
        // The logger is C-variadic; a fixed-argument function receives the same fixed arguments.
        let logger: LoggerFn = unsafe { std::mem::transmute(collect as unsafe extern "C" fn(_, _, _, _, _)) };
        let callbacks = CallbackFunctions {
            logger: Some(logger),
            allocate_memory: None,
            free_memory: None,
            step_finished: None,
            component_environment: log as *mut Vec<String> as *mut c_void,
        };
        let c = unsafe { fmi2Instantiate(c"plant".as_ptr(), 1, guid.as_ptr(), location.as_ptr(), &callbacks, 0, 0) };
        // The instance has read its resources.
        std::fs::remove_dir_all(&dir).unwrap();
        c
    }

    fn delivered(c: Fmi2Component) -> f64 {
        let vr = [mesobench::fmi::VR_FIRST_OUTPUT];
        let mut x = [0.0];
        assert_eq!(unsafe { fmi2GetReal(c, vr.as_ptr(), 1, x.as_mut_ptr()) }, 0);
        x[0]
    }

    #[test]
    fn interleaved_instances_step_independently_and_a_wrong_guid_is_refused() {
        let mut log_a = Vec::new();
        let mut log_b = Vec::new();
        let a = instantiate(&mut log_a, None);
        let b = instantiate(&mut log_b, None);
        assert!(!a.is_null() && !b.is_null());
        unsafe {
            for c in [a, b] {
                assert_eq!(fmi2SetupExperiment(c, 0, 0.0, 0.0, 0, 0.0), 0);
                assert_eq!(fmi2EnterInitializationMode(c), 0);
                assert_eq!(fmi2ExitInitializationMode(c), 0);
            }
            let on = [1.0];
            let vr = [mesobench::fmi::VR_VALVE_COMMAND];
            assert_eq!(fmi2SetReal(a, vr.as_ptr(), 1, on.as_ptr()), 0);
            for k in 0..200 {
                assert_eq!(fmi2DoStep(a, k as f64 * 1e-4, 1e-4, 1), 0);
                assert_eq!(fmi2DoStep(b, k as f64 * 1e-4, 1e-4, 1), 0);
            }
            assert!(delivered(a) > 0.0);
            assert_eq!(delivered(b), 0.0);
            fmi2FreeInstance(a);
            fmi2FreeInstance(b);
        }
        let mut log = Vec::new();
        assert!(instantiate(&mut log, Some("{00000000-0000-0000-0000-000000000000}")).is_null());
        assert!(log[0].contains("does not match"), "{log:?}");
    }

    #[test]
    fn a_refused_value_is_an_error_status_with_the_message_in_the_log() {
        let mut log = Vec::new();
        let c = instantiate(&mut log, None);
        unsafe {
            let vr = [mesobench::fmi::VR_FIRST_PARAMETER];
            let bad = [1e9];
            assert_eq!(fmi2SetReal(c, vr.as_ptr(), 1, bad.as_ptr()), 3);
            assert!(
                log.last().unwrap().starts_with(
                    "fmi2SetReal: parameter solver.step_us = 1e9 is not allowed: a number from 0.1 to 200 µs"
                ),
                "{log:?}"
            );
            assert_eq!(fmi2DoStep(c, 0.0, 1e-4, 1), 3, "no step before initialisation");
            assert_eq!(fmi2GetReal(std::ptr::null_mut(), vr.as_ptr(), 1, bad.as_ptr() as *mut f64), 3);
            fmi2FreeInstance(c);
        }
    }
}
