//! `mesobench validate`: a scenario against bench data, per channel and
//! shot, with a verdict against the file's tolerances; and the
//! measured-against-simulated overlays that `fit` and `validate` both plot.

use super::{align, simulate, Experiment, FitError, FitFile, Simulated, ToleranceKind};
use crate::bench::Signal;

/// One channel of one experiment: measured and simulated at the bench's samples.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Signal.
    pub signal: Signal,
    /// Bench column.
    pub column: String,
    /// Per shot: (time since the edge, s; measured; simulated), SI.
    pub shots: Vec<Vec<(f64, f64, f64)>>,
}

/// Measured and simulated values of every channel of `ex`, lined up ([`align`]).
pub fn overlays(ex: &Experiment, sim: &Simulated) -> Vec<Overlay> {
    let al = align(ex, sim);
    ex.channels
        .iter()
        .zip(&al.values)
        .map(|(ch, vals)| Overlay {
            signal: ch.signal,
            column: ch.column.clone(),
            shots: ch
                .shots
                .iter()
                .zip(vals)
                .map(|(pts, v)| pts.iter().zip(v).map(|((dt, m), s)| (*dt, *m, *s)).collect())
                .collect(),
        })
        .collect()
}

/// Errors of one channel of one experiment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChannelError {
    /// Signal name.
    pub signal: &'static str,
    /// Bench column.
    pub column: String,
    /// Display unit of the figures below.
    pub unit: &'static str,
    /// RMS of simulated − measured over every sample.
    pub rms: f64,
    /// Largest |simulated peak − measured peak| over the shots.
    pub peak_error: f64,
    /// Noise sd used (display unit).
    pub sd: f64,
    /// Whether the sd was estimated from the pre-trigger baseline.
    pub sd_estimated: bool,
    /// Samples compared.
    pub samples: usize,
}

/// One shot's dose and valve delay, measured and simulated.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShotError {
    /// Shot index from 0.
    pub shot: usize,
    /// Weighed volume, µL (None when not weighed).
    pub measured_ul: Option<f64>,
    /// Simulated dose, µL.
    pub simulated_ul: f64,
    /// (simulated − measured) / measured, %.
    pub dose_error_pct: Option<f64>,
    /// Measured valve delay (edge to 10 % of the chamber's pressure rise), ms.
    pub valve_delay_measured_ms: Option<f64>,
    /// Simulated valve delay, ms.
    pub valve_delay_simulated_ms: Option<f64>,
}

/// One experiment's comparison.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExperimentError {
    /// Name.
    pub name: String,
    /// Per channel.
    pub channels: Vec<ChannelError>,
    /// Per shot.
    pub shots: Vec<ShotError>,
    /// The simulation's warnings.
    pub warnings: Vec<String>,
}

/// One tolerance's verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    /// Key as written.
    pub key: String,
    /// Limit.
    pub limit: f64,
    /// Worst value over the experiments (None when no experiment has the data).
    pub worst: Option<f64>,
    /// Which experiment gave it.
    pub experiment: Option<String>,
    /// Within the limit.
    pub pass: bool,
}

/// What `validate` finds.
#[derive(Debug, Clone)]
pub struct Validation {
    /// Per experiment.
    pub experiments: Vec<ExperimentError>,
    /// Per tolerance.
    pub verdicts: Vec<Verdict>,
    /// Overlays for the plots, per experiment.
    pub overlays: Vec<Vec<Overlay>>,
    /// Every tolerance met.
    pub pass: bool,
}

/// Time from the edge to 10 % of the chamber pressure's rise in a shot.
fn delay(pts: &[(f64, f64)]) -> Option<f64> {
    let before =
        pts.iter().filter(|p| p.0 <= 0.0).map(|p| p.1).fold(f64::NAN, |a, b| if a.is_nan() { b } else { a.max(b) });
    let base = if before.is_finite() { before } else { pts.first()?.1 };
    let peak = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let level = base + 0.1 * (peak - base);
    if peak.is_nan() || peak <= base {
        return None;
    }
    pts.windows(2).filter(|w| w[1].0 > 0.0).find(|w| w[0].1 < level && w[1].1 >= level).map(|w| {
        let f = (level - w[0].1) / (w[1].1 - w[0].1);
        w[0].0 + f * (w[1].0 - w[0].0)
    })
}

/// Compare one experiment with its simulation: errors per channel and shot, and the overlays.
pub fn compare(ex: &Experiment, sim: &Simulated) -> (ExperimentError, Vec<Overlay>) {
    let ov = overlays(ex, sim);
    let mut channels = Vec::new();
    for (o, ch) in ov.iter().zip(&ex.channels) {
        let (unit, scale) = o.signal.display_unit();
        let all: Vec<f64> = o.shots.iter().flatten().map(|(_, m, s)| s - m).collect();
        let rms = (all.iter().map(|d| d * d).sum::<f64>() / all.len().max(1) as f64).sqrt();
        let peak_error = o
            .shots
            .iter()
            .map(|s| {
                let pm = s.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
                let ps = s.iter().map(|p| p.2).fold(f64::NEG_INFINITY, f64::max);
                (ps - pm).abs()
            })
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        channels.push(ChannelError {
            signal: o.signal.name(),
            column: o.column.clone(),
            unit,
            rms: rms / scale,
            peak_error: peak_error / scale,
            sd: ch.sd / scale,
            sd_estimated: ch.sd_estimated,
            samples: all.len(),
        });
    }
    let chamber = ov.iter().find(|o| o.signal == Signal::PChamber);
    let shots = (0..ex.shots)
        .map(|k| {
            let measured = ex.volumes.iter().find(|v| v.0 == k).map(|v| v.1);
            let simulated = sim.doses.get(k).copied().unwrap_or(f64::NAN);
            let (dm, ds) = match chamber.and_then(|c| c.shots.get(k)) {
                Some(s) => {
                    let m: Vec<(f64, f64)> = s.iter().map(|p| (p.0, p.1)).collect();
                    let v: Vec<(f64, f64)> = s.iter().map(|p| (p.0, p.2)).collect();
                    (delay(&m), delay(&v))
                }
                None => (None, None),
            };
            ShotError {
                shot: k,
                measured_ul: measured.map(|m| m * 1e9),
                simulated_ul: simulated * 1e9,
                dose_error_pct: measured.filter(|m| *m > 0.0).map(|m| (simulated - m) / m * 100.0),
                valve_delay_measured_ms: dm.map(|d| d * 1e3),
                valve_delay_simulated_ms: ds.map(|d| d * 1e3),
            }
        })
        .collect();
    (ExperimentError { name: ex.name.clone(), channels, shots, warnings: sim.warnings.clone() }, ov)
}

/// Validate the file's scenario against its experiments and tolerances.
pub fn validate(file: &FitFile) -> Result<Validation, FitError> {
    use rayon::prelude::*;
    let sims: Vec<Result<Simulated, String>> = file.experiments.par_iter().map(|ex| simulate(file, ex, &[])).collect();
    let mut experiments = Vec::new();
    let mut overlays = Vec::new();
    for (ex, sim) in file.experiments.iter().zip(sims) {
        let sim = sim.map_err(|e| FitError::Run(format!("{}: {e}", ex.origin)))?;
        let (e, o) = compare(ex, &sim);
        experiments.push(e);
        overlays.push(o);
    }
    let mut verdicts = Vec::new();
    for tol in &file.tolerance {
        let mut worst: Option<(f64, String)> = None;
        let mut consider = |v: f64, name: &str| {
            if v.is_finite() && worst.as_ref().is_none_or(|w| v > w.0) {
                worst = Some((v, name.to_string()));
            }
        };
        for e in &experiments {
            match tol.kind {
                ToleranceKind::Rms(s) | ToleranceKind::Peak(s) => {
                    for c in e.channels.iter().filter(|c| c.signal == s.name()) {
                        consider(if matches!(tol.kind, ToleranceKind::Rms(_)) { c.rms } else { c.peak_error }, &e.name);
                    }
                }
                ToleranceKind::DosePct => {
                    for s in &e.shots {
                        if let Some(d) = s.dose_error_pct {
                            consider(d.abs(), &e.name);
                        }
                    }
                }
                ToleranceKind::ValveDelayMs => {
                    for s in &e.shots {
                        if let (Some(m), Some(v)) = (s.valve_delay_measured_ms, s.valve_delay_simulated_ms) {
                            consider((v - m).abs(), &e.name);
                        }
                    }
                }
            }
        }
        let pass = worst.as_ref().is_some_and(|w| w.0 <= tol.limit);
        verdicts.push(Verdict {
            key: tol.key.clone(),
            limit: tol.limit,
            worst: worst.as_ref().map(|w| w.0),
            experiment: worst.map(|w| w.1),
            pass,
        });
    }
    let pass = verdicts.iter().all(|v| v.pass);
    Ok(Validation { experiments, verdicts, overlays, pass })
}
