//! How each arm of the study is described in the report: its variability,
//! operator, firmware and dose-calibration tables, and its warnings.

use super::charts::fmt;
use super::html::{and_list, html_escape, summary, warning_groups};
use crate::control::manual::OperatorParams;
use crate::scenario::{Distribution, Level, Uncertain};
use crate::study::compare::{Arm, ArmKind, DoseSetting, Hand, Outcome, Study};
use crate::text::g6;
use std::fmt::Write as _;

/// The unit symbol of a scenario key for prose ("" for a pure number).
fn unit_of(key: &str) -> &'static str {
    match crate::scenario::registry::find(key).map(|p| p.unit.symbol) {
        Some("—") | None => "",
        Some(u) => u,
    }
}

/// `x` with its unit.
fn with_unit(x: f64, unit: &str) -> String {
    if unit.is_empty() {
        g6(x)
    } else {
        format!("{} {unit}", g6(x))
    }
}

/// A distribution in words, in the key's unit.
pub(super) fn distribution(d: &Distribution, unit: &str) -> String {
    let u = |x: f64| with_unit(x, unit);
    match *d {
        Distribution::Normal { mean, sd } => format!("normal, mean {}, SD {}", u(mean), u(sd)),
        Distribution::Lognormal { median, gsd } => {
            format!("log-normal, median {}, geometric SD {}", u(median), g6(gsd))
        }
        Distribution::Uniform { lo, hi } => format!("uniform from {} to {}", g6(lo), u(hi)),
        Distribution::TruncatedNormal { mean, sd, lo, hi } => {
            format!("normal, mean {}, SD {}, truncated to {} – {}", u(mean), u(sd), g6(lo), u(hi))
        }
    }
}

/// When a draw is made.
fn level(l: Level, shared: bool) -> &'static str {
    match (l, shared) {
        (Level::Session, true) => "once per operator or device",
        (Level::Session, false) => "once per device",
        (Level::Shot, _) => "before every shot",
        (Level::Site, _) => "for every injection site (every shot)",
    }
}

/// The source a study file's comment states, or that there is none: a
/// comment citing a paper, a standard or a catalogue (a year, or a [R]/[V]
/// mark) is given as written; one that only says "chosen here" ([D]) or
/// none at all reads "no published source".
pub(super) fn stated_source(note: Option<&String>) -> String {
    let cites = |n: &str| {
        n.contains("[R]")
            || n.contains("[V]")
            || n.as_bytes()
                .windows(4)
                .any(|w| (w.starts_with(b"19") || w.starts_with(b"20")) && w.iter().all(u8::is_ascii_digit))
    };
    match note {
        None => "no published source".into(),
        Some(n) if cites(n) => format!("study file: {n}"),
        Some(n) => format!("no published source (study file: {n})"),
    }
}

/// Rows (parameter, distribution, when drawn, source) of a variability table.
fn variability_rows(list: &[Uncertain], notes: &std::collections::BTreeMap<String, String>, shared: bool) -> String {
    let mut h = String::new();
    for u in list {
        let _ = writeln!(
            h,
            "<tr><td class=\"l\"><code>{}</code></td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            html_escape(&u.key),
            html_escape(&distribution(&u.dist, unit_of(&u.key))),
            level(u.level, shared),
            html_escape(&stated_source(notes.get(&u.key)))
        );
    }
    h
}

const VARIABILITY_HEAD: &str =
    "<tr><th class=\"l\">parameter</th><th class=\"l\">distribution</th><th class=\"l\">drawn</th><th class=\"l\">source</th></tr>\n";

/// One row of an operator population: (what, value, when drawn, source).
type OperatorRow = (&'static str, String, &'static str, String);

/// The operator population of a manual arm: (what, value, when drawn, source).
fn operator_rows(preset: &str, p: &OperatorParams) -> Vec<OperatorRow> {
    let base = OperatorParams::preset(preset).unwrap_or_else(|| p.clone());
    let mut rows = decision_rows(p, &base);
    rows.extend(hand_rows(p, &base));
    rows
}

/// The preset's source `s` when the study kept the preset's values.
fn kept_source(same: bool, s: &str) -> String {
    if same {
        s.to_string()
    } else {
        "set in the study file: no published source".into()
    }
}

/// The operator's decisions: plunger flow, reaction, anticipation, reading.
fn decision_rows(p: &OperatorParams, base: &OperatorParams) -> Vec<OperatorRow> {
    let src = kept_source;
    let prior =
        "no published source (a prior [D], set with the others to reproduce the published outcome ranges below)";
    vec![
        (
            "intended plunger flow",
            format!(
                "median {} µL/s; geometric SD {} between operators, {} between one operator's shots",
                g6(p.flow * 1e9),
                g6(p.flow_gsd_between),
                g6(p.flow_gsd_within)
            ),
            "per operator, then per shot",
            src((p.flow, p.flow_gsd_between, p.flow_gsd_within) == (base.flow, base.flow_gsd_between, base.flow_gsd_within), prior),
        ),
        (
            "reaction time (decision to release)",
            format!(
                "median {} ms; geometric SD {} between operators, {} within",
                g6(p.reaction * 1e3),
                g6(p.reaction_gsd_between),
                g6(p.reaction_gsd_within)
            ),
            "per operator, then per shot",
            src(
                (p.reaction, p.reaction_gsd_between, p.reaction_gsd_within)
                    == (base.reaction, base.reaction_gsd_between, base.reaction_gsd_within),
                "no published source (a prior [D]: a visual choice reaction)",
            ),
        ),
        (
            "anticipated fraction of the latency",
            format!("normal, mean {}, SD {} between operators (clamped to 0 – 1)", g6(p.anticipation), g6(p.anticipation_sd)),
            "per operator",
            src((p.anticipation, p.anticipation_sd) == (base.anticipation, base.anticipation_sd), prior),
        ),
        (
            "reading the graduations",
            format!(
                "graduations every {} µL; reading SD {} graduation; viewing-angle SD {}° through a {} mm barrel wall (parallax)",
                g6(p.graduation * 1e9),
                g6(p.reading_sd),
                g6(p.view_angle_sd.to_degrees()),
                g6(p.wall * 1e3)
            ),
            "at the start and at the stop of every shot",
            src(
                (p.graduation, p.reading_sd, p.view_angle_sd, p.wall)
                    == (base.graduation, base.reading_sd, base.view_angle_sd, base.wall),
                "graduations: 0.01 mL marks of BD 1 mL tuberculin syringes; reading and angle SDs and the wall: no published source ([D])",
            ),
        ),
    ]
}

/// The operator's hand: tremor, force pulses, tip drift, impedance, depth.
fn hand_rows(p: &OperatorParams, base: &OperatorParams) -> Vec<OperatorRow> {
    let src = kept_source;
    vec![
        (
            "tremor",
            format!(
                "{} N RMS, centre frequency uniform from {} to {} Hz between operators",
                g6(p.tremor_rms),
                g6(p.tremor_hz.0),
                g6(p.tremor_hz.1)
            ),
            "per operator (frequency), every shot",
            src(
                (p.tremor_rms, p.tremor_hz) == (base.tremor_rms, base.tremor_hz),
                "8–12 Hz: the textbook physiological-tremor band (not verified here); tremor in manual injection: Micheels et al., J Méd Esthét Chir Dermatol n°197 (2023); amplitude: no published source ([D])",
            ),
        ),
        (
            "start-of-stroke force pulses",
            format!(
                "Poisson, mean {} per shot, peak 50–100 % of {} N, width {} ms, in the first {} % of the stroke",
                g6(p.pulses),
                g6(p.pulse_force),
                g6(p.pulse_width * 1e3),
                g6(100.0 * p.pulse_window)
            ),
            "per shot",
            src(
                (p.pulses, p.pulse_force, p.pulse_width, p.pulse_window)
                    == (base.pulses, base.pulse_force, base.pulse_width, base.pulse_window),
                "pulses in every operator, mostly early: Tzafalia & Sixou, Anesth Prog 58(2):61–65 (2011); their number and size: no published source ([D])",
            ),
        ),
        (
            "needle-tip drift during the stroke",
            format!("log-normal, median {} mm, geometric SD {}", g6(p.drift * 1e3), g6(p.drift_gsd)),
            "per shot",
            src(
                (p.drift, p.drift_gsd) == (base.drift, base.drift_gsd),
                "mean 1.9 mm, 0.6–4.1 mm, less with experience: Aesthet Surg J 42(10):1109 [V]",
            ),
        ),
        (
            "hand on the plunger",
            format!(
                "stiffness {} N/mm, damping {} N·s/m, preload {} N, speed ramp {} ms, release {} ms",
                g6(p.stiffness * 1e-3),
                g6(p.damping),
                g6(p.preload),
                g6(p.ramp * 1e3),
                g6(p.release * 1e3)
            ),
            "fixed",
            src(
                (p.stiffness, p.damping, p.preload, p.ramp, p.release)
                    == (base.stiffness, base.damping, base.preload, base.ramp, base.release),
                "no published source ([D]: a reflex-stiffened thumb)",
            ),
        ),
        (
            "intended depth, dermis",
            format!("{} mm, dermis {} mm", g6(p.depth * 1e3), g6(p.dermis * 1e3)),
            "fixed",
            src((p.depth, p.dermis) == (base.depth, base.dermis), "no published source ([D]: facial dermis)"),
        ),
    ]
}

/// Firmware keys that only one kind of firmware reads.
fn firmware_key_applies(key: &str, kind: &str) -> bool {
    const VOLUME: [&str; 4] = ["target_ul", "lead_ms", "learn_gain", "max_open_ms"];
    const PID: [&str; 12] = [
        "measured",
        "setpoint_bar",
        "setpoint_step_ms",
        "setpoint_step_bar",
        "kp",
        "ki_per_s",
        "kd_s",
        "derivative_filter_ms",
        "u_min_bar",
        "u_max_bar",
        "anti_windup",
        "tracking_time_ms",
    ];
    let k = key.trim_start_matches("firmware.");
    if VOLUME.contains(&k) {
        kind == "volume_target"
    } else if PID.contains(&k) {
        kind == "pressure_pid"
    } else if k == "open_time_ms" {
        kind == "open_loop" || kind == "pressure_pid"
    } else if k.starts_with("plugin") {
        kind == "plugin"
    } else if k == "fmu" {
        kind == "fmu"
    } else {
        true
    }
}

/// A gun arm's firmware: its kind and the settings written in the scenario
/// or the arm that this kind reads (the dose key apart), and the arm's other
/// overrides.
fn firmware_text(study: &Study, arm: &Arm, dose_key: &str) -> (String, String) {
    let Ok(entries) = study.scenario.entries(&arm.set) else {
        return ("(the arm's overrides could not be resolved)".into(), String::new());
    };
    let value = |e: &crate::scenario::registry::Entry| {
        let v = e.value.trim_matches('"');
        if e.unit.is_empty() {
            v.to_string()
        } else {
            format!("{v} {}", e.unit)
        }
    };
    let kind = entries.iter().find(|e| e.key == "firmware.kind").map(|e| e.value.trim_matches('"').to_string());
    let kind = kind.unwrap_or_else(|| "open_loop".into());
    let settings: Vec<String> = entries
        .iter()
        .filter(|e| e.key.starts_with("firmware.") && e.key != "firmware.kind" && e.key != dose_key)
        .filter(|e| e.origin != "default" && firmware_key_applies(&e.key, &kind))
        .map(|e| format!("{} = {}", e.key, value(e)))
        .collect();
    let fw = if settings.is_empty() {
        format!("{kind} (every setting at its default)")
    } else {
        format!("{kind}: {} (others at their defaults)", settings.join(", "))
    };
    let other: Vec<String> = arm.set.iter().filter(|s| !s.trim_start().starts_with("firmware.")).cloned().collect();
    (fw, other.join(", "))
}

/// How a gun arm is set to each target, with the values it ran with.
fn calibration_text(study: &Study, out: &Outcome, a: usize, dose: &DoseSetting) -> String {
    let nt = study.targets.len();
    match dose {
        DoseSetting::Direct { key } => format!(
            "{key} set to the target ({} µL); no calibration",
            and_list(&study.targets_ul.iter().map(|t| fmt(*t)).collect::<Vec<_>>())
        ),
        DoseSetting::Calibrate { key, lo, hi, each_unit: false } => {
            let unit = unit_of(key);
            let values: Vec<String> = (0..nt)
                .filter_map(|t| {
                    summary(study, out, a, t)
                        .calibrated
                        .map(|v| format!("{v:.2} {unit} at {} µL", fmt(study.targets_ul[t])))
                })
                .collect();
            format!(
                "factory calibration: {key} bisected in {} – {} until the mean of 3 shots on the nominal device (no variability drawn) is the target; every device then runs with the same value: {}",
                g6(*lo),
                with_unit(*hi, unit),
                and_list(&values)
            )
        }
        DoseSetting::Calibrate { key, lo, hi, each_unit: true } => {
            let unit = unit_of(key);
            let values: Vec<String> = (0..nt)
                .map(|t| {
                    let v: Vec<f64> =
                        out.sessions.iter().filter(|s| s.arm == a && s.target == t).map(|s| s.dose_value).collect();
                    let (mn, mx) =
                        v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(*x), h.max(*x)));
                    format!("{mn:.2} – {mx:.2} {unit} at {} µL", fmt(study.targets_ul[t]))
                })
                .collect();
            format!(
                "calibration in use: {key} bisected in {} – {} on each device, with its own drawn needle, syringe and device variability (3 shots), until its mean dose is the target: {} over the {} devices",
                g6(*lo),
                with_unit(*hi, unit),
                and_list(&values),
                study.units
            )
        }
    }
}

const HAND_SOURCE: &str = "depth SD: the ±0.15 mm depth-scale tolerance of motorised microneedling pens (FDA 510(k) K182407) [V]; \
more accurate volume with the nose pressed on the skin: ASME J Med Devices 13(2):021007 [V]; depth, dermis, tilt and the hover factor: no published source ([D])";

/// One section per arm: what it is, its firmware, calibration and the
/// variability it assumes with the source of each.
pub(super) fn arms_html(study: &Study, out: &Outcome) -> String {
    let mut h = String::new();
    h.push_str("<h2>What each arm assumes</h2>\n");
    if !study.shared.is_empty() {
        h.push_str(
            "<h3 id=\"shared\">Shared by every arm</h3>\n<p>Drawn from the same random streams in every arm (common random numbers): \
every arm meets the same needles, stoppers and tissue.</p>\n<div class=\"wrap\"><table class=\"text\">\n",
        );
        h.push_str(VARIABILITY_HEAD);
        h.push_str(&variability_rows(&study.shared, &study.shared_notes, true));
        h.push_str("</table></div>\n");
    }
    for (a, arm) in study.arms.iter().enumerate() {
        let _ = writeln!(h, "<h3 id=\"arm-{a}\">{}</h3>", html_escape(&arm.name));
        match &arm.kind {
            ArmKind::Manual { preset, operator } => manual_arm_html(&mut h, study, arm, preset, operator),
            ArmKind::Gun { dose, hand } => gun_arm_html(&mut h, study, out, a, dose, hand.as_ref()),
        }
    }
    h.push_str(
        "<p>Manual arms: the priors of the operator presets were set so that the simulated outcome falls in the ranges \
insulin-syringe studies report (bias +20 to +60 %, CV 5–33 % at ≤ 0.01 mL: Casella et al., Pediatrics 91(6):1155 (1993); \
Gnanalingham et al., Arch Dis Child 79:59 (1998)); they are a calibrated behavioural model, not independent measurements of each mechanism.</p>\n",
    );
    h
}

/// A manual arm's description table and its operator population.
fn manual_arm_html(h: &mut String, study: &Study, arm: &Arm, preset: &str, operator: &OperatorParams) {
    let mut rows: Vec<(&str, String)> = Vec::new();
    rows.push((
                    "kind",
                    format!(
                        "manual: {} {preset} operator pushes the plunger of the shared syringe by thumb; no firmware; the stop is read on the graduations",
                        if preset.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
                    ),
                ));
    rows.push(("calibration", "none: each operator aims at the target by eye".into()));
    if !arm.set.is_empty() {
        rows.push(("overrides", arm.set.join(", ")));
    }
    rows.push(("in short", arm.assumptions()));
    table_rows(h, &rows);
    h.push_str(&format!(
                    "<p>Operator population ({} operators, each drawn once, their shots around them):</p>\n<div class=\"wrap\"><table class=\"text\">\n",
                    study.units
                ));
    h.push_str("<tr><th class=\"l\">what</th><th class=\"l\">value</th><th class=\"l\">drawn</th><th class=\"l\">source</th></tr>\n");
    for (what, value, when, src) in operator_rows(preset, operator) {
        let _ = writeln!(
                        h,
                        "<tr><td class=\"l\">{what}</td><td class=\"l\">{}</td><td class=\"l\">{when}</td><td class=\"l\">{}</td></tr>",
                        html_escape(&value),
                        html_escape(&src)
                    );
    }
    h.push_str("</table></div>\n");
}

/// A gun arm's description table and its device-to-device variability.
fn gun_arm_html(h: &mut String, study: &Study, out: &Outcome, a: usize, dose: &DoseSetting, hand: Option<&Hand>) {
    let arm = &study.arms[a];
    let mut rows: Vec<(&str, String)> = Vec::new();
    let (DoseSetting::Direct { key } | DoseSetting::Calibrate { key, .. }) = dose;
    let (fw, other) = firmware_text(study, arm, key);
    rows.push(("kind", "gun: the shared scenario's gun and plant".into()));
    rows.push(("firmware", fw));
    rows.push(("calibration", calibration_text(study, out, a, dose)));
    if !other.is_empty() {
        rows.push(("other overrides", other));
    }
    rows.push((
        "hand",
        match hand {
            Some(hd) => format!("{}; sources: {HAND_SOURCE}", hd.describe()),
            None => "none: the scenario's tissue site at every shot, nose held against the skin, perpendicular".into(),
        },
    ));
    rows.push(("in short", arm.assumptions()));
    table_rows(h, &rows);
    if arm.variability.is_empty() {
        h.push_str("<p>No device-to-device variability of its own (only the shared variability).</p>\n");
    } else {
        let _ = writeln!(
            h,
            "<p>Device-to-device variability ({} devices):</p>\n<div class=\"wrap\"><table class=\"text\">",
            study.units
        );
        h.push_str(VARIABILITY_HEAD);
        h.push_str(&variability_rows(&arm.variability, &arm.notes, false));
        h.push_str("</table></div>\n");
    }
}

/// A two-column description table.
fn table_rows(h: &mut String, rows: &[(&str, String)]) {
    h.push_str("<div class=\"wrap\"><table class=\"text\">\n");
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th class=\"l\">{k}</th><td class=\"l\">{}</td></tr>", html_escape(v));
    }
    h.push_str("</table></div>\n");
}

/// The model-validity warnings of the gun sessions, grouped.
pub(super) fn warnings_html(study: &Study, out: &Outcome) -> String {
    let groups = warning_groups(study, out);
    if groups.is_empty() {
        return String::new();
    }
    let mut h = format!(
        "<h2>Model-validity warnings</h2>\n<p>Raised by {} of the {} gun sessions (one session: one arm, target and device); \
one example message per kind (its numbers are those of the first session that raised it).</p>\n<div class=\"wrap\"><table class=\"text\">\n\
<tr><th>sessions</th><th class=\"l\">arms</th><th class=\"l\">warning</th></tr>\n",
        out.sessions.iter().filter(|s| !s.warnings.is_empty()).count(),
        out.sessions.len()
    );
    for (example, n, arms) in groups {
        let _ = writeln!(
            h,
            "<tr><td>{n}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            html_escape(&arms.join(", ")),
            html_escape(&example)
        );
    }
    h.push_str("</table></div>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::stated_source;

    #[test]
    fn a_source_is_given_as_the_study_states_it_or_as_none() {
        assert_eq!(stated_source(None), "no published source");
        let d = "needle lot, ±3 % bore [D]".to_string();
        assert_eq!(stated_source(Some(&d)), "no published source (study file: needle lot, ±3 % bore [D])");
        let r = "2–10 N [R] (Rathore et al.)".to_string();
        assert_eq!(stated_source(Some(&r)), "study file: 2–10 N [R] (Rathore et al.)");
        let y = "fitted to Gupta et al., Biomaterials 32:6823 (2011)".to_string();
        assert_eq!(stated_source(Some(&y)), format!("study file: {y}"));
    }
}
