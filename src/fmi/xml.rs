//! `modelDescription.xml` for FMI 2.0 and FMI 3.0, generated from a [`Model`].

use super::{Causality, Model, Value, Variable, Version};
use std::fmt::Write;

/// An attribute value with the five XML specials escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// A real as xs:double (shortest text that reads back to the same number).
fn num(x: f64) -> String {
    format!("{x:?}")
}

/// The model description of `model` for `version`.
pub fn model_description(model: &Model, version: Version) -> String {
    match version {
        Version::Fmi2 => fmi2(model),
        Version::Fmi3 => fmi3(model),
    }
}

fn header(model: &Model, version: &str, token_attr: &str) -> String {
    let sc = &model.base;
    let description = if sc.description.is_empty() {
        format!("mesobench plant of scenario '{}'", sc.name)
    } else {
        format!("mesobench plant: {}", sc.description)
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<fmiModelDescription fmiVersion=\"{version}\" modelName=\"{}\" {token_attr}=\"{}\" description=\"{}\" author=\"mesobench\" version=\"{}\" generationTool=\"mesobench {}\" variableNamingConvention=\"structured\"",
        esc(&model.model_identifier()),
        esc(&model.token),
        esc(&description),
        crate::VERSION,
        crate::VERSION
    )
}

/// Distinct units in order of first use.
fn units(model: &Model) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for v in &model.variables {
        if !v.unit.is_empty() && !out.contains(&v.unit) {
            out.push(v.unit);
        }
    }
    out
}

fn enumerations(model: &Model) -> impl Iterator<Item = &Variable> {
    model.variables.iter().filter(|v| matches!(v.start, Value::Enumeration(_)))
}

fn default_experiment(model: &Model) -> String {
    let sc = &model.base;
    format!(
        "  <DefaultExperiment startTime=\"0.0\" stopTime=\"{}\" stepSize=\"{}\"/>\n",
        num(sc.session.period),
        num(sc.solver.tick)
    )
}

const LOG_CATEGORIES: [(&str, &str); 3] = [
    ("logStatusError", "Errors: a refused value, a failed step, a call out of order"),
    ("logStatusWarning", "Warnings"),
    ("logEvents", "Information on initialisation and reset"),
];

fn fmi2(model: &Model) -> String {
    let mut x = header(model, "2.0", "guid");
    x.push_str(" numberOfEventIndicators=\"0\">\n");
    let _ = writeln!(
        x,
        "  <CoSimulation modelIdentifier=\"{}\" needsExecutionTool=\"false\" canHandleVariableCommunicationStepSize=\"true\" canInterpolateInputs=\"false\" maxOutputDerivativeOrder=\"0\" canRunAsynchronuously=\"false\" canBeInstantiatedOnlyOncePerProcess=\"false\" canNotUseMemoryManagementFunctions=\"true\" canGetAndSetFMUstate=\"true\" canSerializeFMUstate=\"true\" providesDirectionalDerivative=\"false\"/>",
        esc(&model.model_identifier())
    );
    x.push_str("  <UnitDefinitions>\n");
    for u in units(model) {
        let _ = writeln!(x, "    <Unit name=\"{}\"/>", esc(u));
    }
    x.push_str("  </UnitDefinitions>\n");
    let enums: Vec<&Variable> = enumerations(model).collect();
    if !enums.is_empty() {
        x.push_str("  <TypeDefinitions>\n");
        for v in &enums {
            let _ = writeln!(x, "    <SimpleType name=\"{}\">\n      <Enumeration>", esc(&v.name));
            for (i, item) in v.items.iter().enumerate() {
                let _ = writeln!(x, "        <Item name=\"{}\" value=\"{}\"/>", esc(item), i + 1);
            }
            x.push_str("      </Enumeration>\n    </SimpleType>\n");
        }
        x.push_str("  </TypeDefinitions>\n");
    }
    x.push_str("  <LogCategories>\n");
    for (name, d) in LOG_CATEGORIES {
        let _ = writeln!(x, "    <Category name=\"{name}\" description=\"{}\"/>", esc(d));
    }
    x.push_str("  </LogCategories>\n");
    x.push_str(&default_experiment(model));
    x.push_str("  <ModelVariables>\n");
    let mut outputs = Vec::new();
    for (i, v) in model.variables.iter().enumerate() {
        let (causality, variability) = match v.causality {
            Causality::Independent => ("independent", "continuous"),
            Causality::Input => ("input", "continuous"),
            Causality::Output => ("output", "continuous"),
            Causality::Parameter => ("parameter", "fixed"),
        };
        if v.causality == Causality::Output {
            outputs.push(i + 1);
        }
        let initial = if v.causality == Causality::Parameter { " initial=\"exact\"" } else { "" };
        let _ = writeln!(
            x,
            "    <!-- {} -->\n    <ScalarVariable name=\"{}\" valueReference=\"{}\" description=\"{}\" causality=\"{causality}\" variability=\"{variability}\"{initial}>",
            i + 1,
            esc(&v.name),
            v.vr,
            esc(&v.description)
        );
        let start = matches!(v.causality, Causality::Input | Causality::Parameter);
        let _ = writeln!(x, "      {}", type_element(v, start, Version::Fmi2));
        x.push_str("    </ScalarVariable>\n");
    }
    x.push_str("  </ModelVariables>\n  <ModelStructure>\n    <Outputs>\n");
    for i in &outputs {
        let _ = writeln!(x, "      <Unknown index=\"{i}\" dependencies=\"\"/>");
    }
    x.push_str("    </Outputs>\n    <InitialUnknowns>\n");
    for i in &outputs {
        let _ = writeln!(x, "      <Unknown index=\"{i}\"/>");
    }
    x.push_str("    </InitialUnknowns>\n  </ModelStructure>\n</fmiModelDescription>\n");
    x
}

/// The attributes every type element shares: start, unit, min, max (FMI 2: `<Real …/>`; FMI 3: on the variable).
fn value_attributes(v: &Variable, start: bool) -> String {
    let mut a = String::new();
    if let Value::Enumeration(_) = v.start {
        let _ = write!(a, " declaredType=\"{}\"", esc(&v.name));
    }
    if start {
        let s = match v.start {
            Value::Real(r) => num(r),
            Value::Integer(i) => i.to_string(),
            Value::Boolean(b) => b.to_string(),
            Value::Enumeration(i) => (i + 1).to_string(),
        };
        let _ = write!(a, " start=\"{s}\"");
    }
    if !v.unit.is_empty() {
        let _ = write!(a, " unit=\"{}\"", esc(v.unit));
    }
    let int = matches!(v.start, Value::Integer(_));
    let shown = |x: f64| if int { format!("{}", x as i64) } else { num(x) };
    if let Some(lo) = v.min {
        let _ = write!(a, " min=\"{}\"", shown(lo));
    }
    if let Some(hi) = v.max {
        let _ = write!(a, " max=\"{}\"", shown(hi));
    }
    a
}

fn type_element(v: &Variable, start: bool, version: Version) -> String {
    let name = match (v.start, version) {
        (Value::Real(_), _) => "Real",
        (Value::Integer(_), _) => "Integer",
        (Value::Boolean(_), _) => "Boolean",
        (Value::Enumeration(_), _) => "Enumeration",
    };
    format!("<{name}{}/>", value_attributes(v, start))
}

fn fmi3(model: &Model) -> String {
    let mut x = header(model, "3.0", "instantiationToken");
    x.push_str(">\n");
    let _ = writeln!(
        x,
        "  <CoSimulation modelIdentifier=\"{}\" needsExecutionTool=\"false\" canBeInstantiatedOnlyOncePerProcess=\"false\" canGetAndSetFMUState=\"true\" canSerializeFMUState=\"true\" providesDirectionalDerivatives=\"false\" providesAdjointDerivatives=\"false\" canHandleVariableCommunicationStepSize=\"true\" maxOutputDerivativeOrder=\"0\" providesIntermediateUpdate=\"false\" mightReturnEarlyFromDoStep=\"false\" canReturnEarlyAfterIntermediateUpdate=\"false\" hasEventMode=\"false\" providesEvaluateDiscreteStates=\"false\"/>",
        esc(&model.model_identifier())
    );
    x.push_str("  <UnitDefinitions>\n");
    for u in units(model) {
        let _ = writeln!(x, "    <Unit name=\"{}\"/>", esc(u));
    }
    x.push_str("  </UnitDefinitions>\n");
    let enums: Vec<&Variable> = enumerations(model).collect();
    if !enums.is_empty() {
        x.push_str("  <TypeDefinitions>\n");
        for v in &enums {
            let _ = writeln!(x, "    <EnumerationType name=\"{}\">", esc(&v.name));
            for (i, item) in v.items.iter().enumerate() {
                let _ = writeln!(x, "      <Item name=\"{}\" value=\"{}\"/>", esc(item), i + 1);
            }
            x.push_str("    </EnumerationType>\n");
        }
        x.push_str("  </TypeDefinitions>\n");
    }
    x.push_str("  <LogCategories>\n");
    for (name, d) in LOG_CATEGORIES {
        let _ = writeln!(x, "    <Category name=\"{name}\" description=\"{}\"/>", esc(d));
    }
    x.push_str("  </LogCategories>\n");
    x.push_str(&default_experiment(model));
    x.push_str("  <ModelVariables>\n");
    for v in &model.variables {
        let element = match v.start {
            Value::Real(_) => "Float64",
            Value::Integer(_) => "Int32",
            Value::Boolean(_) => "Boolean",
            Value::Enumeration(_) => "Enumeration",
        };
        let (causality, variability) = match v.causality {
            Causality::Independent => ("independent", "continuous"),
            Causality::Input => ("input", if element == "Float64" { "continuous" } else { "discrete" }),
            Causality::Output => ("output", "continuous"),
            Causality::Parameter => ("parameter", "fixed"),
        };
        let start = matches!(v.causality, Causality::Input | Causality::Parameter);
        let _ = writeln!(
            x,
            "    <{element} name=\"{}\" valueReference=\"{}\" description=\"{}\" causality=\"{causality}\" variability=\"{variability}\"{}/>",
            esc(&v.name),
            v.vr,
            esc(&v.description),
            value_attributes(v, start)
        );
    }
    x.push_str("  </ModelVariables>\n  <ModelStructure>\n");
    let outputs: Vec<&Variable> = model.variables.iter().filter(|v| v.causality == Causality::Output).collect();
    for v in &outputs {
        let _ = writeln!(x, "    <Output valueReference=\"{}\" dependencies=\"\"/>", v.vr);
    }
    for v in &outputs {
        let _ = writeln!(x, "    <InitialUnknown valueReference=\"{}\"/>", v.vr);
    }
    x.push_str("  </ModelStructure>\n</fmiModelDescription>\n");
    x
}
