/* Open-loop firmware as a C plugin: the same logic as mesobench's built-in
 * open_loop (valve on for a whole number of ticks after each trigger edge).
 * params[0] = open time, s; params[1] = pre-pressurise delay, s (optional). */
#include <math.h>
#include <stdlib.h>
#include "mesobench_firmware.h"

typedef struct {
    double open_time, pre;
    uint32_t prev_trigger;
    int armed;              /* a trigger edge has been seen */
    uint64_t since_edge;    /* ticks since the edge */
} ctx_t;

uint32_t mb_fw_abi_version(void) { return MB_FW_ABI_VERSION; }

void *mb_fw_create(const double *params, uint32_t n) {
    if (n < 1) return NULL;
    ctx_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->open_time = params[0];
    c->pre = n > 1 ? params[1] : 0.0;
    return c;
}

int32_t mb_fw_reset(void *p) {
    ctx_t *c = p;
    c->prev_trigger = 0;
    c->armed = 0;
    c->since_edge = 0;
    return 0;
}

static uint64_t ticks(double t, double tick) {
    double k = round(t / tick);
    return k > 0 ? (uint64_t)k : 0;
}

int32_t mb_fw_step(void *p, const mb_fw_input *in, mb_fw_output *out) {
    ctx_t *c = p;
    if (in->trigger == 1 && c->prev_trigger == 0) {
        c->armed = 1;
        c->since_edge = 0;
    } else if (c->armed) {
        c->since_edge++;
    }
    c->prev_trigger = in->trigger;
    uint64_t pre = ticks(c->pre, in->tick_period);
    uint64_t open = ticks(c->open_time, in->tick_period);
    int is_open = c->armed && c->since_edge >= pre && c->since_edge < pre + open;
    int idle = !c->armed || c->since_edge >= pre + open;

    out->valve_mode = is_open ? MB_VALVE_ON : MB_VALVE_OFF;
    out->idle = (uint32_t)idle;
    out->duty = 0.0;
    out->pwm_period = 0.0;
    out->peak_time = 0.0;
    out->regulator_setpoint = NAN;
    out->sig_setpoint = NAN;
    out->sig_measured = NAN;
    out->sig_command = is_open ? 1.0 : 0.0;
    out->sig_integrator = NAN;
    return 0;
}

void mb_fw_destroy(void *p) { free(p); }
