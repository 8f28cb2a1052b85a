"""mesobench.compare: the CLI's arms.csv and compare_summary.json."""

import json

import pandas as pd
import pytest

import mesobench
from conftest import read_cli, SCENARIOS, cli_error


@pytest.fixture
def small_study(tmp_path):
    text = (SCENARIOS / "manual_vs_gun.toml").read_text()
    for old, new in [
        ('scenario = "reference.toml"', f'scenario = "{SCENARIOS / "reference.toml"}"'),
        ("targets_ul = [10.0, 20.0, 50.0]", "targets_ul = [20.0]"),
        ("units = 12", "units = 2"),
        ("shots = 15", "shots = 3"),
        ("bootstrap = 2000", "bootstrap = 100"),
    ]:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "small_study.toml"
    path.write_text(text)
    return path


def test_compare_equals_cli_outputs(cli, tmp_path, small_study):
    out = tmp_path / "cli"
    cli("compare", small_study, "--out", out, "--quiet", "--threads", "2")
    r = mesobench.compare(small_study, threads=2)
    assert r.csv("arms.csv") == (out / "arms.csv").read_bytes()
    assert r.csv("compare_summary.json") == (out / "compare_summary.json").read_bytes()
    pd.testing.assert_frame_equal(r.shots, read_cli(out / "arms.csv"), check_exact=True)
    assert r.summary == json.loads((out / "compare_summary.json").read_text())
    assert len(r.arms) == 5  # five arms at one target
    assert set(r.shots["arm"]) == {a["arm"] for a in r.summary["arms"]}


def test_compare_one_and_two_threads_identical(small_study):
    a = mesobench.compare(small_study, threads=1)
    b = mesobench.compare(small_study, threads=2)
    assert a.csv("arms.csv") == b.csv("arms.csv")
    assert a.csv("compare_summary.json") == b.csv("compare_summary.json")


def test_compare_bad_study_is_a_scenario_error(cli, tmp_path, small_study):
    bad = tmp_path / "bad_study.toml"
    bad.write_text(small_study.read_text().replace("units = 2", "units = 0", 1))
    p = cli("compare", bad, "--out", tmp_path / "o", expect=2)
    with pytest.raises(mesobench.ScenarioError) as e:
        mesobench.compare(bad)
    assert str(e.value) == cli_error(p)
