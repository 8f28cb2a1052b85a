/* Pressure PID firmware as a C plugin: holds the supply pressure sensor at a
 * setpoint through the proportional regulator's set pressure (discrete PID,
 * filtered derivative, output clamp, back-calculation anti-windup), and opens
 * the valve for a fixed time after each trigger edge.
 * params: [0] open time s, [1] setpoint Pa gauge, [2] kp, [3] ki 1/s,
 *         [4] kd s, [5] derivative filter s, [6] u_min Pa, [7] u_max Pa,
 *         [8] tracking time s (0 = no anti-windup). */
#include <math.h>
#include <stdlib.h>
#include "mesobench_firmware.h"

typedef struct {
    double open_time, r, kp, ki, kd, tau_d, u_min, u_max, tt;
    double i, d, e_prev, u;
    int have_prev;
    uint32_t prev_trigger;
    int armed;
    uint64_t since_edge;
} ctx_t;

uint32_t mb_fw_abi_version(void) { return MB_FW_ABI_VERSION; }

void *mb_fw_create(const double *p, uint32_t n) {
    if (n < 9) return NULL;
    ctx_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->open_time = p[0]; c->r = p[1]; c->kp = p[2]; c->ki = p[3]; c->kd = p[4];
    c->tau_d = p[5]; c->u_min = p[6]; c->u_max = p[7]; c->tt = p[8];
    c->u = c->r;
    return c;
}

int32_t mb_fw_reset(void *p) {
    ctx_t *c = p;
    c->i = c->d = c->e_prev = 0.0;
    c->have_prev = 0;
    c->u = c->r;
    c->prev_trigger = 0;
    c->armed = 0;
    c->since_edge = 0;
    return 0;
}

int32_t mb_fw_step(void *p, const mb_fw_input *in, mb_fw_output *out) {
    ctx_t *c = p;
    double T = in->tick_period;
    if (in->trigger == 1 && c->prev_trigger == 0) { c->armed = 1; c->since_edge = 0; }
    else if (c->armed) c->since_edge++;
    c->prev_trigger = in->trigger;
    uint64_t open = (uint64_t)round(c->open_time / T);
    int is_open = c->armed && c->since_edge < open;

    double e = c->r - in->p_supply;
    double de = c->have_prev ? e - c->e_prev : 0.0;
    c->e_prev = e; c->have_prev = 1;
    c->d = (c->tau_d * c->d + c->kd * de) / (c->tau_d + T);
    double i_next = c->i + c->ki * T * e;
    double v = c->r + c->kp * e + i_next + c->d;
    double u = v < c->u_min ? c->u_min : (v > c->u_max ? c->u_max : v);
    c->i = c->tt > 0.0 ? i_next + T / c->tt * (u - v) : i_next;
    c->u = u;

    out->valve_mode = is_open ? MB_VALVE_ON : MB_VALVE_OFF;
    out->idle = 0;
    out->duty = 0.0; out->pwm_period = 0.0; out->peak_time = 0.0;
    out->regulator_setpoint = u;
    out->sig_setpoint = c->r;
    out->sig_measured = in->p_supply;
    out->sig_command = u;
    out->sig_integrator = c->i;
    return 0;
}

void mb_fw_destroy(void *p) { free(p); }
