"""Errors raise ScenarioError / SimulationError with the CLI's messages."""

import pytest

import mesobench
from conftest import SCENARIOS, cli_error


def test_value_out_of_range_has_the_cli_message(cli):
    path = SCENARIOS / "reference.toml"
    p = cli("run", path, "--set", "supply.pressure_bar=99", "--out", "/nonexistent/never", expect=2)
    with pytest.raises(mesobench.ScenarioError) as e:
        mesobench.run(path, set={"supply.pressure_bar": 99})
    assert str(e.value) == cli_error(p)
    assert e.value.key == "supply.pressure_bar"
    assert e.value.value == "99"
    assert "bar" in e.value.allowed
    assert e.value.location == "--set supply.pressure_bar=99"


def test_unknown_key_has_the_cli_message(cli):
    path = SCENARIOS / "reference.toml"
    p = cli("run", path, "--set", "supply.pressur_bar=3", "--out", "/nonexistent/never", expect=2)
    with pytest.raises(mesobench.ScenarioError) as e:
        mesobench.run(path, set=["supply.pressur_bar=3"])
    assert str(e.value) == cli_error(p)
    with pytest.raises(mesobench.ScenarioError) as e2:
        mesobench.Scenario.load(path).set("supply.pressur_bar", 3)
    assert str(e2.value) == str(e.value)


def test_bad_value_in_a_file_names_file_line_key_value_and_range(cli, tmp_path):
    text = (SCENARIOS / "reference.toml").read_text()
    bad = tmp_path / "bad.toml"
    assert "open_time_ms = 60.0" in text
    bad.write_text(text.replace("open_time_ms = 60.0", "open_time_ms = -5.0", 1))
    p = cli("check", bad, expect=2)
    with pytest.raises(mesobench.ScenarioError) as e:
        mesobench.Scenario.load(bad)
    msg = str(e.value)
    assert msg == cli_error(p)
    assert msg.startswith(f"{bad}:")
    assert "firmware.open_time_ms = -5" in msg and "is not allowed" in msg


def test_toml_syntax_error_has_the_cli_message(cli, tmp_path):
    bad = tmp_path / "syntax.toml"
    bad.write_text('name = "x"\n[supply\npressure_bar = 3\n')
    p = cli("check", bad, expect=2)
    with pytest.raises(mesobench.ScenarioError) as e:
        mesobench.Scenario.load(bad)
    assert str(e.value) == cli_error(p)
    assert "line 2" in str(e.value)


def test_missing_file_has_the_cli_message(cli, tmp_path):
    missing = tmp_path / "missing.toml"
    p = cli("run", missing, "--out", tmp_path / "o", expect=2)
    with pytest.raises(mesobench.ScenarioError) as e:
        mesobench.run(missing)
    assert str(e.value) == cli_error(p)


def test_from_toml_error_names_the_text():
    with pytest.raises(mesobench.ScenarioError) as e:
        mesobench.Scenario.from_toml("[session]\nshots = 0\n", name="mine")
    assert str(e.value).startswith("<mine>:")
    assert "session.shots = 0 is not allowed" in str(e.value)


def test_sweep_without_a_sweep_table_is_a_scenario_error(cli):
    path = SCENARIOS / "reference.toml"
    p = cli("sweep", path, "--out", "/nonexistent/never", expect=2)
    with pytest.raises(mesobench.ScenarioError) as e:
        mesobench.sweep(path)
    assert str(e.value) == cli_error(p)


def test_missing_plugin_is_a_scenario_error(cli, tmp_path):
    text = (SCENARIOS / "c_plugin_open_loop.toml").read_text()
    sc = tmp_path / "plugin.toml"
    sc.write_text(text)  # its relative plugin path does not exist beside the copy
    p = cli("run", sc, "--out", tmp_path / "o", expect=2)
    with pytest.raises(mesobench.ScenarioError) as e:
        mesobench.run(sc)
    assert str(e.value) == cli_error(p)
    assert "firmware.plugin" in str(e.value)


@pytest.mark.parametrize("isolation", ["in_process", "process"])
def test_failed_firmware_is_a_simulation_error(cli, tmp_path, isolation, monkeypatch):
    # A shared library that exists but is no firmware: the session fails to start.
    import glob

    libm = sorted(glob.glob("/lib/*/libm.so.6") + glob.glob("/usr/lib/*/libm.so.6") + glob.glob("/lib64/libm.so.6"))
    assert libm, "no libm.so.6 found"
    monkeypatch.delenv("MESOBENCH_PLUGIN_HOST", raising=False)
    text = (SCENARIOS / "c_plugin_open_loop.toml").read_text()
    old = 'plugin = "../examples/firmware/build/libfw_open_loop.so"'
    assert old in text
    sc = tmp_path / "not_firmware.toml"
    sc.write_text(text.replace(old, f'plugin = "{libm[0]}"'))
    s = f'firmware.plugin_isolation="{isolation}"'
    p = cli("run", sc, "--out", tmp_path / "o", "--set", s, expect=2)
    with pytest.raises(mesobench.SimulationError) as e:
        mesobench.run(sc, set=[s])
    assert str(e.value) == cli_error(p)
    assert str(e.value).startswith("scenario c_plugin_open_loop: firmware plugin")


def test_exception_hierarchy():
    assert issubclass(mesobench.ScenarioError, mesobench.MesobenchError)
    assert issubclass(mesobench.SimulationError, mesobench.MesobenchError)
    assert issubclass(mesobench.MesobenchError, Exception)
