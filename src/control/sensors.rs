//! What the firmware can measure: pressure sensors (first-order lag, noise,
//! offset and gain error, ADC resolution and range, sample period), a plunger
//! encoder (resolution). Noise comes from ChaCha8 streams derived from the
//! scenario seed and the sensor's index, so runs are reproducible.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// One pressure sensor (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PressureSensorSpec {
    /// First-order time constant, s.
    pub tau: f64,
    /// Noise standard deviation per sample, Pa.
    pub noise_sd: f64,
    /// Offset error, Pa.
    pub offset: f64,
    /// Gain error, – (0.01 reads 1 % high).
    pub gain_error: f64,
    /// ADC resolution, bits.
    pub bits: u32,
    /// ADC full scale, Pa gauge (range 0 to full scale).
    pub full_scale: f64,
    /// Sample period in firmware ticks.
    pub sample_ticks: u64,
}

/// All sensors (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SensorSpec {
    /// Supply (regulator outlet) pressure.
    pub supply: PressureSensorSpec,
    /// Chamber pressure.
    pub chamber: PressureSensorSpec,
    /// Syringe pressure.
    pub syringe: PressureSensorSpec,
    /// Plunger encoder resolution, m.
    pub encoder_resolution: f64,
    /// Trigger debounce time, s.
    pub debounce: f64,
    /// How long the operator holds the trigger for each shot, s.
    pub trigger_press: f64,
}

/// Running sensor models.
#[derive(Debug, Clone)]
pub struct Sensors {
    spec: SensorSpec,
    lag: [f64; 3],
    held: [f64; 3],
    decay: [f64; 3],
    step: f64,
    next: [u64; 3],
    rng: [ChaCha8Rng; 3],
    read: [bool; 3],
}

fn stream(seed: u64, id: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(id);
    r
}

impl Sensors {
    /// Sensors with noise streams derived from `seed`.
    pub fn new(spec: SensorSpec, seed: u64) -> Sensors {
        Sensors {
            spec,
            lag: [0.0; 3],
            held: [0.0; 3],
            decay: [0.0; 3],
            step: -1.0,
            next: [0; 3],
            rng: [stream(seed, 1), stream(seed, 2), stream(seed, 3)],
            read: [true; 3],
        }
    }

    /// Model only the pressure sensors the firmware reads (supply, chamber,
    /// syringe); the others are neither filtered nor sampled. Each sensor
    /// draws its noise from its own stream, so this changes no reading.
    pub fn read_only(&mut self, read: [bool; 3]) {
        self.read = read;
    }

    /// True when the firmware reads some pressure sensor.
    pub fn any_read(&self) -> bool {
        self.read.iter().any(|&r| r)
    }

    fn specs(&self) -> [&PressureSensorSpec; 3] {
        [&self.spec.supply, &self.spec.chamber, &self.spec.syringe]
    }

    /// Follow the true gauge pressures (supply, chamber, syringe) over a plant step of `h` s.
    #[inline]
    pub fn track(&mut self, truth: [f64; 3], h: f64) {
        if h != self.step {
            self.step = h;
            let taus = self.specs().map(|s| s.tau);
            for (d, tau) in self.decay.iter_mut().zip(taus) {
                *d = if tau > 0.0 { (-h / tau).exp() } else { 0.0 };
            }
        }
        for (((lag, t), d), read) in self.lag.iter_mut().zip(truth).zip(self.decay).zip(self.read) {
            if read {
                *lag = t + (*lag - t) * d;
            }
        }
    }

    /// Jump the lag filters to `truth` (after skipping quiet time).
    pub fn settle(&mut self, truth: [f64; 3]) {
        self.lag = truth;
    }

    /// Sample the ADCs due at `tick`.
    pub fn sample(&mut self, tick: u64) {
        for k in 0..3 {
            let s = match k {
                0 => &self.spec.supply,
                1 => &self.spec.chamber,
                _ => &self.spec.syringe,
            };
            if !self.read[k] || tick < self.next[k] {
                continue;
            }
            self.next[k] = tick + s.sample_ticks.max(1);
            let noise: f64 = if s.noise_sd > 0.0 {
                let z: f64 = StandardNormal.sample(&mut self.rng[k]);
                s.noise_sd * z
            } else {
                0.0
            };
            let v = (1.0 + s.gain_error) * (self.lag[k] + noise) + s.offset;
            let levels = ((1u64 << s.bits.min(32)) - 1) as f64;
            // Round to the nearest count (truncation of x + ½ is exact for x ≥ 0
            // and avoids a software round on targets without SSE4.1).
            let counts = ((v / s.full_scale * levels).max(0.0) + 0.5).min(levels) as u64 as f64;
            self.held[k] = counts * s.full_scale / levels;
        }
    }

    /// The latest samples: supply, chamber, syringe (Pa gauge).
    pub fn pressures(&self) -> [f64; 3] {
        self.held
    }

    /// Encoder reading of a plunger position `z` (m).
    pub fn encoder(&self, z: f64) -> f64 {
        let r = self.spec.encoder_resolution;
        if r > 0.0 {
            (z / r + 1e-9).floor() * r
        } else {
            z
        }
    }

    /// The specification.
    pub fn spec(&self) -> &SensorSpec {
        &self.spec
    }
}
