//! An instance's state as bytes (FMI get/set and serialise FMU state): a
//! tag, then every number little-endian, read back with its length checked.

use super::instance::Phase;
use super::Value;
use crate::sim::{PlantState, Signals};

/// Everything an instance's future depends on ([`Instance::get_state`]).
#[derive(Debug, Clone)]
pub struct State {
    pub(super) phase: Phase,
    pub(super) values: Vec<Value>,
    pub(super) inputs: [f64; 2],
    pub(super) time: f64,
    pub(super) last_coil: f64,
    pub(super) shots: u64,
    pub(super) plant: Option<(PlantState, Signals, f64)>,
}

/// The byte layout of a serialised state: a tag, then every number little-endian.
const STATE_TAG: &[u8; 8] = b"MBFMUST1";

impl State {
    /// The state as bytes (FMI serialise FMU state).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Bytes::default();
        w.0.extend_from_slice(STATE_TAG);
        w.u(match self.phase {
            Phase::Instantiated => 0,
            Phase::Initializing => 1,
            Phase::Stepping => 2,
            Phase::Stopped => 3,
        });
        w.u(self.values.len() as u64);
        for v in &self.values {
            match *v {
                Value::Real(r) => {
                    w.u(0);
                    w.f(r)
                }
                Value::Integer(i) => {
                    w.u(1);
                    w.u(i as u64)
                }
                Value::Boolean(b) => {
                    w.u(2);
                    w.u(b as u64)
                }
                Value::Enumeration(e) => {
                    w.u(3);
                    w.u(e as u64)
                }
            }
        }
        w.f(self.inputs[0]);
        w.f(self.inputs[1]);
        w.f(self.time);
        w.f(self.last_coil);
        w.u(self.shots);
        match &self.plant {
            None => w.u(0),
            Some((s, g, z)) => {
                w.u(1);
                write_plant(&mut w, s, g, *z);
            }
        }
        w.0
    }

    /// A state from [`State::to_bytes`] (FMI de-serialise FMU state).
    pub fn from_bytes(bytes: &[u8]) -> Result<State, String> {
        let bad = || "not a serialised state of this FMU".to_string();
        let body = bytes.strip_prefix(STATE_TAG.as_slice()).ok_or_else(bad)?;
        let mut r = Unbytes(body);
        let phase = match r.u()? {
            0 => Phase::Instantiated,
            1 => Phase::Initializing,
            2 => Phase::Stepping,
            3 => Phase::Stopped,
            _ => return Err(bad()),
        };
        let n = r.u()? as usize;
        if n > body.len() {
            return Err(bad());
        }
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(match r.u()? {
                0 => Value::Real(r.f()?),
                1 => Value::Integer(r.u()? as i64),
                2 => Value::Boolean(r.u()? != 0),
                3 => Value::Enumeration(r.u()? as usize),
                _ => return Err(bad()),
            });
        }
        let inputs = [r.f()?, r.f()?];
        let time = r.f()?;
        let last_coil = r.f()?;
        let shots = r.u()?;
        let plant = match r.u()? {
            0 => None,
            1 => Some(read_plant(&mut r)?),
            _ => return Err(bad()),
        };
        if !r.0.is_empty() {
            return Err(bad());
        }
        Ok(State { phase, values, inputs, time, last_coil, shots, plant })
    }
}

/// The plant part of a serialised state.
fn write_plant(w: &mut Bytes, s: &PlantState, g: &Signals, z: f64) {
    w.f(z);
    for x in [s.t, s.p_set, s.p_reg, s.p_res] {
        w.f(x);
    }
    let v = &s.valve;
    for x in [v.current, v.x, v.v, v.opening, v.since_edge] {
        w.f(x);
    }
    w.u(v.last_cmd as u64);
    w.list(&s.line_p);
    w.list(&s.line_w);
    for x in [s.p_c, s.t_c, s.x_p, s.v_p] {
        w.f(x);
    }
    w.u(s.stuck as u64);
    for x in [s.z, s.w_syr, s.p_s, s.q_tube, s.w_hub, s.p_hub] {
        w.f(x);
    }
    w.list(&s.q_needle);
    w.list(&s.v_bleb);
    w.f(s.expelled);
    w.list(&s.delivered);
    w.list(&s.leaked);
    w.f(s.supply_mass);
    w.u(s.syringe_empty as u64);
    w.f(g.q_valve_in);
    w.f(g.q_valve_ex);
    w.u(g.inlet_choked as u64);
    w.list(&g.p_site);
    w.list(&g.re);
    w.list(&g.q_leak);
    w.u(g.extrapolated as u64);
    for x in [g.line_mach, g.q_total, g.delivered_total] {
        w.f(x);
    }
    w.u(g.breakaway as u64);
}

/// The plant part of a serialised state.
fn read_plant(r: &mut Unbytes) -> Result<(PlantState, Signals, f64), String> {
    let z = r.f()?;
    let (t, p_set, p_reg, p_res) = (r.f()?, r.f()?, r.f()?, r.f()?);
    let valve = crate::model::valve::ValveState {
        current: r.f()?,
        x: r.f()?,
        v: r.f()?,
        opening: r.f()?,
        since_edge: r.f()?,
        last_cmd: r.u()? != 0,
    };
    let (line_p, line_w) = (r.list()?, r.list()?);
    let (p_c, t_c, x_p, v_p) = (r.f()?, r.f()?, r.f()?, r.f()?);
    let stuck = r.u()? != 0;
    let (z_p, w_syr, p_s, q_tube, w_hub, p_hub) = (r.f()?, r.f()?, r.f()?, r.f()?, r.f()?, r.f()?);
    let (q_needle, v_bleb) = (r.list()?, r.list()?);
    let expelled = r.f()?;
    let (delivered, leaked) = (r.list()?, r.list()?);
    let supply_mass = r.f()?;
    let syringe_empty = r.u()? != 0;
    let state = PlantState {
        t,
        p_set,
        p_reg,
        p_res,
        valve,
        line_p,
        line_w,
        p_c,
        t_c,
        x_p,
        v_p,
        stuck,
        z: z_p,
        w_syr,
        p_s,
        q_tube,
        w_hub,
        p_hub,
        q_needle,
        v_bleb,
        expelled,
        delivered,
        leaked,
        supply_mass,
        syringe_empty,
    };
    let signals = Signals {
        q_valve_in: r.f()?,
        q_valve_ex: r.f()?,
        inlet_choked: r.u()? != 0,
        p_site: r.list()?,
        re: r.list()?,
        q_leak: r.list()?,
        extrapolated: r.u()? != 0,
        line_mach: r.f()?,
        q_total: r.f()?,
        delivered_total: r.f()?,
        breakaway: r.u()? != 0,
    };
    Ok((state, signals, z))
}

#[derive(Default)]
struct Bytes(Vec<u8>);

impl Bytes {
    fn u(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn f(&mut self, x: f64) {
        self.0.extend_from_slice(&x.to_bits().to_le_bytes());
    }
    fn list(&mut self, xs: &[f64]) {
        self.u(xs.len() as u64);
        for x in xs {
            self.f(*x);
        }
    }
}

struct Unbytes<'a>(&'a [u8]);

impl Unbytes<'_> {
    fn u(&mut self) -> Result<u64, String> {
        if self.0.len() < 8 {
            return Err("a serialised FMU state that ends early".into());
        }
        let (head, rest) = self.0.split_at(8);
        self.0 = rest;
        Ok(u64::from_le_bytes(head.try_into().expect("8 bytes")))
    }
    fn f(&mut self) -> Result<f64, String> {
        self.u().map(f64::from_bits)
    }
    fn list(&mut self) -> Result<Vec<f64>, String> {
        let n = self.u()? as usize;
        if n > self.0.len() / 8 {
            return Err("a serialised FMU state that ends early".into());
        }
        (0..n).map(|_| self.f()).collect()
    }
}
