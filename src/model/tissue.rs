//! Tissue back-pressure at each injection site (lumped compliance,
//! resistance and opening threshold; see `docs/physics.md`, *Tissue
//! back-pressure and reflux*).
//!
//! p_t = p_open + V_b/C_t + R_t·Q_tis, with dV_b/dt = Q_tis − V_b/τ_abs, and a
//! reflux path along the needle track above the leak pressure:
//! Q_leak = max(0, p_t − p_leak)/R_leak, Q_tis = Q_needle − Q_leak. The site
//! accepts liquid only (no back-flow from the bleb into the needle), so the
//! opening pressure acts as a cracking pressure. All pressures are gauge.

/// One injection site (SI; pressures gauge, Pa).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TissueParams {
    /// Opening pressure, Pa.
    pub p_open: f64,
    /// Secant bleb compliance, m³/Pa.
    pub compliance: f64,
    /// Flow resistance of the tissue, Pa·s/m³.
    pub resistance: f64,
    /// Pressure above which liquid refluxes along the needle track, Pa.
    pub leak_pressure: f64,
    /// Resistance of the reflux path, Pa·s/m³.
    pub leak_resistance: f64,
    /// Absorption time constant of the bleb, s.
    pub absorption_time: f64,
}

/// Site pressure for a given needle flow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SitePressure {
    /// Gauge pressure at the needle tip, Pa.
    pub p: f64,
    /// dp/dQ_needle, Pa·s/m³ (exact within the current leak regime).
    pub slope: f64,
    /// Reflux flow, m³/s.
    pub q_leak: f64,
}

/// Tissue presets by name.
pub const PRESETS: [&str; 2] = ["intradermal", "subcutaneous"];

impl TissueParams {
    /// A preset site, or None for an unknown name.
    ///
    /// * `intradermal` (papule/nappage, 1–2 mm): p_open 30 kPa (20–50 kPa
    ///   fitted [D] to Gupta et al., Biomaterials 32:6823 (2011)), C_t 7.5e-12
    ///   m³/Pa (the secant compliance Gupta's data imply, ≈ 0.3 mL per 40 kPa
    ///   [D]), R_t 3e10 Pa·s/m³ (1e10–1e11 fit range [D]), leak onset 80 kPa
    ///   (30–150 kPa [D]), reflux
    ///   resistance 1e12 Pa·s/m³ [D: 0.1 mL/s through the track at 100 kPa
    ///   excess], absorption 30 s [D, placeholder].
    /// * `subcutaneous` (4–6 mm): p_open 5 kPa (2–10 kPa [D]), C_t 3e-11
    ///   m³/Pa (1e-11–1e-10 [D], from the ≈ 12 kPa minipig mean of Allmendinger
    ///   & Fischer, Pharm Res 2020), R_t 5e9 Pa·s/m³ (Darcy spherical source
    ///   with the permeability of Thomsen et al., PLoS ONE 9:e104054 (2014)),
    ///   leak onset 200 kPa (SC reflux rarely relevant [D]), reflux 1e12 Pa·s/m³, absorption 60 s [D].
    pub fn preset(name: &str) -> Option<TissueParams> {
        match name {
            "intradermal" => Some(TissueParams {
                p_open: 30e3,
                compliance: 7.5e-12,
                resistance: 3e10,
                leak_pressure: 80e3,
                leak_resistance: 1e12,
                absorption_time: 30.0,
            }),
            "subcutaneous" => Some(TissueParams {
                p_open: 5e3,
                compliance: 3e-11,
                resistance: 5e9,
                leak_pressure: 200e3,
                leak_resistance: 1e12,
                absorption_time: 60.0,
            }),
            _ => None,
        }
    }

    /// Fraction of a bleb left after absorbing for `dt`, s (exact for the
    /// first-order absorption dV_b/dt = −V_b/τ_abs).
    #[inline]
    pub fn absorption_decay(&self, dt: f64) -> f64 {
        (-dt / self.absorption_time).exp()
    }

    /// The bleb after a step of `dt` taking `q_tis` (m³/s) into the tissue,
    /// with `decay` = [`Self::absorption_decay`] of `dt`, m³.
    #[inline]
    pub fn grow_bleb(&self, v_b: f64, q_tis: f64, decay: f64, dt: f64) -> f64 {
        v_b * decay + dt * q_tis
    }

    /// The bleb after `dt` without inflow (between shots), m³.
    #[inline]
    pub fn relax_bleb(&self, v_b: f64, dt: f64) -> f64 {
        v_b * self.absorption_decay(dt)
    }

    /// Gauge pressure with no flow for bleb volume `v_b`, Pa.
    #[inline]
    pub fn static_pressure(&self, v_b: f64) -> f64 {
        self.p_open + v_b / self.compliance
    }

    /// Site pressure and reflux at needle flow `q` ≥ 0 (m³/s), bleb `v_b` (m³).
    ///
    /// The needle flow splits between the tissue, which takes
    /// (p − p_bleb)/R_t above the bleb's static pressure, and the track,
    /// which takes (p − p_leak)/R_leak above the leak onset; the tip pressure
    /// is the one at which the two add up to `q`. Neither branch runs
    /// backwards, so reflux never exceeds the needle flow and nothing is
    /// delivered that the needle did not bring, whichever of the two
    /// thresholds is lower.
    #[inline]
    pub fn at_flow(&self, q: f64, v_b: f64) -> SitePressure {
        let base = self.static_pressure(v_b);
        if base > self.leak_pressure {
            // The track opens first: all of a small flow refluxes.
            let p = self.leak_pressure + self.leak_resistance * q;
            if p <= base {
                return SitePressure { p, slope: self.leak_resistance, q_leak: q };
            }
        }
        let p = base + self.resistance * q;
        if p <= self.leak_pressure {
            SitePressure { p, slope: self.resistance, q_leak: 0.0 }
        } else {
            let r = self.resistance / self.leak_resistance;
            let p = (base + self.resistance * q + r * self.leak_pressure) / (1.0 + r);
            SitePressure {
                p,
                slope: self.resistance / (1.0 + r),
                q_leak: (p - self.leak_pressure) / self.leak_resistance,
            }
        }
    }
}

use super::param::{choice, flag, list, real_from, section, units::*, Invalid, Reader};

section! {
    /// `[tissue]`: the injection sites' back-pressure and reflux.
    pub struct RawTissue in "tissue" {
        /// Tissue preset: intradermal (papule, nappage) or subcutaneous.
        preset: String as PRESET = choice("intradermal", &PRESETS)
            .src("Gupta et al., Biomaterials 32:6823 (2011); Allmendinger & Fischer, Pharm Res (2020); Thomsen et al., PLoS ONE 9:e104054 (2014)"),
        /// Opening (cracking) pressure of the site.
        opening_pressure_kpa: f64 as OPENING_PRESSURE = real_from(KPA, "tissue.preset", 0.0, 500.0),
        /// Secant compliance of the bleb.
        compliance_ul_per_kpa: f64 as COMPLIANCE = real_from(UL_PER_KPA, "tissue.preset", 0.01, 1e4),
        /// Flow resistance of the tissue.
        resistance_kpa_s_per_ml: f64 as RESISTANCE = real_from(KPA_S_PER_ML, "tissue.preset", 0.0, 1e5),
        /// Pressure above which liquid refluxes along the needle track.
        leak_pressure_kpa: f64 as LEAK_PRESSURE = real_from(KPA, "tissue.preset", 0.0, 1000.0),
        /// Resistance of the reflux path.
        leak_resistance_kpa_s_per_ml: f64 as LEAK_RESISTANCE = real_from(KPA_S_PER_ML, "tissue.preset", 1.0, 1e7),
        /// Absorption time constant of the bleb.
        absorption_time_s: f64 as ABSORPTION_TIME = real_from(S, "tissue.preset", 0.1, 1e5),
        /// Every shot goes into fresh tissue (the gun moves between points).
        new_site_each_shot: bool as NEW_SITE_EACH_SHOT = flag(true),
        /// Deviation of each needle's site opening pressure, one value per needle.
        opening_pressure_deviation_pct: Vec<f64> as OPENING_PRESSURE_DEVIATION = list(PCT, "none: every site alike", 50.0),
    }
}

impl TissueParams {
    /// One site per needle from the `[tissue]` table.
    pub fn from_raw(ti: &RawTissue, c: &Reader, needles: usize) -> Result<Vec<TissueParams>, Invalid> {
        let tp = c.choice(&RawTissue::PRESET, &ti.preset)?;
        let base = TissueParams::preset(tp).expect("a declared preset");
        let site = TissueParams {
            p_open: c.real_or(&RawTissue::OPENING_PRESSURE, ti.opening_pressure_kpa, base.p_open / 1e3)?,
            compliance: c.real_or(&RawTissue::COMPLIANCE, ti.compliance_ul_per_kpa, base.compliance * 1e12)?,
            resistance: c.real_or(&RawTissue::RESISTANCE, ti.resistance_kpa_s_per_ml, base.resistance * 1e-9)?,
            leak_pressure: c.real_or(&RawTissue::LEAK_PRESSURE, ti.leak_pressure_kpa, base.leak_pressure / 1e3)?,
            leak_resistance: c.real_or(
                &RawTissue::LEAK_RESISTANCE,
                ti.leak_resistance_kpa_s_per_ml,
                base.leak_resistance * 1e-9,
            )?,
            absorption_time: c.real_or(&RawTissue::ABSORPTION_TIME, ti.absorption_time_s, base.absorption_time)?,
        };
        let pdev = c.per_needle(&RawTissue::OPENING_PRESSURE_DEVIATION, &ti.opening_pressure_deviation_pct, needles)?;
        Ok(pdev.iter().map(|dv| TissueParams { p_open: site.p_open * (1.0 + dv / 100.0), ..site.clone() }).collect())
    }
}
