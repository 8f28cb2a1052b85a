//! The FMI 3.0 co-simulation functions (fmi3Functions.h). Model exchange
//! and scheduled execution are not provided (their instantiate functions
//! return null); clocks, binaries, strings and the other integer widths are
//! refused unless the call names no variable.
#![allow(non_snake_case, clippy::missing_safety_doc, clippy::too_many_arguments)]

use std::ffi::{c_char, c_void, CString};

use crate::{load_model, resource_dir, slices, status, text, with, Component, Log};
use mesobench::fmi::{Instance, State, Value};

/// fmi3Instance.
pub type Fmi3Instance = *mut Component<Logger3>;
/// fmi3Status.
pub type Fmi3Status = i32;
/// fmi3LogMessageCallback.
pub type LogFn = unsafe extern "C" fn(*mut c_void, i32, *const c_char, *const c_char);

/// The importer's logger and environment.
pub struct Logger3 {
    logger: Option<LogFn>,
    env: *mut c_void,
}

impl Log for Logger3 {
    fn log(&self, status: i32, category: &str, message: &str) {
        if let Some(logger) = self.logger {
            let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
            let category = CString::new(category).unwrap_or_default();
            unsafe { logger(self.env, status, category.as_ptr(), message.as_ptr()) };
        }
    }
}

#[no_mangle]
pub extern "C" fn fmi3GetVersion() -> *const c_char {
    c"3.0".as_ptr()
}

#[no_mangle]
pub unsafe extern "C" fn fmi3InstantiateCoSimulation(
    _instance_name: *const c_char,
    token: *const c_char,
    resource_path: *const c_char,
    _visible: bool,
    logging_on: bool,
    event_mode_used: bool,
    _early_return_allowed: bool,
    _required_intermediate: *const u32,
    _n_required_intermediate: usize,
    env: *mut c_void,
    log_message: Option<LogFn>,
    _intermediate_update: *const c_void,
) -> Fmi3Instance {
    let log = Logger3 { logger: log_message, env };
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<Instance, String> {
        if event_mode_used {
            return Err("this FMU has no event mode (hasEventMode = false)".into());
        }
        let location = text(resource_path).ok_or("no resource path given")?;
        let model = load_model(&resource_dir(location)?, text(token))?;
        Ok(Instance::new(model))
    }));
    match made {
        Ok(Ok(inst)) => Box::into_raw(Box::new(Component { inst, log, logging_on, start_time: 0.0 })),
        Ok(Err(message)) => {
            log.log(status::ERROR, "logStatusError", &format!("fmi3InstantiateCoSimulation: {message}"));
            std::ptr::null_mut()
        }
        Err(_) => {
            log.log(
                status::FATAL,
                "logStatusError",
                "fmi3InstantiateCoSimulation: internal error in mesobench (a bug)",
            );
            std::ptr::null_mut()
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn fmi3InstantiateModelExchange(
    _instance_name: *const c_char,
    _token: *const c_char,
    _resource_path: *const c_char,
    _visible: bool,
    _logging_on: bool,
    env: *mut c_void,
    log_message: Option<LogFn>,
) -> Fmi3Instance {
    Logger3 { logger: log_message, env }.log(status::ERROR, "logStatusError", "this FMU is for co-simulation only");
    std::ptr::null_mut()
}

#[no_mangle]
pub unsafe extern "C" fn fmi3InstantiateScheduledExecution(
    _instance_name: *const c_char,
    _token: *const c_char,
    _resource_path: *const c_char,
    _visible: bool,
    _logging_on: bool,
    env: *mut c_void,
    log_message: Option<LogFn>,
    _clock_update: *const c_void,
    _lock: *const c_void,
    _unlock: *const c_void,
) -> Fmi3Instance {
    Logger3 { logger: log_message, env }.log(status::ERROR, "logStatusError", "this FMU is for co-simulation only");
    std::ptr::null_mut()
}

#[no_mangle]
pub unsafe extern "C" fn fmi3FreeInstance(c: Fmi3Instance) {
    if !c.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(Box::from_raw(c))));
    }
}

#[no_mangle]
pub unsafe extern "C" fn fmi3SetDebugLogging(
    c: Fmi3Instance,
    logging_on: bool,
    _n: usize,
    _categories: *const *const c_char,
) -> Fmi3Status {
    with(c, "fmi3SetDebugLogging", |comp| {
        comp.logging_on = logging_on;
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3EnterInitializationMode(
    c: Fmi3Instance,
    _tolerance_defined: bool,
    _tolerance: f64,
    start_time: f64,
    _stop_time_defined: bool,
    _stop_time: f64,
) -> Fmi3Status {
    with(c, "fmi3EnterInitializationMode", |comp| {
        comp.inst.enter_initialization(start_time)?;
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3ExitInitializationMode(c: Fmi3Instance) -> Fmi3Status {
    with(c, "fmi3ExitInitializationMode", |comp| {
        comp.inst.exit_initialization()?;
        comp.info("initialised: the plant is at rest");
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3EnterStepMode(c: Fmi3Instance) -> Fmi3Status {
    with(c, "fmi3EnterStepMode", |_| Ok(status::OK))
}

#[no_mangle]
pub unsafe extern "C" fn fmi3Terminate(c: Fmi3Instance) -> Fmi3Status {
    with(c, "fmi3Terminate", |comp| {
        comp.inst.terminate();
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3Reset(c: Fmi3Instance) -> Fmi3Status {
    with(c, "fmi3Reset", |comp| {
        comp.inst.reset();
        comp.info("reset: every parameter at its start value");
        Ok(status::OK)
    })
}

/// Get each value, converted by `convert` from the variable's value.
unsafe fn get_all<T>(
    c: Fmi3Instance,
    what: &str,
    vr: *const u32,
    n: usize,
    values: *mut T,
    n_values: usize,
    convert: impl Fn(u32, Value) -> Result<T, String>,
) -> Fmi3Status {
    with(c, what, |comp| {
        if n != n_values {
            return Err(format!("{n} value references but {n_values} values (this FMU has no arrays)"));
        }
        let (vr, values) = slices(vr, n, values)?;
        for (r, x) in vr.iter().zip(values) {
            *x = convert(*r, comp.inst.get(*r)?)?;
        }
        Ok(status::OK)
    })
}

/// Set each value, converted by `convert` to the variable's value.
unsafe fn set_all<T: Copy>(
    c: Fmi3Instance,
    what: &str,
    vr: *const u32,
    n: usize,
    values: *const T,
    n_values: usize,
    convert: impl Fn(&Instance, u32, T) -> Result<Value, String>,
) -> Fmi3Status {
    with(c, what, |comp| {
        if n != n_values {
            return Err(format!("{n} value references but {n_values} values (this FMU has no arrays)"));
        }
        let (vr, values) = slices(vr, n, values as *mut T)?;
        for (r, x) in vr.iter().zip(values.iter()) {
            let v = convert(&comp.inst, *r, *x)?;
            comp.inst.set(*r, v)?;
        }
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3GetFloat64(
    c: Fmi3Instance,
    vr: *const u32,
    n: usize,
    v: *mut f64,
    nv: usize,
) -> Fmi3Status {
    get_all(c, "fmi3GetFloat64", vr, n, v, nv, |r, x| match x {
        Value::Real(v) => Ok(v),
        _ => Err(format!("value reference {r} is not a Float64")),
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3SetFloat64(
    c: Fmi3Instance,
    vr: *const u32,
    n: usize,
    v: *const f64,
    nv: usize,
) -> Fmi3Status {
    set_all(c, "fmi3SetFloat64", vr, n, v, nv, |_, _, x| Ok(Value::Real(x)))
}

#[no_mangle]
pub unsafe extern "C" fn fmi3GetInt32(c: Fmi3Instance, vr: *const u32, n: usize, v: *mut i32, nv: usize) -> Fmi3Status {
    get_all(c, "fmi3GetInt32", vr, n, v, nv, |r, x| match x {
        Value::Integer(v) => Ok(v as i32),
        _ => Err(format!("value reference {r} is not an Int32")),
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3SetInt32(
    c: Fmi3Instance,
    vr: *const u32,
    n: usize,
    v: *const i32,
    nv: usize,
) -> Fmi3Status {
    set_all(c, "fmi3SetInt32", vr, n, v, nv, |inst, r, x| match inst.model().variable(r).map(|v| v.start) {
        Some(Value::Integer(_)) => Ok(Value::Integer(x as i64)),
        _ => Err(format!("value reference {r} is not an Int32")),
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3GetInt64(c: Fmi3Instance, vr: *const u32, n: usize, v: *mut i64, nv: usize) -> Fmi3Status {
    get_all(c, "fmi3GetInt64", vr, n, v, nv, |r, x| match x {
        Value::Enumeration(i) => Ok(i as i64 + 1),
        _ => Err(format!("value reference {r} is not an Enumeration (the only Int64 variables)")),
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3SetInt64(
    c: Fmi3Instance,
    vr: *const u32,
    n: usize,
    v: *const i64,
    nv: usize,
) -> Fmi3Status {
    set_all(c, "fmi3SetInt64", vr, n, v, nv, |inst, r, x| match inst.model().variable(r).map(|v| v.start) {
        Some(Value::Enumeration(_)) => Ok(Value::Enumeration(if x < 1 { usize::MAX } else { x as usize - 1 })),
        _ => Err(format!("value reference {r} is not an Enumeration (the only Int64 variables)")),
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3GetBoolean(
    c: Fmi3Instance,
    vr: *const u32,
    n: usize,
    v: *mut bool,
    nv: usize,
) -> Fmi3Status {
    get_all(c, "fmi3GetBoolean", vr, n, v, nv, |r, x| match x {
        Value::Boolean(b) => Ok(b),
        _ => Err(format!("value reference {r} is not a Boolean")),
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3SetBoolean(
    c: Fmi3Instance,
    vr: *const u32,
    n: usize,
    v: *const bool,
    nv: usize,
) -> Fmi3Status {
    set_all(c, "fmi3SetBoolean", vr, n, v, nv, |_, _, x| Ok(Value::Boolean(x)))
}

/// Accessors of types this FMU has no variables of: fine for no variable, refused otherwise.
macro_rules! none_of_type {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            #[no_mangle]
            pub unsafe extern "C" fn $name(c: Fmi3Instance, _vr: *const u32, n: usize, $($arg: $ty),*) -> Fmi3Status {
                $(let _ = $arg;)*
                with(c, stringify!($name), |_| {
                    if n == 0 { Ok(status::OK) } else { Err("this FMU has no variables of this type".into()) }
                })
            }
        )*
    };
}

none_of_type! {
    fmi3GetFloat32(v: *mut f32, nv: usize);
    fmi3SetFloat32(v: *const f32, nv: usize);
    fmi3GetInt8(v: *mut i8, nv: usize);
    fmi3SetInt8(v: *const i8, nv: usize);
    fmi3GetUInt8(v: *mut u8, nv: usize);
    fmi3SetUInt8(v: *const u8, nv: usize);
    fmi3GetInt16(v: *mut i16, nv: usize);
    fmi3SetInt16(v: *const i16, nv: usize);
    fmi3GetUInt16(v: *mut u16, nv: usize);
    fmi3SetUInt16(v: *const u16, nv: usize);
    fmi3GetUInt32(v: *mut u32, nv: usize);
    fmi3SetUInt32(v: *const u32, nv: usize);
    fmi3GetUInt64(v: *mut u64, nv: usize);
    fmi3SetUInt64(v: *const u64, nv: usize);
    fmi3GetString(v: *mut *const c_char, nv: usize);
    fmi3SetString(v: *const *const c_char, nv: usize);
    fmi3GetBinary(sizes: *mut usize, v: *mut *const u8, nv: usize);
    fmi3SetBinary(sizes: *const usize, v: *const *const u8, nv: usize);
    fmi3GetClock(v: *mut bool);
    fmi3SetClock(v: *const bool);
    fmi3GetIntervalDecimal(v: *mut f64, q: *mut i32);
    fmi3GetIntervalFraction(counters: *mut u64, res: *mut u64, q: *mut i32);
    fmi3GetShiftDecimal(v: *mut f64);
    fmi3GetShiftFraction(counters: *mut u64, res: *mut u64);
    fmi3SetIntervalDecimal(v: *const f64);
    fmi3SetIntervalFraction(counters: *const u64, res: *const u64);
    fmi3SetShiftDecimal(v: *const f64);
    fmi3SetShiftFraction(counters: *const u64, res: *const u64);
    fmi3GetOutputDerivatives(orders: *const i32, v: *mut f64, nv: usize);
}

/// Calls of model exchange, event mode and the other interfaces: refused.
macro_rules! refused {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            #[no_mangle]
            pub unsafe extern "C" fn $name(c: Fmi3Instance, $($arg: $ty),*) -> Fmi3Status {
                $(let _ = $arg;)*
                with(c, stringify!($name), |_| Err("not provided by this co-simulation FMU".into()))
            }
        )*
    };
}

refused! {
    fmi3EnterEventMode();
    fmi3EnterConfigurationMode();
    fmi3ExitConfigurationMode();
    fmi3EvaluateDiscreteStates();
    fmi3UpdateDiscreteStates(a: *mut bool, b: *mut bool, d: *mut bool, e: *mut bool, f: *mut bool, g: *mut f64);
    fmi3EnterContinuousTimeMode();
    fmi3CompletedIntegratorStep(a: bool, b: *mut bool, d: *mut bool);
    fmi3SetTime(t: f64);
    fmi3SetContinuousStates(x: *const f64, n: usize);
    fmi3GetContinuousStateDerivatives(x: *mut f64, n: usize);
    fmi3GetEventIndicators(x: *mut f64, n: usize);
    fmi3GetContinuousStates(x: *mut f64, n: usize);
    fmi3GetNominalsOfContinuousStates(x: *mut f64, n: usize);
    fmi3GetNumberOfEventIndicators(n: *mut usize);
    fmi3GetNumberOfContinuousStates(n: *mut usize);
    fmi3GetDirectionalDerivative(u: *const u32, nu: usize, k: *const u32, nk: usize, s: *const f64, ns: usize, o: *mut f64, no: usize);
    fmi3GetAdjointDerivative(u: *const u32, nu: usize, k: *const u32, nk: usize, s: *const f64, ns: usize, o: *mut f64, no: usize);
    fmi3ActivateModelPartition(clock: u32, t: f64);
    fmi3GetNumberOfVariableDependencies(vr: u32, n: *mut usize);
    fmi3GetVariableDependencies(vr: u32, a: *mut usize, b: *mut u32, d: *mut usize, e: *mut i32, n: usize);
}

#[no_mangle]
pub unsafe extern "C" fn fmi3DoStep(
    c: Fmi3Instance,
    current: f64,
    step: f64,
    _no_set_prior: bool,
    event_handling_needed: *mut bool,
    terminate_simulation: *mut bool,
    early_return: *mut bool,
    last_successful_time: *mut f64,
) -> Fmi3Status {
    with(c, "fmi3DoStep", |comp| {
        for flag in [event_handling_needed, terminate_simulation, early_return] {
            if !flag.is_null() {
                *flag = false;
            }
        }
        let done = comp.inst.do_step(current, step);
        if !last_successful_time.is_null() {
            if let Ok(Value::Real(t)) = comp.inst.get(mesobench::fmi::VR_TIME) {
                *last_successful_time = t;
            }
        }
        done?;
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3GetFMUState(c: Fmi3Instance, state: *mut *mut State) -> Fmi3Status {
    with(c, "fmi3GetFMUState", |comp| {
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
pub unsafe extern "C" fn fmi3SetFMUState(c: Fmi3Instance, state: *mut State) -> Fmi3Status {
    with(c, "fmi3SetFMUState", |comp| {
        if state.is_null() {
            return Err("a null state".into());
        }
        comp.inst.set_state(&*state)?;
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3FreeFMUState(c: Fmi3Instance, state: *mut *mut State) -> Fmi3Status {
    with(c, "fmi3FreeFMUState", |_| {
        if !state.is_null() && !(*state).is_null() {
            drop(Box::from_raw(*state));
            *state = std::ptr::null_mut();
        }
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3SerializedFMUStateSize(
    c: Fmi3Instance,
    state: *mut State,
    size: *mut usize,
) -> Fmi3Status {
    with(c, "fmi3SerializedFMUStateSize", |_| {
        if state.is_null() || size.is_null() {
            return Err("a null pointer".into());
        }
        *size = (*state).to_bytes().len();
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3SerializeFMUState(
    c: Fmi3Instance,
    state: *mut State,
    bytes: *mut u8,
    size: usize,
) -> Fmi3Status {
    with(c, "fmi3SerializeFMUState", |_| {
        if state.is_null() || bytes.is_null() {
            return Err("a null pointer".into());
        }
        let data = (*state).to_bytes();
        if data.len() != size {
            return Err(format!("the buffer holds {size} bytes; the state needs {}", data.len()));
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), bytes, size);
        Ok(status::OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fmi3DeserializeFMUState(
    c: Fmi3Instance,
    bytes: *const u8,
    size: usize,
    state: *mut *mut State,
) -> Fmi3Status {
    with(c, "fmi3DeserializeFMUState", |_| {
        if bytes.is_null() || state.is_null() {
            return Err("a null pointer".into());
        }
        let st = State::from_bytes(std::slice::from_raw_parts(bytes, size))?;
        if (*state).is_null() {
            *state = Box::into_raw(Box::new(st));
        } else {
            **state = st;
        }
        Ok(status::OK)
    })
}
