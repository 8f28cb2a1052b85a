//! A controller FMU as the gun's firmware (`firmware.kind = "fmu"`): an
//! FMI 2.0 or FMI 3.0 co-simulation FMU, loaded in process with
//! libloading, stepped once per firmware tick.
//!
//! Each tick the FMU's inputs named as the fields of [`FwInput`] (`t`,
//! `tick_period`, `tick`, `shot`, `trigger`, `t_since_trigger`, `p_supply`,
//! `p_chamber`, `p_syringe`, `plunger`, `syringe_area`; SI, pressures gauge)
//! are set, `doStep(t, tick)` is called, and its outputs named as the
//! fields of [`FwOutput`] (`valve_mode`, `idle`, `duty`, `pwm_period`,
//! `peak_time`, `regulator_setpoint`, the `sig_*` telemetry) are read; an
//! output the FMU does not have keeps its default. Integer-valued fields may
//! be integer or real variables: FMI 2.0 `Real`, `Integer` or `Enumeration`,
//! FMI 3.0 scalar `Float64` or `Int32`; a port of another type is refused
//! when the FMU is loaded. A fresh instance is made for every session; the
//! previous one is terminated and freed.
//!
//! The version comes from `modelDescription.xml` (`fmiVersion`), the binary
//! from `binaries/linux64/` (FMI 2.0) or `binaries/x86_64-linux/` (FMI 3.0).
//! The two APIs are behind [`Api`] ([`fmi2`], [`fmi3`]); the description,
//! the port binding and the messages are shared. FMI 3.0 is used without
//! event mode, early return, intermediate update or clocks.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Controller, FirmwareError, FwInput, FwOutput};

mod fmi2;
mod fmi3;

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

/// The FMI version of a controller FMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Fmi2,
    Fmi3,
}

impl Version {
    /// The prefix of the API's functions and status names.
    fn prefix(self) -> &'static str {
        match self {
            Version::Fmi2 => "fmi2",
            Version::Fmi3 => "fmi3",
        }
    }

    /// The binaries folder of Linux x86-64, as the standard names it.
    fn platform(self) -> &'static str {
        match self {
            Version::Fmi2 => "linux64",
            Version::Fmi3 => "x86_64-linux",
        }
    }

    /// The kind of value of a variable of type element `ty`, if it can be a firmware port.
    fn kind(self, ty: &str) -> Option<Kind> {
        match (self, ty) {
            (Version::Fmi2, "Real") | (Version::Fmi3, "Float64") => Some(Kind::Real),
            (Version::Fmi2, "Integer" | "Enumeration") | (Version::Fmi3, "Int32") => Some(Kind::Integer),
            _ => None,
        }
    }

    fn allowed(self) -> &'static str {
        match self {
            Version::Fmi2 => "a Real, Integer or Enumeration variable",
            Version::Fmi3 => "a scalar Float64 or Int32 variable",
        }
    }
}

/// How a port's value is passed: a C double or a 32-bit C int.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Real,
    Integer,
}

/// A variable of the controller FMU bound to a firmware field.
#[derive(Debug, Clone, Copy)]
struct Port {
    vr: u32,
    kind: Kind,
}

/// The functions of one FMI version's co-simulation API that the firmware
/// uses. Every method returns the message of a failure: the function
/// called, its status and the FMU's log.
trait Api {
    /// Instantiate and initialise a fresh instance (the previous one is ended first).
    fn start(&mut self) -> Result<(), String>;
    /// Terminate (when it is initialised and has not failed) and free the instance, if any.
    fn end(&mut self) -> Result<(), String>;
    fn set(&mut self, port: Port, x: f64) -> Result<(), String>;
    fn get(&mut self, port: Port) -> Result<f64, String>;
    /// One communication step from `t` of length `h`.
    fn do_step(&mut self, t: f64, h: f64) -> Result<(), String>;
}

/// The functions each port needs: which setters and getters must be in the binary.
#[derive(Debug, Clone, Copy, Default)]
struct Needs {
    set_real: bool,
    set_integer: bool,
    get_real: bool,
    get_integer: bool,
}

/// What both APIs share: the library, the FMU's log, whether the instance
/// may still be terminated.
struct Core {
    version: Version,
    log: Arc<Log>,
    /// Initialised, and no call returned Error or Fatal.
    live: bool,
    // Last: the library is unloaded after everything else.
    lib: libloading::Library,
}

impl Core {
    /// Function `name` of the binary (its type is the FMI signature of `name`).
    ///
    /// # Safety
    /// `T` must be the function type the standard gives `name`.
    unsafe fn symbol<T: Copy>(&self, name: &str) -> Result<T, String> {
        self.lib.get::<T>(name.as_bytes()).map(|s| *s).map_err(|e| {
            format!("the binary lacks {name}, a function every FMI {} co-simulation FMU has ({e})", self.label())
        })
    }

    /// `Some` of the function when the firmware needs it, else `None`.
    ///
    /// # Safety
    /// As [`Core::symbol`].
    unsafe fn needed<T: Copy>(&self, name: &str, needed: bool) -> Result<Option<T>, String> {
        if needed {
            self.symbol(name).map(Some)
        } else {
            Ok(None)
        }
    }

    fn label(&self) -> &'static str {
        match self.version {
            Version::Fmi2 => "2.0",
            Version::Fmi3 => "3.0",
        }
    }

    /// Check the status `status` of call `what`: Warning passes, Discard and worse fail.
    fn check(&mut self, what: &str, status: c_int) -> Result<(), String> {
        if status >= 3 {
            self.live = false;
        }
        if status > 1 {
            return Err(format!("{what} returned {}{}", self.status(status), self.log.drain()));
        }
        Ok(())
    }

    fn status(&self, status: c_int) -> String {
        let names = ["OK", "Warning", "Discard", "Error", "Fatal", "Pending"];
        match usize::try_from(status).ok().and_then(|s| names.get(s)) {
            Some(n) => format!("status {status} ({}{n})", self.version.prefix()),
            None => format!("status {status} (not an FMI status)"),
        }
    }
}

/// An unused setter or getter: the port binding never calls it.
fn missing(name: &str) -> String {
    format!("{name} was not loaded (no port needs it)")
}

/// The FMU's log messages, kept for the error that follows (the last 32).
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn keep(&self, message: *const c_char) {
        if message.is_null() {
            return;
        }
        // SAFETY: the FMU passes a NUL-terminated string valid for the call.
        let m = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
        if let Ok(mut l) = self.0.lock() {
            if l.len() >= 32 {
                l.remove(0);
            }
            l.push(m);
        }
    }

    /// The log since the last call, for a message: ` (first; second)` or nothing.
    fn drain(&self) -> String {
        let mut l = self.0.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default();
        l.retain(|m| !m.is_empty());
        if l.is_empty() {
            String::new()
        } else {
            format!(" ({})", l.join("; "))
        }
    }

    /// The environment pointer the FMU passes back to the logger.
    fn env(log: &Arc<Log>) -> *mut c_void {
        Arc::as_ptr(log) as *mut c_void
    }

    /// The log behind an environment pointer from [`Log::env`].
    ///
    /// # Safety
    /// `env` is null or from [`Log::env`] of a log that is still alive.
    unsafe fn from_env<'a>(env: *mut c_void) -> Option<&'a Log> {
        (env as *const Log).as_ref()
    }
}

/// A controller FMU.
pub struct FmuFirmware {
    path: PathBuf,
    inputs: Vec<(usize, Port)>,
    outputs: Vec<(usize, Port)>,
    api: Box<dyn Api>,
    /// The unpacked FMU, removed after the library is unloaded.
    _dir: Unpacked,
}

impl FmuFirmware {
    /// Unpack and load the FMU at `path`.
    pub fn load(path: &Path) -> Result<FmuFirmware, FirmwareError> {
        let fail = |message: String| FirmwareError::Load { path: path.display().to_string(), message };
        let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
        let mut zip = zip::ZipArchive::new(file).map_err(|e| fail(format!("not an FMU (zip) archive: {e}")))?;
        let dir = unpack_dir();
        let unpacked = Unpacked(dir.clone());
        zip.extract(&dir).map_err(|e| fail(format!("cannot unpack into {}: {e}", dir.display())))?;
        let xml = std::fs::read_to_string(dir.join("modelDescription.xml"))
            .map_err(|e| fail(format!("no modelDescription.xml: {e}")))?;
        let md = parse(&xml).map_err(fail)?;
        let inputs = bind(&md, &INPUTS, "input").map_err(fail)?;
        let outputs = bind(&md, &OUTPUTS, "output").map_err(fail)?;
        if !outputs.iter().any(|(i, _)| *i == 0) {
            return Err(fail("the FMU has no output named valve_mode: it cannot drive the valve".into()));
        }
        let binary = dir.join("binaries").join(md.version.platform()).join(format!("{}.so", md.model_identifier));
        // SAFETY: loading runs the library's initialisers; the user named this FMU as firmware.
        let lib = unsafe { libloading::Library::new(&binary) }
            .map_err(|e| fail(format!("cannot load {}: {e}", binary.display())))?;
        let has = |ports: &[(usize, Port)], kind: Kind| ports.iter().any(|(_, p)| p.kind == kind);
        let needs = Needs {
            set_real: has(&inputs, Kind::Real),
            set_integer: has(&inputs, Kind::Integer),
            get_real: has(&outputs, Kind::Real),
            get_integer: has(&outputs, Kind::Integer),
        };
        let core = Core { version: md.version, log: Arc::new(Log::default()), live: false, lib };
        let resources = dir.join("resources");
        let api: Box<dyn Api> = match md.version {
            Version::Fmi2 => Box::new(fmi2::Fmi2::new(core, needs, &md.token, &resources).map_err(fail)?),
            Version::Fmi3 => Box::new(fmi3::Fmi3::new(core, needs, &md.token, &resources).map_err(fail)?),
        };
        Ok(FmuFirmware { path: path.to_path_buf(), inputs, outputs, api, _dir: unpacked })
    }

    fn fail(&self, message: String) -> FirmwareError {
        FirmwareError::Load { path: self.path.display().to_string(), message }
    }
}

/// The unpacked folder, removed when loading fails or the firmware is dropped.
struct Unpacked(PathBuf);

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unpack_dir() -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("mesobench-fmu-firmware-{}-{n}", std::process::id()))
}

impl Drop for FmuFirmware {
    fn drop(&mut self) {
        // The end of the last session: nobody is left to hear a failing fmiTerminate.
        let _ = self.api.end();
    }
}

impl Controller for FmuFirmware {
    fn name(&self) -> String {
        format!("fmu {}", self.path.display())
    }

    fn reset(&mut self) -> Result<(), FirmwareError> {
        self.api.end().map_err(|m| self.fail(format!("ending the previous session: {m}")))?;
        self.api.start().map_err(|m| self.fail(m))
    }

    fn step(&mut self, input: &FwInput, out: &mut FwOutput) -> Result<(), FirmwareError> {
        let path = &self.path;
        let step_error = |message: String| FirmwareError::Step {
            name: format!("fmu {}", path.display()),
            t_ms: input.t * 1e3,
            tick: input.tick,
            message,
        };
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
        for (i, port) in &self.inputs {
            self.api.set(*port, values[*i]).map_err(step_error)?;
        }
        self.api.do_step(input.t, input.tick_period).map_err(step_error)?;
        *out = FwOutput::default();
        for (i, port) in &self.outputs {
            let x = self.api.get(*port).map_err(step_error)?;
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
        Ok(())
    }
}

/// What the loader needs from `modelDescription.xml`.
struct Description {
    version: Version,
    /// FMI 2.0 `guid`, FMI 3.0 `instantiationToken`.
    token: String,
    model_identifier: String,
    variables: Vec<Variable>,
}

struct Variable {
    name: String,
    vr: u32,
    causality: String,
    /// The type element: FMI 2.0 the child of `ScalarVariable` (`Real`, …), FMI 3.0 the variable's own (`Float64`, …).
    ty: String,
    /// An FMI 3.0 array (it has `Dimension` elements).
    array: bool,
}

/// The ports of `names` (index into `names`, port) the FMU has with causality `causality`.
fn bind(md: &Description, names: &[&str], causality: &str) -> Result<Vec<(usize, Port)>, String> {
    let mut ports = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let Some(v) = md.variables.iter().find(|v| v.name == *n && v.causality == causality) else { continue };
        let kind = md.version.kind(&v.ty).filter(|_| !v.array).ok_or_else(|| {
            let what = if v.array { format!("an array of {}", v.ty) } else { format!("of type {}", v.ty) };
            format!(
                "{causality} {n} (valueReference {}) is {what}: a firmware port must be {}",
                v.vr,
                md.version.allowed()
            )
        })?;
        ports.push((i, Port { vr: v.vr, kind }));
    }
    Ok(ports)
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

/// The text of the start tag `<element …>` (without `<` and `>`), the first in `xml`.
fn start_tag<'a>(xml: &'a str, element: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = xml[from..].find(&format!("<{element}")) {
        let s = from + i + 1;
        let next = xml[s + element.len()..].chars().next();
        if next.is_some_and(|c| c.is_whitespace() || c == '>' || c == '/') {
            let end = s + xml[s..].find('>')?;
            return Some(&xml[s..end]);
        }
        from = s;
    }
    None
}

fn parse(xml: &str) -> Result<Description, String> {
    let root = start_tag(xml, "fmiModelDescription").ok_or("no fmiModelDescription element")?;
    let version = match attribute(root, "fmiVersion").as_deref() {
        Some("2.0") => Version::Fmi2,
        Some(v) if v.starts_with("3.") => Version::Fmi3,
        Some(v) => return Err(format!("FMI {v}: only FMI 2.0 and FMI 3.0 controller FMUs can be loaded as firmware")),
        None => return Err("no fmiVersion".into()),
    };
    let token = match version {
        Version::Fmi2 => attribute(root, "guid").ok_or("no guid")?,
        Version::Fmi3 => attribute(root, "instantiationToken").ok_or("no instantiationToken")?,
    };
    let cs = start_tag(xml, "CoSimulation").ok_or("not a co-simulation FMU (no CoSimulation element)")?;
    let model_identifier = attribute(cs, "modelIdentifier").ok_or("no modelIdentifier")?;
    let variables = match version {
        Version::Fmi2 => variables2(xml)?,
        Version::Fmi3 => variables3(xml)?,
    };
    Ok(Description { version, token, model_identifier, variables })
}

/// A variable's name, value reference and causality from its tag.
fn variable(tag: &str, ty: &str) -> Result<Option<Variable>, String> {
    let (Some(name), Some(vr)) = (attribute(tag, "name"), attribute(tag, "valueReference")) else { return Ok(None) };
    let vr = vr.trim().parse::<u32>().map_err(|_| format!("variable {name}: a bad valueReference {vr:?}"))?;
    let causality = attribute(tag, "causality").unwrap_or_else(|| "local".into());
    Ok(Some(Variable { name, vr, causality, ty: ty.to_string(), array: false }))
}

/// The element tags of `xml` in order: (tag text without `<`/`>`, closing tag, self-closing); comments skipped.
fn tags(xml: &str) -> impl Iterator<Item = (&str, bool, bool)> {
    let mut rest = xml;
    std::iter::from_fn(move || loop {
        let i = rest.find('<')?;
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |j| &after[j + 3..]);
            continue;
        }
        let end = rest.find('>')?;
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        return Some(match tag.strip_prefix('/') {
            Some(t) => (t, true, false),
            None => (tag, false, tag.ends_with('/')),
        });
    })
}

fn element_name(tag: &str) -> &str {
    tag.split(|c: char| c.is_whitespace() || c == '/').next().unwrap_or("")
}

/// FMI 2.0: `<ScalarVariable name valueReference causality><Real/></ScalarVariable>`.
fn variables2(xml: &str) -> Result<Vec<Variable>, String> {
    let mut variables = Vec::new();
    let mut open: Option<&str> = None;
    for (tag, closing, self_closing) in tags(xml) {
        let name = element_name(tag);
        match (open, name) {
            (None, "ScalarVariable") if !closing && !self_closing => open = Some(tag),
            (Some(_), "ScalarVariable") if closing => open = None,
            (Some(sv), ty) if !closing => {
                if let Some(v) = variable(sv, ty)? {
                    variables.push(v);
                }
                open = Some("");
            }
            _ => {}
        }
    }
    Ok(variables)
}

/// FMI 3.0: `<Float64 name valueReference causality/>`, `<Int32 …/>`, … directly under `ModelVariables`.
fn variables3(xml: &str) -> Result<Vec<Variable>, String> {
    let mut variables: Vec<Variable> = Vec::new();
    let mut inside = false;
    let mut depth = 0usize;
    for (tag, closing, self_closing) in tags(xml) {
        let name = element_name(tag);
        if !inside {
            inside = name == "ModelVariables" && !closing && !self_closing;
            continue;
        }
        if closing {
            if depth == 0 {
                break; // </ModelVariables>
            }
            depth -= 1;
            continue;
        }
        if depth == 0 {
            if let Some(v) = variable(tag, name)? {
                variables.push(v);
            }
        } else if depth == 1 && name == "Dimension" {
            if let Some(v) = variables.last_mut() {
                v.array = true;
            }
        }
        if !self_closing {
            depth += 1;
        }
    }
    Ok(variables)
}
