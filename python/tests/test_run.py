"""mesobench.run: the same numbers and files as `mesobench run`."""

import json
import threading
import time

import pandas as pd
import pytest

import mesobench
from conftest import read_cli, SCENARIOS

# Shipped scenarios that `run` accepts without a compiled firmware plugin.
RUNNABLE = [
    "reference",
    "closed_loop_pressure",
    "volume_target",
    "stamp_5_needle",
    "subcutaneous",
    "skin_booster_ha",
    "console_valve_long_hose",
]


def cli_run(cli, tmp_path, scenario, *sets):
    out = tmp_path / "cli"
    args = ["run", scenario, "--out", out, "--quiet"]
    for s in sets:
        args += ["--set", s]
    cli(*args, expect=None)
    return out


@pytest.mark.parametrize("name", RUNNABLE)
def test_run_equals_cli_outputs_of_shipped_scenarios(cli, tmp_path, name):
    path = SCENARIOS / f"{name}.toml"
    out = cli_run(cli, tmp_path, path)
    r = mesobench.run(path)
    for f in ["shots.csv", "needles.csv", "summary.json"]:
        assert r.csv(f) == (out / f).read_bytes(), f
    assert r.summary == json.loads((out / "summary.json").read_text())
    cli_shots = read_cli(out / "shots.csv")
    pd.testing.assert_frame_equal(r.shots, cli_shots, check_exact=True)
    assert list(r.shots.columns) == list(cli_shots.columns)
    pd.testing.assert_frame_equal(
        r.needles, read_cli(out / "needles.csv"), check_exact=True
    )
    assert r.warnings == r.summary["warnings"]
    assert r.trace is None


def test_trace_equals_cli_trace_csv(cli, tmp_path):
    path = SCENARIOS / "reference.toml"
    out = cli_run(cli, tmp_path, path, "session.shots=1")
    r = mesobench.run(path, set={"session.shots": 1}, trace=True)
    assert r.csv("trace.csv") == (out / "trace.csv").read_bytes()
    pd.testing.assert_frame_equal(
        r.trace, read_cli(out / "trace.csv"), check_exact=True
    )
    assert len(r.trace) > 1000


def test_set_overrides_equal_cli_set(cli, tmp_path):
    path = SCENARIOS / "reference.toml"
    out = cli_run(cli, tmp_path, path, "firmware.open_time_ms=25", "supply.pressure_bar=2.5")
    r = mesobench.run(path, set={"firmware.open_time_ms": 25, "supply.pressure_bar": 2.5})
    assert r.csv("shots.csv") == (out / "shots.csv").read_bytes()
    base = mesobench.run(path)
    assert r.summary["dose_mean_ul"] < base.summary["dose_mean_ul"]


def test_set_on_a_scenario_object_equals_set_per_call():
    a = mesobench.run(mesobench.Scenario.default().set("firmware.open_time_ms", 30.0))
    b = mesobench.run(None, set=["firmware.open_time_ms=30"])
    assert a.csv("shots.csv") == b.csv("shots.csv")


def test_default_scenario_is_reference():
    a = mesobench.run()
    b = mesobench.run(SCENARIOS / "reference.toml")
    assert a.csv("shots.csv") == b.csv("shots.csv")
    assert a.summary["scenario"] == "reference"


def test_run_is_deterministic():
    sc = mesobench.Scenario.load(SCENARIOS / "closed_loop_pressure.toml")
    assert mesobench.run(sc).csv("shots.csv") == mesobench.run(sc).csv("shots.csv")


def test_gil_is_released_while_simulating():
    """Another Python thread runs while a simulation is in progress."""
    sc = mesobench.Scenario.load(SCENARIOS / "closed_loop_pressure.toml")
    count = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        shots = 50
        while True:
            started = time.perf_counter()
            before = count[0]
            # The native call alone: the pandas parsing after it holds the GIL.
            mesobench._native.run(sc._native, [f"session.shots={shots}"], False)
            during = count[0] - before
            elapsed = time.perf_counter() - started
            if elapsed > 0.05 or shots >= 6400:
                break
            shots *= 2
    finally:
        stop.set()
        t.join()
    # Holding the GIL would leave the counter still for the whole call.
    assert elapsed > 0.02
    assert during > 10_000, (during, elapsed)


def test_dataframes_hold_the_exact_floats_of_the_csv_text():
    """Every number in the frame is the float its CSV text denotes."""
    import csv
    import io
    import math

    r = mesobench.run(SCENARIOS / "stamp_5_needle.toml", trace=True)
    for name, df in [("shots.csv", r.shots), ("needles.csv", r.needles), ("trace.csv", r.trace)]:
        rows = list(csv.reader(io.StringIO(r.csv(name).decode())))
        assert rows[0] == list(df.columns)
        for i, row in enumerate(rows[1:50]):
            for col, text in zip(rows[0], row):
                v = df[col].iloc[i]
                if text in ("", "NaN"):
                    assert math.isnan(v), (name, col, i, text, v)
                elif text in ("true", "false"):
                    assert bool(v) == (text == "true")
                else:
                    assert float(v) == float(text), (name, col, i, text, v)


@pytest.fixture(scope="module")
def c_plugin():
    """The shipped C firmware example, built as its scenario expects."""
    import subprocess

    from conftest import REPO

    subprocess.run(["make", "-C", str(REPO / "examples" / "firmware")], check=True, capture_output=True)
    return SCENARIOS / "c_plugin_open_loop.toml"


@pytest.mark.parametrize("isolation", ["process", "in_process"])
def test_c_plugin_firmware_equals_cli(cli, tmp_path, c_plugin, isolation, monkeypatch):
    # In a host process the host is this Python, not a mesobench binary.
    monkeypatch.delenv("MESOBENCH_PLUGIN_HOST", raising=False)
    s = f'firmware.plugin_isolation="{isolation}"'
    out = cli_run(cli, tmp_path, c_plugin, s)
    r = mesobench.run(c_plugin, set=[s])
    assert r.csv("shots.csv") == (out / "shots.csv").read_bytes()
    assert r.summary["shots"] > 0
