//! The FMI 2.0 co-simulation API of a controller FMU (signatures of
//! `fmi2FunctionTypes.h`, FMI 2.0.4).

use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::path::Path;

use super::{missing, Api, Core, Kind, Log, Needs, Port};

type Component = *mut c_void;
type Instantiate = unsafe extern "C" fn(
    *const c_char,
    c_int,
    *const c_char,
    *const c_char,
    *const Callbacks,
    c_int,
    c_int,
) -> Component;
type Free = unsafe extern "C" fn(Component);
type Setup = unsafe extern "C" fn(Component, c_int, f64, f64, c_int, f64) -> c_int;
type Mode = unsafe extern "C" fn(Component) -> c_int;
type GetReal = unsafe extern "C" fn(Component, *const c_uint, usize, *mut f64) -> c_int;
type SetReal = unsafe extern "C" fn(Component, *const c_uint, usize, *const f64) -> c_int;
type GetInteger = unsafe extern "C" fn(Component, *const c_uint, usize, *mut c_int) -> c_int;
type SetInteger = unsafe extern "C" fn(Component, *const c_uint, usize, *const c_int) -> c_int;
type DoStep = unsafe extern "C" fn(Component, f64, f64, c_int) -> c_int;
type Logger = unsafe extern "C" fn(*mut c_void, *const c_char, c_int, *const c_char, *const c_char, ...);

/// `fmi2CallbackFunctions`.
#[repr(C)]
struct Callbacks {
    logger: Option<Logger>,
    allocate: Option<unsafe extern "C" fn(usize, usize) -> *mut c_void>,
    free: Option<unsafe extern "C" fn(*mut c_void)>,
    step_finished: Option<unsafe extern "C" fn(*mut c_void, c_int)>,
    env: *mut c_void,
}

/// The FMU's log: its messages are kept for the error that follows.
unsafe extern "C" fn keep_message(
    env: *mut c_void,
    _name: *const c_char,
    _status: c_int,
    _category: *const c_char,
    message: *const c_char,
) {
    if let Some(log) = Log::from_env(env) {
        log.keep(message);
    }
}

unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    libc::calloc(n, size)
}

unsafe extern "C" fn free(p: *mut c_void) {
    libc::free(p)
}

/// An FMI 2.0 controller FMU's functions and its instance.
pub(super) struct Fmi2 {
    instantiate: Instantiate,
    free_instance: Free,
    setup: Setup,
    enter: Mode,
    exit: Mode,
    terminate: Mode,
    do_step: DoStep,
    set_real: Option<SetReal>,
    set_integer: Option<SetInteger>,
    get_real: Option<GetReal>,
    get_integer: Option<GetInteger>,
    guid: CString,
    resources: CString,
    component: Component,
    callbacks: Box<Callbacks>,
    // Last: dropped after the instance is freed (in `drop`).
    core: Core,
}

impl Fmi2 {
    /// The functions of the binary (every one the firmware calls is there before the first tick).
    pub(super) fn new(core: Core, needs: Needs, guid: &str, resources: &Path) -> Result<Fmi2, String> {
        let resources = CString::new(format!("file://{}", resources.display()))
            .map_err(|_| "a path with a NUL byte".to_string())?;
        let guid = CString::new(guid).map_err(|_| "a guid with a NUL byte".to_string())?;
        // SAFETY: the FMI 2.0 logger is C-variadic; a function with the fixed arguments reads them
        // the same way on the C calling convention and ignores the rest.
        let logger: Logger = unsafe { std::mem::transmute(keep_message as unsafe extern "C" fn(_, _, _, _, _)) };
        let callbacks = Box::new(Callbacks {
            logger: Some(logger),
            allocate: Some(calloc),
            free: Some(free),
            step_finished: None,
            env: Log::env(&core.log),
        });
        // SAFETY: each type is the FMI 2.0 signature of the function named.
        unsafe {
            Ok(Fmi2 {
                instantiate: core.symbol("fmi2Instantiate")?,
                free_instance: core.symbol("fmi2FreeInstance")?,
                setup: core.symbol("fmi2SetupExperiment")?,
                enter: core.symbol("fmi2EnterInitializationMode")?,
                exit: core.symbol("fmi2ExitInitializationMode")?,
                terminate: core.symbol("fmi2Terminate")?,
                do_step: core.symbol("fmi2DoStep")?,
                set_real: core.needed("fmi2SetReal", needs.set_real)?,
                set_integer: core.needed("fmi2SetInteger", needs.set_integer)?,
                get_real: core.needed("fmi2GetReal", needs.get_real)?,
                get_integer: core.needed("fmi2GetInteger", needs.get_integer)?,
                guid,
                resources,
                component: std::ptr::null_mut(),
                callbacks,
                core,
            })
        }
    }
}

impl Fmi2 {
    fn instance(&self) -> Result<Component, String> {
        if self.component.is_null() {
            return Err("no instance (the session was not started)".into());
        }
        Ok(self.component)
    }
}

impl Api for Fmi2 {
    fn start(&mut self) -> Result<(), String> {
        self.end()?;
        // SAFETY: FMI 2.0 calls with valid strings and callbacks that outlive the instance.
        unsafe {
            self.component = (self.instantiate)(
                c"firmware".as_ptr(),
                1, // fmi2CoSimulation
                self.guid.as_ptr(),
                self.resources.as_ptr(),
                &*self.callbacks,
                0,
                0,
            );
            if self.component.is_null() {
                return Err(format!(
                    "fmi2Instantiate returned no instance for guid {:?}{}",
                    self.guid.to_string_lossy(),
                    self.core.log.drain()
                ));
            }
            self.core.check("fmi2SetupExperiment", (self.setup)(self.component, 0, 0.0, 0.0, 0, 0.0))?;
            self.core.check("fmi2EnterInitializationMode", (self.enter)(self.component))?;
            self.core.check("fmi2ExitInitializationMode", (self.exit)(self.component))?;
        }
        self.core.live = true;
        Ok(())
    }

    fn end(&mut self) -> Result<(), String> {
        if self.component.is_null() {
            return Ok(());
        }
        let live = std::mem::replace(&mut self.core.live, false);
        // SAFETY: a component this FMU instantiated, freed once.
        let terminated =
            if live { self.core.check("fmi2Terminate", unsafe { (self.terminate)(self.component) }) } else { Ok(()) };
        unsafe { (self.free_instance)(self.component) };
        self.component = std::ptr::null_mut();
        terminated
    }

    fn set(&mut self, port: Port, x: f64) -> Result<(), String> {
        let c = self.instance()?;
        // SAFETY: FMI 2.0 calls on a live component with one-element arrays.
        unsafe {
            match port.kind {
                Kind::Real => {
                    let f = self.set_real.ok_or_else(|| missing("fmi2SetReal"))?;
                    self.core.check("fmi2SetReal", f(c, &port.vr, 1, &x))
                }
                Kind::Integer => {
                    let f = self.set_integer.ok_or_else(|| missing("fmi2SetInteger"))?;
                    self.core.check("fmi2SetInteger", f(c, &port.vr, 1, &(x as c_int)))
                }
            }
        }
    }

    fn get(&mut self, port: Port) -> Result<f64, String> {
        let c = self.instance()?;
        // SAFETY: as in `set`.
        unsafe {
            match port.kind {
                Kind::Real => {
                    let f = self.get_real.ok_or_else(|| missing("fmi2GetReal"))?;
                    let mut x = 0.0;
                    self.core.check("fmi2GetReal", f(c, &port.vr, 1, &mut x))?;
                    Ok(x)
                }
                Kind::Integer => {
                    let f = self.get_integer.ok_or_else(|| missing("fmi2GetInteger"))?;
                    let mut k: c_int = 0;
                    self.core.check("fmi2GetInteger", f(c, &port.vr, 1, &mut k))?;
                    Ok(k as f64)
                }
            }
        }
    }

    fn do_step(&mut self, t: f64, h: f64) -> Result<(), String> {
        let c = self.instance()?;
        // SAFETY: an FMI 2.0 call on a live component.
        let status = unsafe { (self.do_step)(c, t, h, 1) };
        self.core.check("fmi2DoStep", status)
    }
}

impl Drop for Fmi2 {
    fn drop(&mut self) {
        let _ = self.end();
    }
}
