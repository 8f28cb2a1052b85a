//! The manual injector: a person pushing the syringe plunger with the thumb
//! (see `docs/physics.md`, *Manual operator*).
//!
//! The hand is an impedance, not a pure force source: it drives the plunger
//! towards a commanded position `x_cmd(t)` that advances at the operator's
//! intended speed, F = k_h·(x_cmd − z) + b_h·(v_cmd − ż), plus physiological
//! tremor (a narrow band around 8–12 Hz) and start-of-stroke force pulses.
//! Because the stopper must break loose first, the command runs ahead of a
//! plunger that is stuck and the plunger jumps when it lets go: the
//! start-of-stroke flow pulse every operator produced in Tzafalia & Sixou
//! (2011) comes out of the plant, the extra pulses on top are the
//! operator's own.
//!
//! The stop is a visual decision: the operator watches the stopper against
//! the graduations, with a reading error at the start and at the stop (a
//! fraction of a graduation, plus parallax through the barrel wall at a
//! viewing angle that changes between readings), anticipates a fraction of
//! their own latency at the speed they see, and releases the force one
//! reaction time after deciding. The needle tip drifts anterograde during
//! the stroke (mean 1.9 mm, 0.6–4.1 mm, less with experience: Aesthet Surg J
//! 42(10):1109), which changes the tissue the liquid goes into.
//!
//! Variability is hierarchical: an [`Operator`] is drawn once per person
//! (their speed, latency, anticipation habit, tremor frequency) and a
//! [`ShotPlan`] before every shot (speed and latency around the person's
//! own, reading errors, viewing angles, tip drift, pulses).
//!
//! Every default is a prior marked [D] (chosen here) or [V]/[R] (from the
//! sources cited). The priors of the two presets were set so that the
//! simulated outcome falls in the ranges insulin-syringe studies span (bias +20 to +60 % and CV
//! 5–33 % at ≤ 0.01 mL for syringes: Casella et al., Pediatrics 91:1155
//! (1993); Gnanalingham et al., Arch Dis Child 79:59 (1998)); they are a calibrated
//! behavioural model, not independent measurements of each mechanism.

use rand::{Rng, RngExt};
use rand_distr::{Distribution as _, Normal, StandardNormal};

/// Parameters of an operator population (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OperatorParams {
    /// Population median of the intended flow, m³/s.
    pub flow: f64,
    /// Geometric SD of the intended flow between operators.
    pub flow_gsd_between: f64,
    /// Geometric SD of the intended flow between one operator's shots.
    pub flow_gsd_within: f64,
    /// Median reaction time from the stop decision to the release, s.
    pub reaction: f64,
    /// Geometric SD of the reaction time between operators.
    pub reaction_gsd_between: f64,
    /// Geometric SD of the reaction time between one operator's shots.
    pub reaction_gsd_within: f64,
    /// Mean fraction of their own latency an operator anticipates (0 to 1).
    pub anticipation: f64,
    /// SD of that fraction between operators.
    pub anticipation_sd: f64,
    /// Volume between two graduation marks, m³.
    pub graduation: f64,
    /// SD of one reading, in graduations.
    pub reading_sd: f64,
    /// Barrel wall between the marks and the stopper edge (parallax lever), m.
    pub wall: f64,
    /// SD of the viewing angle between readings, rad.
    pub view_angle_sd: f64,
    /// Hand stiffness on the plunger, N/m.
    pub stiffness: f64,
    /// Hand damping, N·s/m.
    pub damping: f64,
    /// Force the thumb rests on the plunger with before the stroke, N.
    pub preload: f64,
    /// Time for the commanded speed to ramp up, s.
    pub ramp: f64,
    /// Time constant of the force release, s.
    pub release: f64,
    /// RMS tremor force, N.
    pub tremor_rms: f64,
    /// Tremor centre frequency range between operators, Hz.
    pub tremor_hz: (f64, f64),
    /// Mean number of extra start-of-stroke force pulses per shot (Poisson).
    pub pulses: f64,
    /// Peak force of a pulse, N (each pulse draws 50–100 % of it).
    pub pulse_force: f64,
    /// Standard deviation (width) of a pulse, s.
    pub pulse_width: f64,
    /// Fraction of the nominal stroke duration in which pulses fall.
    pub pulse_window: f64,
    /// Median anterograde tip drift over one stroke, m.
    pub drift: f64,
    /// Geometric SD of the drift.
    pub drift_gsd: f64,
    /// Intended tip depth, m.
    pub depth: f64,
    /// Dermis thickness (depth of the dermis–fat junction), m.
    pub dermis: f64,
}

/// Operator presets by name.
pub const PRESETS: [&str; 2] = ["novice", "experienced"];

impl OperatorParams {
    /// A preset population, or None for an unknown name.
    ///
    /// Shared by both presets: 1 mL syringe graduations of 0.01 mL [V, BD
    /// tuberculin syringes]; barrel wall 0.8 mm [D]; hand stiffness 4 N/mm
    /// and damping 20 N·s/m [D: reflex-stiffened thumb, chosen so the
    /// break-loose jump of a 4 N / 2.5 N stopper is ≈ 0.4 mm of travel];
    /// tremor 8–12 Hz [textbook band, not verified here; tremor in manual
    /// injection: Micheels et al., J Méd Esthét Chir Dermatol n°197 (2023)]; speed ramp 0.15 s and release 40 ms
    /// [D]; intended depth 1.5 mm, dermis 2.0 mm [D, facial dermis].
    ///
    /// * `novice`: intended flow 25 µL/s (GSD 1.5 between people, 1.25
    ///   within) [D]; reaction 0.25 s [D, visual choice reaction] (GSD 1.2 /
    ///   1.15); anticipates 20 ± 10 % of it [D]; reading SD 0.12 graduation,
    ///   angle SD 4° between the two readings [D]; tremor 0.10 N RMS, 1.5 extra pulses of 0.8 N [D;
    ///   pulses in every operator, mostly early: Tzafalia & Sixou 2011];
    ///   tip drift median 2.2 mm, GSD 1.5 [V: mean 1.9 mm, 0.6–4.1 mm, more
    ///   for beginners].
    /// * `experienced`: flow 15 µL/s (GSD 1.3 / 1.12) [D]; reaction 0.20 s
    ///   (1.1 / 1.1) [D]; anticipates 15 ± 10 % [D]; reading SD 0.06
    ///   graduation, angle SD 2° [D]; a stiffer grip, 8 N/mm [D]; tremor 0.05 N, 0.5 pulses of 0.5 N [D];
    ///   drift median 1.2 mm, GSD 1.4 [V, same source: less with experience].
    pub fn preset(name: &str) -> Option<OperatorParams> {
        let common = OperatorParams {
            flow: 0.0,
            flow_gsd_between: 1.0,
            flow_gsd_within: 1.0,
            reaction: 0.0,
            reaction_gsd_between: 1.0,
            reaction_gsd_within: 1.0,
            anticipation: 0.0,
            anticipation_sd: 0.0,
            graduation: 10e-9,
            reading_sd: 0.0,
            wall: 0.8e-3,
            view_angle_sd: 0.0,
            stiffness: 4000.0,
            damping: 20.0,
            preload: 1.0,
            ramp: 0.15,
            release: 0.04,
            tremor_rms: 0.0,
            tremor_hz: (8.0, 12.0),
            pulses: 0.0,
            pulse_force: 0.0,
            pulse_width: 0.03,
            pulse_window: 0.4,
            drift: 0.0,
            drift_gsd: 1.0,
            depth: 1.5e-3,
            dermis: 2.0e-3,
        };
        match name {
            "novice" => Some(OperatorParams {
                flow: 25e-9,
                flow_gsd_between: 1.5,
                flow_gsd_within: 1.25,
                reaction: 0.25,
                reaction_gsd_between: 1.2,
                reaction_gsd_within: 1.15,
                anticipation: 0.2,
                anticipation_sd: 0.1,
                reading_sd: 0.12,
                view_angle_sd: 4f64.to_radians(),
                tremor_rms: 0.10,
                pulses: 1.5,
                pulse_force: 0.8,
                drift: 2.2e-3,
                drift_gsd: 1.5,
                ..common
            }),
            "experienced" => Some(OperatorParams {
                flow: 15e-9,
                flow_gsd_between: 1.3,
                flow_gsd_within: 1.12,
                reaction: 0.20,
                reaction_gsd_between: 1.1,
                reaction_gsd_within: 1.1,
                anticipation: 0.15,
                anticipation_sd: 0.1,
                reading_sd: 0.06,
                stiffness: 8000.0,
                view_angle_sd: 2f64.to_radians(),
                tremor_rms: 0.05,
                pulses: 0.5,
                pulse_force: 0.5,
                drift: 1.2e-3,
                drift_gsd: 1.4,
                ..common
            }),
            _ => None,
        }
    }

    /// Draw one person from the population.
    pub fn draw_operator<R: Rng>(&self, rng: &mut R) -> Operator {
        let z = |rng: &mut R| -> f64 { StandardNormal.sample(rng) };
        Operator {
            flow: self.flow * (self.flow_gsd_between.ln() * z(rng)).exp(),
            reaction: self.reaction * (self.reaction_gsd_between.ln() * z(rng)).exp(),
            anticipation: (self.anticipation + self.anticipation_sd * z(rng)).clamp(0.0, 1.0),
            tremor_hz: self.tremor_hz.0 + (self.tremor_hz.1 - self.tremor_hz.0) * rng.random::<f64>(),
        }
    }

    /// Draw the plan of one shot of `op`.
    pub fn draw_shot<R: Rng>(&self, op: &Operator, target: f64, syringe_area: f64, rng: &mut R) -> ShotPlan {
        let z = |rng: &mut R| -> f64 { StandardNormal.sample(rng) };
        let flow = op.flow * (self.flow_gsd_within.ln() * z(rng)).exp();
        let reaction = op.reaction * (self.reaction_gsd_within.ln() * z(rng)).exp();
        // Reading error of the travel (stop reading minus start reading), m.
        let grad_len = self.graduation / syringe_area;
        let angle = Normal::new(0.0, self.view_angle_sd.max(0.0)).expect("finite SD");
        let (a0, a1): (f64, f64) = (angle.sample(rng), angle.sample(rng));
        let reading = self.reading_sd * grad_len * (z(rng) - z(rng)) + self.wall * (a1.tan() - a0.tan());
        let drift = if self.drift > 0.0 { self.drift * (self.drift_gsd.ln() * z(rng)).exp() } else { 0.0 };
        let mut phases = [0.0; 3];
        for p in &mut phases {
            *p = std::f64::consts::TAU * rng.random::<f64>();
        }
        // Poisson count by inversion (small means).
        let mut pulses = Vec::new();
        let u: f64 = rng.random();
        let (mut k, mut p, mut cum) = (0usize, (-self.pulses).exp(), (-self.pulses).exp());
        while u > cum && k < 20 {
            k += 1;
            p *= self.pulses / k as f64;
            cum += p;
        }
        let nominal = target / flow;
        for _ in 0..k {
            let t = self.pulse_window * nominal * rng.random::<f64>();
            let f = self.pulse_force * (0.5 + 0.5 * rng.random::<f64>());
            pulses.push((t, f));
        }
        ShotPlan {
            flow,
            reaction,
            anticipation: op.anticipation * op.reaction,
            reading,
            drift,
            tremor_hz: op.tremor_hz,
            phases,
            pulses,
        }
    }
}

/// One person drawn from a population.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Operator {
    /// Their usual intended flow, m³/s.
    pub flow: f64,
    /// Their median reaction time, s.
    pub reaction: f64,
    /// Fraction of their latency they anticipate.
    pub anticipation: f64,
    /// Their tremor centre frequency, Hz.
    pub tremor_hz: f64,
}

/// Everything drawn before one manual shot.
#[derive(Debug, Clone, PartialEq)]
pub struct ShotPlan {
    /// Intended flow, m³/s.
    pub flow: f64,
    /// Reaction time of this shot, s.
    pub reaction: f64,
    /// Anticipation lead (the latency the operator allows for), s.
    pub anticipation: f64,
    /// Reading error of the travel (stop minus start reading), m of plunger travel.
    pub reading: f64,
    /// Anterograde tip drift over the stroke, m.
    pub drift: f64,
    /// Tremor centre frequency, Hz.
    pub tremor_hz: f64,
    /// Phases of the three tremor components, rad.
    pub phases: [f64; 3],
    /// Extra pulses: (time from the start, peak force N).
    pub pulses: Vec<(f64, f64)>,
}

impl ShotPlan {
    /// Tremor force at time `t`, N (three components 0.8 Hz apart around
    /// the centre frequency, scaled to the RMS force).
    pub fn tremor(&self, rms: f64, t: f64) -> f64 {
        let mut f = 0.0;
        for (i, ph) in self.phases.iter().enumerate() {
            let hz = self.tremor_hz + 0.8 * (i as f64 - 1.0);
            f += (std::f64::consts::TAU * hz * t + ph).sin();
        }
        // Three unit sines of different frequencies have RMS √1.5.
        rms * f / 1.5f64.sqrt()
    }

    /// Force of the extra pulses at time `t`, N.
    pub fn pulse_force(&self, width: f64, t: f64) -> f64 {
        self.pulses.iter().map(|&(t0, f)| f * (-0.5 * ((t - t0) / width).powi(2)).exp()).sum()
    }
}
