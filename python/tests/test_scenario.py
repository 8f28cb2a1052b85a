"""mesobench.Scenario: load, from_toml, set through the registry, check, params."""

import math

import pytest

import mesobench
from conftest import SCENARIOS


def test_load_and_from_toml_give_the_same_scenario():
    path = SCENARIOS / "reference.toml"
    a = mesobench.Scenario.load(path)
    b = mesobench.Scenario.from_toml(path.read_text(), name="reference")
    assert a.name == b.name == "reference"
    assert a.resolved == b.resolved
    assert a.source == str(path)
    assert b.source == "<reference>"


def test_set_is_checked_at_once_and_chains():
    sc = mesobench.Scenario.default()
    assert sc.set("firmware.open_time_ms", 25).set("supply.pressure_bar", 2.5) is sc
    assert sc.overrides == ["firmware.open_time_ms=25", "supply.pressure_bar=2.5"]
    with pytest.raises(mesobench.ScenarioError):
        sc.set("supply.pressure_bar", 99.0)
    # A refused value is not kept.
    assert sc.overrides == ["firmware.open_time_ms=25", "supply.pressure_bar=2.5"]
    assert sc.check() is sc


def test_set_values_bool_int_float_str_numpy():
    np = pytest.importorskip("numpy")
    sc = mesobench.Scenario.default()
    sc.set("session.shots", np.int64(2)).set("firmware.open_time_ms", np.float64(33.5))
    sc.set("firmware.kind", "open_loop")
    assert sc.overrides == ["session.shots=2", "firmware.open_time_ms=33.5", "firmware.kind=open_loop"]
    with pytest.raises(TypeError):
        sc.set("session.shots", [1, 2])


def test_copy_is_independent():
    a = mesobench.Scenario.default()
    b = a.copy().set("session.shots", 1)
    assert a.overrides == [] and b.overrides == ["session.shots=1"]


def test_params_in_si_with_units():
    sc = mesobench.Scenario.default().set("supply.pressure_bar", 2.5)
    p = sc.params
    row = p.loc["supply.pressure_bar"]
    assert row["value"] == 2.5
    assert row["origin"] == "--set supply.pressure_bar=2.5"
    p_atm = sc.resolved["params"]["p_atm"]
    # Gauge bar to absolute Pa.
    assert math.isclose(row["value_si"], 2.5e5 + p_atm, rel_tol=1e-15)
    assert row["unit_si"].startswith("Pa")
    ot = p.loc["firmware.open_time_ms"]
    assert math.isclose(ot["value_si"], ot["value"] * 1e-3, rel_tol=1e-15)
    assert ot["unit_si"] == "s"
    # Written in the file: its line is the origin.
    assert p.loc["session.shots"]["origin"].startswith("<default scenario")
    assert {"value", "unit", "value_si", "unit_si", "origin", "shown"} <= set(p.columns)


def test_resolved_is_si():
    r = mesobench.Scenario.default().set("firmware.open_time_ms", 25).resolved
    assert r["name"] == "reference"
    assert r["firmware"]["kind"]["kind"] == "open_loop"
    assert r["firmware"]["kind"]["open_time"] == pytest.approx(0.025, rel=1e-15)
