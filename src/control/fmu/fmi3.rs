//! The FMI 3.0 co-simulation API of a controller FMU (signatures of
//! `fmi3FunctionTypes.h` and `fmi3PlatformTypes.h`, FMI 3.0.2). The
//! instance is made without event mode, early return or intermediate
//! update; `fmi3Boolean` is C `bool` (Rust `bool`), `fmi3Status` a C enum
//! (`c_int`).

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::Path;

use super::{missing, Api, Core, Kind, Log, Needs, Port};

type Instance = *mut c_void;
type ValueReference = u32;
/// `fmi3LogMessageCallback` (not variadic, unlike FMI 2.0's logger).
type LogMessage = unsafe extern "C" fn(*mut c_void, c_int, *const c_char, *const c_char);
type Instantiate = unsafe extern "C" fn(
    *const c_char,                  // instanceName
    *const c_char,                  // instantiationToken
    *const c_char,                  // resourcePath
    bool,                           // visible
    bool,                           // loggingOn
    bool,                           // eventModeUsed
    bool,                           // earlyReturnAllowed
    *const ValueReference,          // requiredIntermediateVariables
    usize,                          // nRequiredIntermediateVariables
    *mut c_void,                    // instanceEnvironment
    Option<LogMessage>,             // logMessage
    Option<unsafe extern "C" fn()>, // intermediateUpdate (always NULL here)
) -> Instance;
type Free = unsafe extern "C" fn(Instance);
type EnterInitialization = unsafe extern "C" fn(Instance, bool, f64, f64, bool, f64) -> c_int;
type Mode = unsafe extern "C" fn(Instance) -> c_int;
type GetFloat64 = unsafe extern "C" fn(Instance, *const ValueReference, usize, *mut f64, usize) -> c_int;
type SetFloat64 = unsafe extern "C" fn(Instance, *const ValueReference, usize, *const f64, usize) -> c_int;
type GetInt32 = unsafe extern "C" fn(Instance, *const ValueReference, usize, *mut i32, usize) -> c_int;
type SetInt32 = unsafe extern "C" fn(Instance, *const ValueReference, usize, *const i32, usize) -> c_int;
type DoStep = unsafe extern "C" fn(
    Instance,
    f64,       // currentCommunicationPoint
    f64,       // communicationStepSize
    bool,      // noSetFMUStatePriorToCurrentPoint
    *mut bool, // eventHandlingNeeded
    *mut bool, // terminateSimulation
    *mut bool, // earlyReturn
    *mut f64,  // lastSuccessfulTime
) -> c_int;

/// The FMU's log: its messages are kept for the error that follows.
unsafe extern "C" fn keep_message(env: *mut c_void, _status: c_int, _category: *const c_char, message: *const c_char) {
    if let Some(log) = Log::from_env(env) {
        log.keep(message);
    }
}

/// An FMI 3.0 controller FMU's functions and its instance.
pub(super) struct Fmi3 {
    instantiate: Instantiate,
    free_instance: Free,
    enter: EnterInitialization,
    exit: Mode,
    terminate: Mode,
    do_step: DoStep,
    set_float64: Option<SetFloat64>,
    set_int32: Option<SetInt32>,
    get_float64: Option<GetFloat64>,
    get_int32: Option<GetInt32>,
    token: CString,
    resources: CString,
    instance: Instance,
    // Last: dropped after the instance is freed (in `drop`).
    core: Core,
}

impl Fmi3 {
    /// The functions of the binary (every one the firmware calls is there before the first tick).
    pub(super) fn new(core: Core, needs: Needs, token: &str, resources: &Path) -> Result<Fmi3, String> {
        // An absolute path with a trailing separator.
        let resources =
            CString::new(format!("{}/", resources.display())).map_err(|_| "a path with a NUL byte".to_string())?;
        let token = CString::new(token).map_err(|_| "an instantiationToken with a NUL byte".to_string())?;
        // SAFETY: each type is the FMI 3.0 signature of the function named.
        unsafe {
            Ok(Fmi3 {
                instantiate: core.symbol("fmi3InstantiateCoSimulation")?,
                free_instance: core.symbol("fmi3FreeInstance")?,
                enter: core.symbol("fmi3EnterInitializationMode")?,
                exit: core.symbol("fmi3ExitInitializationMode")?,
                terminate: core.symbol("fmi3Terminate")?,
                do_step: core.symbol("fmi3DoStep")?,
                set_float64: core.needed("fmi3SetFloat64", needs.set_real)?,
                set_int32: core.needed("fmi3SetInt32", needs.set_integer)?,
                get_float64: core.needed("fmi3GetFloat64", needs.get_real)?,
                get_int32: core.needed("fmi3GetInt32", needs.get_integer)?,
                token,
                resources,
                instance: std::ptr::null_mut(),
                core,
            })
        }
    }

    fn live_instance(&self) -> Result<Instance, String> {
        if self.instance.is_null() {
            return Err("no instance (the session was not started)".into());
        }
        Ok(self.instance)
    }
}

impl Api for Fmi3 {
    fn start(&mut self) -> Result<(), String> {
        self.end()?;
        // SAFETY: FMI 3.0 calls with valid strings and a log that outlives the instance.
        unsafe {
            self.instance = (self.instantiate)(
                c"firmware".as_ptr(),
                self.token.as_ptr(),
                self.resources.as_ptr(),
                false,
                false,
                false,
                false,
                std::ptr::null(),
                0,
                Log::env(&self.core.log),
                Some(keep_message),
                None,
            );
            if self.instance.is_null() {
                return Err(format!(
                    "fmi3InstantiateCoSimulation returned no instance for instantiationToken {:?}{}",
                    self.token.to_string_lossy(),
                    self.core.log.drain()
                ));
            }
            self.core.check("fmi3EnterInitializationMode", (self.enter)(self.instance, false, 0.0, 0.0, false, 0.0))?;
            self.core.check("fmi3ExitInitializationMode", (self.exit)(self.instance))?;
        }
        self.core.live = true;
        Ok(())
    }

    fn end(&mut self) -> Result<(), String> {
        if self.instance.is_null() {
            return Ok(());
        }
        let live = std::mem::replace(&mut self.core.live, false);
        // SAFETY: an instance this FMU made, freed once.
        let terminated =
            if live { self.core.check("fmi3Terminate", unsafe { (self.terminate)(self.instance) }) } else { Ok(()) };
        unsafe { (self.free_instance)(self.instance) };
        self.instance = std::ptr::null_mut();
        terminated
    }

    fn set(&mut self, port: Port, x: f64) -> Result<(), String> {
        let c = self.live_instance()?;
        // SAFETY: FMI 3.0 calls on a live instance with one value reference and one value.
        unsafe {
            match port.kind {
                Kind::Real => {
                    let f = self.set_float64.ok_or_else(|| missing("fmi3SetFloat64"))?;
                    self.core.check("fmi3SetFloat64", f(c, &port.vr, 1, &x, 1))
                }
                Kind::Integer => {
                    let f = self.set_int32.ok_or_else(|| missing("fmi3SetInt32"))?;
                    self.core.check("fmi3SetInt32", f(c, &port.vr, 1, &(x as i32), 1))
                }
            }
        }
    }

    fn get(&mut self, port: Port) -> Result<f64, String> {
        let c = self.live_instance()?;
        // SAFETY: as in `set`.
        unsafe {
            match port.kind {
                Kind::Real => {
                    let f = self.get_float64.ok_or_else(|| missing("fmi3GetFloat64"))?;
                    let mut x = 0.0;
                    self.core.check("fmi3GetFloat64", f(c, &port.vr, 1, &mut x, 1))?;
                    Ok(x)
                }
                Kind::Integer => {
                    let f = self.get_int32.ok_or_else(|| missing("fmi3GetInt32"))?;
                    let mut k = 0i32;
                    self.core.check("fmi3GetInt32", f(c, &port.vr, 1, &mut k, 1))?;
                    Ok(k as f64)
                }
            }
        }
    }

    fn do_step(&mut self, t: f64, h: f64) -> Result<(), String> {
        let c = self.live_instance()?;
        let (mut event, mut terminate, mut early, mut last) = (false, false, false, t + h);
        // SAFETY: an FMI 3.0 call on a live instance; the out-arguments live across the call.
        let status = unsafe { (self.do_step)(c, t, h, true, &mut event, &mut terminate, &mut early, &mut last) };
        self.core.check("fmi3DoStep", status)?;
        if terminate {
            return Err(format!(
                "fmi3DoStep set terminateSimulation: the controller FMU ended the simulation{}",
                self.core.log.drain()
            ));
        }
        if early {
            return Err(format!(
                "fmi3DoStep returned early (lastSuccessfulTime = {last} s, the step ends at {} s), though the instance was made with earlyReturnAllowed = false{}",
                t + h,
                self.core.log.drain()
            ));
        }
        // eventHandlingNeeded is not looked at: the instance was made with eventModeUsed = false.
        let _ = event;
        Ok(())
    }
}

impl Drop for Fmi3 {
    fn drop(&mut self) {
        let _ = self.end();
    }
}
