"""mesobench.sweep and mesobench.sensitivity: the CLI's tables, whatever the threads; Ctrl-C stops a sweep."""

import os
import signal
import threading
import time

import pandas as pd
import pytest

import mesobench
from conftest import read_cli, SCENARIOS

SWEEP = SCENARIOS / "sweep_open_time_pressure.toml"
SMALL = ["sweep.replicates=2"]


def test_sweep_equals_cli_sweep_and_raw_csv(cli, tmp_path):
    out = tmp_path / "cli"
    cli("sweep", SWEEP, "--out", out, "--quiet", "--raw", "--threads", "2", "--set", SMALL[0])
    table, raw = mesobench.sweep(SWEEP, set=SMALL, threads=2, raw=True)
    table_bytes, raw_bytes, _ = mesobench._native.sweep(mesobench.Scenario.load(SWEEP)._native, SMALL, 2, True)
    assert table_bytes == (out / "sweep.csv").read_bytes()
    assert raw_bytes == (out / "raw.csv").read_bytes()
    pd.testing.assert_frame_equal(table, read_cli(out / "sweep.csv"), check_exact=True)
    pd.testing.assert_frame_equal(raw, read_cli(out / "raw.csv"), check_exact=True)
    assert len(table) == 35 and table.attrs["points"] == 35
    assert table.attrs["sessions"] == 70
    assert len(raw) == table.attrs["shots"] == 210
    assert list(table.columns[:3]) == ["point", "firmware.open_time_ms", "supply.pressure_bar"]


def test_sweep_one_and_two_threads_identical():
    sc = mesobench.Scenario.load(SWEEP).set("sweep.replicates", 2)
    one = mesobench.sweep(sc, threads=1)
    two = mesobench.sweep(sc, threads=2)
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    assert isinstance(one, pd.DataFrame)


def test_ctrl_c_interrupts_a_long_sweep():
    # 35 points x 3000 replicates x 3 shots: 315,000 shots, over a minute on
    # one thread (0.3 ms a shot); one point is 9,000 shots (a few seconds).
    sc = mesobench.Scenario.load(SWEEP).set("sweep.replicates", 3000)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    started = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            mesobench.sweep(sc, threads=1)
    finally:
        timer.cancel()
    elapsed = time.perf_counter() - started
    # Stopped after the point running at the signal.
    assert elapsed < 10, elapsed


def test_sensitivity_equals_cli_sensitivity_csv(cli, tmp_path):
    path = SCENARIOS / "sensitivity_reference.toml"
    sets = ["sensitivity.samples=16", "sensitivity.bootstrap=20"]
    out = tmp_path / "cli"
    cli("sensitivity", path, "--out", out, "--quiet", "--threads", "2", "--set", sets[0], "--set", sets[1])
    df = mesobench.sensitivity(path, set=sets, threads=2)
    text, _ = mesobench._native.sensitivity(mesobench.Scenario.load(path)._native, sets, 2)
    assert text.encode() == (out / "sensitivity.csv").read_bytes()
    pd.testing.assert_frame_equal(df, read_cli(out / "sensitivity.csv"), check_exact=True)
    assert set(df["parameter"]) == {
        "valve.coil_temperature_c",
        "needle.inner_diameter_mm",
        "syringe.break_loose_n",
        "supply.pressure_bar",
        "tissue.opening_pressure_kpa",
    }
    assert df.attrs["evaluations"] == 16 * 7
