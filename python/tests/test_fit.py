"""mesobench.fit: the CLI's fit_summary.json, fit_history.csv and calibrated.toml."""

import json

import pytest

import mesobench
from conftest import SCENARIOS


FIT = SCENARIOS / "fit_example" / "fit.toml"


@pytest.fixture(scope="module")
def cli_fit(cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_fit")
    cli("fit", FIT, "--out", out, "--quiet", "--threads", "2")
    return out


def test_fit_equals_cli_outputs(cli_fit):
    r = mesobench.fit(FIT, threads=2)
    for name in ["fit_summary.json", "fit_history.csv", "calibrated.toml"]:
        assert r.csv(name) == (cli_fit / name).read_bytes(), name
    assert r.converged and r.warnings == []
    truth = {"needle.inner_diameter_mm": 0.150, "syringe.break_loose_n": 5.5, "valve.c_dm3_per_s_bar": 0.08}
    for row in r.estimates.itertuples():
        assert row.ci95_lo <= truth[row.key] <= row.ci95_hi, row
    assert list(r.history.columns[:4]) == ["start", "iteration", "cost", "lambda"]


def test_fit_bad_file_is_a_scenario_error(tmp_path):
    bad = tmp_path / "bad_fit.toml"
    bad.write_text(FIT.read_text().replace('scenario = "../reference.toml"', f'scenario = "{SCENARIOS / "reference.toml"}"').replace("lo = 0.12", "lo = 0.01"))
    with pytest.raises(mesobench.ScenarioError, match=r'needle.inner_diameter_mm"\.lo = 0\.01 is not allowed'):
        mesobench.fit(bad)
