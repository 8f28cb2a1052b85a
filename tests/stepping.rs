//! What makes a shot cheaper must not change it: the firmware calls skipped
//! inside a window where the firmware promised a steady output, the sensors
//! not modelled because no firmware reads them (fixed mode: bit for bit).

use crate::util::shipped;
use mesobench::control::{Controller, FirmwareError, FwInput, FwOutput};
use mesobench::scenario::Scenario;

/// A firmware with its promises hidden: called at every tick, every sensor modelled.
struct EveryTick(Box<dyn Controller>);

impl Controller for EveryTick {
    fn name(&self) -> String {
        self.0.name()
    }
    fn reset(&mut self) -> Result<(), FirmwareError> {
        self.0.reset()
    }
    fn step(&mut self, input: &FwInput, output: &mut FwOutput) -> Result<(), FirmwareError> {
        self.0.step(input, output)
    }
}

/// Shot records and trace of a scenario, as text (NaN telemetry compares equal).
fn run_text(sc: &Scenario, every_tick: bool) -> String {
    let run = if every_tick {
        let mut fw = EveryTick(mesobench::controller_for(sc).unwrap());
        mesobench::simulate_with(sc, &mut fw, true).unwrap()
    } else {
        mesobench::simulate(sc, true).unwrap()
    };
    format!("{:?}\n{:?}", run.result, run.trace)
}

#[test]
fn skipping_steady_firmware_ticks_changes_no_output() {
    let cases: &[(&str, &[&str])] = &[
        ("reference", &["session.shots=2"]),
        // Pre-pressurise, PWM faster than the tick, a compute delay, a trigger held through the shot.
        (
            "reference",
            &[
                "session.shots=2",
                "firmware.pre_pressurise_ms=3",
                "firmware.drive=\"pwm\"",
                "firmware.pwm_duty=0.7",
                "firmware.pwm_period_ms=0.05",
                "firmware.compute_delay_ticks=3",
                "sensors.trigger_press_ms=80",
            ],
        ),
        ("reference", &["session.shots=2", "firmware.drive=\"peak_and_hold\"", "firmware.tick_hz=1000"]),
        ("nappage_9hz", &["session.shots=6"]),
        ("stamp_5_needle", &["session.shots=2"]),
        ("closed_loop_pressure", &["session.shots=4"]),
        ("volume_target", &["session.shots=4"]),
    ];
    for (name, sets) in cases {
        let sc = shipped(name, sets);
        let skipping = run_text(&sc, false);
        let every = run_text(&sc, true);
        assert!(skipping == every, "{name} {sets:?}: skipping steady ticks changed the run");
    }
}
