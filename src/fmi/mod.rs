//! The plant as a co-simulation FMU (FMI 2.0 and FMI 3.0).
//!
//! [`Model`] is what an FMU is made from: a scenario reduced to its plant
//! (`resources/scenario.toml` in the FMU), the table of FMU variables
//! generated from the parameter registry (every plant key a parameter
//! settable before initialisation, in the key's own human unit, its start
//! value the scenario's), and the token that ties a binary to its
//! `modelDescription.xml`. [`Instance`] is one simulation of it, written
//! against no FMI header: the C functions of the `mesobench-fmu` crate
//! only translate calls and statuses. [`xml`] writes the model
//! descriptions, [`package`] the `.fmu` archive.
//!
//! A parameter set to a value other than its start is applied at
//! initialisation through the registry (`Prepared::with`), so a value the
//! registry refuses gives its message; a parameter left at its start is not
//! written, so the keys derived from others (a syringe preset's bore) keep
//! following them.

pub mod package;
pub mod xml;

use crate::model::param::{Def, Kind, Param};
use crate::scenario::{registry, set_arg, Prepared, Scenario, ScenarioError, Source};
use crate::sim::session::{fast_forward, quiescent};
use crate::sim::{Drive, Plant, PlantState, Signals};

/// The FMI version of an FMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// FMI 2.0 (binaries in `binaries/linux64/`).
    Fmi2,
    /// FMI 3.0 (binaries in `binaries/x86_64-linux/`).
    Fmi3,
}

impl Version {
    /// From the command line's `2` or `3`.
    pub fn from_number(n: u8) -> Option<Version> {
        match n {
            2 => Some(Version::Fmi2),
            3 => Some(Version::Fmi3),
            _ => None,
        }
    }

    /// The folder of the Linux x86-64 binary inside the FMU.
    pub fn binary_dir(self) -> &'static str {
        match self {
            Version::Fmi2 => "binaries/linux64",
            Version::Fmi3 => "binaries/x86_64-linux",
        }
    }
}

/// The tables whose keys are plant parameters of the FMU.
pub const PLANT_TABLES: [&str; 11] =
    ["ambient", "supply", "valve", "line", "chamber", "piston", "syringe", "tubing", "needle", "fluid", "tissue"];

/// Keys outside the plant tables that are FMU parameters too.
pub const EXTRA_KEYS: [&str; 1] = ["solver.step_us"];

/// Value reference of the independent variable `time`.
pub const VR_TIME: u32 = 0;
/// Value reference of the input `valve_command`.
pub const VR_VALVE_COMMAND: u32 = 1;
/// Value reference of the input `regulator_setpoint_kpa`.
pub const VR_REGULATOR_SETPOINT: u32 = 2;
/// Value reference of the first output.
pub const VR_FIRST_OUTPUT: u32 = 10;
/// Value reference of the first parameter.
pub const VR_FIRST_PARAMETER: u32 = 100;

/// The outputs: name, unit, description.
pub const OUTPUTS: [(&str, &str, &str); 10] = [
    ("delivered_ul", "µL", "Volume delivered into the tissue since the start, all needles"),
    ("reflux_ul", "µL", "Volume refluxed to the skin surface since the start, all needles"),
    ("p_supply_kpa", "kPa", "Regulator output pressure, gauge"),
    ("p_chamber_kpa", "kPa", "Piston chamber pressure, gauge"),
    ("p_syringe_kpa", "kPa", "Syringe liquid pressure, gauge"),
    ("p_tissue_kpa", "kPa", "Injection site pressure at needle 1, gauge"),
    ("flow_ul_s", "µL/s", "Total needle flow"),
    ("plunger_mm", "mm", "Plunger travel since the start"),
    ("coil_current_a", "A", "Valve coil current"),
    ("valve_opening", "", "Valve opening, 0 closed (chamber to exhaust) to 1 fully open (supply to chamber)"),
];

/// What an FMU variable holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A real number.
    Real(f64),
    /// A whole number.
    Integer(i64),
    /// A flag.
    Boolean(bool),
    /// One of a choice key's names, by its index from 0 (FMI item `index + 1`).
    Enumeration(usize),
}

/// The role of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    /// Time.
    Independent,
    /// Set before each step.
    Input,
    /// Computed by each step.
    Output,
    /// Set before initialisation only (FMI variability `fixed`).
    Parameter,
}

/// One FMU variable.
#[derive(Debug, Clone)]
pub struct Variable {
    /// Name (a dotted scenario key for a parameter).
    pub name: String,
    /// Value reference.
    pub vr: u32,
    /// Role.
    pub causality: Causality,
    /// Description.
    pub description: String,
    /// Human unit symbol ("" for none).
    pub unit: &'static str,
    /// Start value (outputs and time: a value of the type, not written).
    pub start: Value,
    /// Smallest allowed value (reals and whole numbers).
    pub min: Option<f64>,
    /// Largest allowed value.
    pub max: Option<f64>,
    /// A choice key's names.
    pub items: &'static [&'static str],
    /// The registry declaration of a parameter.
    pub param: Option<&'static Param>,
}

/// What an FMU is made from.
#[derive(Debug, Clone)]
pub struct Model {
    /// The plant scenario as stored in `resources/scenario.toml`.
    pub text: String,
    prep: Prepared,
    /// The scenario with every parameter at its start.
    pub base: Scenario,
    /// Every variable, value references in increasing order.
    pub variables: Vec<Variable>,
    /// Ties the binary to its model description (FMI 2 `guid`, FMI 3 `instantiationToken`).
    pub token: String,
}

/// A scenario that cannot be made into an FMU.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The scenario itself is invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// Something the FMU cannot express.
    #[error("{0}")]
    Unsupported(String),
}

/// The name of the scenario file inside the FMU's `resources/`.
pub const RESOURCE_SCENARIO: &str = "scenario.toml";

/// The scenario reduced to its plant, with `sets` written into it: the top
/// keys, `[solver]`, `[session]` and the plant tables (the firmware,
/// sensors and study tables do not concern the plant, and a firmware
/// plugin's path would not resolve inside the FMU; `sets` of their keys are
/// left out too). Checks that the text gives the plant the registry gives
/// the scenario with `sets`.
pub fn plant_scenario(source: &Source, sets: &[String], fallback_name: &str) -> Result<String, ModelError> {
    let keep = |k: &str| ["name", "description", "seed", "solver", "session"].contains(&k) || PLANT_TABLES.contains(&k);
    let top = |key: &str| key.split(['.', '=']).next().unwrap_or("").trim().to_string();
    // Errors in the plant are reported where they are written in the file.
    match Prepared::new(source, fallback_name)?.with(sets) {
        Err(ScenarioError::Invalid { key, .. }) if !keep(&top(&key)) => {}
        Err(ScenarioError::Override { arg, .. }) if !keep(&top(&arg)) => {}
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    let mut doc: toml::Table = toml::from_str(&source.text)
        .map_err(|e| ScenarioError::Parse { path: source.name.clone(), message: e.to_string() })?;
    doc.retain(|k, _| keep(k));
    let sets: Vec<String> = sets.iter().filter(|a| keep(&top(a))).cloned().collect();
    let pruned =
        Source { text: toml::to_string(&doc).map_err(|e| ModelError::Unsupported(e.to_string()))?, ..source.clone() };
    let full = Prepared::new(&pruned, fallback_name)?.with(&sets)?;
    for arg in &sets {
        set_in_document(&mut doc, arg)?;
    }
    doc.insert("name".to_string(), toml::Value::String(full.name.clone()));
    let text = format!(
        "# The plant of scenario '{}' as exported by mesobench {} (firmware, sensors and study tables left out).\n{}",
        full.name,
        crate::VERSION,
        toml::to_string(&doc).map_err(|e| ModelError::Unsupported(format!("cannot write the plant scenario: {e}")))?
    );
    let model = Model::new(&text, source.dir.clone())?;
    if model.base.params != full.params || model.base.solver.step != full.solver.step {
        return Err(ModelError::Unsupported(
            "the plant scenario written into the FMU differs from the scenario (a bug in mesobench)".into(),
        ));
    }
    Ok(text)
}

/// Write `key=value` into a parsed scenario document (dotted key, TOML value).
fn set_in_document(doc: &mut toml::Table, arg: &str) -> Result<(), ScenarioError> {
    let bad = |message: &str| ScenarioError::Override { arg: arg.to_string(), message: message.to_string() };
    let (key, value) = arg.split_once('=').ok_or_else(|| bad("expected KEY=VALUE"))?;
    let value: toml::Table =
        toml::from_str(&format!("v = {}", value.trim())).map_err(|_| bad("the value is not a TOML value"))?;
    let value = value.get("v").cloned().ok_or_else(|| bad("the value is not a TOML value"))?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty() || p.contains('"')) {
        return Err(bad("a dotted key without quotes"));
    }
    let (last, path) = parts.split_last().expect("split gives one part");
    let mut t = doc;
    for p in path {
        t = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| bad("a key inside a table"))?;
    }
    t.insert(last.to_string(), value);
    Ok(())
}

impl Model {
    /// The model of a plant scenario (`resources/scenario.toml`); `dir` is
    /// where it lies.
    pub fn new(text: &str, dir: std::path::PathBuf) -> Result<Model, ModelError> {
        let source = Source { name: format!("resources/{RESOURCE_SCENARIO}"), text: text.to_string(), dir };
        let prep = Prepared::new(&source, "plant")?;
        let base = prep.with(&[])?;
        let mut variables = fixed_variables(&base);
        let mut vr = VR_FIRST_PARAMETER;
        for entry in prep.entries(&[])? {
            let Some(p) = registry::find(&entry.key) else { continue };
            let table = entry.key.rsplit_once('.').map(|(t, _)| t).unwrap_or("");
            if !(PLANT_TABLES.contains(&table) || EXTRA_KEYS.contains(&entry.key.as_str())) {
                continue;
            }
            let Some(start) = start_value(&prep, &base, &entry, p) else { continue };
            let (min, max) = match p.kind {
                Kind::Real { min, max } => (Some(min), Some(max)),
                Kind::Integer { min, max } => (Some(min as f64), Some(max as f64)),
                _ => (None, None),
            };
            let items = match p.kind {
                Kind::Choice(names) => names,
                _ => &[],
            };
            let unit = if matches!(p.kind, Kind::Real { .. }) && p.unit.symbol != "—" { p.unit.symbol } else { "" };
            let mut description = p.doc().to_string();
            if !p.note.is_empty() && !matches!(p.kind, Kind::Choice(_)) {
                description = format!("{description} ({})", p.note);
            }
            variables.push(Variable {
                name: entry.key.clone(),
                vr,
                causality: Causality::Parameter,
                description,
                unit,
                start,
                min: min.filter(|x| x.is_finite()),
                max: max.filter(|x| x.is_finite()),
                items,
                param: Some(p),
            });
            vr += 1;
        }
        let token = token(text, &variables);
        Ok(Model { text: text.to_string(), prep, base, variables, token })
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.base.name
    }

    /// The FMI model identifier (a C identifier, also the binary's file stem).
    pub fn model_identifier(&self) -> String {
        let id: String =
            self.base.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
        format!("mesobench_{id}")
    }

    /// The variable with value reference `vr`.
    pub fn variable(&self, vr: u32) -> Option<&Variable> {
        match self.variables.binary_search_by_key(&vr, |v| v.vr) {
            Ok(i) => Some(&self.variables[i]),
            Err(_) => None,
        }
    }

    /// The parameters, in value-reference order.
    pub fn parameters(&self) -> impl Iterator<Item = &Variable> {
        self.variables.iter().filter(|v| v.causality == Causality::Parameter)
    }

    /// The scenario with these parameter values (those equal to their start left unwritten).
    fn scenario_with(&self, values: &[Value]) -> Result<Scenario, String> {
        let sets: Vec<String> =
            self.parameters().zip(values).filter(|(v, x)| **x != v.start).map(|(v, x)| assignment(v, x)).collect();
        self.prep.with(&sets).map_err(|e| match e {
            ScenarioError::Invalid { key, value, allowed, .. } => {
                format!("parameter {key} = {value} is not allowed: {allowed}")
            }
            other => other.to_string(),
        })
    }
}

/// `key=value` for a parameter's value, as the registry reads it.
fn assignment(v: &Variable, x: &Value) -> String {
    match *x {
        Value::Real(r) => set_arg(&v.name, r),
        Value::Integer(i) => format!("{}={i}", v.name),
        Value::Boolean(b) => format!("{}={b}", v.name),
        Value::Enumeration(i) => format!("{}=\"{}\"", v.name, v.items.get(i).copied().unwrap_or("")),
    }
}

/// time, the inputs and the outputs.
fn fixed_variables(base: &Scenario) -> Vec<Variable> {
    let var = |name: &str, vr, causality, description: &str, unit, start| Variable {
        name: name.to_string(),
        vr,
        causality,
        description: description.to_string(),
        unit,
        start,
        min: None,
        max: None,
        items: &[],
        param: None,
    };
    let mut vars = vec![
        var("time", VR_TIME, Causality::Independent, "Simulation time", "s", Value::Real(0.0)),
        Variable {
            min: Some(0.0),
            max: Some(1.0),
            ..var(
                "valve_command",
                VR_VALVE_COMMAND,
                Causality::Input,
                "Valve coil drive: 0 off, 1 full voltage; between them the PWM duty averaged over the step",
                "",
                Value::Real(0.0),
            )
        },
        Variable {
            min: Some(0.0),
            ..var(
                "regulator_setpoint_kpa",
                VR_REGULATOR_SETPOINT,
                Causality::Input,
                "Set pressure of a proportional regulator (supply.regulator = \"proportional\"), gauge; ignored by a mechanical regulator",
                "kPa",
                Value::Real(setpoint_start(base)),
            )
        },
    ];
    for (i, (name, unit, description)) in OUTPUTS.iter().enumerate() {
        vars.push(var(name, VR_FIRST_OUTPUT + i as u32, Causality::Output, description, unit, Value::Real(0.0)));
    }
    vars
}

/// The regulator set pressure at the start, kPa gauge.
fn setpoint_start(sc: &Scenario) -> f64 {
    (sc.params.supply.p_set - sc.params.p_atm) / 1e3
}

/// The start value of a parameter: as written in the scenario, else its
/// declared default, else (a key derived from others) the value the plant
/// uses, provided writing it gives the same plant. None for keys the FMU
/// leaves out: lists, text, and optional features the scenario does not use.
fn start_value(prep: &Prepared, base: &Scenario, entry: &registry::Entry, p: &Param) -> Option<Value> {
    if entry.value.starts_with("(not used") {
        return None;
    }
    let written = entry.origin != "default";
    match p.kind {
        Kind::Real { .. } => {
            if written {
                return prep.number_at(&entry.key).map(Value::Real);
            }
            match p.default {
                Def::Value(v) => Some(Value::Real(v)),
                Def::Derived(_) => derived_start(prep, base, p).map(Value::Real),
                _ => None,
            }
        }
        Kind::Integer { .. } => {
            if written {
                return prep.number_at(&entry.key).map(|x| Value::Integer(x as i64));
            }
            match p.default {
                Def::Int(i) => Some(Value::Integer(i)),
                _ => None,
            }
        }
        Kind::Choice(names) => {
            let name = entry.value.trim_matches('"');
            names.iter().position(|n| *n == name).map(Value::Enumeration)
        }
        Kind::Flag => match entry.value.as_str() {
            "true" => Some(Value::Boolean(true)),
            "false" => Some(Value::Boolean(false)),
            _ => None,
        },
        Kind::Text | Kind::List { .. } | Kind::Table => None,
    }
}

/// The human value of a key derived from others, read back from the plant
/// and kept only when writing it changes nothing.
fn derived_start(prep: &Prepared, base: &Scenario, p: &Param) -> Option<f64> {
    use crate::model::fluid::{water_viscosity_factor, Rheology};
    let sp = &base.params;
    let fluid_factor = || {
        let t = prep.number_at("fluid.temperature_c").unwrap_or(20.0);
        water_viscosity_factor(t + 273.15)
    };
    let si = match p.key {
        "valve.exhaust_c_dm3_per_s_bar" => sp.valve.exhaust.c,
        "valve.exhaust_b" => sp.valve.exhaust.b,
        "syringe.inner_diameter_mm" => (4.0 * sp.syringe.area / std::f64::consts::PI).sqrt(),
        "syringe.fill_ml" => sp.syringe.fill_volume,
        "syringe.dead_space_ml" => sp.syringe.dead_space,
        "needle.inner_diameter_mm" => sp.needles.first()?.diameter,
        "fluid.density_kg_m3" => sp.fluid.density,
        "fluid.viscosity_mpa_s" => match sp.fluid.rheology {
            Rheology::Newtonian { mu } => mu / fluid_factor(),
            _ => return None,
        },
        "fluid.consistency_pa_sn" => match sp.fluid.rheology {
            Rheology::PowerLaw { k, .. } => k / fluid_factor(),
            _ => return None,
        },
        "fluid.flow_index" => match sp.fluid.rheology {
            Rheology::PowerLaw { n, .. } | Rheology::Carreau { n, .. } => n,
            _ => return None,
        },
        "fluid.eta0_pa_s" => match sp.fluid.rheology {
            Rheology::PowerLaw { eta0, .. } | Rheology::Carreau { eta0, .. } => eta0 / fluid_factor(),
            _ => return None,
        },
        "fluid.eta_inf_mpa_s" => match sp.fluid.rheology {
            Rheology::Carreau { eta_inf, .. } => eta_inf / fluid_factor(),
            _ => return None,
        },
        "fluid.lambda_s" => match sp.fluid.rheology {
            Rheology::Carreau { lambda, .. } => lambda,
            _ => return None,
        },
        "tissue.opening_pressure_kpa" => sp.sites.first()?.p_open,
        "tissue.compliance_ul_per_kpa" => sp.sites.first()?.compliance,
        "tissue.resistance_kpa_s_per_ml" => sp.sites.first()?.resistance,
        "tissue.leak_pressure_kpa" => sp.sites.first()?.leak_pressure,
        "tissue.leak_resistance_kpa_s_per_ml" => sp.sites.first()?.leak_resistance,
        "tissue.absorption_time_s" => sp.sites.first()?.absorption_time,
        "tissue.stiffening_volume_ml" => sp.sites.first()?.stiffening_volume,
        "tissue.dissection_pressure_kpa" => sp.sites.first()?.dissection_pressure,
        _ => return None,
    };
    let human = (p.unit.from_si)(si, sp.p_atm);
    // The shortest decimal first (what the preset table holds), then the exact value.
    let rounded: f64 = format!("{human:.12e}").parse().ok()?;
    let rounded: f64 = crate::text::g6(rounded).parse::<f64>().ok().filter(|r| close(*r, human)).unwrap_or(rounded);
    // The conversion back may be a few units in the last place off the default the component computed.
    let mut near = vec![rounded, human];
    let (mut up, mut down) = (human, human);
    for _ in 0..4 {
        up = up.next_up();
        down = down.next_down();
        near.extend([up, down]);
    }
    near.into_iter().find(|v| prep.with(&[set_arg(p.key, *v)]).is_ok_and(|sc| sc.params == base.params))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1e-300)
}

/// A stable hash of the plant scenario and the variable table, as a GUID.
fn token(text: &str, vars: &[Variable]) -> String {
    // FNV-1a, 128 bits from two 64-bit lanes.
    let mut lanes = [0xcbf2_9ce4_8422_2325u64, 0x8422_2325_cbf2_9ce4u64];
    let mut feed = |bytes: &[u8]| {
        for (i, lane) in lanes.iter_mut().enumerate() {
            for &b in bytes {
                *lane ^= b as u64 ^ (i as u64) << 8;
                *lane = lane.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    };
    feed(text.as_bytes());
    for v in vars {
        feed(
            format!("{}|{}|{}|{:?}|{:?}|{:?}|{}", v.name, v.vr, v.unit, v.start, v.min, v.max, v.items.join(","))
                .as_bytes(),
        );
    }
    let h = format!("{:016x}{:016x}", lanes[0], lanes[1]);
    format!("{{{}-{}-{}-{}-{}}}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Where an instance is in the FMI life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Instantiated: parameters may be set.
    Instantiated,
    /// In initialisation mode: parameters may still be set.
    Initializing,
    /// Stepping.
    Stepping,
    /// A step failed or the simulation was terminated: only reset or free.
    Stopped,
}

/// Everything an instance's future depends on ([`Instance::get_state`]).
#[derive(Debug, Clone)]
pub struct State {
    phase: Phase,
    values: Vec<Value>,
    inputs: [f64; 2],
    time: f64,
    last_coil: f64,
    shots: u64,
    plant: Option<(PlantState, Signals, f64)>,
}

/// One simulation of a [`Model`].
#[derive(Debug, Clone)]
pub struct Instance {
    model: Model,
    phase: Phase,
    values: Vec<Value>,
    inputs: [f64; 2],
    time: f64,
    sim: Option<Sim>,
}

/// The plant being stepped.
#[derive(Debug, Clone)]
struct Sim {
    sc: Scenario,
    plant: Plant,
    /// Coil drive of the last step (a rising edge starts a shot).
    last_coil: f64,
    /// Shots started.
    shots: u64,
    /// Plunger travel when the liquid compliance was last refreshed.
    z_storage: f64,
}

impl Sim {
    fn new(sc: Scenario) -> Sim {
        let plant = Plant::new(sc.params.clone());
        Sim { sc, plant, last_coil: 0.0, shots: 0, z_storage: 0.0 }
    }
}

impl Instance {
    /// A fresh instance, every parameter at its start.
    pub fn new(model: Model) -> Instance {
        let values = model.parameters().map(|v| v.start).collect();
        let inputs = [0.0, setpoint_start(&model.base)];
        Instance { model, phase: Phase::Instantiated, values, inputs, time: 0.0, sim: None }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The life-cycle phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Back to a fresh instance (FMI reset).
    pub fn reset(&mut self) {
        self.values = self.model.parameters().map(|v| v.start).collect();
        self.inputs = [0.0, setpoint_start(&self.model.base)];
        self.time = 0.0;
        self.sim = None;
        self.phase = Phase::Instantiated;
    }

    /// Set the start time and enter initialisation mode.
    pub fn enter_initialization(&mut self, start_time: f64) -> Result<(), String> {
        if self.phase != Phase::Instantiated {
            return Err(format!("cannot enter initialisation mode from {:?}", self.phase));
        }
        if !start_time.is_finite() {
            return Err(format!("start time {start_time} is not a finite number"));
        }
        self.time = start_time;
        self.phase = Phase::Initializing;
        Ok(())
    }

    /// Apply the parameters (through the registry) and build the plant at rest.
    pub fn exit_initialization(&mut self) -> Result<(), String> {
        if self.phase != Phase::Initializing {
            return Err(format!("cannot exit initialisation mode from {:?}", self.phase));
        }
        self.build()?;
        self.phase = Phase::Stepping;
        Ok(())
    }

    fn build(&mut self) -> Result<(), String> {
        if self.sim.is_none() {
            let sc = self.model.scenario_with(&self.values)?;
            self.sim = Some(Sim::new(sc));
        }
        Ok(())
    }

    /// End of the simulation.
    pub fn terminate(&mut self) {
        self.phase = Phase::Stopped;
    }

    /// Set a variable. Parameters only before initialisation ends.
    pub fn set(&mut self, vr: u32, x: Value) -> Result<(), String> {
        let v = self.model.variable(vr).ok_or_else(|| format!("no variable has value reference {vr}"))?;
        match v.causality {
            Causality::Input => {
                let Value::Real(r) = x else { return Err(format!("{} is a real variable", v.name)) };
                if !r.is_finite() {
                    return Err(format!("{} = {r} is not allowed: a finite number", v.name));
                }
                self.inputs[(vr - VR_VALVE_COMMAND) as usize] = r;
                Ok(())
            }
            Causality::Parameter => {
                if !matches!(self.phase, Phase::Instantiated | Phase::Initializing) {
                    return Err(format!(
                        "{} is a parameter: it can be set only before initialisation ends (reset the instance to change it)",
                        v.name
                    ));
                }
                check_value(v, &x)?;
                let i = (vr - VR_FIRST_PARAMETER) as usize;
                if self.values[i] != x {
                    self.values[i] = x;
                    self.sim = None;
                }
                Ok(())
            }
            Causality::Output | Causality::Independent => Err(format!("{} cannot be set", v.name)),
        }
    }

    /// The value of a variable. Outputs before initialisation ends are those of the plant at rest.
    pub fn get(&mut self, vr: u32) -> Result<Value, String> {
        let v = self.model.variable(vr).ok_or_else(|| format!("no variable has value reference {vr}"))?;
        match v.causality {
            Causality::Independent => Ok(Value::Real(self.time)),
            Causality::Input => Ok(Value::Real(self.inputs[(vr - VR_VALVE_COMMAND) as usize])),
            Causality::Parameter => Ok(self.values[(vr - VR_FIRST_PARAMETER) as usize]),
            Causality::Output => {
                self.build()?;
                let plant = &self.sim.as_ref().expect("built").plant;
                Ok(Value::Real(output(plant, (vr - VR_FIRST_OUTPUT) as usize)))
            }
        }
    }

    /// Advance from `t` by `h` seconds with the inputs held, in steps of at
    /// most `solver.step_us`; quiet stretches with the valve off are
    /// skipped in closed form, as `mesobench run` does.
    pub fn do_step(&mut self, t: f64, h: f64) -> Result<(), String> {
        if self.phase != Phase::Stepping {
            return Err(format!("doStep is allowed after initialisation only (the instance is {:?})", self.phase));
        }
        if !(h > 0.0 && h.is_finite()) {
            return Err(format!("communication step size {h} is not allowed: a positive number"));
        }
        let coil = self.inputs[0];
        if !(0.0..=1.0).contains(&coil) {
            return Err(format!("valve_command = {coil} is not allowed: a number from 0 to 1"));
        }
        let sim = self.sim.as_mut().expect("built at initialisation");
        let result = sim.advance(t, h, coil, self.inputs[1]);
        self.time = t + h;
        if result.is_err() {
            self.phase = Phase::Stopped;
        }
        result
    }

    /// The instance's state (FMI get FMU state).
    pub fn get_state(&self) -> State {
        State {
            phase: self.phase,
            values: self.values.clone(),
            inputs: self.inputs,
            time: self.time,
            last_coil: self.sim.as_ref().map(|s| s.last_coil).unwrap_or(0.0),
            shots: self.sim.as_ref().map(|s| s.shots).unwrap_or(0),
            plant: self.sim.as_ref().map(|s| (s.plant.state.clone(), s.plant.signals.clone(), s.z_storage)),
        }
    }

    /// Return to a saved state (FMI set FMU state).
    pub fn set_state(&mut self, st: &State) -> Result<(), String> {
        if st.values.len() != self.values.len() {
            return Err("the FMU state belongs to another model".into());
        }
        self.values.clone_from(&st.values);
        self.sim = None;
        if let Some((ps, sig, z_storage)) = &st.plant {
            self.build()?;
            let sim = self.sim.as_mut().expect("built");
            if ps.q_needle.len() != sim.plant.state.q_needle.len() || ps.line_p.len() != sim.plant.state.line_p.len() {
                return Err("the FMU state does not fit the plant (needle count or line segments)".into());
            }
            // The liquid compliance as it was refreshed, then the state itself.
            sim.plant.state.z = *z_storage;
            sim.plant.refresh_storage();
            sim.plant.restore_state(ps);
            sim.plant.signals.clone_from(sig);
            sim.z_storage = *z_storage;
            sim.last_coil = st.last_coil;
            sim.shots = st.shots;
        }
        self.phase = st.phase;
        self.inputs = st.inputs;
        self.time = st.time;
        Ok(())
    }
}

impl Sim {
    fn advance(&mut self, t: f64, h: f64, coil: f64, setpoint_kpa: f64) -> Result<(), String> {
        let plant = &mut self.plant;
        let pa = plant.params.p_atm;
        if coil > 0.0 && self.last_coil == 0.0 {
            // A new shot, as a session starts one: fresh sites, the liquid
            // compliance for the current fill.
            if self.shots > 0 && plant.params.new_site_each_shot {
                plant.new_sites();
            }
            plant.refresh_storage();
            self.z_storage = plant.state.z;
            self.shots += 1;
        }
        self.last_coil = coil;
        let proportional = plant.params.supply.proportional;
        let setpoint = if proportional { setpoint_kpa * 1e3 + pa } else { f64::NAN };
        let steady_setpoint = !proportional || setpoint.clamp(pa, plant.params.supply.p_set_max) == plant.state.p_set;
        plant.state.t = t;
        if coil == 0.0 && steady_setpoint && quiescent(plant) {
            fast_forward(plant, t + h);
            return Ok(());
        }
        let step = self.sc.solver.step;
        let n = ((h / step) - 1e-9).ceil().max(1.0) as u64;
        let dt = h / n as f64;
        let drive = Drive { coil, regulator_setpoint: setpoint, force: 0.0, force_damping: 0.0 };
        for j in 0..n {
            plant.advance(&drive, dt);
            plant.state.t = t + (j + 1) as f64 * dt;
        }
        plant.check().map_err(|e| e.to_string())
    }
}

/// The value of output `i` ([`OUTPUTS`]) in its unit.
pub fn output(plant: &Plant, i: usize) -> f64 {
    let s = crate::sim::trace::sample(plant, 0.0, &crate::control::FwOutput::default());
    match i {
        0 => s.delivered * 1e9,
        1 => s.leaked * 1e9,
        2 => s.supply / 1e3,
        3 => s.chamber / 1e3,
        4 => s.syringe / 1e3,
        5 => s.tissue / 1e3,
        6 => s.flow * 1e9,
        7 => s.plunger * 1e3,
        8 => s.coil_current,
        _ => s.opening,
    }
}

/// A value against the parameter's kind and range (the whole scenario is checked at initialisation).
fn check_value(v: &Variable, x: &Value) -> Result<(), String> {
    let label = v.param.map(|p| p.unit.label).unwrap_or("");
    let range = || match (v.min, v.max) {
        (Some(lo), Some(hi)) => {
            format!("from {} to {}", crate::model::param::fmt_num(lo), crate::model::param::fmt_num(hi))
        }
        (Some(lo), None) => format!("from {}", crate::model::param::fmt_num(lo)),
        _ => "finite".into(),
    };
    let bad = |shown: String, allowed: String| Err(format!("parameter {} = {shown} is not allowed: {allowed}", v.name));
    match (*x, v.start) {
        (Value::Real(r), Value::Real(_)) => {
            if !r.is_finite() || v.min.is_some_and(|lo| r < lo) || v.max.is_some_and(|hi| r > hi) {
                return bad(
                    crate::model::param::fmt_num(r),
                    format!("a number {} {label}", range()).trim_end().to_string(),
                );
            }
            Ok(())
        }
        (Value::Integer(i), Value::Integer(_)) => {
            if v.min.is_some_and(|lo| (i as f64) < lo) || v.max.is_some_and(|hi| (i as f64) > hi) {
                return bad(i.to_string(), format!("a whole number {}", range()));
            }
            Ok(())
        }
        (Value::Enumeration(i), Value::Enumeration(_)) => {
            if i >= v.items.len() {
                return bad(
                    format!("item {}", i + 1),
                    format!(
                        "one of {}",
                        v.items
                            .iter()
                            .enumerate()
                            .map(|(k, n)| format!("{} ({n})", k + 1))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            Ok(())
        }
        (Value::Boolean(_), Value::Boolean(_)) => Ok(()),
        _ => Err(format!("parameter {} has another type", v.name)),
    }
}

/// The byte layout of a serialised state: a tag, then every number little-endian.
const STATE_TAG: &[u8; 8] = b"MBFMUST1";

impl State {
    /// The state as bytes (FMI serialise FMU state).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Bytes::default();
        w.0.extend_from_slice(STATE_TAG);
        w.u(match self.phase {
            Phase::Instantiated => 0,
            Phase::Initializing => 1,
            Phase::Stepping => 2,
            Phase::Stopped => 3,
        });
        w.u(self.values.len() as u64);
        for v in &self.values {
            match *v {
                Value::Real(r) => {
                    w.u(0);
                    w.f(r)
                }
                Value::Integer(i) => {
                    w.u(1);
                    w.u(i as u64)
                }
                Value::Boolean(b) => {
                    w.u(2);
                    w.u(b as u64)
                }
                Value::Enumeration(e) => {
                    w.u(3);
                    w.u(e as u64)
                }
            }
        }
        w.f(self.inputs[0]);
        w.f(self.inputs[1]);
        w.f(self.time);
        w.f(self.last_coil);
        w.u(self.shots);
        match &self.plant {
            None => w.u(0),
            Some((s, g, z)) => {
                w.u(1);
                write_plant(&mut w, s, g, *z);
            }
        }
        w.0
    }

    /// A state from [`State::to_bytes`] (FMI de-serialise FMU state).
    pub fn from_bytes(bytes: &[u8]) -> Result<State, String> {
        let bad = || "not a serialised state of this FMU".to_string();
        let body = bytes.strip_prefix(STATE_TAG.as_slice()).ok_or_else(bad)?;
        let mut r = Unbytes(body);
        let phase = match r.u()? {
            0 => Phase::Instantiated,
            1 => Phase::Initializing,
            2 => Phase::Stepping,
            3 => Phase::Stopped,
            _ => return Err(bad()),
        };
        let n = r.u()? as usize;
        if n > body.len() {
            return Err(bad());
        }
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(match r.u()? {
                0 => Value::Real(r.f()?),
                1 => Value::Integer(r.u()? as i64),
                2 => Value::Boolean(r.u()? != 0),
                3 => Value::Enumeration(r.u()? as usize),
                _ => return Err(bad()),
            });
        }
        let inputs = [r.f()?, r.f()?];
        let time = r.f()?;
        let last_coil = r.f()?;
        let shots = r.u()?;
        let plant = match r.u()? {
            0 => None,
            1 => Some(read_plant(&mut r)?),
            _ => return Err(bad()),
        };
        if !r.0.is_empty() {
            return Err(bad());
        }
        Ok(State { phase, values, inputs, time, last_coil, shots, plant })
    }
}

/// The plant part of a serialised state.
fn write_plant(w: &mut Bytes, s: &PlantState, g: &Signals, z: f64) {
    w.f(z);
    for x in [s.t, s.p_set, s.p_reg, s.p_res] {
        w.f(x);
    }
    let v = &s.valve;
    for x in [v.current, v.x, v.v, v.opening, v.since_edge] {
        w.f(x);
    }
    w.u(v.last_cmd as u64);
    w.list(&s.line_p);
    w.list(&s.line_w);
    for x in [s.p_c, s.t_c, s.x_p, s.v_p] {
        w.f(x);
    }
    w.u(s.stuck as u64);
    for x in [s.z, s.w_syr, s.p_s, s.q_tube, s.w_hub, s.p_hub] {
        w.f(x);
    }
    w.list(&s.q_needle);
    w.list(&s.v_bleb);
    w.f(s.expelled);
    w.list(&s.delivered);
    w.list(&s.leaked);
    w.f(s.supply_mass);
    w.u(s.syringe_empty as u64);
    w.f(g.q_valve_in);
    w.f(g.q_valve_ex);
    w.u(g.inlet_choked as u64);
    w.list(&g.p_site);
    w.list(&g.re);
    w.list(&g.q_leak);
    w.u(g.extrapolated as u64);
    for x in [g.line_mach, g.q_total, g.delivered_total] {
        w.f(x);
    }
    w.u(g.breakaway as u64);
}

/// The plant part of a serialised state.
fn read_plant(r: &mut Unbytes) -> Result<(PlantState, Signals, f64), String> {
    let z = r.f()?;
    let (t, p_set, p_reg, p_res) = (r.f()?, r.f()?, r.f()?, r.f()?);
    let valve = crate::model::valve::ValveState {
        current: r.f()?,
        x: r.f()?,
        v: r.f()?,
        opening: r.f()?,
        since_edge: r.f()?,
        last_cmd: r.u()? != 0,
    };
    let (line_p, line_w) = (r.list()?, r.list()?);
    let (p_c, t_c, x_p, v_p) = (r.f()?, r.f()?, r.f()?, r.f()?);
    let stuck = r.u()? != 0;
    let (z_p, w_syr, p_s, q_tube, w_hub, p_hub) = (r.f()?, r.f()?, r.f()?, r.f()?, r.f()?, r.f()?);
    let (q_needle, v_bleb) = (r.list()?, r.list()?);
    let expelled = r.f()?;
    let (delivered, leaked) = (r.list()?, r.list()?);
    let supply_mass = r.f()?;
    let syringe_empty = r.u()? != 0;
    let state = PlantState {
        t,
        p_set,
        p_reg,
        p_res,
        valve,
        line_p,
        line_w,
        p_c,
        t_c,
        x_p,
        v_p,
        stuck,
        z: z_p,
        w_syr,
        p_s,
        q_tube,
        w_hub,
        p_hub,
        q_needle,
        v_bleb,
        expelled,
        delivered,
        leaked,
        supply_mass,
        syringe_empty,
    };
    let signals = Signals {
        q_valve_in: r.f()?,
        q_valve_ex: r.f()?,
        inlet_choked: r.u()? != 0,
        p_site: r.list()?,
        re: r.list()?,
        q_leak: r.list()?,
        extrapolated: r.u()? != 0,
        line_mach: r.f()?,
        q_total: r.f()?,
        delivered_total: r.f()?,
        breakaway: r.u()? != 0,
    };
    Ok((state, signals, z))
}

#[derive(Default)]
struct Bytes(Vec<u8>);

impl Bytes {
    fn u(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn f(&mut self, x: f64) {
        self.0.extend_from_slice(&x.to_bits().to_le_bytes());
    }
    fn list(&mut self, xs: &[f64]) {
        self.u(xs.len() as u64);
        for x in xs {
            self.f(*x);
        }
    }
}

struct Unbytes<'a>(&'a [u8]);

impl Unbytes<'_> {
    fn u(&mut self) -> Result<u64, String> {
        if self.0.len() < 8 {
            return Err("a serialised FMU state that ends early".into());
        }
        let (head, rest) = self.0.split_at(8);
        self.0 = rest;
        Ok(u64::from_le_bytes(head.try_into().expect("8 bytes")))
    }
    fn f(&mut self) -> Result<f64, String> {
        self.u().map(f64::from_bits)
    }
    fn list(&mut self) -> Result<Vec<f64>, String> {
        let n = self.u()? as usize;
        if n > self.0.len() / 8 {
            return Err("a serialised FMU state that ends early".into());
        }
        (0..n).map(|_| self.f()).collect()
    }
}
