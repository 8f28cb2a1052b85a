//! C firmware plugins (`include/mesobench_firmware.h`), loaded with
//! libloading. Each [`Plugin`] owns its own context from `mb_fw_create`, so
//! parallel simulations never share firmware state (the dynamic loader
//! returns the same handle for the same path, so state in C globals *would*
//! be shared: the ABI keeps all state in the context). Libraries are loaded
//! once per process and kept, so a sweep pays for `dlopen` only once.
//!
//! This is the in-process mode (`firmware.plugin_isolation = "in_process"`);
//! by default a plugin runs in a host process of its own ([`super::host`]),
//! which uses this same loader there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use libloading::Library;

/// Libraries loaded so far, by path.
fn loaded(path: &Path) -> Result<Arc<Library>, String> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<Library>>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(|| Mutex::new(HashMap::new())).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(lib) = cache.get(path) {
        return Ok(lib.clone());
    }
    // SAFETY: loading runs the library's initialisers; a plugin is trusted
    // code chosen by the user, like firmware on a bench.
    let lib = Arc::new(
        unsafe { Library::new(path) }.map_err(|e| format!("cannot load the shared library: {}", error_chain(&e)))?,
    );
    cache.insert(path.to_path_buf(), lib.clone());
    Ok(lib)
}

use super::{Controller, FirmwareError, FwInput, FwOutput, ABI_VERSION};

type AbiFn = unsafe extern "C" fn() -> u32;
type CreateFn = unsafe extern "C" fn(*const f64, u32) -> *mut std::ffi::c_void;
type ResetFn = unsafe extern "C" fn(*mut std::ffi::c_void) -> i32;
type StepFn = unsafe extern "C" fn(*mut std::ffi::c_void, *const FwInput, *mut FwOutput) -> i32;
type DestroyFn = unsafe extern "C" fn(*mut std::ffi::c_void);

/// A loaded plugin with its own context.
pub struct Plugin {
    path: String,
    ctx: *mut std::ffi::c_void,
    reset: ResetFn,
    step: StepFn,
    destroy: DestroyFn,
    // Declared last: dropped after the context is destroyed.
    _lib: Arc<Library>,
}

// The context is owned by this value alone and only used through &mut self.
unsafe impl Send for Plugin {}

impl Plugin {
    /// Load the plugin at `path` and create a context with `params`.
    pub fn load(path: &Path, params: &[f64]) -> Result<Plugin, FirmwareError> {
        let shown = path.display().to_string();
        let fail = |message: String| FirmwareError::Load { path: shown.clone(), message };
        if !path.is_file() {
            return Err(fail("no such file (build the examples with `make -C examples/firmware`)".into()));
        }
        // An absolute path for the loader: a name without a slash would go to
        // the system library search instead of this file.
        let absolute = std::fs::canonicalize(path).map_err(|e| fail(format!("cannot resolve the path: {e}")))?;
        let lib = loaded(&absolute).map_err(fail)?;
        // SAFETY: each symbol is looked up with the signature the header declares.
        unsafe {
            let abi: AbiFn =
                *lib.get::<AbiFn>(b"mb_fw_abi_version\0").map_err(|_| fail(missing("mb_fw_abi_version")))?;
            let create: CreateFn =
                *lib.get::<CreateFn>(b"mb_fw_create\0").map_err(|_| fail(missing("mb_fw_create")))?;
            let reset: ResetFn = *lib.get::<ResetFn>(b"mb_fw_reset\0").map_err(|_| fail(missing("mb_fw_reset")))?;
            let step: StepFn = *lib.get::<StepFn>(b"mb_fw_step\0").map_err(|_| fail(missing("mb_fw_step")))?;
            let destroy: DestroyFn =
                *lib.get::<DestroyFn>(b"mb_fw_destroy\0").map_err(|_| fail(missing("mb_fw_destroy")))?;
            let version = abi();
            if version != ABI_VERSION {
                return Err(fail(format!("ABI version {version}, but this mesobench speaks version {ABI_VERSION}")));
            }
            let ctx = create(params.as_ptr(), params.len() as u32);
            if ctx.is_null() {
                return Err(fail(format!("mb_fw_create returned NULL for {} parameter(s) {:?}", params.len(), params)));
            }
            Ok(Plugin { path: shown, ctx, reset, step, destroy, _lib: lib.clone() })
        }
    }
}

fn missing(symbol: &str) -> String {
    format!("the symbol {symbol} is missing (see include/mesobench_firmware.h)")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Drop for Plugin {
    fn drop(&mut self) {
        // SAFETY: ctx came from this library's mb_fw_create and is freed once.
        unsafe { (self.destroy)(self.ctx) }
    }
}

impl Controller for Plugin {
    fn name(&self) -> String {
        format!("plugin {}", self.path)
    }
    fn reset(&mut self) -> Result<(), FirmwareError> {
        // SAFETY: ctx is live until drop.
        let rc = unsafe { (self.reset)(self.ctx) };
        check_reset(&self.name(), rc)
    }
    fn step(&mut self, input: &FwInput, out: &mut FwOutput) -> Result<(), FirmwareError> {
        // SAFETY: ctx is live; both pointers are valid for the call.
        let rc = unsafe { (self.step)(self.ctx, input, out) };
        check_step(&self.name(), input, rc)
    }
}

impl Plugin {
    /// Raw `mb_fw_reset` (for the host process, which reports the code).
    pub(crate) fn reset_raw(&mut self) -> i32 {
        // SAFETY: ctx is live until drop.
        unsafe { (self.reset)(self.ctx) }
    }
    /// Raw `mb_fw_step` (for the host process, which reports the code).
    pub(crate) fn step_raw(&mut self, input: *const FwInput, out: *mut FwOutput) -> i32 {
        // SAFETY: ctx is live; the host passes pointers into its shared region.
        unsafe { (self.step)(self.ctx, input, out) }
    }
}

/// The error for a non-zero `mb_fw_reset` code (the same in both isolation modes).
pub(crate) fn check_reset(name: &str, rc: i32) -> Result<(), FirmwareError> {
    if rc != 0 {
        return Err(FirmwareError::Step {
            name: name.to_string(),
            t_ms: 0.0,
            tick: 0,
            message: format!("mb_fw_reset returned {rc}"),
        });
    }
    Ok(())
}

/// The error for a non-zero `mb_fw_step` code (the same in both isolation modes).
pub(crate) fn check_step(name: &str, input: &FwInput, rc: i32) -> Result<(), FirmwareError> {
    if rc != 0 {
        return Err(FirmwareError::Step {
            name: name.to_string(),
            t_ms: input.t * 1e3,
            tick: input.tick,
            message: format!("mb_fw_step returned {rc}"),
        });
    }
    Ok(())
}
