//! The FMI 2.0 co-simulation functions (fmi2Functions.h).
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int, c_uint, c_void, CString};

use crate::{load_model, resource_dir, slices, status, text, with, Component, Log};
use mesobench::fmi::{Instance, State, Value};

/// fmi2Component.
pub type Fmi2Component = *mut Component<Logger2>;
/// fmi2Status.
pub type Fmi2Status = c_int;
/// fmi2Boolean.
pub type Fmi2Boolean = c_int;
/// The logger (C-variadic: the message is a printf format).
pub type LoggerFn = unsafe extern "C" fn(*mut c_void, *const c_char, c_int, *const c_char, *const c_char, ...);

/// fmi2CallbackFunctions.
#[repr(C)]
pub struct CallbackFunctions {
    /// Logger.
    pub logger: Option<LoggerFn>,
    /// Allocator (unused: canNotUseMemoryManagementFunctions).
    pub allocate_memory: Option<unsafe extern "C" fn(usize, usize) -> *mut c_void>,
    /// Deallocator (unused).
    pub free_memory: Option<unsafe extern "C" fn(*mut c_void)>,
    /// Asynchronous step callback (unused).
    pub step_finished: Option<unsafe extern "C" fn(*mut c_void, c_int)>,
    /// The importer's environment pointer.
    pub component_environment: *mut c_void,
}

/// The importer's logger and environment.
pub struct Logger2 {
    logger: Option<LoggerFn>,
    env: *mut c_void,
    name: CString,
}

impl Log for Logger2 {
    fn log(&self, status: i32, category: &str, message: &str) {
        if let Some(logger) = self.logger {
            // The message is a format string: a literal % is written %%.
            let message = CString::new(message.replace('%', "%%").replace('\0', " ")).unwrap_or_default();
            let category = CString::new(category).unwrap_or_default();
            unsafe { logger(self.env, self.name.as_ptr(), status, category.as_ptr(), message.as_ptr()) };
        }
    }
}

#[no_mangle]
pub extern "C" fn fmi2GetTypesPlatform() -> *const c_char {
    c"default".as_ptr()
}

#[no_mangle]
pub extern "C" fn fmi2GetVersion() -> *const c_char {
    c"2.0".as_ptr()
}

#[no_mangle]
pub unsafe extern "C" fn fmi2Instantiate(
    instance_name: *const c_char,
    fmu_type: c_int,
    guid: *const c_char,
    resource_location: *const c_char,
    functions: *const CallbackFunctions,
    _visible: Fmi2Boolean,
    logging_on: Fmi2Boolean,
) -> Fmi2Component {
    let name = text(instance_name).unwrap_or("").to_string();
    let (logger, env) = if functions.is_null() {
        (None, std::ptr::null_mut())
    } else {
        ((*functions).logger, (*functions).component_environment)
    };
    let log = Logger2 { logger, env, name: CString::new(name.replace('\0', " ")).unwrap_or_default() };
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<Instance, String> {
        if fmu_type != 1 {
            return Err("this FMU is for co-simulation only (fmuType must be fmi2CoSimulation)".into());
        }
        let location = text(resource_location).ok_or("no resource location given")?;
        let model = load_model(&resource_dir(location)?, text(guid))?;
        Ok(Instance::new(model))
    }));
    match made {
        Ok(Ok(inst)) => Box::into_raw(Box::new(Component { inst, log, logging_on: logging_on != 0, start_time: 0.0 })),
        Ok(Err(message)) => {
            log.log(status::ERROR, "logStatusError", &format!("fmi2Instantiate: {message}"));
            std::ptr::null_mut()
        }
        Err(_) => {
            log.log(status::FATAL, "logStatusError", "fmi2Instantiate: internal error in mesobench (a bug)");
            std::ptr::null_mut()
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn fmi2FreeInstance(c: Fmi2Component) {
    if !c.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(Box::from_raw(c))));
    }
}

#[no_mangle]
pub unsafe extern "C" fn fmi2SetDebugLogging(
    c: Fmi2Component,
    logging_on: Fmi2Boolean,
    _n: usize,
    _categories: *const *const c_char,
) -> Fmi2Status {
    with(c, "fmi2SetDebugLogging", |comp| {
        comp.logging_on = logging_on != 0;
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2SetupExperiment(
    c: Fmi2Component,
    _tolerance_defined: Fmi2Boolean,
    _tolerance: f64,
    start_time: f64,
    _stop_time_defined: Fmi2Boolean,
    _stop_time: f64,
) -> Fmi2Status {
    with(c, "fmi2SetupExperiment", |comp| {
        comp.start_time = start_time;
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2EnterInitializationMode(c: Fmi2Component) -> Fmi2Status {
    with(c, "fmi2EnterInitializationMode", |comp| {
        let t = comp.start_time;
        comp.inst.enter_initialization(t)?;
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2ExitInitializationMode(c: Fmi2Component) -> Fmi2Status {
    with(c, "fmi2ExitInitializationMode", |comp| {
        comp.inst.exit_initialization()?;
        comp.info("initialised: the plant is at rest");
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2Terminate(c: Fmi2Component) -> Fmi2Status {
    with(c, "fmi2Terminate", |comp| {
        comp.inst.terminate();
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2Reset(c: Fmi2Component) -> Fmi2Status {
    with(c, "fmi2Reset", |comp| {
        comp.inst.reset();
        comp.start_time = 0.0;
        comp.info("reset: every parameter at its start value");
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2GetReal(c: Fmi2Component, vr: *const c_uint, n: usize, values: *mut f64) -> Fmi2Status {
    with(c, "fmi2GetReal", |comp| {
        let (vr, values) = slices(vr, n, values)?;
        for (r, x) in vr.iter().zip(values) {
            match comp.inst.get(*r)? {
                Value::Real(v) => *x = v,
                _ => return Err(format!("value reference {r} is not a Real")),
            }
        }
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2GetInteger(
    c: Fmi2Component,
    vr: *const c_uint,
    n: usize,
    values: *mut c_int,
) -> Fmi2Status {
    with(c, "fmi2GetInteger", |comp| {
        let (vr, values) = slices(vr, n, values)?;
        for (r, x) in vr.iter().zip(values) {
            *x = match comp.inst.get(*r)? {
                Value::Integer(v) => v as c_int,
                Value::Enumeration(i) => i as c_int + 1,
                _ => return Err(format!("value reference {r} is not an Integer or Enumeration")),
            };
        }
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2GetBoolean(
    c: Fmi2Component,
    vr: *const c_uint,
    n: usize,
    values: *mut Fmi2Boolean,
) -> Fmi2Status {
    with(c, "fmi2GetBoolean", |comp| {
        let (vr, values) = slices(vr, n, values)?;
        for (r, x) in vr.iter().zip(values) {
            match comp.inst.get(*r)? {
                Value::Boolean(b) => *x = b as Fmi2Boolean,
                _ => return Err(format!("value reference {r} is not a Boolean")),
            }
        }
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2GetString(
    c: Fmi2Component,
    _vr: *const c_uint,
    n: usize,
    _values: *mut *const c_char,
) -> Fmi2Status {
    with(c, "fmi2GetString", |_| if n == 0 { Ok(status::OK) } else { Err("this FMU has no String variables".into()) })
}

/// Set each value through `convert` (the variable's type decides the FMI value).
unsafe fn set_all<T: Copy>(
    c: Fmi2Component,
    what: &str,
    vr: *const c_uint,
    n: usize,
    values: *const T,
    convert: impl Fn(&Instance, u32, T) -> Result<Value, String>,
) -> Fmi2Status {
    with(c, what, |comp| {
        let (vr, values) = slices(vr, n, values as *mut T)?;
        for (r, x) in vr.iter().zip(values.iter()) {
            let v = convert(&comp.inst, *r, *x)?;
            comp.inst.set(*r, v)?;
        }
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2SetReal(c: Fmi2Component, vr: *const c_uint, n: usize, values: *const f64) -> Fmi2Status {
    set_all(c, "fmi2SetReal", vr, n, values, |_, _, x| Ok(Value::Real(x)))
}

#[no_mangle]
pub unsafe extern "C" fn fmi2SetInteger(
    c: Fmi2Component,
    vr: *const c_uint,
    n: usize,
    values: *const c_int,
) -> Fmi2Status {
    set_all(c, "fmi2SetInteger", vr, n, values, |inst, r, x| match inst.model().variable(r).map(|v| v.start) {
        Some(Value::Enumeration(_)) => Ok(Value::Enumeration(if x < 1 { usize::MAX } else { x as usize - 1 })),
        _ => Ok(Value::Integer(x as i64)),
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2SetBoolean(
    c: Fmi2Component,
    vr: *const c_uint,
    n: usize,
    values: *const Fmi2Boolean,
) -> Fmi2Status {
    set_all(c, "fmi2SetBoolean", vr, n, values, |_, _, x| Ok(Value::Boolean(x != 0)))
}

#[no_mangle]
pub unsafe extern "C" fn fmi2SetString(
    c: Fmi2Component,
    _vr: *const c_uint,
    n: usize,
    _values: *const *const c_char,
) -> Fmi2Status {
    with(c, "fmi2SetString", |_| if n == 0 { Ok(status::OK) } else { Err("this FMU has no String variables".into()) })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2GetFMUstate(c: Fmi2Component, state: *mut *mut State) -> Fmi2Status {
    with(c, "fmi2GetFMUstate", |comp| {
        if state.is_null() {
            return Err("a null state pointer".into());
        }
        let now = comp.inst.get_state();
        if (*state).is_null() {
            *state = Box::into_raw(Box::new(now));
        } else {
            **state = now;
        }
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2SetFMUstate(c: Fmi2Component, state: *mut State) -> Fmi2Status {
    with(c, "fmi2SetFMUstate", |comp| {
        if state.is_null() {
            return Err("a null state".into());
        }
        comp.inst.set_state(&*state)?;
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2FreeFMUstate(c: Fmi2Component, state: *mut *mut State) -> Fmi2Status {
    with(c, "fmi2FreeFMUstate", |_| {
        if !state.is_null() && !(*state).is_null() {
            drop(Box::from_raw(*state));
            *state = std::ptr::null_mut();
        }
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2SerializedFMUstateSize(
    c: Fmi2Component,
    state: *mut State,
    size: *mut usize,
) -> Fmi2Status {
    with(c, "fmi2SerializedFMUstateSize", |_| {
        if state.is_null() || size.is_null() {
            return Err("a null pointer".into());
        }
        *size = (*state).to_bytes().len();
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2SerializeFMUstate(
    c: Fmi2Component,
    state: *mut State,
    bytes: *mut c_char,
    size: usize,
) -> Fmi2Status {
    with(c, "fmi2SerializeFMUstate", |_| {
        if state.is_null() || bytes.is_null() {
            return Err("a null pointer".into());
        }
        let data = (*state).to_bytes();
        if data.len() != size {
            return Err(format!("the buffer holds {size} bytes; the state needs {}", data.len()));
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), bytes as *mut u8, size);
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2DeSerializeFMUstate(
    c: Fmi2Component,
    bytes: *const c_char,
    size: usize,
    state: *mut *mut State,
) -> Fmi2Status {
    with(c, "fmi2DeSerializeFMUstate", |_| {
        if bytes.is_null() || state.is_null() {
            return Err("a null pointer".into());
        }
        let st = State::from_bytes(std::slice::from_raw_parts(bytes as *const u8, size))?;
        if (*state).is_null() {
            *state = Box::into_raw(Box::new(st));
        } else {
            **state = st;
        }
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2GetDirectionalDerivative(
    c: Fmi2Component,
    _unknown: *const c_uint,
    _n_unknown: usize,
    _known: *const c_uint,
    _n_known: usize,
    _dv_known: *const f64,
    _dv_unknown: *mut f64,
) -> Fmi2Status {
    with(c, "fmi2GetDirectionalDerivative", |_| Err("directional derivatives are not provided".into()))
}

#[no_mangle]
pub unsafe extern "C" fn fmi2SetRealInputDerivatives(
    c: Fmi2Component,
    _vr: *const c_uint,
    _n: usize,
    _order: *const c_int,
    _values: *const f64,
) -> Fmi2Status {
    with(c, "fmi2SetRealInputDerivatives", |_| Err("inputs are held over a step (canInterpolateInputs = false)".into()))
}

#[no_mangle]
pub unsafe extern "C" fn fmi2GetRealOutputDerivatives(
    c: Fmi2Component,
    _vr: *const c_uint,
    _n: usize,
    _order: *const c_int,
    _values: *mut f64,
) -> Fmi2Status {
    with(c, "fmi2GetRealOutputDerivatives", |_| Err("output derivatives are not provided".into()))
}

#[no_mangle]
pub unsafe extern "C" fn fmi2DoStep(
    c: Fmi2Component,
    current: f64,
    step: f64,
    _no_set_prior: Fmi2Boolean,
) -> Fmi2Status {
    with(c, "fmi2DoStep", |comp| {
        comp.inst.do_step(current, step)?;
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2CancelStep(c: Fmi2Component) -> Fmi2Status {
    with(c, "fmi2CancelStep", |_| Err("steps are synchronous: there is nothing to cancel".into()))
}

#[no_mangle]
pub unsafe extern "C" fn fmi2GetStatus(c: Fmi2Component, _kind: c_int, _value: *mut c_int) -> Fmi2Status {
    with(c, "fmi2GetStatus", |_| Ok(status::DISCARD))
}

#[no_mangle]
pub unsafe extern "C" fn fmi2GetRealStatus(c: Fmi2Component, kind: c_int, value: *mut f64) -> Fmi2Status {
    with(c, "fmi2GetRealStatus", |comp| {
        // fmi2LastSuccessfulTime.
        if kind == 2 && !value.is_null() {
            if let Ok(Value::Real(t)) = comp.inst.get(mesobench::fmi::VR_TIME) {
                *value = t;
                return Ok(status::OK);
            }
        }
        Ok(status::DISCARD)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi2GetIntegerStatus(c: Fmi2Component, _kind: c_int, _value: *mut c_int) -> Fmi2Status {
    with(c, "fmi2GetIntegerStatus", |_| Ok(status::DISCARD))
}

#[no_mangle]
pub unsafe extern "C" fn fmi2GetBooleanStatus(c: Fmi2Component, _kind: c_int, _value: *mut Fmi2Boolean) -> Fmi2Status {
    with(c, "fmi2GetBooleanStatus", |_| Ok(status::DISCARD))
}

#[no_mangle]
pub unsafe extern "C" fn fmi2GetStringStatus(c: Fmi2Component, _kind: c_int, _value: *mut *const c_char) -> Fmi2Status {
    with(c, "fmi2GetStringStatus", |_| Ok(status::DISCARD))
}
