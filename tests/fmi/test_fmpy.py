"""The exported plant FMUs checked with FMPy (https://github.com/CATIA-Systems/FMPy).

Run by the Rust test `fmu::fmpy_checks_the_exported_fmus` (tests/fmu.rs), or by hand:

    MESOBENCH_BIN=target/release/mesobench python -m pytest -v tests/fmi

MESOBENCH_BIN is the mesobench executable (its FMU binary, libmesobench_fmu.so,
next to it, or in MESOBENCH_FMU_LIB). Each test prints what it measured.
"""

import csv
import json
import os
import resource
import subprocess
import time

import numpy as np
import pytest
from fmpy import read_model_description, simulate_fmu, extract, instantiate_fmu
from fmpy.validation import validate_fmu, validate_model_description

BIN = os.environ.get("MESOBENCH_BIN", "target/release/mesobench")
LIB = os.environ.get("MESOBENCH_FMU_LIB")
OPEN_S = 0.060  # the reference scenario's open time
STOP_S = 0.5  # one shot period
STEP_S = 1e-4  # the firmware tick


def mesobench(*args):
    done = subprocess.run([BIN, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fmu")


@pytest.fixture(scope="session", params=[2, 3])
def fmu(request, work):
    out = work / f"reference_fmi{request.param}.fmu"
    lib = ["--lib", LIB] if LIB else []
    mesobench("fmu", "scenarios/reference.toml", "--fmi", str(request.param), "--out", str(out), *lib)
    return str(out)


@pytest.fixture(scope="session")
def run(work):
    """mesobench's own one-shot run of the reference scenario: dose and trace."""
    out = work / "run"
    mesobench("run", "scenarios/reference.toml", "--set", "session.shots=1", "--out", str(out), "--quiet")
    with open(out / "shots.csv") as f:
        dose = float(next(csv.DictReader(f))["dose_ul"])
    with open(out / "trace.csv") as f:
        rows = list(csv.DictReader(f))
    return dose, rows


def one_shot_input():
    return np.array(
        [(0.0, 1.0), (OPEN_S, 1.0), (OPEN_S, 0.0), (STOP_S, 0.0)],
        dtype=[("time", np.float64), ("valve_command", np.float64)],
    )


OUTPUTS = ["delivered_ul", "reflux_ul", "p_supply_kpa", "p_chamber_kpa", "p_syringe_kpa", "p_tissue_kpa",
           "flow_ul_s", "plunger_mm", "coil_current_a", "valve_opening"]


def test_fmpy_finds_no_problem(fmu):
    assert validate_fmu(fmu) == []
    md = read_model_description(fmu, validate=True)
    assert validate_model_description(md, validate_variable_names=True, validate_model_structure=True) == []
    names = {v.name: v for v in md.modelVariables}
    for name in OUTPUTS:
        assert names[name].causality == "output"
    assert names["valve_command"].causality == "input"
    assert names["supply.pressure_bar"].causality == "parameter"
    assert names["supply.pressure_bar"].unit == "bar(g)"
    print(f"{fmu}: validate_fmu found no problems; {len(md.modelVariables)} variables")


def test_one_shot_delivers_the_dose_of_mesobench_run(fmu, run):
    dose, trace = run
    r = simulate_fmu(fmu, stop_time=STOP_S, step_size=STEP_S, output_interval=STEP_S, input=one_shot_input(),
                     output=OUTPUTS)
    delivered = r["delivered_ul"][-1]
    rel = abs(delivered - dose) / dose
    print(f"{fmu}: FMPy one shot {delivered!r} uL, mesobench run {dose!r} uL, relative difference {rel:.3e}")
    assert rel <= 0.005
    # The pressure traces: mesobench's trace (a sample after every 50 us plant step, the
    # valve_cmd of the step before it) from the time the valve is first driven, at FMPy's samples.
    t_on = next(float(row["t_ms"]) for row in trace if float(row["valve_cmd"]) > 0) - 0.05
    worst = 0.0
    compared = 0
    for row in trace:
        t = (float(row["t_ms"]) - t_on) * 1e-3
        k = int(round(t / STEP_S))
        if not (0 < t < 0.2) or abs(k * STEP_S - t) > 1e-9:
            continue
        i = int(np.searchsorted(r["time"], t - 1e-9))
        assert abs(r["time"][i] - t) < 1e-9
        k = i
        compared += 1
        for ours, theirs in [("p_chamber_kpa", "chamber_kpa"), ("p_syringe_kpa", "syringe_kpa"),
                             ("p_supply_kpa", "supply_kpa")]:
            worst = max(worst, abs(r[ours][k] - float(row[theirs])))
    print(f"{fmu}: largest pressure difference from mesobench's trace {worst:.3e} kPa over {compared} samples")
    assert compared > 500
    assert worst < 0.1


def test_get_and_set_state_replay_bit_for_bit(fmu):
    md = read_model_description(fmu)
    vr = {v.name: v.valueReference for v in md.modelVariables}
    outs = [vr[n] for n in OUTPUTS]
    fmu_dir = extract(fmu)
    inst = instantiate_fmu(fmu_dir, md)
    v3 = md.fmiVersion.startswith("3")
    get = inst.getFloat64 if v3 else inst.getReal
    set_ = inst.setFloat64 if v3 else inst.setReal

    def init():
        if v3:
            inst.enterInitializationMode(startTime=0.0)
        else:
            inst.setupExperiment(startTime=0.0)
            inst.enterInitializationMode()
        inst.exitInitializationMode()

    def steps(t0, n, command):
        rows = []
        for k in range(n):
            set_([vr["valve_command"]], [command])
            inst.doStep(currentCommunicationPoint=t0 + k * STEP_S, communicationStepSize=STEP_S)
            rows.append(get(outs))
        return rows

    init()
    steps(0.0, 100, 1.0)
    state = inst.getFMUState() if v3 else inst.getFMUstate()
    first = steps(0.01, 300, 0.0)
    (inst.setFMUState if v3 else inst.setFMUstate)(state)
    again = steps(0.01, 300, 0.0)
    assert first == again
    # Serialised, and restored after a reset.
    data = inst.serializeFMUState(state) if v3 else inst.serializeFMUstate(state)
    inst.reset()
    restored = inst.deserializeFMUState(data) if v3 else inst.deSerializeFMUstate(data)
    (inst.setFMUState if v3 else inst.setFMUstate)(restored)
    assert steps(0.01, 300, 0.0) == first
    # Reset gives what a fresh instance gives.
    inst.reset()
    init()
    after_reset = steps(0.0, 800, 1.0)
    fresh = instantiate_fmu(fmu_dir, md)
    inst.freeInstance()
    inst = fresh
    get = inst.getFloat64 if v3 else inst.getReal
    set_ = inst.setFloat64 if v3 else inst.setReal
    init()
    assert steps(0.0, 800, 1.0) == after_reset
    inst.freeInstance()
    print(f"{fmu}: get/set state, serialised state and reset replay bit for bit ({len(data)} bytes per state)")


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_a_thousand_instances_do_not_grow_memory(fmu):
    md = read_model_description(fmu)
    fmu_dir = extract(fmu)
    v3 = md.fmiVersion.startswith("3")

    def cycle():
        inst = instantiate_fmu(fmu_dir, md)
        if v3:
            inst.enterInitializationMode(startTime=0.0)
        else:
            inst.setupExperiment(startTime=0.0)
            inst.enterInitializationMode()
        inst.exitInitializationMode()
        inst.doStep(currentCommunicationPoint=0.0, communicationStepSize=STEP_S)
        inst.terminate()
        inst.freeInstance()

    for _ in range(100):
        cycle()
    before = rss_kib()
    started = time.perf_counter()
    for _ in range(1000):
        cycle()
    took = time.perf_counter() - started
    growth = rss_kib() - before
    print(f"{fmu}: 1000 instantiate/free cycles in {took:.2f} s, resident memory grew {growth} KiB")
    assert growth < 2048


def test_a_bad_parameter_is_refused_with_the_message_in_the_log(fmu):
    messages = []

    def logger(*args):
        messages.append(args[-1].decode() if isinstance(args[-1], bytes) else str(args[-1]))

    with pytest.raises(Exception):
        simulate_fmu(fmu, stop_time=0.001, step_size=STEP_S, start_values={"supply.pressure_bar": 60.0},
                     logger=logger, validate=False)
    text = "\n".join(messages)
    print(f"{fmu}: refused with: {text}")
    assert "supply.pressure_bar = 60 is not allowed: a number from 0.2 to 10 bar (gauge)" in text
    # A rule across keys, checked when initialisation ends.
    messages.clear()
    with pytest.raises(Exception):
        simulate_fmu(fmu, stop_time=0.001, step_size=STEP_S, start_values={"syringe.glide_n": 8.0},
                     logger=logger)
    assert "syringe.break_loose_n = 4 is not allowed: at least syringe.glide_n = 8" in "\n".join(messages)


def test_shots_per_second(fmu, work):
    md = read_model_description(fmu)
    fmu_dir = extract(fmu)
    inst = instantiate_fmu(fmu_dir, md)
    n = 5
    for interval in [STEP_S, 1e-3]:
        started = time.perf_counter()
        for _ in range(n):
            r = simulate_fmu(fmu_dir, model_description=md, fmu_instance=inst, stop_time=STOP_S,
                             output_interval=interval, input=one_shot_input(), output=["delivered_ul"])
            inst.reset()
        per_shot = (time.perf_counter() - started) / n
        print(f"{fmu}: FMPy, communication step {interval * 1e6:.0f} us: {1 / per_shot:.1f} shots/s "
              f"({per_shot / (STOP_S / interval) * 1e6:.1f} us per doStep, FMPy's loop included)")
        assert r["delivered_ul"][-1] > 0
    inst.freeInstance()
    started = time.perf_counter()
    mesobench("run", "scenarios/reference.toml", "--set", "session.shots=20", "--out", str(work / "speed"),
              "--quiet")
    run_per_shot = (time.perf_counter() - started) / 20
    print(f"{fmu}: mesobench run {1 / run_per_shot:.1f} shots/s (20 shots, process start included)")


def test_an_fmu_with_a_foreign_binary_is_refused_without_a_crash(fmu, work):
    """A model description whose token does not match the binary (an FMU
    assembled from two builds) is refused at instantiation with a message,
    as often as it is tried, and the process goes on to run a good FMU."""
    import zipfile

    bad = work / ("foreign_" + os.path.basename(fmu))
    with zipfile.ZipFile(fmu) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "modelDescription.xml":
                text = data.decode()
                key = "guid=\"" if 'fmiVersion="2.0"' in text else "instantiationToken=\""
                start = text.index(key) + len(key)
                text = text[:start] + "{00000000-0000-0000-0000-000000000000}" + text[text.index('"', start):]
                data = text.encode()
            dst.writestr(item, data)
    for _ in range(3):
        messages = []

        def logger(*args):
            messages.append(args[-1].decode() if isinstance(args[-1], bytes) else str(args[-1]))

        with pytest.raises(Exception):
            simulate_fmu(str(bad), stop_time=0.001, step_size=STEP_S, logger=logger, validate=False)
        assert "does not match this binary" in "\n".join(messages), messages
    res = simulate_fmu(fmu, stop_time=0.001, step_size=STEP_S, output=["delivered_ul"], validate=False)
    assert len(res) > 0
