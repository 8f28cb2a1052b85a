//! The firmware side of a session: the time base, the debounced trigger,
//! and the firmware's tick (sample, compute, delay, apply).

use super::{FirmwareLoop, RunError, SessionSettings, SolverSettings};
use crate::control::{FirmwareError, FwInput, FwOutput};
use crate::sim::plant::Plant;

/// The session's time base and the constants every tick uses.
pub(super) struct Timing {
    /// Plant steps per tick.
    pub(super) n_sub: u64,
    /// Tick period, s.
    pub(super) tick: f64,
    /// Plant step, s.
    pub(super) h: f64,
    /// Ticks per shot period.
    pub(super) period_ticks: u64,
    /// Longest tail of the last shot after the drive falls, ticks.
    pub(super) tail_ticks: u64,
    /// Ticks the trigger is held pressed.
    pub(super) press_ticks: u64,
    /// Ticks the raw trigger level must hold to be taken.
    pub(super) debounce_ticks: u64,
    /// Atmospheric pressure, Pa.
    pub(super) pa: f64,
    /// Syringe bore area, m².
    pub(super) area: f64,
}

impl Timing {
    pub(super) fn new(solver: &SolverSettings, session: &SessionSettings, fw: &FirmwareLoop, plant: &Plant) -> Timing {
        let n_sub = solver.substeps();
        let tick = solver.tick;
        Timing {
            n_sub,
            tick,
            h: tick / n_sub as f64,
            period_ticks: ((session.period / tick).round() as u64).max(1),
            tail_ticks: (solver.max_tail / tick).ceil() as u64,
            press_ticks: ((fw.sensors.spec().trigger_press / tick).round() as u64).max(1),
            debounce_ticks: (fw.sensors.spec().debounce / tick).round() as u64,
            pa: plant.params.p_atm,
            area: plant.params.syringe.area,
        }
    }

    /// The true gauge pressures the sensors follow: supply, chamber, syringe.
    #[inline]
    pub(super) fn truth(&self, p: &Plant) -> [f64; 3] {
        let pa = self.pa;
        [p.state.p_reg - pa, p.state.p_c - pa, p.state.p_s - pa]
    }
}

/// The trigger: debounced level, ticks the raw level has differed from the
/// debounced one, rising edges taken and the time of the last.
pub(super) struct Trigger {
    pub(super) debounced: u32,
    pub(super) pending: u64,
    pub(super) edges: u32,
    pub(super) t_edge: f64,
}

impl Trigger {
    /// Debounce the raw level at tick `k` of a shot (pressed for the first
    /// `press_ticks`); returns the raw level.
    #[inline]
    pub(super) fn update(&mut self, k: u64, t_tick: f64, tm: &Timing) -> u32 {
        let raw = (k < tm.press_ticks) as u32;
        if raw != self.debounced {
            self.pending += 1;
            if self.pending > tm.debounce_ticks {
                self.debounced = raw;
                self.pending = 0;
                if raw == 1 {
                    self.edges += 1;
                    self.t_edge = t_tick;
                }
            }
        } else {
            self.pending = 0;
        }
        raw
    }

    /// Raw and debounced levels released, no debounce under way.
    pub(super) fn released(&self, raw: u32) -> bool {
        raw == 0 && self.debounced == 0 && self.pending == 0
    }
}

/// The firmware side between ticks: its last (validated) output, the ticks
/// it promised to hold it for, the trigger level it saw, the ticks skipped
/// since; the compute-delay queue, the output applied, and the last command
/// given to the valve driver.
pub(super) struct FwState {
    pub(super) queue: std::collections::VecDeque<FwOutput>,
    pub(super) applied: FwOutput,
    pub(super) out: FwOutput,
    pub(super) steady: u64,
    pub(super) fw_level: u32,
    pub(super) skipped: u64,
    pub(super) last_command: FwOutput,
    pub(super) commanded: bool,
    pub(super) reads: crate::control::Reads,
    /// The lag filters are followed only when the firmware reads a pressure.
    pub(super) any_read: bool,
}

impl FwState {
    pub(super) fn new(fw: &mut FirmwareLoop) -> FwState {
        let reads = fw.controller.reads();
        fw.sensors.read_only(reads.pressures);
        FwState {
            queue: std::collections::VecDeque::with_capacity(fw.delay_ticks + 1),
            applied: FwOutput::default(),
            out: FwOutput::default(),
            steady: 0,
            fw_level: 0,
            skipped: 0,
            last_command: FwOutput::default(),
            commanded: false,
            reads,
            any_read: fw.sensors.any_read(),
        }
    }

    /// Firmware tick: sample, compute, delay, apply. Inside a window where
    /// the firmware promised the same output whatever it reads (and with the
    /// trigger level it saw), its last output stands in for the call:
    /// nothing is sampled, built or validated.
    #[inline]
    pub(super) fn tick(
        &mut self,
        fw: &mut FirmwareLoop,
        plant: &Plant,
        trig: &Trigger,
        tm: &Timing,
        tick_no: u64,
        t_tick: f64,
    ) -> Result<(), RunError> {
        if self.steady > 0 && trig.debounced == self.fw_level {
            self.steady -= 1;
            self.skipped += 1;
            if fw.sensors.any_read() {
                fw.sensors.sample(tick_no);
            }
        } else {
            self.compute(fw, plant, trig, tm, tick_no, t_tick)?;
        }
        if fw.delay_ticks == 0 {
            self.applied = self.out;
        } else {
            self.queue.push_back(self.out);
            if self.queue.len() > fw.delay_ticks {
                self.applied = self.queue.pop_front().expect("non-empty");
            }
        }
        // The driver depends on its command and, on a change of mode, the time.
        if !self.commanded || !self.applied.same_drive(&self.last_command) {
            fw.driver.command(&self.applied, t_tick);
            self.last_command = self.applied;
            self.commanded = true;
        }
        Ok(())
    }

    /// Call the firmware: sample its sensors, build its input, validate its output.
    fn compute(
        &mut self,
        fw: &mut FirmwareLoop,
        plant: &Plant,
        trig: &Trigger,
        tm: &Timing,
        tick_no: u64,
        t_tick: f64,
    ) -> Result<(), RunError> {
        if self.skipped > 0 {
            fw.controller.skip(self.skipped);
            self.skipped = 0;
        }
        fw.sensors.sample(tick_no);
        let [p_supply, p_chamber, p_syringe] = fw.sensors.pressures();
        let input = FwInput {
            t: t_tick,
            tick_period: tm.tick,
            tick: tick_no,
            shot: trig.edges.saturating_sub(1),
            trigger: trig.debounced,
            t_since_trigger: t_tick - trig.t_edge,
            p_supply,
            p_chamber,
            p_syringe,
            plunger: if self.reads.plunger { fw.sensors.encoder(plant.state.z) } else { f64::NAN },
            syringe_area: tm.area,
        };
        self.out = FwOutput::default();
        fw.controller.step(&input, &mut self.out)?;
        self.out.validate().map_err(|message| FirmwareError::Step {
            name: fw.controller.name(),
            t_ms: t_tick * 1e3,
            tick: tick_no,
            message,
        })?;
        self.steady = fw.controller.steady_ticks();
        self.fw_level = trig.debounced;
        Ok(())
    }

    /// Every output applied or still in the delay queue is idle.
    pub(super) fn all_idle(&self) -> bool {
        self.applied.idle == 1 && self.queue.iter().all(|o| o.idle == 1)
    }
}
