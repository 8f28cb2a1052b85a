//! A controller FMU as the gun's firmware (`firmware.kind = "fmu"`): an
//! FMI 2.0 co-simulation FMU, loaded in process with libloading, stepped
//! once per firmware tick.
//!
//! Each tick the FMU's inputs named as the fields of [`FwInput`] (`t`,
//! `tick_period`, `tick`, `shot`, `trigger`, `t_since_trigger`, `p_supply`,
//! `p_chamber`, `p_syringe`, `plunger`, `syringe_area`; SI, pressures gauge)
//! are set, `fmi2DoStep(t, tick)` is called, and its outputs named as the
//! fields of [`FwOutput`] (`valve_mode`, `idle`, `duty`, `pwm_period`,
//! `peak_time`, `regulator_setpoint`, the `sig_*` telemetry) are read; an
//! output the FMU does not have keeps its default. Integer-valued fields may
//! be Integer or Real variables. A fresh instance is made for every
//! session.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::path::{Path, PathBuf};

use super::{Controller, FirmwareError, FwInput, FwOutput};

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
    if !env.is_null() && !message.is_null() {
        let log = &*(env as *const std::sync::Mutex<Vec<String>>);
        if let Ok(mut l) = log.lock() {
            l.push(CStr::from_ptr(message).to_string_lossy().into_owned());
        }
    }
}

/// A variable of the controller FMU bound to a firmware field.
#[derive(Debug, Clone, Copy)]
struct Port {
    vr: c_uint,
    integer: bool,
}

const INPUTS: [&str; 11] = [
    "t",
    "tick_period",
    "tick",
    "shot",
    "trigger",
    "t_since_trigger",
    "p_supply",
    "p_chamber",
    "p_syringe",
    "plunger",
    "syringe_area",
];
const OUTPUTS: [&str; 10] = [
    "valve_mode",
    "idle",
    "duty",
    "pwm_period",
    "peak_time",
    "regulator_setpoint",
    "sig_setpoint",
    "sig_measured",
    "sig_command",
    "sig_integrator",
];

/// A controller FMU.
pub struct FmuFirmware {
    path: PathBuf,
    dir: PathBuf,
    guid: CString,
    resources: CString,
    inputs: Vec<(usize, Port)>,
    outputs: Vec<(usize, Port)>,
    component: Component,
    log: Box<std::sync::Mutex<Vec<String>>>,
    callbacks: Box<Callbacks>,
    // Declared last: dropped after the instance is freed.
    lib: libloading::Library,
}

impl FmuFirmware {
    /// Unpack and load the FMU at `path`.
    pub fn load(path: &Path) -> Result<FmuFirmware, FirmwareError> {
        let fail = |message: String| FirmwareError::Load { path: path.display().to_string(), message };
        let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
        let mut zip = zip::ZipArchive::new(file).map_err(|e| fail(format!("not an FMU (zip) archive: {e}")))?;
        let dir = unpack_dir();
        zip.extract(&dir).map_err(|e| fail(format!("cannot unpack into {}: {e}", dir.display())))?;
        let xml = std::fs::read_to_string(dir.join("modelDescription.xml"))
            .map_err(|e| fail(format!("no modelDescription.xml: {e}")))?;
        let md = parse(&xml).map_err(fail)?;
        let binary = dir.join("binaries/linux64").join(format!("{}.so", md.model_identifier));
        // SAFETY: loading runs the library's initialisers; the user named this FMU as firmware.
        let lib = unsafe { libloading::Library::new(&binary) }
            .map_err(|e| fail(format!("cannot load {}: {e}", binary.display())))?;
        let bind = |names: &[&str], causality: &str| -> Vec<(usize, Port)> {
            names
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    md.variables
                        .iter()
                        .find(|v| v.name == *n && v.causality == causality)
                        .map(|v| (i, Port { vr: v.vr, integer: v.integer }))
                })
                .collect()
        };
        let inputs = bind(&INPUTS, "input");
        let outputs = bind(&OUTPUTS, "output");
        if !outputs.iter().any(|(i, _)| *i == 0) {
            return Err(fail("the FMU has no output named valve_mode: it cannot drive the valve".into()));
        }
        let resources = CString::new(format!("file://{}", dir.join("resources").display()))
            .map_err(|_| fail("a path with a NUL byte".into()))?;
        let guid = CString::new(md.guid).map_err(|_| fail("a guid with a NUL byte".into()))?;
        let log = Box::new(std::sync::Mutex::new(Vec::new()));
        // SAFETY: the FMI 2.0 logger is C-variadic; a function with the fixed arguments reads them
        // the same way on the C calling convention and ignores the rest.
        let logger: Logger = unsafe { std::mem::transmute(keep_message as unsafe extern "C" fn(_, _, _, _, _)) };
        let callbacks = Box::new(Callbacks {
            logger: Some(logger),
            allocate: Some(calloc),
            free: Some(free),
            step_finished: None,
            env: &*log as *const std::sync::Mutex<Vec<String>> as *mut c_void,
        });
        let fw = FmuFirmware {
            path: path.to_path_buf(),
            dir,
            guid,
            resources,
            inputs,
            outputs,
            component: std::ptr::null_mut(),
            log,
            callbacks,
            lib,
        };
        // Every function is there before the first tick.
        for name in ["fmi2Instantiate", "fmi2FreeInstance", "fmi2DoStep", "fmi2GetReal", "fmi2SetReal"] {
            fw.symbol::<Free>(name)?;
        }
        Ok(fw)
    }

    fn fail(&self, message: String) -> FirmwareError {
        FirmwareError::Load { path: self.path.display().to_string(), message }
    }

    fn symbol<T: Copy>(&self, name: &str) -> Result<T, FirmwareError> {
        // SAFETY: the type is the FMI 2.0 signature of `name`.
        unsafe { self.lib.get::<T>(name.as_bytes()).map(|s| *s) }
            .map_err(|e| self.fail(format!("the binary lacks {name}: {e}")))
    }

    /// The FMU's log since the last call, for a message.
    fn drain_log(&self) -> String {
        let mut l = self.log.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default();
        l.retain(|m| !m.is_empty());
        if l.is_empty() {
            String::new()
        } else {
            format!(" ({})", l.join("; "))
        }
    }

    fn call(&self, what: &str, status: c_int) -> Result<(), FirmwareError> {
        if status > 1 {
            return Err(self.fail(format!("{what} returned status {status}{}", self.drain_log())));
        }
        Ok(())
    }

    fn free_instance(&mut self) {
        if !self.component.is_null() {
            if let Ok(free) = self.symbol::<Free>("fmi2FreeInstance") {
                // SAFETY: a component this FMU instantiated.
                unsafe { free(self.component) };
            }
            self.component = std::ptr::null_mut();
        }
    }
}

unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    libc::calloc(n, size)
}

unsafe extern "C" fn free(p: *mut c_void) {
    libc::free(p)
}

fn unpack_dir() -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("mesobench-fmu-firmware-{}-{n}", std::process::id()))
}

impl Drop for FmuFirmware {
    fn drop(&mut self) {
        self.free_instance();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Controller for FmuFirmware {
    fn name(&self) -> String {
        format!("fmu {}", self.path.display())
    }

    fn reset(&mut self) -> Result<(), FirmwareError> {
        self.free_instance();
        let instantiate: Instantiate = self.symbol("fmi2Instantiate")?;
        // SAFETY: FMI 2.0 calls with valid strings and callbacks that outlive the instance.
        unsafe {
            self.component = instantiate(
                c"firmware".as_ptr(),
                1,
                self.guid.as_ptr(),
                self.resources.as_ptr(),
                &*self.callbacks,
                0,
                0,
            );
            if self.component.is_null() {
                return Err(self.fail(format!("fmi2Instantiate failed{}", self.drain_log())));
            }
            let setup: Setup = self.symbol("fmi2SetupExperiment")?;
            self.call("fmi2SetupExperiment", setup(self.component, 0, 0.0, 0.0, 0, 0.0))?;
            let enter: Mode = self.symbol("fmi2EnterInitializationMode")?;
            self.call("fmi2EnterInitializationMode", enter(self.component))?;
            let exit: Mode = self.symbol("fmi2ExitInitializationMode")?;
            self.call("fmi2ExitInitializationMode", exit(self.component))?;
        }
        Ok(())
    }

    fn step(&mut self, input: &FwInput, out: &mut FwOutput) -> Result<(), FirmwareError> {
        let step_error =
            |message: String| FirmwareError::Step { name: self.name(), t_ms: input.t * 1e3, tick: input.tick, message };
        let values = [
            input.t,
            input.tick_period,
            input.tick as f64,
            input.shot as f64,
            input.trigger as f64,
            input.t_since_trigger,
            input.p_supply,
            input.p_chamber,
            input.p_syringe,
            input.plunger,
            input.syringe_area,
        ];
        let set_real: SetReal = self.symbol("fmi2SetReal")?;
        let get_real: GetReal = self.symbol("fmi2GetReal")?;
        let do_step: DoStep = self.symbol("fmi2DoStep")?;
        let c = self.component;
        let status = |s: c_int, what: &str| {
            if s > 1 {
                Err(step_error(format!("{what} returned status {s}{}", self.drain_log())))
            } else {
                Ok(())
            }
        };
        // SAFETY: FMI 2.0 calls on a live component with one-element arrays.
        unsafe {
            for (i, port) in &self.inputs {
                let x = values[*i];
                if port.integer {
                    let set_integer: SetInteger = self.symbol("fmi2SetInteger")?;
                    status(set_integer(c, &port.vr, 1, &(x as c_int)), "fmi2SetInteger")?;
                } else {
                    status(set_real(c, &port.vr, 1, &x), "fmi2SetReal")?;
                }
            }
            status(do_step(c, input.t, input.tick_period, 1), "fmi2DoStep")?;
            *out = FwOutput::default();
            for (i, port) in &self.outputs {
                let mut x = 0.0;
                if port.integer {
                    let get_integer: GetInteger = self.symbol("fmi2GetInteger")?;
                    let mut k: c_int = 0;
                    status(get_integer(c, &port.vr, 1, &mut k), "fmi2GetInteger")?;
                    x = k as f64;
                } else {
                    status(get_real(c, &port.vr, 1, &mut x), "fmi2GetReal")?;
                }
                match *i {
                    0 => out.valve_mode = x.max(0.0) as u32,
                    1 => out.idle = x.max(0.0) as u32,
                    2 => out.duty = x,
                    3 => out.pwm_period = x,
                    4 => out.peak_time = x,
                    5 => out.regulator_setpoint = x,
                    6 => out.sig_setpoint = x,
                    7 => out.sig_measured = x,
                    8 => out.sig_command = x,
                    _ => out.sig_integrator = x,
                }
            }
        }
        Ok(())
    }
}

/// What the loader needs from `modelDescription.xml`.
struct Description {
    guid: String,
    model_identifier: String,
    variables: Vec<Variable>,
}

struct Variable {
    name: String,
    vr: c_uint,
    causality: String,
    integer: bool,
}

/// The value of attribute `name` in the tag text `tag` (XML entities of names are not expected).
fn attribute(tag: &str, name: &str) -> Option<String> {
    let mut rest = tag;
    while let Some(i) = rest.find(name) {
        let before = rest[..i].chars().last();
        let after = &rest[i + name.len()..];
        let after_trim = after.trim_start();
        if before.is_some_and(char::is_whitespace) && after_trim.starts_with('=') {
            let v = after_trim[1..].trim_start();
            let quote = v.chars().next()?;
            let body = &v[1..];
            let end = body.find(quote)?;
            return Some(
                body[..end].replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"),
            );
        }
        rest = after;
    }
    None
}

fn parse(xml: &str) -> Result<Description, String> {
    let root_start = xml.find("<fmiModelDescription").ok_or("no fmiModelDescription element")?;
    let root = &xml[root_start..root_start + xml[root_start..].find('>').ok_or("a broken root element")?];
    match attribute(root, "fmiVersion").as_deref() {
        Some("2.0") => {}
        Some(v) => return Err(format!("FMI {v}: only FMI 2.0 controller FMUs can be loaded as firmware")),
        None => return Err("no fmiVersion".into()),
    }
    let guid = attribute(root, "guid").ok_or("no guid")?;
    let cs_start = xml.find("<CoSimulation").ok_or("not a co-simulation FMU (no CoSimulation element)")?;
    let cs = &xml[cs_start..cs_start + xml[cs_start..].find('>').ok_or("a broken CoSimulation element")?];
    let model_identifier = attribute(cs, "modelIdentifier").ok_or("no modelIdentifier")?;
    let mut variables = Vec::new();
    for chunk in xml.split("<ScalarVariable").skip(1) {
        let tag = &chunk[..chunk.find('>').unwrap_or(chunk.len())];
        let (Some(name), Some(vr)) = (attribute(tag, "name"), attribute(tag, "valueReference")) else { continue };
        let vr = vr.trim().parse::<c_uint>().map_err(|_| format!("variable {name}: a bad valueReference"))?;
        let causality = attribute(tag, "causality").unwrap_or_else(|| "local".into());
        let body = chunk.split("</ScalarVariable>").next().unwrap_or("");
        let integer = body.contains("<Integer") || body.contains("<Enumeration");
        if integer || body.contains("<Real") {
            variables.push(Variable { name, vr, causality, integer });
        }
    }
    Ok(Description { guid, model_identifier, variables })
}
