"""Shared fixtures: the repository, its scenarios and the `mesobench` binary
whose outputs the Python results must equal."""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"


def _binary():
    env = os.environ.get("MESOBENCH_BIN")
    if env:
        return Path(env) if Path(env).is_file() else None
    found = [p for p in (REPO / "target" / "release" / "mesobench", REPO / "target" / "debug" / "mesobench") if p.is_file()]
    # The most recently built one (the other may be stale).
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


@pytest.fixture(scope="session")
def cli():
    """Run the mesobench binary; returns the CompletedProcess (text)."""
    exe = _binary()
    if exe is None:
        # Never skip: without the binary nothing is compared with the CLI.
        pytest.fail("no mesobench binary: run `cargo build --release` or set MESOBENCH_BIN")

    def call(*args, expect=0):
        p = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=REPO)
        if expect is not None and p.returncode != expect:
            raise AssertionError(f"mesobench {' '.join(map(str, args))}: exit {p.returncode}\n{p.stderr}")
        return p

    return call


def cli_error(p):
    """The message the binary printed for an error (`error: …`)."""
    assert p.stderr.startswith("error: "), p.stderr
    assert p.stderr.endswith("\n")
    # eprintln's newline only (a TOML message may end with its own).
    return p.stderr[len("error: ") : -1]


def read_cli(path):
    """A CSV file of the binary, read with exact floats (what a user would do)."""
    import pandas as pd

    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    return pd.read_csv(path, **exact)
