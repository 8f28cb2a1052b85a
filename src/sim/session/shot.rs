//! The ticks of one shot: fixed steps per tick, or adaptive windows across
//! the ticks the firmware holds its output for, and how a tick ends the shot.

use super::firmware::{FwState, Timing, Trigger};
use super::quiet::{delivery_over, fast_forward, quiescent, skip_to};
use super::{FirmwareLoop, Observer, RunError, ShotRecord};
use crate::control::FwOutput;
use crate::sim::adaptive::{self, Adaptive};
use crate::sim::plant::{Drive, Plant};
use crate::sim::PlantState;

/// One shot under way: its record, the state at its trigger, and the
/// drive's edges.
pub(super) struct ShotRun {
    pub(super) rec: ShotRecord,
    pub(super) s0: PlantState,
    pub(super) steps_before: u64,
    pub(super) delivered0: f64,
    pub(super) start_tick: u64,
    pub(super) was_active: bool,
    pub(super) t_rise: f64,
    pub(super) t_fall: f64,
    pub(super) active_ticks: u64,
}

impl ShotRun {
    pub(super) fn start(shot: usize, start_tick: u64, tm: &Timing, plant: &Plant) -> ShotRun {
        let s0 = plant.state.clone();
        let rec = ShotRecord::starting(shot, start_tick as f64 * tm.tick, &s0, tm.pa, plant.params.needles.len());
        let delivered0: f64 = s0.delivered.iter().sum();
        ShotRun {
            rec,
            s0,
            steps_before: plant.steps(),
            delivered0,
            start_tick,
            was_active: false,
            t_rise: f64::NAN,
            t_fall: f64::NAN,
            active_ticks: 0,
        }
    }

    /// Track the drive's rising and falling edges at tick `k` of the shot.
    #[inline]
    fn drive_edges(&mut self, active: bool, k: u64, tick: f64) {
        if active && !self.was_active && self.t_rise.is_nan() {
            self.t_rise = k as f64 * tick;
        }
        if !active && self.was_active {
            self.t_fall = k as f64 * tick;
        }
        self.was_active = active;
        self.active_ticks += active as u64;
    }

    /// Fold a step ending at `t1` into the record and the t90 buffer.
    #[inline]
    fn record_step(&mut self, plant: &Plant, cumulative: &mut Vec<(f64, f64)>, t1: f64, h: f64, pa: f64) {
        let rec = &mut self.rec;
        rec.accumulate(plant, t1 - rec.t_start, h, self.t_rise, self.t_fall, pa);
        cumulative.push((t1 - rec.t_start, plant.signals.delivered_total - self.delivered0));
    }
}

/// What a shot's ticks share with the session.
pub(super) struct ShotContext<'s, 'f, 'c> {
    pub(super) tm: &'s Timing,
    pub(super) fw: &'s mut FirmwareLoop<'f>,
    pub(super) fs: &'s mut FwState,
    pub(super) trig: &'s mut Trigger,
    pub(super) ad: Option<&'s mut Adaptive>,
    pub(super) cumulative: &'c mut Vec<(f64, f64)>,
    pub(super) last: bool,
    pub(super) ticks_run: &'s mut u64,
}

/// How a tick ends the shot's loop.
enum TickEnd {
    /// Go on with the next tick.
    Next,
    /// The shot is over.
    Done,
    /// The syringe is empty: the session stops.
    Empty,
}

impl ShotContext<'_, '_, '_> {
    /// The ticks of one shot; `Some(message)` when the session must stop after it.
    pub(super) fn run_shot<O: Observer + ?Sized>(
        &mut self,
        plant: &mut Plant,
        run: &mut ShotRun,
        observer: &mut O,
    ) -> Result<Option<&'static str>, RunError> {
        let tm = self.tm;
        let mut k = 0u64;
        let mut end_tick = tm.period_ticks;
        while k < end_tick {
            let tick_no = run.start_tick + k;
            let t_tick = tick_no as f64 * tm.tick;
            let raw = self.trig.update(k, t_tick, tm);
            self.fs.tick(self.fw, plant, self.trig, tm, tick_no, t_tick)?;
            let active = self.fw.driver.active();
            run.drive_edges(active, k, tm.tick);
            let applied = self.fs.applied;
            let regulator_setpoint =
                if applied.regulator_setpoint.is_nan() { f64::NAN } else { applied.regulator_setpoint + tm.pa };
            let resting = applied.idle == 1 && !active && (self.fw.delay_ticks == 0 || self.fs.all_idle());
            if resting && regulator_setpoint.is_nan() && quiescent(plant) {
                // Nothing moves but slow relaxation: advance this tick in closed form.
                fast_forward(plant, t_tick + tm.tick);
                self.fw.sensors.settle(tm.truth(plant));
                observer.observe(plant, 0.0, &applied);
                k += 1;
                *self.ticks_run += 1;
                if !run.t_fall.is_nan() && self.trig.released(raw) {
                    self.skip_rest(plant, observer, &applied, run.start_tick + end_tick);
                    return Ok(None);
                }
                continue;
            }
            let span = if self.ad.is_some() {
                self.adaptive_tick(plant, run, observer, k, end_tick, raw, active, t_tick, regulator_setpoint)
            } else {
                self.fixed_tick(plant, run, observer, t_tick, regulator_setpoint);
                1
            };
            plant.check()?;
            k += span;
            *self.ticks_run += span;
            match self.tick_end(plant, run, observer, raw, active, k, &mut end_tick) {
                TickEnd::Next => {}
                TickEnd::Done => return Ok(None),
                TickEnd::Empty => return Ok(Some("the syringe is empty")),
            }
        }
        Ok(None)
    }

    /// The plant's fixed steps over one tick.
    #[inline]
    fn fixed_tick<O: Observer + ?Sized>(
        &mut self,
        plant: &mut Plant,
        run: &mut ShotRun,
        observer: &mut O,
        t_tick: f64,
        regulator_setpoint: f64,
    ) {
        let tm = self.tm;
        let h = tm.h;
        let applied = self.fs.applied;
        for j in 0..tm.n_sub {
            let t0 = t_tick + j as f64 * h;
            let t1 = t_tick + (j + 1) as f64 * h;
            let coil = self.fw.driver.mean(t0, t1);
            plant.advance(&Drive { coil, regulator_setpoint, force: 0.0, force_damping: 0.0 }, h);
            // Keep time exact (no drift from repeated additions).
            plant.state.t = t1;
            if self.fs.any_read {
                self.fw.sensors.track(tm.truth(plant), h);
            }
            run.record_step(plant, self.cumulative, t1, h, tm.pa);
            observer.observe(plant, coil, &applied);
        }
    }

    /// The adaptive stepper from tick `k`: one window across the ticks the
    /// firmware promised to hold its output for (the trigger level, and with
    /// it the firmware's input, staying as it is). Returns the ticks crossed.
    #[allow(clippy::too_many_arguments)]
    fn adaptive_tick<O: Observer + ?Sized>(
        &mut self,
        plant: &mut Plant,
        run: &mut ShotRun,
        observer: &mut O,
        k: u64,
        end_tick: u64,
        raw: u32,
        active: bool,
        t_tick: f64,
        regulator_setpoint: f64,
    ) -> u64 {
        let tm = self.tm;
        let span = self.window_span(run, k, end_tick, raw);
        let window = Window {
            t0: t_tick,
            units: span * tm.n_sub * adaptive::MIN_STEP_DIVISOR,
            h0: tm.h / adaptive::MIN_STEP_DIVISOR as f64,
            regulator_setpoint,
        };
        let edges = (run.t_rise, run.t_fall, run.delivered0);
        let applied = self.fs.applied;
        let ad = self.ad.as_deref_mut().expect("adaptive mode");
        adaptive_window(ad, plant, self.fw, &window, &mut run.rec, self.cumulative, edges, tm.pa, observer, &applied);
        if span > 1 {
            if raw != self.trig.debounced {
                self.trig.pending += span - 1;
            }
            self.fs.steady -= span - 1;
            self.fs.skipped += span - 1;
            run.active_ticks += (span - 1) * active as u64;
        }
        span
    }

    /// Ticks one adaptive window may cross from tick `k` (at least 1).
    fn window_span(&self, run: &ShotRun, k: u64, end_tick: u64, raw: u32) -> u64 {
        let tm = self.tm;
        let steady = self.fs.steady;
        if !(steady > 0 && self.fw.delay_ticks == 0 && !self.fw.sensors.any_read()) {
            return 1;
        }
        let mut extra = steady.min(end_tick - k - 1).min(MAX_WINDOW_TICKS - 1);
        // The raw trigger level holds until the press ends...
        if k < tm.press_ticks {
            extra = extra.min(tm.press_ticks - 1 - k);
        }
        // ...and a debounce under way does not complete inside the window.
        if raw != self.trig.debounced {
            extra = extra.min(tm.debounce_ticks.saturating_sub(self.trig.pending));
        }
        if self.last && !run.t_fall.is_nan() {
            let cut = (run.t_fall / tm.tick).round() as u64 + tm.tail_ticks;
            extra = extra.min(cut.saturating_sub(k + 1));
        }
        1 + extra
    }

    /// After the steps of a tick (ending at tick `k` of the shot): an empty
    /// syringe, the end of delivery in the last shot, quiescence (the rest
    /// of the period skipped), or the last shot's tail cut.
    #[allow(clippy::too_many_arguments)]
    fn tick_end<O: Observer + ?Sized>(
        &mut self,
        plant: &mut Plant,
        run: &ShotRun,
        observer: &mut O,
        raw: u32,
        active: bool,
        k: u64,
        end_tick: &mut u64,
    ) -> TickEnd {
        if plant.state.syringe_empty {
            return TickEnd::Empty;
        }
        let idle = self.fs.all_idle() && !active && raw == 0 && self.trig.debounced == 0;
        let fell = !run.t_fall.is_nan();
        if self.last && idle && fell && delivery_over(plant) {
            return TickEnd::Done;
        }
        if idle && fell && quiescent(plant) {
            let applied = self.fs.applied;
            self.skip_rest(plant, observer, &applied, run.start_tick + *end_tick);
            return TickEnd::Done;
        }
        if self.last && fell && k >= (run.t_fall / self.tm.tick).round() as u64 + self.tm.tail_ticks {
            *end_tick = k;
        }
        TickEnd::Next
    }

    /// Skip the rest of the shot period (not after the last shot).
    fn skip_rest<O: Observer + ?Sized>(
        &mut self,
        plant: &mut Plant,
        observer: &mut O,
        applied: &FwOutput,
        to_tick: u64,
    ) {
        if !self.last {
            skip_to(plant, self.fw, observer, applied, to_tick as f64 * self.tm.tick);
        }
    }
}

/// Most ticks one adaptive window spans (so the end of a shot is seen within it).
const MAX_WINDOW_TICKS: u64 = 64;

/// A stretch of ticks the adaptive stepper crosses under one firmware output.
struct Window {
    /// Start, s (a tick).
    t0: f64,
    /// Length in smallest steps.
    units: u64,
    /// Smallest step, s.
    h0: f64,
    /// Regulator set pressure commanded, Pa absolute (NaN: unchanged).
    regulator_setpoint: f64,
}

/// Advance the plant across `w` with steps chosen by step doubling (see
/// `src/sim/adaptive.rs`), folding each accepted step into the shot record.
#[allow(clippy::too_many_arguments)]
fn adaptive_window<O: Observer + ?Sized>(
    ad: &mut Adaptive,
    plant: &mut Plant,
    fw: &mut FirmwareLoop,
    w: &Window,
    rec: &mut ShotRecord,
    cumulative: &mut Vec<(f64, f64)>,
    (t_rise, t_fall, delivered0): (f64, f64, f64),
    pa: f64,
    observer: &mut O,
    applied: &FwOutput,
) {
    let truth = |p: &Plant| [p.state.p_reg - pa, p.state.p_c - pa, p.state.p_s - pa];
    let step = |plant: &mut Plant, driver: &crate::control::drive::Driver, a: u64, len: u64| -> f64 {
        let t0 = w.t0 + a as f64 * w.h0;
        let t1 = w.t0 + (a + len) as f64 * w.h0;
        let coil = driver.mean(t0, t1);
        let drive = Drive { coil, regulator_setpoint: w.regulator_setpoint, force: 0.0, force_damping: 0.0 };
        plant.advance(&drive, len as f64 * w.h0);
        plant.state.t = t1;
        coil
    };
    let mut m = 0u64;
    // The plant's mode at the start of the next step (known after a step
    // accepted in one mode).
    let mut mode_now = None;
    while m < w.units {
        // The largest aligned level that fits the window and the stability limit.
        let aligned = if m == 0 { adaptive::MAX_LEVEL } else { m.trailing_zeros().min(adaptive::MAX_LEVEL) };
        let fits = 63 - (w.units - m).leading_zeros();
        let cap = aligned.min(fits).min(adaptive::stable_level(plant, w.h0));
        let mut level = ad.level.min(cap);
        let mode0 = mode_now.take().unwrap_or_else(|| adaptive::mode(plant));
        let (len, coil) = loop {
            if level == 0 {
                // No estimate at the smallest step: take it, then try a larger one.
                ad.level = 1;
                ad.unestimated();
                break (1, step(plant, &fw.driver, m, 1));
            }
            let len = 1u64 << level;
            let half = len / 2;
            ad.save_start(plant, len == w.units);
            if len == w.units && ad.level > cap && ad.single_step_allowed(len) {
                // A window of one step (the firmware acts at every tick) on a
                // smooth stretch, held below the step the error would allow:
                // take the step once and judge it by how its increment
                // differs from the last step's.
                let c = step(plant, &fw.driver, m, len);
                if adaptive::mode(plant) == mode0 && ad.single_step_error(plant) <= adaptive::SINGLE_STEP_ACCEPT {
                    ad.accepted(len, true);
                    mode_now = Some(mode0);
                    break (len, c);
                }
                ad.restore_start(plant);
            }
            step(plant, &fw.driver, m, len);
            if adaptive::mode(plant) == mode0 {
                ad.save_full(plant);
                ad.restore_start(plant);
                let c1 = step(plant, &fw.driver, m, half);
                let mode_mid = adaptive::mode(plant);
                let c2 = step(plant, &fw.driver, m + half, half);
                let same_mode = mode0 == mode_mid && mode0 == adaptive::mode(plant);
                let err = if same_mode { ad.error(plant) } else { f64::INFINITY };
                if err <= 1.0 {
                    ad.accepted(len, err < 0.25);
                    ad.level = adaptive::next_level(level, err);
                    mode_now = Some(mode0);
                    break (len, 0.5 * (c1 + c2));
                }
            }
            // Rejected (a change of mode is bisected, so the event is found
            // within h₀): back to the start, half the step.
            ad.restore_start(plant);
            level -= 1;
            ad.level = level;
        };
        let h = len as f64 * w.h0;
        m += len;
        if fw.sensors.any_read() {
            fw.sensors.track(truth(plant), h);
        }
        let t1 = plant.state.t;
        rec.accumulate(plant, t1 - rec.t_start, h, t_rise, t_fall, pa);
        cumulative.push((t1 - rec.t_start, plant.signals.delivered_total - delivered0));
        observer.observe(plant, coil, applied);
    }
}
