//! 3/2 solenoid valve: supply → chamber when energised, chamber → exhaust
//! when not (see `docs/physics.md`, *Solenoid valve*).
//!
//! Two latency models:
//! * [`Actuation::Coil`]: the coil current follows v = R·i + d(L(x)·i)/dt with
//!   a gap-dominated inductance L(g) = L0·(g0 + g_fe)/(g + g_fe); the magnetic
//!   force is F = ½·i²·dL/dx; the armature (mass, spring preload and rate,
//!   pressure force on the seat, damping) travels between end stops. The
//!   opening and closing delays therefore come from the L/R rise, the pull-in
//!   threshold, the travel and the flux decay through the flyback clamp
//!   (standard lumped form, e.g. Forrai, InTech 2018). Coil resistance follows copper's +0.393 %/K.
//! * [`Actuation::Catalogue`]: a catalogue response time (JIS test) split
//!   into a dead time and a linear travel, for valves known only by their
//!   datasheet (e.g. Festo MH1 ≈ 4 ms, SMC SX3000 10 ms [V]).
//!
//! Seat flow: ISO 6358 (C, b, m) scaled by the opening fraction on the
//! supply side and by its complement on the exhaust side (poppet between two
//! seats: a short cross-flow while in travel).

use super::gas::Iso6358;

/// Valve parameters (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ValveParams {
    /// Supply → outlet (P→A) flow element at full opening.
    pub inlet: Iso6358,
    /// Outlet → exhaust (A→R) flow element at full closure.
    pub exhaust: Iso6358,
    /// How the opening follows the command.
    pub actuation: Actuation,
}

/// Valve actuation model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Actuation {
    /// Electromagnetic coil and armature (`docs/physics.md`, *Solenoid valve*).
    Coil(Coil),
    /// Catalogue response times (maker's JIS test, e.g. SMC V100 catalogue [V]).
    Catalogue(Catalogue),
}

/// Electromagnetic coil and armature (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Coil {
    /// Drive voltage, V.
    pub voltage: f64,
    /// Coil resistance at 20 °C, Ω.
    pub resistance_20c: f64,
    /// Coil temperature, K.
    pub temperature: f64,
    /// Inductance with the armature at rest (gap g0), H.
    pub inductance: f64,
    /// Magnetic air gap with the armature at rest, m.
    pub gap: f64,
    /// Iron path reluctance expressed as an equivalent air gap, m.
    pub iron_gap: f64,
    /// Armature stroke, m (< gap).
    pub stroke: f64,
    /// Armature mass, kg.
    pub armature_mass: f64,
    /// Return spring preload, N.
    pub spring_preload: f64,
    /// Return spring rate, N/m.
    pub spring_rate: f64,
    /// Seat area on which the supply pressure holds the poppet closed, m².
    pub seat_area: f64,
    /// Viscous damping of the armature, N·s/m.
    pub damping: f64,
    /// Flyback clamp voltage while the current decays, V (0.7 for a plain
    /// diode, tens of volts for a Zener/TVS clamp).
    pub clamp_voltage: f64,
}

/// Catalogue response times (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Catalogue {
    /// Response time to full opening after the command rises, s.
    pub t_on: f64,
    /// Response time to full closure after the command falls, s.
    pub t_off: f64,
    /// Fraction of each response time spent in travel (the rest is dead time), –.
    pub travel_fraction: f64,
}

/// Copper resistance temperature coefficient, 1/K (standard property of copper).
pub const COPPER_ALPHA: f64 = 0.00393;

impl Coil {
    /// Coil resistance at its temperature, Ω.
    pub fn resistance(&self) -> f64 {
        self.resistance_20c * (1.0 + COPPER_ALPHA * (self.temperature - 293.15))
    }

    /// Inductance L(x) and dL/dx at armature position `x` (m from rest).
    #[inline]
    pub fn inductance_at(&self, x: f64) -> (f64, f64) {
        let g = (self.gap - x).max(0.0) + self.iron_gap;
        let k = self.inductance * (self.gap + self.iron_gap);
        (k / g, k / (g * g))
    }

    /// Steady current when energised, A.
    pub fn steady_current(&self) -> f64 {
        self.voltage / self.resistance()
    }

    /// Pull-in current: the current at which the magnetic force at rest equals
    /// the spring preload plus the pressure force of `dp` (Pa) on the seat, A.
    pub fn pull_in_current(&self, dp: f64) -> f64 {
        let (_, dl) = self.inductance_at(0.0);
        (2.0 * (self.spring_preload + dp.max(0.0) * self.seat_area) / dl).sqrt()
    }

    /// Closed-form estimate of the opening delay (`docs/physics.md`, *Solenoid valve*):
    /// t_e = τ·ln(1/(1 − I_pull/I_ss)) plus t_m = sqrt(2·s·m/F_net), with F_net
    /// the mean net force over the stroke at the steady current. Returns None
    /// if the valve cannot pull in.
    pub fn opening_delay_estimate(&self, dp: f64) -> Option<f64> {
        let i_ss = self.steady_current();
        let i_p = self.pull_in_current(dp);
        if i_p >= i_ss {
            return None;
        }
        let tau = self.inductance / self.resistance();
        let t_e = tau * (1.0 / (1.0 - i_p / i_ss)).ln();
        // Mean net force over the stroke with the current at I_ss.
        let n = 16;
        let mut f = 0.0;
        for k in 0..n {
            let x = (k as f64 + 0.5) / n as f64 * self.stroke;
            let (_, dl) = self.inductance_at(x);
            let open = x / self.stroke;
            f += 0.5 * i_ss * i_ss * dl
                - (self.spring_preload + self.spring_rate * x)
                - dp.max(0.0) * self.seat_area * (1.0 - open);
        }
        f /= n as f64;
        if f <= 0.0 {
            return None;
        }
        Some(t_e + (2.0 * self.stroke * self.armature_mass / f).sqrt())
    }
}

/// Dynamic state of the valve actuator.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct ValveState {
    /// Coil current, A (coil model).
    pub current: f64,
    /// Armature position, m (coil model).
    pub x: f64,
    /// Armature velocity, m/s (coil model).
    pub v: f64,
    /// Opening fraction, – (0 closed to exhaust, 1 fully open to supply).
    pub opening: f64,
    /// Time since the last command edge, s (catalogue model).
    pub since_edge: f64,
    /// Last command seen, (catalogue model and edge detection).
    pub last_cmd: bool,
}

impl ValveParams {
    /// Advance the actuator by `dt` with the coil driven at `drive` (fraction
    /// of the drive voltage averaged over the step, 0 to 1) and `dp_seat` (Pa)
    /// across the inlet seat; updates `s.opening`. A catalogue valve is on
    /// while the drive is at least half the voltage.
    #[inline]
    pub fn advance(&self, s: &mut ValveState, drive: f64, dp_seat: f64, dt: f64) {
        match &self.actuation {
            Actuation::Coil(c) => advance_coil(c, s, drive, dp_seat, dt),
            Actuation::Catalogue(c) => advance_catalogue(c, s, drive >= 0.5, dt),
        }
    }
}

#[inline]
fn advance_coil(c: &Coil, s: &mut ValveState, drive: f64, dp_seat: f64, dt: f64) {
    // Resting on a stop with nothing left to change: de-energised and closed,
    // or held fully open with the current settled to V/R (the seat's pressure
    // force vanishes at full stroke). Skipping is exact.
    if s.v == 0.0 {
        if drive == 0.0 && s.current == 0.0 && s.x == 0.0 {
            return;
        }
        if drive > 0.0 && s.x == c.stroke {
            let i_inf = drive * c.voltage / c.resistance();
            if (s.current - i_inf).abs() <= 1e-12 * i_inf {
                return;
            }
        }
    }
    let r = c.resistance();
    let (l, dl) = c.inductance_at(s.x);
    // Motional EMF i·dL/dx·v acts as an extra voltage drop.
    let emf = s.current * dl * s.v;
    // L di/dt = V − emf − R i over dt with L and emf frozen: the decay factor
    // e^−a, a = dt·R/L, is exact; for small a its (1,1) Padé form (the
    // trapezoidal rule, error a³/12) costs no exponential.
    let a = dt * r / l;
    let decay = if a < 0.05 { (1.0 - 0.5 * a) / (1.0 + 0.5 * a) } else { (-a).exp() };
    if drive > 0.0 {
        let i_inf = (drive * c.voltage - emf) / r;
        s.current = i_inf + (s.current - i_inf) * decay;
    } else if s.current > 0.0 {
        let i_inf = (-c.clamp_voltage - emf) / r;
        let i = i_inf + (s.current - i_inf) * decay;
        s.current = i.max(0.0);
    }
    let f_mag = 0.5 * s.current * s.current * dl;
    let open = s.x / c.stroke;
    let f = f_mag
        - (c.spring_preload + c.spring_rate * s.x)
        - dp_seat.max(0.0) * c.seat_area * (1.0 - open)
        - c.damping * s.v;
    // Semi-implicit (symplectic) Euler with inelastic end stops.
    let mut v = s.v + dt * f / c.armature_mass;
    let mut x = s.x + dt * v;
    if x <= 0.0 {
        x = 0.0;
        v = v.max(0.0);
    } else if x >= c.stroke {
        x = c.stroke;
        v = v.min(0.0);
    }
    s.x = x;
    s.v = v;
    s.opening = x / c.stroke;
}

#[inline]
fn advance_catalogue(c: &Catalogue, s: &mut ValveState, command: bool, dt: f64) {
    if command != s.last_cmd {
        s.last_cmd = command;
        s.since_edge = 0.0;
    }
    let (t_resp, target) = if command { (c.t_on, 1.0) } else { (c.t_off, 0.0) };
    let t_travel = (c.travel_fraction * t_resp).max(1e-12);
    let t_dead = t_resp - c.travel_fraction * t_resp;
    // Time this step spends past the dead time.
    let t0 = s.since_edge;
    s.since_edge += dt;
    let moving = (s.since_edge - t_dead.max(t0)).max(0.0);
    if moving > 0.0 {
        let step = moving / t_travel;
        if target > s.opening {
            s.opening = (s.opening + step).min(1.0);
        } else if target < s.opening {
            s.opening = (s.opening - step).max(0.0);
        }
    }
}

use super::gas::DM3_PER_S_BAR;
use super::param::{choice, fmt_num, invalid, real, real_from, section, units::*, Invalid, Reader};

section! {
    /// `[valve]`: the solenoid valve's seats and its actuation.
    pub struct RawValve in "valve" {
        /// Latency model: the coil and armature, or catalogue response times.
        model: String as MODEL = choice("coil", &["coil", "catalogue"]),
        /// ISO 6358 sonic conductance C of the inlet seat at full opening.
        c_dm3_per_s_bar: f64 as C = real(SONIC_CONDUCTANCE, 0.1, 0.001, 10.0)
            .src("0.02–0.3 dm³/(s·bar) fills a 0.5–3 mL chamber in a few ms (derived)"),
        /// ISO 6358 critical pressure ratio b.
        b: f64 as B = real(ratio("(critical pressure ratio)"), 0.3, 0.0, 0.95)
            .src("real valves 0.1–0.45 (CKD M3G/M4G manual); ideal nozzle 0.528"),
        /// ISO 6358 subsonic exponent m.
        m: f64 as M = real(ratio("(subsonic exponent)"), 0.5, 0.3, 1.0).src("the elliptic law (SMC catalogue front matter)"),
        /// Sonic conductance of the exhaust seat.
        exhaust_c_dm3_per_s_bar: f64 as EXHAUST_C = real_from(SONIC_CONDUCTANCE, "valve.c_dm3_per_s_bar", 0.001, 10.0),
        /// Critical pressure ratio of the exhaust seat.
        exhaust_b: f64 as EXHAUST_B = real_from(ratio("(critical pressure ratio)"), "valve.b", 0.0, 0.95),
        /// Coil drive voltage.
        voltage_v: f64 as VOLTAGE = real(VOLT, 12.0, 1.0, 48.0)
            .src("a generic small direct-acting valve (derived)")
            .note("must pull the armature in against the spring and the supply pressure on the seat"),
        /// Coil resistance at 20 °C.
        coil_resistance_ohm: f64 as RESISTANCE = real(OHM, 30.0, 0.5, 1000.0).src("a generic small direct-acting valve (derived)"),
        /// Coil temperature (copper: +0.393 %/K).
        coil_temperature_c: f64 as COIL_TEMPERATURE = real(CELSIUS, 20.0, -20.0, 180.0).src("a cold coil, as in the maker's response-time test (SMC V100 catalogue)"),
        /// Coil inductance with the armature at rest.
        inductance_mh: f64 as INDUCTANCE = real(MH, 30.0, 0.1, 1000.0).src("a generic small direct-acting valve (derived)"),
        /// Magnetic air gap with the armature at rest.
        gap_mm: f64 as GAP = real(MM, 0.5, 0.05, 5.0).src("a generic small direct-acting valve (derived)"),
        /// Iron path reluctance as an equivalent air gap.
        iron_gap_mm: f64 as IRON_GAP = real(MM, 0.1, 0.0, 5.0).src("a generic small direct-acting valve (derived)"),
        /// Armature stroke.
        stroke_mm: f64 as STROKE = real(MM, 0.3, 0.02, 5.0)
            .src("a generic small direct-acting valve (derived)")
            .note("less than valve.gap_mm"),
        /// Armature mass.
        armature_mass_g: f64 as ARMATURE_MASS = real(G, 2.0, 0.05, 50.0).src("a generic small direct-acting valve (derived)"),
        /// Armature spring preload.
        spring_preload_n: f64 as SPRING_PRELOAD = real(N, 1.5, 0.0, 100.0).src("a generic small direct-acting valve (derived)"),
        /// Armature spring rate.
        spring_rate_n_per_mm: f64 as SPRING_RATE = real(N_PER_MM, 0.5, 0.0, 100.0).src("a generic small direct-acting valve (derived)"),
        /// Seat diameter (the supply pressure on it holds the poppet closed).
        seat_diameter_mm: f64 as SEAT_DIAMETER = real(MM, 1.0, 0.1, 5.0).src("a generic small direct-acting valve (derived)"),
        /// Armature viscous damping.
        damping_n_s_per_m: f64 as DAMPING = real(N_S_PER_M, 1.0, 0.0, 100.0).src("a generic small direct-acting valve (derived)"),
        /// Flyback clamp voltage (0.7 V: a plain diode; tens of volts: a Zener or TVS).
        clamp_voltage_v: f64 as CLAMP_VOLTAGE = real(VOLT, 0.7, 0.0, 200.0).src("a plain diode"),
        /// Catalogue response time to full opening (catalogue model).
        response_on_ms: f64 as RESPONSE_ON = real(MS, 4.0, 0.05, 100.0).src("Festo MH1 datasheet, about 4 ms"),
        /// Catalogue response time to full closure (catalogue model).
        response_off_ms: f64 as RESPONSE_OFF = real(MS, 4.0, 0.05, 100.0).src("Festo MH1 datasheet, about 4 ms"),
        /// Fraction of each catalogue response spent in travel, the rest being dead time.
        travel_fraction: f64 as TRAVEL_FRACTION = real(ONE, 0.3, 0.01, 1.0).src("derived"),
    }
}

impl ValveParams {
    /// The valve from its `[valve]` table.
    pub fn from_raw(v: &RawValve, c: &Reader) -> Result<ValveParams, Invalid> {
        let model = c.choice(&RawValve::MODEL, &v.model)?;
        let cc = c.real(&RawValve::C, v.c_dm3_per_s_bar)?;
        let b = c.real(&RawValve::B, v.b)?;
        let m = c.real(&RawValve::M, v.m)?;
        let ce = c.real_or(&RawValve::EXHAUST_C, v.exhaust_c_dm3_per_s_bar, cc / DM3_PER_S_BAR)?;
        let be = c.real_or(&RawValve::EXHAUST_B, v.exhaust_b, b)?;
        let actuation = if model == "coil" {
            let gap = c.real(&RawValve::GAP, v.gap_mm)?;
            let stroke = c.real(&RawValve::STROKE, v.stroke_mm)?;
            if stroke >= gap {
                return Err(invalid(
                    RawValve::STROKE.key,
                    fmt_num(stroke * 1e3),
                    format!("less than valve.gap_mm = {}", fmt_num(gap * 1e3)),
                ));
            }
            let seat_d = c.real(&RawValve::SEAT_DIAMETER, v.seat_diameter_mm)?;
            Actuation::Coil(Coil {
                voltage: c.real(&RawValve::VOLTAGE, v.voltage_v)?,
                resistance_20c: c.real(&RawValve::RESISTANCE, v.coil_resistance_ohm)?,
                temperature: c.real(&RawValve::COIL_TEMPERATURE, v.coil_temperature_c)?,
                inductance: c.real(&RawValve::INDUCTANCE, v.inductance_mh)?,
                gap,
                iron_gap: c.real(&RawValve::IRON_GAP, v.iron_gap_mm)?,
                stroke,
                armature_mass: c.real(&RawValve::ARMATURE_MASS, v.armature_mass_g)?,
                spring_preload: c.real(&RawValve::SPRING_PRELOAD, v.spring_preload_n)?,
                spring_rate: c.real(&RawValve::SPRING_RATE, v.spring_rate_n_per_mm)?,
                seat_area: std::f64::consts::PI * seat_d * seat_d / 4.0,
                damping: c.real(&RawValve::DAMPING, v.damping_n_s_per_m)?,
                clamp_voltage: c.real(&RawValve::CLAMP_VOLTAGE, v.clamp_voltage_v)?,
            })
        } else {
            Actuation::Catalogue(Catalogue {
                t_on: c.real(&RawValve::RESPONSE_ON, v.response_on_ms)?,
                t_off: c.real(&RawValve::RESPONSE_OFF, v.response_off_ms)?,
                travel_fraction: c.real(&RawValve::TRAVEL_FRACTION, v.travel_fraction)?,
            })
        };
        Ok(ValveParams { inlet: Iso6358 { c: cc, b, m }, exhaust: Iso6358 { c: ce, b: be, m }, actuation })
    }
}
