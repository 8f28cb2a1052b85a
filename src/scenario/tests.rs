//! The two routes of an override (registry, document) agree.

use super::*;

/// The scenario a set of overrides gives, as JSON, or its error text.
fn outcome(r: Result<Scenario, ScenarioError>) -> String {
    match r {
        Ok(sc) => serde_json::to_string(&sc).expect("serialisable"),
        Err(e) => format!("error: {e}"),
    }
}

/// Values worth trying for a key: its bounds, its middle, a whole
/// number, a negative zero and values just outside.
fn probes(p: &param::Param) -> Vec<String> {
    match p.kind {
        param::Kind::Real { min, max } => {
            let mid = if max.is_finite() { (min + max) / 2.0 } else { min + 1.0 };
            vec![
                format!("{min:?}"),
                format!("{max:?}"),
                format!("{mid:?}"),
                format!("{}", mid.round() as i64),
                "-0".into(),
                format!("{:?}", min - 1.0),
                format!("{:e}", max * 2.0),
            ]
        }
        param::Kind::Integer { min, max } => {
            let hi = max.min(1_000_000);
            vec![min.to_string(), hi.to_string(), ((min + hi) / 2).to_string(), (min - 1).to_string(), "2.0".into()]
        }
        _ => Vec::new(),
    }
}

#[test]
fn every_numeric_key_reads_the_same_through_the_registry_as_through_toml() {
    let prep = Prepared::new(&Source::default_scenario(), DEFAULT_NAME).expect("the default scenario");
    let mut checked = 0;
    for key in registry::numeric_keys() {
        let p = registry::find(&key).expect("a declared key");
        for v in probes(p) {
            let arg = vec![format!("{key}={v}")];
            let fast = prep.with_numbers(&arg);
            let direct = prep.with_document(&arg).map(|(raw, keys)| {
                let ctx = Checker::new(&prep.source.name, &prep.source.text).with_sets(&keys);
                Scenario::from_raw(raw, &ctx, &prep.source.dir, &prep.fallback)
            });
            let via_toml = match direct {
                Ok(r) => outcome(r),
                Err(e) => outcome(Err(e)),
            };
            if let Some((raw, keys)) = fast {
                let ctx = Checker::new(&prep.source.name, &prep.source.text).with_sets(&keys);
                assert_eq!(
                    outcome(Scenario::from_raw(raw, &ctx, &prep.source.dir, &prep.fallback)),
                    via_toml,
                    "{key}={v}"
                );
                checked += 1;
            }
            assert_eq!(outcome(prep.with(&arg)), via_toml, "{key}={v}");
        }
    }
    assert!(checked > 400, "only {checked} overrides took the registry route");
}

#[test]
fn plain_numbers_take_the_registry_route_and_other_values_the_document() {
    let prep = Prepared::new(&Source::default_scenario(), DEFAULT_NAME).expect("the default scenario");
    let fast = |a: &str| prep.with_numbers(&[a.to_string()]).is_some();
    assert!(fast("supply.pressure_bar=3.5"));
    assert!(fast("supply.pressure_bar=4"));
    assert!(fast("sensors.chamber.bits=10"));
    assert!(fast("tubing.length_mm=120"));
    assert!(fast("seed=7"));
    for other in [
        "supply.pressure_bar=1_000",
        "supply.pressure_bar=inf",
        "supply.pressure_bar=.5",
        "supply.pressure_bar=05",
        "session.shots=2.0",
        "seed=-1",
        "firmware.kind=\"pressure_pid\"",
        "supply.presure_bar=3",
        "\"supply\".pressure_bar=3",
    ] {
        assert!(!fast(other), "{other}");
    }
}
