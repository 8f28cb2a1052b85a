/* The open-loop firmware of examples/firmware/open_loop.c behind a minimal
 * FMI 2.0 co-simulation wrapper: a controller FMU for the test of
 * firmware.kind = "fmu". Inputs trigger (Integer), tick_period (Real);
 * outputs valve_mode, idle (Integer), sig_command (Real). OPEN_TIME and PRE
 * (seconds) are set when compiling. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#ifndef OPEN_TIME
#define OPEN_TIME 0.060
#endif
#ifndef PRE
#define PRE 0.0
#endif

typedef void *fmi2Component;
typedef unsigned int fmi2ValueReference;
typedef int fmi2Status; /* 0 OK, 3 error */

enum { VR_TRIGGER = 1, VR_TICK_PERIOD = 2, VR_VALVE_MODE = 3, VR_IDLE = 4, VR_SIG_COMMAND = 5 };

typedef struct {
    int trigger, prev_trigger, armed;
    uint64_t since_edge;
    double tick_period;
    int valve_mode, idle;
    double sig_command;
} ctx_t;

fmi2Component fmi2Instantiate(const char *name, int type, const char *guid, const char *resources,
                              const void *callbacks, int visible, int logging) {
    (void)name; (void)guid; (void)resources; (void)callbacks; (void)visible; (void)logging;
    if (type != 1) return NULL;
    ctx_t *c = calloc(1, sizeof *c);
    if (c) c->idle = 1;
    return c;
}
void fmi2FreeInstance(fmi2Component c) { free(c); }
fmi2Status fmi2SetupExperiment(fmi2Component c, int a, double b, double t0, int d, double e) {
    (void)c; (void)a; (void)b; (void)t0; (void)d; (void)e; return 0;
}
fmi2Status fmi2EnterInitializationMode(fmi2Component c) { (void)c; return 0; }
fmi2Status fmi2ExitInitializationMode(fmi2Component c) { (void)c; return 0; }
fmi2Status fmi2Terminate(fmi2Component c) { (void)c; return 0; }

fmi2Status fmi2SetReal(fmi2Component p, const fmi2ValueReference *vr, size_t n, const double *v) {
    ctx_t *c = p;
    for (size_t i = 0; i < n; i++) {
        if (vr[i] == VR_TICK_PERIOD) c->tick_period = v[i]; else return 3;
    }
    return 0;
}
fmi2Status fmi2SetInteger(fmi2Component p, const fmi2ValueReference *vr, size_t n, const int *v) {
    ctx_t *c = p;
    for (size_t i = 0; i < n; i++) {
        if (vr[i] == VR_TRIGGER) c->trigger = v[i]; else return 3;
    }
    return 0;
}
fmi2Status fmi2GetReal(fmi2Component p, const fmi2ValueReference *vr, size_t n, double *v) {
    ctx_t *c = p;
    for (size_t i = 0; i < n; i++) {
        if (vr[i] == VR_SIG_COMMAND) v[i] = c->sig_command; else return 3;
    }
    return 0;
}
fmi2Status fmi2GetInteger(fmi2Component p, const fmi2ValueReference *vr, size_t n, int *v) {
    ctx_t *c = p;
    for (size_t i = 0; i < n; i++) {
        if (vr[i] == VR_VALVE_MODE) v[i] = c->valve_mode;
        else if (vr[i] == VR_IDLE) v[i] = c->idle;
        else return 3;
    }
    return 0;
}

static uint64_t ticks(double t, double tick) {
    double k = round(t / tick);
    return k > 0 ? (uint64_t)k : 0;
}

/* One firmware tick: the output for the inputs at the start of the step. */
fmi2Status fmi2DoStep(fmi2Component p, double t, double h, int no_set_prior) {
    (void)t; (void)h; (void)no_set_prior;
    ctx_t *c = p;
    if (c->trigger == 1 && c->prev_trigger == 0) {
        c->armed = 1;
        c->since_edge = 0;
    } else if (c->armed) {
        c->since_edge++;
    }
    c->prev_trigger = c->trigger;
    uint64_t pre = ticks(PRE, c->tick_period), open = ticks(OPEN_TIME, c->tick_period);
    int is_open = c->armed && c->since_edge >= pre && c->since_edge < pre + open;
    c->valve_mode = is_open ? 1 : 0;
    c->idle = !c->armed || c->since_edge >= pre + open;
    c->sig_command = is_open ? 1.0 : 0.0;
    return 0;
}
