//! `report.html`: the page's head, set-up, accuracy and pair tables,
//! embedded plots, and the sentences that read the outcome.

use super::arms::{arms_html, warnings_html};
use super::charts::{fmt, PLOTS};
use crate::report::plot::SIZE;
use crate::study::compare::{ArmKind, ArmSummary, Outcome, Study};
use base64::Engine as _;
use std::fmt::Write as _;

pub(super) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub(super) fn report_html(study: &Study, out: &Outcome, pngs: &[(String, Vec<u8>)]) -> String {
    let mut h = head_html(study, out);
    h.push_str(&setup_html(study));
    h.push_str(&accuracy_html(out));
    h.push_str(&pairs_html(study, out));
    h.push_str(&warnings_html(study, out));
    h.push_str(&plots_html(pngs));
    h.push_str(&arms_html(study, out));
    h.push_str(MODELS_HTML);
    h.push_str("</body>\n</html>\n");
    h
}

/// The document's head, style, title, description and conclusion.
fn head_html(study: &Study, out: &Outcome) -> String {
    let mut h = String::new();
    let title = format!("mesobench — {}", study.name);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n\
body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;overflow-wrap:break-word}}\n\
.wrap{{overflow-x:auto;max-width:100%;margin:1em 0}}table{{border-collapse:collapse;font-size:0.9em}}\n\
th,td{{border:1px solid #bbb;padding:0.25em 0.6em;text-align:right;white-space:nowrap;vertical-align:top}}\n\
table.text td,table.text th{{white-space:normal;min-width:6em}}th{{background:#eee}}.l{{text-align:left}}\n\
.pass{{color:#176317;font-weight:bold}}.fail{{color:#b01c1c;font-weight:bold}}p.conclusion{{background:#f4f7fb;border-left:4px solid #1f77b4;padding:0.6em 1em}}\n\
img{{max-width:100%;height:auto;border:1px solid #ddd}}figure{{margin:1.5em 0}}figcaption{{font-size:0.9em;color:#555}}\n\
</style>\n</head>\n<body>\n<h1>{}</h1>\n<p>{}</p>\n<h2>Conclusion</h2>\n<p class=\"conclusion\">{}</p>\n",
        html_escape(&title),
        html_escape(&title),
        html_escape(&study.description),
        html_escape(&conclusion(study, out))
    );
    h
}

/// The set-up table: files, seed, targets, units, shots, acceptance.
fn setup_html(study: &Study) -> String {
    let mut h = String::new();
    let l = &study.limits;
    let targets: Vec<String> = study.targets_ul.iter().map(|t| fmt(*t)).collect();
    let _ = write!(
        h,
        "<h2>Set-up</h2>\n<div class=\"wrap\"><table class=\"text\">\n<tr><th>study file</th><td class=\"l\">{}</td></tr>\n<tr><th>shared scenario</th><td class=\"l\">{}</td></tr>\n\
<tr><th>seed</th><td class=\"l\">{}</td></tr>\n<tr><th>targets</th><td class=\"l\">{} µL</td></tr>\n\
<tr><th>units per arm</th><td class=\"l\">{} (operators or devices)</td></tr>\n<tr><th>shots per unit and target</th><td class=\"l\">{}</td></tr>\n\
<tr><th>acceptance</th><td class=\"l\">{}: L(V) = max({} µL, {} % of V); two-sided tolerance interval, coverage {}, confidence {}</td></tr>\n\
<tr><th>mesobench</th><td class=\"l\">{}</td></tr>\n</table></div>\n",
        html_escape(&study.source),
        html_escape(&study.scenario.source().name),
        study.seed,
        targets.join(", "),
        study.units,
        study.shots,
        html_escape(&study.preset),
        fmt(l.alpha),
        fmt(100.0 * l.beta),
        l.coverage,
        l.confidence,
        crate::VERSION
    );
    h
}

/// The dose-accuracy table, one row per arm and target.
fn accuracy_html(out: &Outcome) -> String {
    let mut h = String::new();
    h.push_str(
        "<h2>Dose accuracy per arm</h2>\n<p>Pass if and only if x̄ − k·s ≥ V − L and x̄ + k·s ≤ V + L (ISO 11608-1 method, exact two-sided k). \
Within and between: variance components of the doses grouped by operator or device.</p>\n<div class=\"wrap\"><table>\n\
<tr><th class=\"l\">arm</th><th class=\"l\">kind</th><th>target µL</th><th>n</th><th>mean µL</th><th>SD µL</th><th>CV %</th><th>bias %</th>\
<th>within SD µL</th><th>between SD µL</th><th>k</th><th>x̄ ± k·s µL</th><th>limits µL</th><th>verdict</th></tr>\n",
    );
    for s in &out.arms {
        let v = &s.acceptance;
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.2}</td><td>{:+.1}</td>\
<td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.2} – {:.2}</td><td>{:.2} – {:.2}</td><td class=\"{}\">{}</td></tr>",
            html_escape(&s.arm),
            s.kind,
            fmt(s.target_ul),
            s.n,
            s.mean_ul,
            s.sd_ul,
            100.0 * s.cv,
            100.0 * s.bias,
            s.within_sd_ul,
            s.between_sd_ul,
            v.k,
            v.lower,
            v.upper,
            s.target_ul - v.limit,
            s.target_ul + v.limit,
            if v.pass { "pass" } else { "fail" },
            if v.pass { "PASS" } else { "FAIL" }
        );
    }
    h.push_str("</table></div>\n");
    h
}

/// The arm-against-arm table: CV ratios and tests of equal variances.
fn pairs_html(study: &Study, out: &Outcome) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<h2>Arm against arm</h2>\n<p>CV ratio with a {:.0} % cluster-bootstrap interval ({} resamples of whole operators or devices); \
F test and Brown–Forsythe test of equal variances (two-sided p; both treat shots as independent, so with clustered doses \
they overstate significance; the bootstrap interval does not). A p-value below 1e-16 is printed as &lt; 1e-16: \
the two-sided p is 2·min(P, 1 − P) of the F distribution's tail P, and double precision does not resolve 1 − P below about 1e-16, \
so the digits of smaller values depend on which tail was computed and no conclusion changes with them; compare_summary.json keeps the computed number, \
down to 0, to be read the same way.</p>\n\
<div class=\"wrap\"><table>\n<tr><th>target µL</th><th class=\"l\">arm a</th><th class=\"l\">arm b</th>\
<th>CV a / CV b</th><th>interval</th><th>F</th><th>p (F)</th><th>p (Brown–Forsythe)</th></tr>\n",
        100.0 * study.interval,
        study.bootstrap
    );
    for p in &out.pairs {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{:.3}</td><td>{:.3} – {:.3}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
            fmt(p.target_ul),
            html_escape(&p.a),
            html_escape(&p.b),
            p.cv_ratio.ratio,
            p.cv_ratio.lo,
            p.cv_ratio.hi,
            p.f_test.statistic,
            p_value(p.f_test.p),
            p_value(p.brown_forsythe.p)
        );
    }
    h.push_str("</table></div>\n");
    h
}

/// The plots, embedded as base64 PNGs with their captions.
fn plots_html(pngs: &[(String, Vec<u8>)]) -> String {
    let mut h = String::new();
    h.push_str("<h2>Plots</h2>\n");
    for ((name, caption), (_, png)) in PLOTS.iter().zip(pngs) {
        let _ = write!(
            h,
            "<figure>\n<img src=\"data:image/png;base64,{}\" alt=\"{}\" width=\"{}\" height=\"{}\">\n<figcaption>{} ({name}.png, {name}.svg)</figcaption>\n</figure>\n",
            base64::engine::general_purpose::STANDARD.encode(png),
            name,
            SIZE.0,
            SIZE.1,
            html_escape(caption)
        );
    }
    h
}

/// What the manual and gun arms model, and where the sources are.
const MODELS_HTML: &str = "<h2>Models</h2>\n<p>Manual arms: the operator pushes the same syringe, needle, fluid and tissue plant as the gun through a hand \
impedance that follows an intended plunger speed, with physiological tremor (8–12 Hz), start-of-stroke force pulses, a stop decided by \
reading the graduations (reading error and parallax), a reaction time partly anticipated, and needle-tip drift during the stroke. \
Operators are drawn once, their shots around them (hierarchical). Gun arms run the scenario's gun and firmware. Shared variability \
(needle lot, friction, tissue) uses the same random streams in every arm. Sources and priors: mesobench docs/physics.md (manual operator) and docs/studies.md (manual injection against the gun).</p>\n";

// ---------------------------------------------------------------------------
// The words of the report: its conclusion and what every arm is.

/// A CV (fraction) as the tables print it, in %.
fn cv_pct(cv: f64) -> String {
    format!("{:.2} %", 100.0 * cv)
}

/// `items` joined as words: "a", "a and b", "a, b and c".
pub(super) fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The summary of arm `a` at target `t`.
pub(super) fn summary<'o>(study: &Study, out: &'o Outcome, a: usize, t: usize) -> &'o ArmSummary {
    &out.arms[a * study.targets.len() + t]
}

/// The arm of `kind` with the lowest CV averaged over the targets.
fn best_of(study: &Study, out: &Outcome, manual: bool) -> Option<usize> {
    let nt = study.targets.len();
    (0..study.arms.len())
        .filter(|&a| matches!(study.arms[a].kind, ArmKind::Manual { .. }) == manual)
        .map(|a| (a, (0..nt).map(|t| summary(study, out, a, t).cv).sum::<f64>()))
        .min_by(|x, y| x.1.total_cmp(&y.1))
        .map(|(a, _)| a)
}

/// CV(manual arm m) / CV(gun arm g) at target `t` with its bootstrap
/// interval, from the pair table (inverted when the gun arm came first).
fn manual_over_gun(study: &Study, out: &Outcome, m: usize, g: usize, t: usize) -> Option<(f64, f64, f64)> {
    let (name_m, name_g) = (&study.arms[m].name, &study.arms[g].name);
    let v = study.targets_ul[t];
    out.pairs.iter().filter(|p| p.target_ul == v).find_map(|p| {
        let r = &p.cv_ratio;
        if &p.a == name_m && &p.b == name_g {
            Some((r.ratio, r.lo, r.hi))
        } else if &p.a == name_g && &p.b == name_m {
            Some((1.0 / r.ratio, 1.0 / r.hi, 1.0 / r.lo))
        } else {
            None
        }
    })
}

/// The model-validity warnings of the gun sessions, grouped by kind (the
/// message without its numbers): an example message, the sessions that
/// raised it and the arms they belong to, most frequent first.
pub(super) fn warning_groups(study: &Study, out: &Outcome) -> Vec<(String, usize, Vec<String>)> {
    let mut groups: Vec<(String, String, usize, Vec<String>)> = Vec::new();
    for s in &out.sessions {
        for w in &s.warnings {
            let class: String = w.chars().filter(|c| !c.is_ascii_digit()).collect();
            let arm = study.arms[s.arm].name.clone();
            match groups.iter_mut().find(|g| g.0 == class) {
                Some(g) => {
                    g.2 += 1;
                    if !g.3.contains(&arm) {
                        g.3.push(arm);
                    }
                }
                None => groups.push((class, w.clone(), 1, vec![arm])),
            }
        }
    }
    // Extrapolations and models used outside their validity first, then
    // the most frequent; ties keep the order of first appearance.
    let beyond = |w: &str| ["extrapolat", "validity", "beyond"].iter().any(|k| w.contains(k));
    groups.sort_by(|a, b| beyond(&b.1).cmp(&beyond(&a.1)).then(b.2.cmp(&a.2)));
    groups.into_iter().map(|(_, example, n, arms)| (example, n, arms)).collect()
}

/// The report's opening paragraph, in words with the numbers of the tables.
pub(crate) fn conclusion(study: &Study, out: &Outcome) -> String {
    let mut s = most_consistent_sentence(study, out);
    s.push_str(&gun_against_hand_sentence(study, out));
    s.push_str(&acceptance_sentence(study, out));
    s.push_str(&caveat_sentence(study, out));
    s
}

/// A target as prose names it ("10 µL").
fn target_words(study: &Study, t: usize) -> String {
    format!("{} µL", fmt(study.targets_ul[t]))
}

/// The conclusion's first sentence: the most consistent arm at each target.
fn most_consistent_sentence(study: &Study, out: &Outcome) -> String {
    let nt = study.targets.len();
    let na = study.arms.len();
    let at = |t: usize| target_words(study, t);
    let mut s = String::new();
    let best: Vec<usize> = (0..nt)
        .map(|t| {
            (0..na).min_by(|&x, &y| summary(study, out, x, t).cv.total_cmp(&summary(study, out, y, t).cv)).unwrap_or(0)
        })
        .collect();
    if best.iter().all(|&b| b == best[0]) {
        let cvs: Vec<String> =
            (0..nt).map(|t| format!("{} at {}", cv_pct(summary(study, out, best[0], t).cv), at(t))).collect();
        let every = if nt == 1 { "the target" } else { "every target" };
        let _ =
            write!(s, "The most consistent arm is {} at {every} (CV {}).", study.arms[best[0]].name, and_list(&cvs));
    } else {
        let per: Vec<String> = (0..nt)
            .map(|t| {
                format!("{} at {} (CV {})", study.arms[best[t]].name, at(t), cv_pct(summary(study, out, best[t], t).cv))
            })
            .collect();
        let _ = write!(s, "The most consistent arm is {}.", and_list(&per));
    }
    s
}

/// The CV of the best manual arm over that of the best gun arm, per target
/// ("" without both kinds of arm).
fn gun_against_hand_sentence(study: &Study, out: &Outcome) -> String {
    let nt = study.targets.len();
    let at = |t: usize| target_words(study, t);
    let mut s = String::new();
    if let (Some(m), Some(g)) = (best_of(study, out, true), best_of(study, out, false)) {
        let ratios: Vec<String> = (0..nt)
            .filter_map(|t| {
                manual_over_gun(study, out, m, g, t).map(|(r, lo, hi)| {
                    format!("{r:.2} at {} ({:.0} % interval {lo:.2} – {hi:.2})", at(t), 100.0 * study.interval)
                })
            })
            .collect();
        let _ = write!(
            s,
            " The CV of the most consistent manual arm, {}, divided by that of the most consistent gun arm, {}, is {}.",
            study.arms[m].name,
            study.arms[g].name,
            and_list(&ratios)
        );
    }
    s
}

/// How many arms pass the acceptance rule at every, some or no target.
fn acceptance_sentence(study: &Study, out: &Outcome) -> String {
    let nt = study.targets.len();
    let na = study.arms.len();
    let mut s = String::new();
    let passes: Vec<Vec<usize>> =
        (0..na).map(|a| (0..nt).filter(|&t| summary(study, out, a, t).acceptance.pass).collect()).collect();
    let all: Vec<String> = (0..na).filter(|&a| passes[a].len() == nt).map(|a| study.arms[a].name.clone()).collect();
    let some: Vec<String> = (0..na)
        .filter(|&a| !passes[a].is_empty() && passes[a].len() < nt)
        .map(|a| {
            let ts: Vec<String> = passes[a].iter().map(|&t| fmt(study.targets_ul[t])).collect();
            format!("{} ({} µL)", study.arms[a].name, and_list(&ts))
        })
        .collect();
    let none: Vec<String> = (0..na).filter(|&a| passes[a].is_empty()).map(|a| study.arms[a].name.clone()).collect();
    let l = &study.limits;
    let _ = write!(
        s,
        " Against the {} acceptance rule (L(V) = max({} µL, {} % of V), coverage {}, confidence {}), {} of {} arms pass at every target{}",
        study.preset,
        fmt(l.alpha),
        fmt(100.0 * l.beta),
        l.coverage,
        l.confidence,
        all.len(),
        na,
        if all.is_empty() { String::new() } else { format!(" ({})", and_list(&all)) }
    );
    let mut rest = Vec::new();
    if !some.is_empty() {
        rest.push(format!("only at some targets: {}", and_list(&some)));
    }
    if !none.is_empty() {
        rest.push(format!("at none: {}", and_list(&none)));
    }
    if rest.is_empty() {
        s.push('.');
    } else {
        let _ = write!(s, "; {}.", rest.join("; "));
    }
    s
}

/// The main caveat: the most important model-validity warning, and what
/// the manual arms are.
fn caveat_sentence(study: &Study, out: &Outcome) -> String {
    let mut s = String::new();
    let groups = warning_groups(study, out);
    let sessions = out.sessions.len();
    let warned = out.sessions.iter().filter(|s| !s.warnings.is_empty()).count();
    if let Some((example, n, arms)) = groups.first() {
        let _ = write!(
            s,
            " Caveat: {warned} of {sessions} gun sessions raised model-validity warnings ({} kinds, listed below); the main one, in {n} sessions of {}: “{}”.",
            groups.len(),
            and_list(arms),
            example
        );
    } else if sessions > 0 {
        s.push_str(" No gun session raised a model-validity warning.");
    }
    if study.arms.iter().any(|a| matches!(a.kind, ArmKind::Manual { .. })) {
        s.push_str(
            " The manual arms are a behavioural model whose priors were set to reproduce published ranges of syringe dosing, not measurements of these operators.",
        );
    }
    s
}

/// A p-value for the report: two significant digits, or `< 1e-16` where it
/// underflows the precision of the tail probabilities (it printed `0.00e0`).
fn p_value(p: f64) -> String {
    if p < 1e-16 {
        "&lt; 1e-16".into()
    } else {
        format!("{p:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::{and_list, p_value};

    #[test]
    fn lists_read_as_words() {
        let l = |v: &[&str]| and_list(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            (l(&[]), l(&["a"]), l(&["a", "b"]), l(&["a", "b", "c"])),
            (String::new(), "a".into(), "a and b".into(), "a, b and c".into())
        );
    }

    #[test]
    fn p_values_that_underflow_read_below_1e_16() {
        assert_eq!(p_value(0.0), "&lt; 1e-16");
        assert_eq!(p_value(3e-20), "&lt; 1e-16");
        assert_eq!(p_value(0.0123), "1.23e-2");
        assert_eq!(p_value(1e-16), "1.00e-16");
        assert_eq!(p_value(1.0), "1.00e0");
    }
}
