//! Tissue back-pressure at each injection site (lumped compliance,
//! resistance and opening threshold with a nonlinear bleb; see
//! `docs/physics.md`, *Tissue back-pressure and reflux*).
//!
//! p_t = p_open + p_el(V_b) + R_t·Q_tis, with dV_b/dt = Q_tis − V_b/τ_abs,
//! and a reflux path along the needle track above the leak pressure:
//! Q_leak = max(0, p_t − p_leak)/R_leak, Q_tis = Q_needle − Q_leak. The
//! bleb's elastic pressure stiffens with volume and is capped smoothly at
//! the dissection pressure, where tissue planes part and the bleb grows at
//! constant pressure:
//!
//! e(V) = (V/C_t)·(1 + (V/V_s)²),   p_el = e/(1 + (e/p_dis)⁴)^¼
//!
//! (V_s = 0: no stiffening; p_dis = 0: no dissection). `tissue.law =
//! "exponential"` replaces the quadratic stiffening by Fung's exponential
//! one, e(V) = (V_s/C_t)·(e^{V/V_s} − 1), with the same small-volume
//! compliance C_t and the same dissection cap. The site accepts
//! liquid only (no back-flow from the bleb into the needle), so the opening
//! pressure acts as a cracking pressure. All pressures are gauge.

/// One injection site (SI; pressures gauge, Pa).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TissueParams {
    /// Opening pressure, Pa.
    pub p_open: f64,
    /// Initial (small-volume) bleb compliance, m³/Pa.
    pub compliance: f64,
    /// Flow resistance of the tissue, Pa·s/m³.
    pub resistance: f64,
    /// Pressure above which liquid refluxes along the needle track, Pa.
    pub leak_pressure: f64,
    /// Resistance of the reflux path, Pa·s/m³.
    pub leak_resistance: f64,
    /// Absorption time constant of the bleb, s.
    pub absorption_time: f64,
    /// Stiffening volume V_s, m³ (0: linear).
    pub stiffening_volume: f64,
    /// Dissection pressure p_dis above p_open, Pa (0: none).
    pub dissection_pressure: f64,
    /// How the bleb stiffens with volume (left out of the resolved
    /// parameters when it is the default, so their JSON does not change).
    #[serde(skip_serializing_if = "TissueLaw::is_default")]
    pub law: TissueLaw,
    /// The preset's validated range (of the preset the site started from).
    pub validated: Validated,
}

/// How a bleb's elastic pressure grows with its volume V (both laws have
/// the small-volume compliance C_t and the stiffening volume V_s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TissueLaw {
    /// (V/C_t)·(1 + (V/V_s)²): the presets' law, calibrated on Gupta et al.
    #[default]
    Stiffening,
    /// (V_s/C_t)·(e^{V/V_s} − 1): Fung's exponential law of soft tissue
    /// (Fung, Am J Physiol 213:1532 (1967)) written for the bleb's volume.
    Exponential,
}

impl TissueLaw {
    /// The law's names as `tissue.law` takes them.
    pub const NAMES: [&'static str; 2] = ["stiffening", "exponential"];

    fn is_default(&self) -> bool {
        *self == TissueLaw::default()
    }
}

/// Where a tissue preset was checked against published data.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Validated {
    /// Preset name.
    pub preset: &'static str,
    /// Bleb volume range, m³.
    pub volume: (f64, f64),
    /// Flow range into one site, m³/s.
    pub rate: (f64, f64),
    /// The data behind it.
    pub source: &'static str,
}

impl Validated {
    /// Why a site that held up to `volume` (m³) at up to `rate` (m³/s) is
    /// outside the range, or None.
    pub fn outside(&self, volume: f64, rate: f64) -> Option<String> {
        let ml = |v: f64| crate::text::g6(v * 1e6);
        let mut out = Vec::new();
        if volume > self.volume.1 * (1.0 + 1e-9) {
            out.push(format!("a bleb of {} mL (above {} mL)", ml(volume), ml(self.volume.1)));
        } else if volume < self.volume.0 * (1.0 - 1e-9) {
            out.push(format!("at most {} mL per site (below {} mL)", ml(volume), ml(self.volume.0)));
        }
        if rate > self.rate.1 * (1.0 + 1e-9) {
            out.push(format!("a flow of {} mL/s into a site (above {} mL/s)", ml(rate), ml(self.rate.1)));
        } else if rate < self.rate.0 * (1.0 - 1e-9) {
            out.push(format!("a peak flow of {} mL/s into a site (below {} mL/s)", ml(rate), ml(self.rate.0)));
        }
        if out.is_empty() {
            return None;
        }
        Some(format!(
            "the {} tissue preset is validated for {}–{} mL at {}–{} mL/s ({}); this run reached {}: its back-pressure there is an extrapolation",
            self.preset,
            ml(self.volume.0),
            ml(self.volume.1),
            ml(self.rate.0),
            ml(self.rate.1),
            self.source,
            out.join(" and ")
        ))
    }
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
pub const PRESETS: [&str; 3] = ["intradermal", "dermis_fat", "subcutaneous"];

impl TissueParams {
    /// A preset site, or None for an unknown name.
    ///
    /// * `intradermal` (papule/nappage, 1–2 mm): p_open 30 kPa (20–50 kPa
    ///   fitted [D] to Gupta et al., Biomaterials 32:6823 (2011)), C_t 7.5e-12
    ///   m³/Pa (the secant compliance Gupta's first few hundred µL imply [D]),
    ///   stiffening volume 1 mL (so that 1 mL at 0.3 mL/min needs ≈ 250 kPa,
    ///   inside Gupta's 130–500 kPa [D]), no dissection, R_t 3e10 Pa·s/m³
    ///   (1e10–1e11 fit range [D]), leak onset 300 kPa (the dermis held
    ///   Gupta's pressures around an inserted needle [D]), reflux resistance
    ///   1e12 Pa·s/m³ [D], absorption 900 s (a wheal flattens over minutes to
    ///   tens of minutes [D]). Validated to 1 mL at up to 0.3 mL/min.
    /// * `dermis_fat` (the dermis–fat junction): the geometric mean of the
    ///   two others' p_open, C_t and R_t (as the manual operator's tip blends
    ///   them at the junction), dissection at 20 kPa, leak onset 150 kPa,
    ///   absorption 300 s [D]; bracketed by the two, not validated directly.
    /// * `subcutaneous` (4–6 mm): p_open 5 kPa (2–10 kPa [D]), C_t 1e-11
    ///   m³/Pa (the stiff end of 1e-11–1e-10 [D], so the plateau is reached
    ///   by 0.1 mL), dissection at 7 kPa above p_open, so the
    ///   pressure plateaus at ≈ 12 kPa (the minipig mean of ≈ 12 kPa,
    ///   maximum 30 kPa, 0.1–11 mL at 0.025–0.2 mL/s, of Allmendinger &
    ///   Fischer, Pharm Res (2020)), R_t 5e9 Pa·s/m³ (Darcy spherical source
    ///   with the permeability of Thomsen et al., PLoS ONE 9:e104054 (2014)),
    ///   leak onset 200 kPa, reflux 1e12 Pa·s/m³, absorption 60 s [D].
    pub fn preset(name: &str) -> Option<TissueParams> {
        const ID: Validated = Validated {
            preset: "intradermal",
            volume: (0.0, 1e-6),
            rate: (0.0, 0.3e-6 / 60.0),
            source: "Gupta et al., Biomaterials 32:6823 (2011)",
        };
        match name {
            "intradermal" => Some(TissueParams {
                p_open: 30e3,
                compliance: 7.5e-12,
                resistance: 3e10,
                leak_pressure: 300e3,
                leak_resistance: 1e12,
                absorption_time: 900.0,
                stiffening_volume: 1e-6,
                dissection_pressure: 0.0,
                law: TissueLaw::Stiffening,
                validated: ID,
            }),
            "dermis_fat" => Some(TissueParams {
                p_open: (30e3_f64 * 5e3).sqrt(),
                compliance: (7.5e-12_f64 * 1e-11).sqrt(),
                resistance: (3e10_f64 * 5e9).sqrt(),
                leak_pressure: 150e3,
                leak_resistance: 1e12,
                absorption_time: 300.0,
                stiffening_volume: 0.0,
                dissection_pressure: 20e3,
                law: TissueLaw::Stiffening,
                validated: Validated {
                    preset: "dermis_fat",
                    volume: (0.0, 1e-6),
                    rate: (0.0, 0.2e-6),
                    source: "bracketed by the intradermal and subcutaneous cases, not measured",
                },
            }),
            "subcutaneous" => Some(TissueParams {
                p_open: 5e3,
                compliance: 1e-11,
                resistance: 5e9,
                leak_pressure: 200e3,
                leak_resistance: 1e12,
                absorption_time: 60.0,
                stiffening_volume: 0.0,
                dissection_pressure: 7e3,
                law: TissueLaw::Stiffening,
                validated: Validated {
                    preset: "subcutaneous",
                    volume: (0.1e-6, 11e-6),
                    rate: (0.025e-6, 0.2e-6),
                    source: "Allmendinger & Fischer, Pharm Res (2020)",
                },
            }),
            _ => None,
        }
    }

    /// Elastic pressure of a bleb of volume `v_b` above p_open, Pa.
    #[inline]
    pub fn elastic_pressure(&self, v_b: f64) -> f64 {
        let mut e = v_b / self.compliance;
        if self.stiffening_volume > 0.0 {
            let r = v_b / self.stiffening_volume;
            match self.law {
                TissueLaw::Stiffening => e *= 1.0 + r * r,
                // e^r − 1 over r (exp_m1 keeps small blebs exact); past r = 40
                // (a pressure above 1e17 × V_s/C_t) the bleb is held there, so
                // the state stays finite and the run's pressure checks stop it.
                TissueLaw::Exponential => e *= if r > 0.0 { r.min(40.0).exp_m1() / r } else { 1.0 },
            }
        }
        if self.dissection_pressure > 0.0 && e > 0.0 {
            let r = e / self.dissection_pressure;
            let r2 = r * r;
            e /= (1.0 + r2 * r2).sqrt().sqrt();
        }
        e
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
        self.p_open + self.elastic_pressure(v_b)
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
        /// Tissue preset: intradermal (papule, nappage), dermis_fat (the dermis–fat junction) or subcutaneous.
        preset: String as PRESET = choice("intradermal", &PRESETS)
            .src("Gupta et al., Biomaterials 32:6823 (2011); Allmendinger & Fischer, Pharm Res (2020); Thomsen et al., PLoS ONE 9:e104054 (2014)"),
        /// Opening (cracking) pressure of the site.
        opening_pressure_kpa: f64 as OPENING_PRESSURE = real_from(KPA, "tissue.preset", 0.0, 500.0),
        /// Initial (small-volume) compliance of the bleb.
        compliance_ul_per_kpa: f64 as COMPLIANCE = real_from(UL_PER_KPA, "tissue.preset", 0.01, 1e4),
        /// Flow resistance of the tissue.
        resistance_kpa_s_per_ml: f64 as RESISTANCE = real_from(KPA_S_PER_ML, "tissue.preset", 0.0, 1e5),
        /// Pressure above which liquid refluxes along the needle track.
        leak_pressure_kpa: f64 as LEAK_PRESSURE = real_from(KPA, "tissue.preset", 0.0, 1000.0),
        /// Resistance of the reflux path.
        leak_resistance_kpa_s_per_ml: f64 as LEAK_RESISTANCE = real_from(KPA_S_PER_ML, "tissue.preset", 1.0, 1e7),
        /// Absorption time constant of the bleb.
        absorption_time_s: f64 as ABSORPTION_TIME = real_from(S, "tissue.preset", 0.1, 1e5),
        /// How the bleb stiffens: stiffening ((V/C)(1 + (V/V_s)²), the presets') or exponential (Fung's (V_s/C)(e^(V/V_s) − 1)).
        law: String as LAW = choice("stiffening", &TissueLaw::NAMES)
            .src("Gupta et al., Biomaterials 32:6823 (2011) (stiffening, fitted); Fung, Am J Physiol 213:1532 (1967) (exponential)"),
        /// Stiffening volume of the bleb (0: linear).
        stiffening_volume_ml: f64 as STIFFENING_VOLUME = real_from(ML, "tissue.preset", 0.0, 1000.0),
        /// Dissection pressure above the opening pressure, where the bleb grows at constant pressure (0: none).
        dissection_pressure_kpa: f64 as DISSECTION_PRESSURE = real_from(KPA, "tissue.preset", 0.0, 1000.0),
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
            stiffening_volume: c.real_or(
                &RawTissue::STIFFENING_VOLUME,
                ti.stiffening_volume_ml,
                base.stiffening_volume * 1e6,
            )?,
            dissection_pressure: c.real_or(
                &RawTissue::DISSECTION_PRESSURE,
                ti.dissection_pressure_kpa,
                base.dissection_pressure / 1e3,
            )?,
            law: match c.choice(&RawTissue::LAW, &ti.law)? {
                "stiffening" => TissueLaw::Stiffening,
                "exponential" => TissueLaw::Exponential,
                other => return Err(super::param::invalid("tissue.law", other, TissueLaw::NAMES.join(" or "))),
            },
            validated: base.validated,
        };
        let pdev = c.per_needle(&RawTissue::OPENING_PRESSURE_DEVIATION, &ti.opening_pressure_deviation_pct, needles)?;
        Ok(pdev.iter().map(|dv| TissueParams { p_open: site.p_open * (1.0 + dv / 100.0), ..site.clone() }).collect())
    }
}
