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

mod instance;
pub mod package;
mod state;
pub mod xml;

pub use self::instance::{output, Instance, Phase};
pub use self::state::State;

use crate::model::param::{Def, Kind, Param};
use crate::scenario::{registry, set_arg, Prepared, Scenario, ScenarioError, Source};

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
