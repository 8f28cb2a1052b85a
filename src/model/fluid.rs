//! Injected fluids: density, compressibility and rheology (see `docs/physics.md`,
//! *Fluids and rheology*).
//!
//! Newtonian, power-law (with a zero-shear Newtonian plateau so that the
//! apparent viscosity stays finite as the flow stops) and Carreau laws. The
//! library holds saline, a vitamin cocktail and a non-crosslinked hyaluronic
//! acid skin booster; see [`Fluid::preset`] for the sources of each.

/// Rheological law (SI: Pa·s, Pa·sⁿ, s).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Rheology {
    /// Constant viscosity μ, Pa·s.
    Newtonian {
        /// Dynamic viscosity, Pa·s.
        mu: f64,
    },
    /// τ = K·γ̇ⁿ above the shear rate where K·γ̇^(n−1) = η0; Newtonian η0 below.
    PowerLaw {
        /// Consistency, Pa·sⁿ.
        k: f64,
        /// Flow index, –.
        n: f64,
        /// Zero-shear plateau viscosity, Pa·s.
        eta0: f64,
    },
    /// η = η∞ + (η0 − η∞)·(1 + (λγ̇)²)^((n−1)/2).
    Carreau {
        /// Zero-shear viscosity, Pa·s.
        eta0: f64,
        /// Infinite-shear viscosity, Pa·s.
        eta_inf: f64,
        /// Time constant, s.
        lambda: f64,
        /// Flow index, –.
        n: f64,
    },
}

/// An injected fluid (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fluid {
    /// Name for reports.
    pub name: String,
    /// Density, kg/m³.
    pub density: f64,
    /// Isothermal compressibility, 1/Pa (water: 4.6e-10, standard property).
    pub compressibility: f64,
    /// Rheological law at the fluid temperature.
    pub rheology: Rheology,
}

/// Fluid presets by name.
pub const PRESETS: [&str; 3] = ["saline", "vitamin_cocktail", "ha_skin_booster"];

/// Temperature factor of water viscosity relative to 20 °C: ln(μ(T)/μ20) ≈
/// −0.0229·(T − 20 °C), from water's 1.002 / 0.797 / 0.653 mPa·s at
/// 20 / 30 / 40 °C [R, standard property tables]. Applied to every viscosity
/// parameter of aqueous fluids as an approximation.
pub fn water_viscosity_factor(temperature_k: f64) -> f64 {
    (-0.0229 * (temperature_k - 293.15)).exp()
}

impl Fluid {
    /// A preset fluid at 20 °C, or None for an unknown name.
    ///
    /// * `saline`: 0.9 % NaCl; ρ = 1005 kg/m³, μ = 1.02 mPa·s (water 1.002
    ///   mPa·s at 20 °C plus about 2 % for the salt [R, property tables]).
    /// * `vitamin_cocktail`: an aqueous multivitamin/amino-acid mesotherapy
    ///   solution; Newtonian, μ = 2 mPa·s, ρ = 1010 kg/m³. No published
    ///   rheology was found for such cocktails: a placeholder to replace
    ///   with a measurement.
    /// * `ha_skin_booster`: non-crosslinked hyaluronic acid about 1 % at
    ///   1 MDa; Carreau η0 = 3.9 Pa·s (Healon GV, J&J product page [V], scaled
    ///   by (c·M)^3.32 after Bothner & Wik, Acta Otolaryngol Suppl 442:25
    ///   (1987) [D]), n = 0.4 and λ = 0.66 s so that the
    ///   high-shear power law has K = η0·λ^(n−1) = 5 Pa·sⁿ, inside the
    ///   n 0.3–0.5, K 1–20 Pa·sⁿ placeholder range for needle shear rates [R/D];
    ///   η∞ = 1 mPa·s (the solvent).
    pub fn preset(name: &str) -> Option<Fluid> {
        let f = match name {
            "saline" => Fluid {
                name: name.into(),
                density: 1005.0,
                compressibility: 4.6e-10,
                rheology: Rheology::Newtonian { mu: 1.02e-3 },
            },
            "vitamin_cocktail" => Fluid {
                name: name.into(),
                density: 1010.0,
                compressibility: 4.6e-10,
                rheology: Rheology::Newtonian { mu: 2.0e-3 },
            },
            "ha_skin_booster" => Fluid {
                name: name.into(),
                density: 1005.0,
                compressibility: 4.6e-10,
                rheology: Rheology::Carreau { eta0: 3.9, eta_inf: 1.0e-3, lambda: 0.66, n: 0.4 },
            },
            _ => return None,
        };
        Some(f)
    }

    /// The same fluid at another temperature (viscosities scaled by
    /// [`water_viscosity_factor`]).
    pub fn at_temperature(mut self, temperature_k: f64) -> Fluid {
        let s = water_viscosity_factor(temperature_k);
        self.rheology = match self.rheology {
            Rheology::Newtonian { mu } => Rheology::Newtonian { mu: mu * s },
            Rheology::PowerLaw { k, n, eta0 } => Rheology::PowerLaw { k: k * s, n, eta0: eta0 * s },
            Rheology::Carreau { eta0, eta_inf, lambda, n } => {
                Rheology::Carreau { eta0: eta0 * s, eta_inf: eta_inf * s, lambda, n }
            }
        };
        self
    }

    /// True for a Newtonian fluid.
    pub fn is_newtonian(&self) -> bool {
        matches!(self.rheology, Rheology::Newtonian { .. })
    }
}

impl Rheology {
    /// Viscosity at shear rate `g` (1/s), Pa·s.
    pub fn viscosity(&self, g: f64) -> f64 {
        match *self {
            Rheology::Newtonian { mu } => mu,
            Rheology::PowerLaw { k, n, eta0 } => (k * g.max(1e-300).powf(n - 1.0)).min(eta0),
            Rheology::Carreau { eta0, eta_inf, lambda, n } => {
                eta_inf + (eta0 - eta_inf) * (1.0 + (lambda * g).powi(2)).powf((n - 1.0) / 2.0)
            }
        }
    }

    /// Shear rate (1/s) at which the shear stress is `tau` (Pa): the inverse
    /// of τ = η(γ̇)·γ̇, which is monotone for every law here (n > 0).
    pub fn shear_rate(&self, tau: f64) -> f64 {
        if tau <= 0.0 {
            return 0.0;
        }
        match *self {
            Rheology::Newtonian { mu } => tau / mu,
            Rheology::PowerLaw { k, n, eta0 } => {
                // Crossover where K·γ̇^(n−1) = η0.
                let gc = (eta0 / k).powf(1.0 / (n - 1.0));
                if tau <= eta0 * gc {
                    tau / eta0
                } else {
                    (tau / k).powf(1.0 / n)
                }
            }
            Rheology::Carreau { eta0, .. } => {
                // Newton on u = ln γ̇ for ln(η(γ̇)·γ̇) = ln τ.
                let lt = tau.ln();
                let mut u = (tau / eta0).ln();
                for _ in 0..60 {
                    let g = u.exp();
                    let eta = self.viscosity(g);
                    let f = (eta * g).ln() - lt;
                    // d ln(ηγ̇)/du = 1 + d ln η / d ln γ̇ (by central difference in u).
                    let h = 1e-6;
                    let slope =
                        1.0 + ((self.viscosity((u + h).exp())).ln() - (self.viscosity((u - h).exp())).ln()) / (2.0 * h);
                    let step = f / slope.max(1e-3);
                    u -= step;
                    if step.abs() < 1e-13 {
                        break;
                    }
                }
                u.exp()
            }
        }
    }
}

use super::param::{choice, fmt_num, invalid, real, real_from, section, units::*, Invalid, Reader};

section! {
    /// `[fluid]`: the injected liquid.
    pub struct RawFluid in "fluid" {
        /// A preset fluid (density and rheology); give it or fluid.model, not both.
        preset: String as PRESET = choice("saline", &PRESETS).src("see docs/physics.md, Fluids and rheology"),
        /// A rheological law with its own parameters, instead of a preset.
        model: String as MODEL = choice("newtonian", &["newtonian", "power_law", "carreau"])
            .note("newtonian: 1 mPa·s; power_law: K 5 Pa·sⁿ, n 0.4, η0 10 Pa·s; carreau: η0 3.9 Pa·s, η∞ 1 mPa·s, λ 0.66 s, n 0.4; ρ 1000 kg/m³"),
        /// Density.
        density_kg_m3: f64 as DENSITY = real_from(KG_M3, "fluid.preset or fluid.model", 500.0, 2000.0),
        /// Viscosity of a Newtonian fluid.
        viscosity_mpa_s: f64 as VISCOSITY = real_from(MPA_S, "fluid.preset or fluid.model", 0.1, 1e6),
        /// Consistency K of a power-law fluid.
        consistency_pa_sn: f64 as CONSISTENCY = real_from(PA_SN, "fluid.preset or fluid.model", 1e-4, 1000.0),
        /// Flow index n of a power-law or Carreau fluid.
        flow_index: f64 as FLOW_INDEX = real_from(ONE, "fluid.preset or fluid.model", 0.1, 1.0),
        /// Zero-shear viscosity η0 of a power-law (plateau) or Carreau fluid.
        eta0_pa_s: f64 as ETA0 = real_from(PA_S, "fluid.preset or fluid.model", 1e-3, 1e4),
        /// Infinite-shear viscosity η∞ of a Carreau fluid.
        eta_inf_mpa_s: f64 as ETA_INF = real_from(MPA_S, "fluid.preset or fluid.model", 0.1, 1000.0),
        /// Time constant λ of a Carreau fluid.
        lambda_s: f64 as LAMBDA = real_from(S, "fluid.preset or fluid.model", 1e-6, 1e3),
        /// Fluid temperature (aqueous viscosities scale like water's).
        temperature_c: f64 as TEMPERATURE = real(CELSIUS, 20.0, 4.0, 45.0).src("room temperature"),
    }
}

impl Fluid {
    /// The fluid from its `[fluid]` table, at its temperature.
    pub fn from_raw(fl: &RawFluid, c: &Reader) -> Result<Fluid, Invalid> {
        let temp = c.real(&RawFluid::TEMPERATURE, fl.temperature_c)?;
        // A preset or a model sets the law; the law's own parameter keys override it.
        let mut fluid = match (&fl.preset, &fl.model) {
            (Some(p), Some(m)) => {
                return Err(invalid(
                    RawFluid::MODEL.key,
                    format!("\"{m}\""),
                    format!("either fluid.preset (here \"{p}\") or fluid.model, not both"),
                ))
            }
            (_, None) => Fluid::preset(c.choice(&RawFluid::PRESET, &fl.preset)?).expect("a declared preset"),
            (None, Some(_)) => {
                let kind = c.choice(&RawFluid::MODEL, &fl.model)?;
                let rheology = match kind {
                    "newtonian" => Rheology::Newtonian { mu: 1.0e-3 },
                    "power_law" => Rheology::PowerLaw { k: 5.0, n: 0.4, eta0: 10.0 },
                    _ => Rheology::Carreau { eta0: 3.9, eta_inf: 1.0e-3, lambda: 0.66, n: 0.4 },
                };
                Fluid { name: format!("custom_{kind}"), density: 1000.0, compressibility: 4.6e-10, rheology }
            }
        };
        fluid.rheology = rheology_from_raw(fl, c, &fluid.rheology)?;
        fluid.density = c.real_or(&RawFluid::DENSITY, fl.density_kg_m3, fluid.density)?;
        Ok(fluid.at_temperature(temp))
    }
}

/// The law's parameters with the table's keys applied; a key of another law is an error.
fn rheology_from_raw(fl: &RawFluid, c: &Reader, base: &Rheology) -> Result<Rheology, Invalid> {
    let not_for = |keys: &[(&super::param::Param, &Option<f64>)], law: &str| -> Result<(), Invalid> {
        match keys.iter().find_map(|(p, v)| v.map(|x| (p.key, x))) {
            Some((key, x)) => Err(invalid(key, fmt_num(x), format!("no value: it does not apply to a {law} fluid"))),
            None => Ok(()),
        }
    };
    Ok(match *base {
        Rheology::Newtonian { mu } => {
            not_for(
                &[
                    (&RawFluid::CONSISTENCY, &fl.consistency_pa_sn),
                    (&RawFluid::FLOW_INDEX, &fl.flow_index),
                    (&RawFluid::ETA0, &fl.eta0_pa_s),
                    (&RawFluid::ETA_INF, &fl.eta_inf_mpa_s),
                    (&RawFluid::LAMBDA, &fl.lambda_s),
                ],
                "newtonian",
            )?;
            Rheology::Newtonian { mu: c.real_or(&RawFluid::VISCOSITY, fl.viscosity_mpa_s, mu * 1e3)? }
        }
        Rheology::PowerLaw { k, n, eta0 } => {
            not_for(
                &[
                    (&RawFluid::VISCOSITY, &fl.viscosity_mpa_s),
                    (&RawFluid::ETA_INF, &fl.eta_inf_mpa_s),
                    (&RawFluid::LAMBDA, &fl.lambda_s),
                ],
                "power-law",
            )?;
            Rheology::PowerLaw {
                k: c.real_or(&RawFluid::CONSISTENCY, fl.consistency_pa_sn, k)?,
                n: c.real_or(&RawFluid::FLOW_INDEX, fl.flow_index, n)?,
                eta0: c.real_or(&RawFluid::ETA0, fl.eta0_pa_s, eta0)?,
            }
        }
        Rheology::Carreau { eta0, eta_inf, lambda, n } => {
            not_for(
                &[(&RawFluid::VISCOSITY, &fl.viscosity_mpa_s), (&RawFluid::CONSISTENCY, &fl.consistency_pa_sn)],
                "Carreau",
            )?;
            Rheology::Carreau {
                eta0: c.real_or(&RawFluid::ETA0, fl.eta0_pa_s, eta0)?,
                eta_inf: c.real_or(&RawFluid::ETA_INF, fl.eta_inf_mpa_s, eta_inf * 1e3)?,
                lambda: c.real_or(&RawFluid::LAMBDA, fl.lambda_s, lambda)?,
                n: c.real_or(&RawFluid::FLOW_INDEX, fl.flow_index, n)?,
            }
        }
    })
}
