/*
 * mesobench firmware plugin ABI, version 1.
 *
 * A plugin is a shared library that exports the five functions below. The
 * simulator calls them as firmware would run: create once per simulation,
 * reset before the session, step once per firmware tick, destroy at the end.
 * Every simulation gets its own context, so parallel runs never share state:
 * keep all state in the context, never in globals.
 *
 * Units are SI; pressures are gauge (Pa above atmosphere), as measured by the
 * simulated sensors (lag, noise, offset, gain error, ADC). Times are seconds.
 *
 * Build (see examples/firmware/Makefile):
 *   cc -O2 -shared -fPIC -I include -o libfw.so fw.c
 */
#ifndef MESOBENCH_FIRMWARE_H
#define MESOBENCH_FIRMWARE_H

#include <stdint.h>

#define MB_FW_ABI_VERSION 1u

/* Valve drive modes (mb_fw_output.valve_mode). */
#define MB_VALVE_OFF 0u           /* coil off */
#define MB_VALVE_ON 1u            /* coil at the full drive voltage */
#define MB_VALVE_PWM 2u           /* PWM at duty, period pwm_period */
#define MB_VALVE_PEAK_AND_HOLD 3u /* full voltage for peak_time, then PWM at duty */

/* What the firmware sees at a tick. */
typedef struct {
    double t;              /* time since the session started, s */
    double tick_period;    /* firmware tick period, s */
    uint64_t tick;         /* tick counter */
    uint32_t shot;         /* index of the latest trigger press */
    uint32_t trigger;      /* debounced trigger level: 1 pressed */
    double t_since_trigger;/* since the trigger's last rising edge, s (inf before the first) */
    double p_supply;       /* supply (regulator outlet) sensor, Pa gauge */
    double p_chamber;      /* chamber sensor, Pa gauge */
    double p_syringe;      /* syringe sensor, Pa gauge */
    double plunger;        /* plunger encoder, m */
    double syringe_area;   /* syringe bore, m^2 */
} mb_fw_input;

/* What the firmware commands until its next tick. */
typedef struct {
    uint32_t valve_mode;       /* MB_VALVE_* */
    uint32_t idle;             /* 1: nothing changes until the next trigger */
    double duty;               /* PWM or hold duty, 0..1 */
    double pwm_period;         /* s */
    double peak_time;          /* s */
    double regulator_setpoint; /* proportional regulator, Pa gauge; NAN = leave it */
    double sig_setpoint;       /* telemetry for traces (NAN if unused) */
    double sig_measured;
    double sig_command;
    double sig_integrator;
} mb_fw_output;

/* Must return MB_FW_ABI_VERSION. */
uint32_t mb_fw_abi_version(void);
/* Allocate a context; params are the scenario's firmware.plugin_params. NULL on failure. */
void *mb_fw_create(const double *params, uint32_t n_params);
/* Back to the power-on state. Return 0 on success. */
int32_t mb_fw_reset(void *ctx);
/* One tick. Fill *out completely. Return 0 on success, non-zero on error. */
int32_t mb_fw_step(void *ctx, const mb_fw_input *in, mb_fw_output *out);
/* Free the context. */
void mb_fw_destroy(void *ctx);

#endif
