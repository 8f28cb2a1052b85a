//! Reading a study file: its raw tables, each value checked with the
//! file:line:column it was written at, and the arms it describes.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::tasks::arm_key;
use super::{Arm, ArmKind, DoseSetting, Study, StudyError};
use crate::control::manual::{OperatorParams, PRESETS as OPERATOR_PRESETS};
use crate::scenario::{self, Checker, Prepared, ScenarioError, Source, Uncertain};
use crate::stats::tolerance::Limits;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStudy {
    name: Option<String>,
    description: Option<String>,
    seed: Option<Spanned<i64>>,
    scenario: Option<Spanned<String>>,
    targets_ul: Spanned<Vec<f64>>,
    units: Option<Spanned<i64>>,
    shots: Option<Spanned<i64>>,
    #[serde(default)]
    acceptance: RawAcceptance,
    variability: Option<Spanned<toml::Table>>,
    arm: Vec<RawArm>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcceptance {
    preset: Option<Spanned<String>>,
    alpha_ul: Option<Spanned<f64>>,
    beta: Option<Spanned<f64>>,
    coverage: Option<Spanned<f64>>,
    confidence: Option<Spanned<f64>>,
    bootstrap: Option<Spanned<i64>>,
    interval: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArm {
    name: Spanned<String>,
    kind: Spanned<String>,
    operator: Option<RawOperator>,
    #[serde(default)]
    set: Vec<String>,
    dose_key: Option<Spanned<String>>,
    calibrate_key: Option<Spanned<String>>,
    calibrate_range: Option<Spanned<Vec<f64>>>,
    calibrate_each_unit: Option<bool>,
    variability: Option<Spanned<toml::Table>>,
    hand: Option<Spanned<RawHand>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHand {
    depth_mm: Option<Spanned<f64>>,
    depth_sd_mm: Option<Spanned<f64>>,
    dermis_mm: Option<Spanned<f64>>,
    tilt_deg: Option<Spanned<f64>>,
    tilt_sd_deg: Option<Spanned<f64>>,
    contact: Option<bool>,
    hover_leak_factor: Option<Spanned<f64>>,
}

/// A gun arm's hand (defaults and sources in docs/physics.md, *A gun held by a hand*).
fn hand(raw: &RawHand, c: &Checker, arm: &str) -> Result<super::Hand, StudyError> {
    let k = |name: &str| format!("arm '{arm}' hand.{name}");
    Ok(super::Hand {
        depth: c.spanned_num(&raw.depth_mm, 1.5e-3, &k("depth_mm"), (0.1, 20.0), (1e-3, "mm"))?,
        depth_sd: c.spanned_num(&raw.depth_sd_mm, 0.15e-3, &k("depth_sd_mm"), (0.0, 5.0), (1e-3, "mm"))?,
        dermis: c.spanned_num(&raw.dermis_mm, 2.0e-3, &k("dermis_mm"), (0.5, 5.0), (1e-3, "mm"))?,
        tilt_deg: c.spanned_num(&raw.tilt_deg, 0.0, &k("tilt_deg"), (0.0, 80.0), (1.0, "°"))?,
        tilt_sd_deg: c.spanned_num(&raw.tilt_sd_deg, 10.0, &k("tilt_sd_deg"), (0.0, 45.0), (1.0, "°"))?,
        contact: raw.contact.unwrap_or(true),
        hover_leak_factor: c.spanned_num(
            &raw.hover_leak_factor,
            0.3,
            &k("hover_leak_factor"),
            (0.01, 1.0),
            (1.0, ""),
        )?,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    preset: Option<Spanned<String>>,
    flow_ul_per_s: Option<Spanned<f64>>,
    flow_gsd_between: Option<Spanned<f64>>,
    flow_gsd_within: Option<Spanned<f64>>,
    reaction_ms: Option<Spanned<f64>>,
    reaction_gsd_between: Option<Spanned<f64>>,
    reaction_gsd_within: Option<Spanned<f64>>,
    anticipation: Option<Spanned<f64>>,
    anticipation_sd: Option<Spanned<f64>>,
    graduation_ul: Option<Spanned<f64>>,
    reading_sd_graduations: Option<Spanned<f64>>,
    wall_mm: Option<Spanned<f64>>,
    view_angle_sd_deg: Option<Spanned<f64>>,
    stiffness_n_per_mm: Option<Spanned<f64>>,
    damping_n_s_per_m: Option<Spanned<f64>>,
    preload_n: Option<Spanned<f64>>,
    ramp_ms: Option<Spanned<f64>>,
    release_ms: Option<Spanned<f64>>,
    tremor_rms_n: Option<Spanned<f64>>,
    tremor_hz_lo: Option<Spanned<f64>>,
    tremor_hz_hi: Option<Spanned<f64>>,
    pulses_per_shot: Option<Spanned<f64>>,
    pulse_force_n: Option<Spanned<f64>>,
    pulse_width_ms: Option<Spanned<f64>>,
    pulse_window: Option<Spanned<f64>>,
    drift_mm: Option<Spanned<f64>>,
    drift_gsd: Option<Spanned<f64>>,
    depth_mm: Option<Spanned<f64>>,
    dermis_mm: Option<Spanned<f64>>,
}

/// The `[uncertain]`-style table `t` (named `table` in messages).
fn uncertain(c: &Checker, t: &Spanned<toml::Table>, table: &str) -> Result<Vec<Uncertain>, StudyError> {
    scenario::parse_uncertain(t.get_ref(), table, &|key, value, allowed| c.invalid_at(t.span(), key, value, allowed))
        .map_err(StudyError::Input)
}

fn operator_params(raw: &RawOperator, c: &Checker, arm: &str) -> Result<(String, OperatorParams), StudyError> {
    let preset = raw.preset.as_ref().map(|s| s.get_ref().clone()).unwrap_or_else(|| "experienced".into());
    let mut p = OperatorParams::preset(&preset).ok_or_else(|| {
        StudyError::Input(c.invalid_at(
            raw.preset.as_ref().map(|s| s.span()).unwrap_or(0..0),
            &format!("arm '{arm}' operator.preset"),
            format!("{preset:?}"),
            format!("one of {}", OPERATOR_PRESETS.join(", ")),
        ))
    })?;
    let k = |name: &str| format!("arm '{arm}' operator.{name}");
    // Each key in its unit and range; the preset's value when absent. In
    // this order: the first bad key is the one reported.
    let r = raw;
    let keys = [
        (&mut p.flow, &r.flow_ul_per_s, "flow_ul_per_s", 0.1, 10_000.0, 1e-9, "µL/s"),
        (&mut p.flow_gsd_between, &r.flow_gsd_between, "flow_gsd_between", 1.0, 10.0, 1.0, ""),
        (&mut p.flow_gsd_within, &r.flow_gsd_within, "flow_gsd_within", 1.0, 10.0, 1.0, ""),
        (&mut p.reaction, &r.reaction_ms, "reaction_ms", 0.0, 2000.0, 1e-3, "ms"),
        (&mut p.reaction_gsd_between, &r.reaction_gsd_between, "reaction_gsd_between", 1.0, 10.0, 1.0, ""),
        (&mut p.reaction_gsd_within, &r.reaction_gsd_within, "reaction_gsd_within", 1.0, 10.0, 1.0, ""),
        (&mut p.anticipation, &r.anticipation, "anticipation", 0.0, 1.0, 1.0, ""),
        (&mut p.anticipation_sd, &r.anticipation_sd, "anticipation_sd", 0.0, 1.0, 1.0, ""),
        (&mut p.graduation, &r.graduation_ul, "graduation_ul", 0.1, 1000.0, 1e-9, "µL"),
        (&mut p.reading_sd, &r.reading_sd_graduations, "reading_sd_graduations", 0.0, 5.0, 1.0, "graduations"),
        (&mut p.wall, &r.wall_mm, "wall_mm", 0.0, 5.0, 1e-3, "mm"),
        (&mut p.view_angle_sd, &r.view_angle_sd_deg, "view_angle_sd_deg", 0.0, 45.0, 1f64.to_radians(), "°"),
        (&mut p.stiffness, &r.stiffness_n_per_mm, "stiffness_n_per_mm", 0.05, 1000.0, 1e3, "N/mm"),
        (&mut p.damping, &r.damping_n_s_per_m, "damping_n_s_per_m", 0.0, 10_000.0, 1.0, "N·s/m"),
        (&mut p.preload, &r.preload_n, "preload_n", 0.0, 40.0, 1.0, "N"),
        (&mut p.ramp, &r.ramp_ms, "ramp_ms", 0.1, 10_000.0, 1e-3, "ms"),
        (&mut p.release, &r.release_ms, "release_ms", 0.1, 10_000.0, 1e-3, "ms"),
        (&mut p.tremor_rms, &r.tremor_rms_n, "tremor_rms_n", 0.0, 10.0, 1.0, "N"),
        (&mut p.tremor_hz.0, &r.tremor_hz_lo, "tremor_hz_lo", 0.1, 100.0, 1.0, "Hz"),
        (&mut p.tremor_hz.1, &r.tremor_hz_hi, "tremor_hz_hi", 0.1, 100.0, 1.0, "Hz"),
        (&mut p.pulses, &r.pulses_per_shot, "pulses_per_shot", 0.0, 10.0, 1.0, ""),
        (&mut p.pulse_force, &r.pulse_force_n, "pulse_force_n", 0.0, 40.0, 1.0, "N"),
        (&mut p.pulse_width, &r.pulse_width_ms, "pulse_width_ms", 1.0, 1000.0, 1e-3, "ms"),
        (&mut p.pulse_window, &r.pulse_window, "pulse_window", 0.0, 1.0, 1.0, ""),
        (&mut p.drift, &r.drift_mm, "drift_mm", 0.0, 10.0, 1e-3, "mm"),
        (&mut p.drift_gsd, &r.drift_gsd, "drift_gsd", 1.0, 10.0, 1.0, ""),
        (&mut p.depth, &r.depth_mm, "depth_mm", 0.1, 20.0, 1e-3, "mm"),
        (&mut p.dermis, &r.dermis_mm, "dermis_mm", 0.5, 5.0, 1e-3, "mm"),
    ];
    for (slot, v, name, lo, hi, scale, unit) in keys {
        *slot = c.spanned_num(v, *slot, &k(name), (lo, hi), (scale, unit))?;
    }
    if p.tremor_hz.1 < p.tremor_hz.0 {
        let span = raw.tremor_hz_hi.as_ref().map(|s| s.span()).unwrap_or(0..0);
        return Err(StudyError::Input(c.invalid_at(span, &k("tremor_hz_hi"), p.tremor_hz.1, "at least tremor_hz_lo")));
    }
    Ok((preset, p))
}

/// Load and validate a study file.
pub fn load(path: &Path) -> Result<Study, StudyError> {
    let text = crate::scenario::read_capped(path, "study").map_err(|e| match e {
        crate::scenario::Capped::Io(source) => StudyError::Read { path: path.to_owned(), source },
        crate::scenario::Capped::TooLarge(e) => StudyError::Input(e),
    })?;
    let file = path.display().to_string();
    let raw = parse(&text, &file)?;
    let c = Checker::new(&file, &text);
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("study").to_string();
    let prepared = shared_scenario(&raw, &c, path)?;
    let targets_ul = raw.targets_ul.get_ref();
    if targets_ul.is_empty() || targets_ul.iter().any(|t| !(t.is_finite() && (0.1..=1000.0).contains(t))) {
        return Err(StudyError::Input(c.invalid_at(
            raw.targets_ul.span(),
            "targets_ul",
            format!("{targets_ul:?}"),
            "a non-empty list of doses from 0.1 to 1000 µL",
        )));
    }
    let units = c.spanned_int(&raw.units, 8, "units", 2, 4095)? as usize;
    let shots = c.spanned_int(&raw.shots, 15, "shots", 2, 4095)? as usize;
    let seed = c.spanned_int(&raw.seed, 1, "seed", 0, i64::MAX)? as u64;
    let (preset, limits, bootstrap, interval) = acceptance(&raw.acceptance, &c)?;
    let shared = match &raw.variability {
        Some(t) => uncertain(&c, t, "variability")?,
        None => Vec::new(),
    };
    if raw.arm.is_empty() {
        return Err(StudyError::Input(ScenarioError::Invalid {
            location: file.clone(),
            key: "arm".into(),
            value: "(none)".into(),
            allowed: "at least one [[arm]] table".into(),
        }));
    }
    let (shared_notes, mut arm_notes) = notes(&text);
    let mut arms: Vec<Arm> = Vec::new();
    for (i, ra) in raw.arm.iter().enumerate() {
        let mut arm = arm(ra, &c, &arms)?;
        arm.notes = std::mem::take(arm_notes.get_mut(i).unwrap_or(&mut Default::default()));
        check_arm(&arm, &prepared, &shared, targets_ul[0], &file)?;
        arms.push(arm);
    }
    Ok(Study {
        name: raw.name.unwrap_or(stem),
        description: raw.description.unwrap_or_default(),
        source: file,
        scenario: prepared,
        seed,
        targets: targets_ul.iter().map(|t| t * 1e-9).collect(),
        targets_ul: targets_ul.clone(),
        units,
        shots,
        limits,
        preset,
        bootstrap,
        interval,
        shared,
        shared_notes,
        arms,
    })
}

type Notes = std::collections::BTreeMap<String, String>;

/// The comment written after each key of the study's `[variability]` and of
/// each arm's `[arm.variability]` table (where a study states the source of
/// a distribution), by key: the shared table's, then one map per `[[arm]]`
/// in file order. A key without a comment is absent.
pub(crate) fn notes(text: &str) -> (Notes, Vec<Notes>) {
    enum At {
        Shared,
        Arm(usize),
        Other,
    }
    let (mut shared, mut arms) = (Notes::new(), Vec::<Notes>::new());
    let mut at = At::Other;
    for line in text.lines() {
        let (code, comment) = split_comment(line);
        let code = code.trim();
        if code.starts_with('[') {
            let header: String = code.chars().filter(|c| !c.is_whitespace()).collect();
            at = match header.as_str() {
                "[variability]" => At::Shared,
                "[[arm]]" => {
                    arms.push(Notes::new());
                    At::Other
                }
                "[arm.variability]" if !arms.is_empty() => At::Arm(arms.len() - 1),
                _ => At::Other,
            };
            continue;
        }
        let (Some((key, _)), Some(comment)) = (code.split_once('='), comment) else { continue };
        let key = key.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        let comment = comment.trim().to_string();
        if comment.is_empty() {
            continue;
        }
        match at {
            At::Shared => shared.insert(key, comment),
            At::Arm(i) => arms[i].insert(key, comment),
            At::Other => None,
        };
    }
    (shared, arms)
}

/// A TOML line split at its comment's `#` (one outside strings).
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, ch) in line.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if ch == '\\' => escaped = true,
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if ch == '"' || ch == '\'' => quote = Some(ch),
            None if ch == '#' => return (&line[..i], Some(&line[i + 1..])),
            None => {}
        }
    }
    (line, None)
}

/// The study file `file` (`text`) parsed, or why it is not a study.
fn parse(text: &str, file: &str) -> Result<RawStudy, StudyError> {
    let raw: RawStudy = toml::from_str(text).map_err(|e| {
        let detail = e.to_string().trim_end().to_string();
        // Say what the file is before the schema detail.
        let message = if crate::scenario::is_study_text(text) {
            detail
        } else {
            format!("this file is a scenario (it has no [[arm]] tables), not a comparison study: run it with `mesobench run {file}` (or sweep, tune, sensitivity)\n{detail}")
        };
        ScenarioError::Parse { path: file.to_string(), message }
    })?;
    Ok(raw)
}

/// The shared scenario: a path relative to the study at `path`, or the
/// embedded default; parsed once and checked.
fn shared_scenario(raw: &RawStudy, c: &Checker, path: &Path) -> Result<Prepared, StudyError> {
    let file = c.file();
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let source = match &raw.scenario {
        None => Source::default_scenario(),
        Some(s) => {
            let p = dir.join(s.get_ref());
            Source::from_path(&p).map_err(|e| {
                let why = match e {
                    ScenarioError::TooLarge { .. } => format!(" ({e})"),
                    _ => String::new(),
                };
                StudyError::Input(c.invalid_at(
                    s.span(),
                    "scenario",
                    format!("{:?}", s.get_ref()),
                    format!("a readable scenario file, relative to the study file{why}"),
                ))
            })?
        }
    };
    let scenario_stem = raw
        .scenario
        .as_ref()
        .and_then(|s| Path::new(s.get_ref()).file_stem()?.to_str().map(String::from))
        .unwrap_or("reference".into());
    let prepared = Prepared::new(&source, &scenario_stem)
        .map_err(|source| StudyError::Scenario { context: format!("{file}: shared scenario"), source })?;
    prepared
        .with(&[])
        .map_err(|source| StudyError::Scenario { context: format!("{file}: shared scenario"), source })?;
    Ok(prepared)
}

/// The `[acceptance]` table: the preset's name, the limits, the bootstrap
/// resamples and the interval's confidence.
fn acceptance(a: &RawAcceptance, c: &Checker) -> Result<(String, Limits, usize, f64), StudyError> {
    let preset = a.preset.as_ref().map(|s| s.get_ref().clone()).unwrap_or_else(|| "mesotherapy".into());
    let base = Limits::preset(&preset).ok_or_else(|| {
        StudyError::Input(c.invalid_at(
            a.preset.as_ref().map(|s| s.span()).unwrap_or(0..0),
            "acceptance.preset",
            format!("{preset:?}"),
            "\"iso_pen\" or \"mesotherapy\"",
        ))
    })?;
    let limits = Limits {
        alpha: c.spanned_num(&a.alpha_ul, base.alpha, "acceptance.alpha_ul", (0.0, 1e4), (1.0, "µL"))?,
        beta: c.spanned_num(&a.beta, base.beta, "acceptance.beta", (0.0, 1.0), (1.0, ""))?,
        coverage: c.spanned_num(&a.coverage, base.coverage, "acceptance.coverage", (0.5, 0.9999), (1.0, ""))?,
        confidence: c.spanned_num(&a.confidence, base.confidence, "acceptance.confidence", (0.5, 0.9999), (1.0, ""))?,
    };
    let bootstrap = c.spanned_int(&a.bootstrap, 2000, "acceptance.bootstrap", 100, 1_000_000)? as usize;
    let interval = c.spanned_num(&a.interval, 0.95, "acceptance.interval", (0.5, 0.999), (1.0, ""))?;
    Ok((preset, limits, bootstrap, interval))
}

/// One `[[arm]]` table, its name unique among the arms before it.
fn arm(ra: &RawArm, c: &Checker, before: &[Arm]) -> Result<Arm, StudyError> {
    let name = ra.name.get_ref().clone();
    if name.is_empty() || before.iter().any(|a| a.name == name || arm_key(&a.name) == arm_key(&name)) {
        return Err(StudyError::Input(c.invalid_at(
            ra.name.span(),
            "arm.name",
            format!("{name:?}"),
            "a non-empty name, unique in the study",
        )));
    }
    let kind = match ra.kind.get_ref().as_str() {
        "manual" => {
            if let Some(h) = &ra.hand {
                return Err(StudyError::Input(c.invalid_at(
                    h.span(),
                    &format!("arm '{name}' hand"),
                    "(a table)",
                    "only on gun arms (a manual arm's hand is its operator table)",
                )));
            }
            let (preset, operator) =
                operator_params(ra.operator.as_ref().unwrap_or(&RawOperator::default()), c, &name)?;
            ArmKind::Manual { preset, operator }
        }
        "gun" => ArmKind::Gun {
            dose: gun_dose(ra, c, &name)?,
            hand: ra.hand.as_ref().map(|h| hand(h.get_ref(), c, &name)).transpose()?,
        },
        other => {
            return Err(StudyError::Input(c.invalid_at(
                ra.kind.span(),
                &format!("arm '{name}' kind"),
                format!("{other:?}"),
                "\"manual\" or \"gun\"",
            )))
        }
    };
    let variability = match &ra.variability {
        Some(t) => uncertain(c, t, &format!("arm '{name}' variability"))?,
        None => Vec::new(),
    };
    Ok(Arm { name, kind, set: ra.set.clone(), variability, notes: Default::default() })
}

/// How gun arm `name` is set to a target: its dose key, or the key it
/// calibrates and the range it searches.
fn gun_dose(ra: &RawArm, c: &Checker, name: &str) -> Result<DoseSetting, StudyError> {
    Ok(match (&ra.dose_key, &ra.calibrate_key) {
        (Some(k), None) => DoseSetting::Direct { key: k.get_ref().clone() },
        (None, Some(k)) => {
            let (lo, hi) = match &ra.calibrate_range {
                Some(r) if r.get_ref().len() == 2 && r.get_ref()[0] < r.get_ref()[1] => {
                    (r.get_ref()[0], r.get_ref()[1])
                }
                Some(r) => {
                    return Err(StudyError::Input(c.invalid_at(
                        r.span(),
                        &format!("arm '{name}' calibrate_range"),
                        format!("{:?}", r.get_ref()),
                        "[lo, hi] with lo < hi, in the key's unit",
                    )))
                }
                None => {
                    return Err(StudyError::Input(c.invalid_at(
                        k.span(),
                        &format!("arm '{name}' calibrate_range"),
                        "(missing)",
                        "[lo, hi] to search for the key's value",
                    )))
                }
            };
            DoseSetting::Calibrate {
                key: k.get_ref().clone(),
                lo,
                hi,
                each_unit: ra.calibrate_each_unit.unwrap_or(false),
            }
        }
        _ => {
            return Err(StudyError::Input(c.invalid_at(
                ra.kind.span(),
                &format!("arm '{name}'"),
                "gun",
                "exactly one of dose_key (set to the target in µL) or calibrate_key (bisected to the target)",
            )))
        }
    })
}

/// Validate the arm's overrides and every varied key at the first target
/// (`first_ul`).
fn check_arm(
    arm: &Arm,
    prepared: &Prepared,
    shared: &[Uncertain],
    first_ul: f64,
    file: &str,
) -> Result<(), StudyError> {
    let mut sets = arm.set.clone();
    if let ArmKind::Gun { dose, .. } = &arm.kind {
        sets.push(match dose {
            DoseSetting::Direct { key } => format!("{key}={:?}", first_ul),
            DoseSetting::Calibrate { key, lo, hi, .. } => format!("{key}={:?}", 0.5 * (lo + hi)),
        });
    }
    for u in shared.iter().chain(&arm.variability) {
        sets.push(format!("{}={:?}", u.key, central(&u.dist)));
    }
    prepared
        .with(&sets)
        .map_err(|source| StudyError::Scenario { context: format!("{file}: arm '{}'", arm.name), source })?;
    Ok(())
}

fn central(d: &scenario::Distribution) -> f64 {
    match *d {
        scenario::Distribution::Normal { mean, .. } => mean,
        scenario::Distribution::Lognormal { median, .. } => median,
        scenario::Distribution::Uniform { lo, hi } => 0.5 * (lo + hi),
        scenario::Distribution::TruncatedNormal { mean, lo, hi, .. } => mean.clamp(lo, hi),
    }
}

#[cfg(test)]
mod tests {
    use super::notes;

    #[test]
    fn the_comment_after_a_varied_key_is_its_stated_source() {
        let text = "[variability]\n\"needle.inner_diameter_mm\" = { dist = \"normal\", mean = 0.159, sd = 0.0048 } # lot [D]\n\
seed = 1\n[[arm]]\nname = \"a # not a comment\" # a comment\n[[arm]]\nname = \"b\"\n[arm.variability]\n\
supply.pressure_bar = { dist = \"normal\", mean = 3.0, sd = 0.1 }   # catalogue (2021)\n\
\"valve.b\" = { dist = \"uniform\", lo = 0.2, hi = 0.4 }\n";
        let (shared, arms) = notes(text);
        assert_eq!(shared.get("needle.inner_diameter_mm").map(String::as_str), Some("lot [D]"));
        assert_eq!(shared.len(), 1);
        assert_eq!(arms.len(), 2);
        assert!(arms[0].is_empty());
        assert_eq!(arms[1].get("supply.pressure_bar").map(String::as_str), Some("catalogue (2021)"));
        assert!(!arms[1].contains_key("valve.b"));
    }
}
