/* The open-loop firmware of examples/firmware/open_loop.c behind a minimal
 * FMI co-simulation wrapper: a controller FMU for the tests of
 * firmware.kind = "fmu". Inputs trigger (Integer / Int32), tick_period
 * (Real / Float64); outputs valve_mode, idle (Integer / Int32), sig_command
 * (Real / Float64). OPEN_TIME and PRE (seconds) are set when compiling.
 *
 * Built as FMI 2.0 by default and as FMI 3.0 with -DFMI3 (the same
 * controller behind the other API). The FMI 3.0 build checks its
 * instantiationToken against TOKEN. For the tests of the importer's errors:
 * -DFAIL_AT_TICK=n returns Error from the n-th doStep of an instance
 * (counting from 0); FMI 3.0 only: -DOMIT_DOSTEP leaves fmi3DoStep out,
 * -DTERMINATE_AT_TICK=n sets terminateSimulation at the n-th fmi3DoStep. The types are those of the FMI headers
 * (fmi2TypesPlatform.h, fmi3PlatformTypes.h, fmi3FunctionTypes.h), written
 * out for the few used here. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef OPEN_TIME
#define OPEN_TIME 0.060
#endif
#ifndef PRE
#define PRE 0.0
#endif

enum { VR_TRIGGER = 1, VR_TICK_PERIOD = 2, VR_VALVE_MODE = 3, VR_IDLE = 4, VR_SIG_COMMAND = 5 };

typedef struct {
    int32_t trigger, prev_trigger, armed;
    uint64_t since_edge, steps;
    double tick_period;
    int32_t valve_mode, idle;
    double sig_command;
    void *env;
    void (*log)(void *env, int status, const char *category, const char *message);
} ctx_t;

static ctx_t *new_ctx(void) {
    ctx_t *c = calloc(1, sizeof *c);
    if (c) c->idle = 1;
    return c;
}

static uint64_t ticks(double t, double tick) {
    double k = round(t / tick);
    return k > 0 ? (uint64_t)k : 0;
}

/* One firmware tick: the output for the inputs at the start of the step. */
static inline void tick(ctx_t *c) {
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
}

/* Value access shared by both APIs: 0 OK, 3 error (an unknown reference). */
static int set_real(ctx_t *c, const uint32_t *vr, size_t n, const double *v) {
    for (size_t i = 0; i < n; i++) {
        if (vr[i] == VR_TICK_PERIOD) c->tick_period = v[i]; else return 3;
    }
    return 0;
}
static int set_int(ctx_t *c, const uint32_t *vr, size_t n, const int32_t *v) {
    for (size_t i = 0; i < n; i++) {
        if (vr[i] == VR_TRIGGER) c->trigger = v[i]; else return 3;
    }
    return 0;
}
static int get_real(ctx_t *c, const uint32_t *vr, size_t n, double *v) {
    for (size_t i = 0; i < n; i++) {
        if (vr[i] == VR_SIG_COMMAND) v[i] = c->sig_command; else return 3;
    }
    return 0;
}
static int get_int(ctx_t *c, const uint32_t *vr, size_t n, int32_t *v) {
    for (size_t i = 0; i < n; i++) {
        if (vr[i] == VR_VALVE_MODE) v[i] = c->valve_mode;
        else if (vr[i] == VR_IDLE) v[i] = c->idle;
        else return 3;
    }
    return 0;
}

#ifndef FMI3

typedef void *fmi2Component;
typedef unsigned int fmi2ValueReference;
typedef int fmi2Status; /* 0 OK, 3 error */

fmi2Component fmi2Instantiate(const char *name, int type, const char *guid, const char *resources,
                              const void *callbacks, int visible, int logging) {
    (void)name; (void)guid; (void)resources; (void)callbacks; (void)visible; (void)logging;
    if (type != 1) return NULL;
    return new_ctx();
}
void fmi2FreeInstance(fmi2Component c) { free(c); }
fmi2Status fmi2SetupExperiment(fmi2Component c, int a, double b, double t0, int d, double e) {
    (void)c; (void)a; (void)b; (void)t0; (void)d; (void)e; return 0;
}
fmi2Status fmi2EnterInitializationMode(fmi2Component c) { (void)c; return 0; }
fmi2Status fmi2ExitInitializationMode(fmi2Component c) { (void)c; return 0; }
fmi2Status fmi2Terminate(fmi2Component c) { (void)c; return 0; }

fmi2Status fmi2SetReal(fmi2Component p, const fmi2ValueReference *vr, size_t n, const double *v) {
    return set_real(p, vr, n, v);
}
fmi2Status fmi2SetInteger(fmi2Component p, const fmi2ValueReference *vr, size_t n, const int *v) {
    return set_int(p, vr, n, v);
}
fmi2Status fmi2GetReal(fmi2Component p, const fmi2ValueReference *vr, size_t n, double *v) {
    return get_real(p, vr, n, v);
}
fmi2Status fmi2GetInteger(fmi2Component p, const fmi2ValueReference *vr, size_t n, int *v) {
    return get_int(p, vr, n, v);
}

fmi2Status fmi2DoStep(fmi2Component p, double t, double h, int no_set_prior) {
    (void)t; (void)h; (void)no_set_prior;
    ctx_t *c = p;
#ifdef FAIL_AT_TICK
    if (c->steps == FAIL_AT_TICK) return 3; /* fmi2Error */
#endif
    c->steps++;
    tick(c);
    return 0;
}

#else /* FMI3 */

#ifndef TOKEN
#define TOKEN "{open-loop-3}"
#endif

typedef void *fmi3Instance;
typedef void *fmi3InstanceEnvironment;
typedef uint32_t fmi3ValueReference;
typedef bool fmi3Boolean;
typedef const char *fmi3String;
typedef enum { fmi3OK, fmi3Warning, fmi3Discard, fmi3Error, fmi3Fatal } fmi3Status;
typedef void (*fmi3LogMessageCallback)(fmi3InstanceEnvironment instanceEnvironment, fmi3Status status,
                                       fmi3String category, fmi3String message);
typedef void (*fmi3IntermediateUpdateCallback)(fmi3InstanceEnvironment instanceEnvironment,
                                               double intermediateUpdateTime,
                                               fmi3Boolean intermediateVariableSetRequested,
                                               fmi3Boolean intermediateVariableGetAllowed,
                                               fmi3Boolean intermediateStepFinished, fmi3Boolean canReturnEarly,
                                               fmi3Boolean *earlyReturnRequested, double *earlyReturnTime);

fmi3Instance fmi3InstantiateCoSimulation(fmi3String instanceName, fmi3String instantiationToken,
                                         fmi3String resourcePath, fmi3Boolean visible, fmi3Boolean loggingOn,
                                         fmi3Boolean eventModeUsed, fmi3Boolean earlyReturnAllowed,
                                         const fmi3ValueReference requiredIntermediateVariables[],
                                         size_t nRequiredIntermediateVariables,
                                         fmi3InstanceEnvironment instanceEnvironment,
                                         fmi3LogMessageCallback logMessage,
                                         fmi3IntermediateUpdateCallback intermediateUpdate) {
    (void)instanceName; (void)resourcePath; (void)visible; (void)loggingOn; (void)requiredIntermediateVariables;
    (void)intermediateUpdate;
    if (!instantiationToken || strcmp(instantiationToken, TOKEN) != 0) {
        if (logMessage) logMessage(instanceEnvironment, fmi3Error, "logStatusError",
                                   "instantiationToken does not match this binary's " TOKEN);
        return NULL;
    }
    if (eventModeUsed || earlyReturnAllowed || nRequiredIntermediateVariables) return NULL;
    ctx_t *c = new_ctx();
    if (c) {
        c->env = instanceEnvironment;
        c->log = (void (*)(void *, int, const char *, const char *))logMessage;
    }
    return c;
}
void fmi3FreeInstance(fmi3Instance c) { free(c); }
fmi3Status fmi3EnterInitializationMode(fmi3Instance c, fmi3Boolean toleranceDefined, double tolerance,
                                       double startTime, fmi3Boolean stopTimeDefined, double stopTime) {
    (void)c; (void)toleranceDefined; (void)tolerance; (void)startTime; (void)stopTimeDefined; (void)stopTime;
    return fmi3OK;
}
fmi3Status fmi3ExitInitializationMode(fmi3Instance c) { (void)c; return fmi3OK; }
fmi3Status fmi3Terminate(fmi3Instance c) { (void)c; return fmi3OK; }

fmi3Status fmi3SetFloat64(fmi3Instance p, const fmi3ValueReference vr[], size_t nvr, const double v[], size_t nv) {
    return nv != nvr ? fmi3Error : (fmi3Status)set_real(p, vr, nvr, v);
}
fmi3Status fmi3SetInt32(fmi3Instance p, const fmi3ValueReference vr[], size_t nvr, const int32_t v[], size_t nv) {
    return nv != nvr ? fmi3Error : (fmi3Status)set_int(p, vr, nvr, v);
}
fmi3Status fmi3GetFloat64(fmi3Instance p, const fmi3ValueReference vr[], size_t nvr, double v[], size_t nv) {
    return nv != nvr ? fmi3Error : (fmi3Status)get_real(p, vr, nvr, v);
}
fmi3Status fmi3GetInt32(fmi3Instance p, const fmi3ValueReference vr[], size_t nvr, int32_t v[], size_t nv) {
    return nv != nvr ? fmi3Error : (fmi3Status)get_int(p, vr, nvr, v);
}

#ifndef OMIT_DOSTEP
fmi3Status fmi3DoStep(fmi3Instance p, double t, double h, fmi3Boolean noSetFMUStatePriorToCurrentPoint,
                      fmi3Boolean *eventHandlingNeeded, fmi3Boolean *terminateSimulation, fmi3Boolean *earlyReturn,
                      double *lastSuccessfulTime) {
    (void)noSetFMUStatePriorToCurrentPoint;
    ctx_t *c = p;
    *eventHandlingNeeded = false;
    *terminateSimulation = false;
    *earlyReturn = false;
    *lastSuccessfulTime = t + h;
#ifdef FAIL_AT_TICK
    if (c->steps == FAIL_AT_TICK) {
        if (c->log) c->log(c->env, fmi3Error, "logStatusError", "the controller failed on purpose");
        return fmi3Error;
    }
#endif
#ifdef TERMINATE_AT_TICK
    if (c->steps == TERMINATE_AT_TICK) {
        *terminateSimulation = true;
        return fmi3OK;
    }
#endif
    c->steps++;
    tick(c);
    return fmi3OK;
}
#endif

#endif /* FMI3 */
