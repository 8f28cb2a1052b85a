//! The parameter registry: one declaration per key drives validation, the
//! defaults and the generated reference.

use mesobench::model::param::{Def, Kind};
use mesobench::scenario::{registry, Prepared, Source};

#[test]
fn docs_parameters_md_is_what_mesobench_docs_writes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/parameters.md");
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(on_disk == registry::markdown(), "docs/parameters.md is stale: run `cargo run -- docs` and commit it");
}

#[test]
fn every_declared_default_lies_in_its_own_range() {
    for p in registry::params() {
        match (p.kind, p.default) {
            (Kind::Real { min, max }, Def::Value(v)) => assert!((min..=max).contains(&v), "{}: {v}", p.key),
            (Kind::Integer { min, max }, Def::Int(v)) => assert!((min..=max).contains(&v), "{}: {v}", p.key),
            (Kind::Choice(names), Def::Text(t)) => assert!(names.contains(&t), "{}: {t}", p.key),
            (Kind::Real { .. }, Def::Derived(_) | Def::None(_)) => {}
            (Kind::Integer { .. } | Kind::Choice(_), d) => panic!("{}: default {d:?}", p.key),
            _ => {}
        }
    }
}

#[test]
fn every_numeric_default_names_its_source() {
    let missing: Vec<&str> = registry::params()
        .filter(|p| matches!(p.default, Def::Value(_) | Def::Int(_)))
        .filter(|p| p.source.trim().is_empty() || p.source == "—")
        .map(|p| p.key)
        .collect();
    assert!(missing.is_empty(), "defaults without a source: {missing:?}");
}

#[test]
fn writing_a_declared_default_changes_nothing() {
    // The declaration is the default the model uses: the same scenario
    // whether the key is absent or written with its declared default.
    let empty = Source { name: "<empty>".into(), text: String::new(), dir: ".".into() };
    let prep = Prepared::new(&empty, "empty").expect("an empty scenario is the defaults");
    let mut checked = 0;
    for key in registry::numeric_keys() {
        let p = registry::find(&key).expect("declared");
        let arg = match p.default {
            Def::Value(v) => format!("{key}={v:?}"),
            Def::Int(v) => format!("{key}={v}"),
            _ => continue,
        };
        // Keys of optional tables create the table; keys of another firmware
        // or valve model are read only with that model: compare on it.
        let mut sets = match key.split('.').next() {
            Some("tubing") => vec!["tubing.length_mm=150".to_string()],
            Some("supply") if key.contains("reservoir") => vec!["supply.reservoir_volume_ml=50".to_string()],
            Some("solver") if key == "solver.tolerance" => vec!["solver.mode=\"adaptive\"".to_string()],
            _ => vec![],
        };
        let reference = serde_json::to_string(&prep.with(&sets).expect("valid")).expect("json");
        sets.push(arg.clone());
        let with = serde_json::to_string(&prep.with(&sets).expect(&arg)).expect("json");
        assert_eq!(with, reference, "{arg}");
        checked += 1;
    }
    assert!(checked > 60, "{checked}");
}

#[test]
fn a_key_of_every_pressure_sensor_is_found_by_its_generic_declaration() {
    for s in ["supply", "chamber", "syringe"] {
        let p = registry::find(&format!("sensors.{s}.bits")).expect("declared");
        assert_eq!(p.key, "sensors.*.bits");
    }
    assert!(registry::find("sensors.piston.bits").is_none());
    assert!(registry::find("supply.presure_bar").is_none());
    assert_eq!(registry::closest("supply.presure_bar").first().map(String::as_str), Some("supply.pressure_bar"));
}

#[test]
fn a_mistyped_study_key_names_the_declared_key_it_resembles() {
    let src = Source {
        name: "typo.toml".into(),
        text: "[sweep]\n[sweep.parameters]\n\"supply.presure_bar\" = [2.0, 3.0]\n".into(),
        dir: ".".into(),
    };
    let e = mesobench::scenario::load(&src, &[], "typo").expect_err("a key that does not exist").to_string();
    assert!(e.contains("typo.toml:3:"), "{e}");
    assert!(e.contains("did you mean supply.pressure_bar?"), "{e}");
    let src = Source { text: "[sweep]\n[sweep.parameters]\n\"fluid.preset\" = [1.0, 2.0]\n".into(), ..src };
    let e = mesobench::scenario::load(&src, &[], "typo").expect_err("a key that is not a number").to_string();
    assert!(e.contains("fluid.preset is not a number"), "{e}");
}

#[test]
fn an_integer_key_is_known_from_its_declaration() {
    use mesobench::scenario::is_integer_key;
    for key in ["session.shots", "line.segments", "needle.gauge", "needle.count", "sensors.chamber.bits", "seed"] {
        assert!(is_integer_key(key), "{key}");
    }
    assert!(!is_integer_key("supply.pressure_bar"));
    assert!(!is_integer_key("fluid.preset"));
}

#[test]
fn check_params_lists_each_key_in_its_unit_with_where_it_was_set() {
    let src = Source { name: "gun.toml".into(), text: "[supply]\npressure_bar = 2.5\n".into(), dir: ".".into() };
    let prep = Prepared::new(&src, "gun").expect("valid");
    let entries = prep.entries(&["valve.b=0.4".to_string()]).expect("valid");
    let find = |k: &str| entries.iter().find(|e| e.key == k).unwrap_or_else(|| panic!("{k} listed"));
    let p = find("supply.pressure_bar");
    assert_eq!((p.value.as_str(), p.unit, p.origin.as_str()), ("2.5", "bar(g)", "gun.toml:2:16"));
    let b = find("valve.b");
    assert_eq!((b.value.as_str(), b.origin.as_str()), ("0.4", "--set valve.b=0.4"));
    let tau = find("supply.regulator_tau_ms");
    assert_eq!((tau.value.as_str(), tau.unit, tau.origin.as_str()), ("20", "ms", "default"));
    assert!(entries.iter().any(|e| e.key == "sensors.chamber.bits"));
    assert!(!entries.iter().any(|e| e.key == "sensors.chamber"), "sub-tables are not keys");
}

#[test]
fn check_params_prints_each_value_in_si_next_to_its_human_unit() {
    // 2.5 bar gauge at a 95 kPa ambient is 345,000 Pa absolute, as simulated.
    let text = "[ambient]\npressure_kpa = 95\n[supply]\npressure_bar = 2.5\n";
    let src = Source { name: "gun.toml".into(), text: text.into(), dir: ".".into() };
    let prep = Prepared::new(&src, "gun").expect("valid");
    let entries = prep.entries(&[]).expect("valid");
    let find = |k: &str| entries.iter().find(|e| e.key == k).unwrap_or_else(|| panic!("{k} listed"));
    assert_eq!(find("supply.pressure_bar").si, "345000 Pa (absolute)");
    assert_eq!(find("supply.regulator_tau_ms").si, "0.02 s", "a default converts too");
    assert_eq!(find("ambient.pressure_kpa").si, "95000 Pa");
    assert_eq!(find("fluid.preset").si, "", "texts have no SI value");
    assert_eq!(find("session.shots").si, "", "counts have no unit");
}
