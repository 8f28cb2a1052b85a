"""mesobench from Python: run, sweep, compare and analyse scenarios in-process.

The simulator is the same Rust library as the ``mesobench`` command line,
compiled into this module. Every table is built by the library's own report
code as the bytes of the CSV file the command line writes (shots.csv,
sweep.csv, arms.csv, ...) and read into pandas with exact float parsing, so a
DataFrame holds the same numbers as ``pandas.read_csv`` of the CLI's file.

    >>> import mesobench
    >>> r = mesobench.run("scenarios/reference.toml", set={"firmware.open_time_ms": 25})
    >>> r.summary["dose_mean_ul"], r.shots["dose_ul"].std()

Errors raise :class:`ScenarioError` (a bad file, key or value; the message is
the one the command line prints) or :class:`SimulationError`. Simulations run
with the GIL released; Ctrl-C stops a sweep or a comparison study between
points. ``fit`` is not part of this version.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, Iterable, Mapping, Optional, Union

import pandas as pd

from . import _native
from ._native import MesobenchError, ScenarioError, SimulationError

__version__ = _native.__version__

__all__ = [
    "FitResult",
    "fit",
    "MesobenchError",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "SimulationError",
    "CompareResult",
    "compare",
    "read_table",
    "run",
    "sensitivity",
    "sweep",
]

PathLike = Union[str, "os.PathLike[str]"]
Overrides = Union[None, Mapping[str, Any], Iterable[str]]


# pandas 3 parses floats exactly by default (and deprecates the option).
_EXACT = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def read_table(data: Union[bytes, str]) -> pd.DataFrame:
    """A CSV table as the command line writes it, read with exact floats
    (``float_precision="round_trip"``): every number is the float the
    simulator computed. Use it on the CLI's files to compare them."""
    if isinstance(data, str):
        data = data.encode()
    if not data.strip():
        return pd.DataFrame()
    return pd.read_csv(io.BytesIO(data), **_EXACT)


def _set_args(overrides: Overrides) -> list:
    """``{"key": value}`` or ``["key=value", ...]`` as ``--set`` arguments."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [_format_set(key, value) for key, value in overrides.items()]
    if isinstance(overrides, str):
        raise TypeError("set= takes a dict {key: value} or a list of 'key=value' strings, not a str")
    return [str(a) for a in overrides]


def _format_set(key: str, value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(int(value))
    elif isinstance(value, float):
        # float() also for numpy's float64, whose repr is "np.float64(…)".
        text = _float_text(float(value))
    elif isinstance(value, str):
        text = value
    else:
        try:
            import numpy as np

            if isinstance(value, np.bool_):
                text = "true" if bool(value) else "false"
            elif isinstance(value, np.integer):
                text = str(int(value))
            elif isinstance(value, np.floating):
                text = _float_text(float(value))
            else:
                raise TypeError
        except TypeError:
            raise TypeError(
                f"{key}: a value must be a bool, an int, a float or a str, not {type(value).__name__}"
            ) from None
    return f"{key}={text}"


def _float_text(v: float) -> str:
    # Shortest round-trip digits, as the library writes numbers (TOML reads
    # Python's "1e-05" and "inf" too).
    return repr(v)


class Scenario:
    """A scenario: TOML text parsed once, plus overrides set on it.

    Build one with :meth:`load`, :meth:`from_toml` or :meth:`default`; change
    keys with :meth:`set` (checked at once through the parameter registry,
    in the key's human unit, as ``--set``).
    """

    def __init__(self, native: "_native.Scenario"):
        self._native = native

    @classmethod
    def load(cls, path: PathLike) -> "Scenario":
        """Read and validate a scenario file (as ``mesobench check`` does)."""
        return cls(_native.Scenario.load(os.fspath(path)))

    @classmethod
    def from_toml(cls, text: str, name: Optional[str] = None, dir: Optional[PathLike] = None) -> "Scenario":
        """Parse and validate scenario text. ``name`` names it when it has no
        ``name`` key (and in messages, as ``<name>``); ``dir`` is the folder its
        relative paths (a firmware plugin) are resolved against."""
        return cls(_native.Scenario.from_toml(text, name, None if dir is None else os.fspath(dir)))

    @classmethod
    def default(cls) -> "Scenario":
        """The embedded default scenario (identical to scenarios/reference.toml)."""
        return cls(_native.Scenario.default())

    def set(self, key: str, value: Any) -> "Scenario":
        """Set ``key`` (dotted, human unit in its name: ``supply.pressure_bar``)
        to ``value``; raises ScenarioError with the CLI's message when the key
        or value is not allowed. Returns the scenario, so calls chain."""
        self._native.set_text(_format_set(key, value))
        return self

    def copy(self) -> "Scenario":
        """An independent copy (its overrides too)."""
        return Scenario(self._native.copy())

    def check(self) -> "Scenario":
        """Validate the scenario with its overrides, including every value its
        [sweep], [uncertain] and [tune] tables can apply; raises ScenarioError."""
        self._native.check()
        return self

    @property
    def name(self) -> str:
        return self._native.name

    @property
    def source(self) -> str:
        """Where the text came from (a path, ``<string>``, the default scenario)."""
        return self._native.source

    @property
    def text(self) -> str:
        return self._native.text

    @property
    def overrides(self) -> list:
        """The overrides set so far, as ``key=value`` strings, in order."""
        return list(self._native.overrides)

    @property
    def params(self) -> pd.DataFrame:
        """Every declared key, indexed by key: ``value`` (the number in the
        key's human unit), ``unit``, ``value_si`` and ``unit_si``,
        ``origin`` (file:line:column, ``--set …`` or ``default``) and
        ``shown`` (the text ``mesobench check --params`` prints). Numbers are
        NaN where the key is not a number, or its default is derived."""
        rows = self._native.entries()
        df = pd.DataFrame(
            rows, columns=["key", "shown", "unit", "origin", "value", "value_si", "unit_si"]
        ).set_index("key")
        df["value"] = df["value"].astype(float)
        df["value_si"] = df["value_si"].astype(float)
        return df[["value", "unit", "value_si", "unit_si", "origin", "shown"]]

    @property
    def resolved(self) -> dict:
        """The validated scenario in SI units (what ``mesobench check`` prints)."""
        return json.loads(self._native.resolved_json())

    def __repr__(self) -> str:
        return f"Scenario({self.source!r}, overrides={self.overrides!r})"


_plugin_host_ready = False


def _ensure_plugin_host() -> None:
    """Firmware plugins with ``plugin_isolation = "process"`` run in a host
    process, which the command line starts as ``mesobench __plugin-host …``.
    Here the host is this Python with the extension module alone (no pandas
    import), through a small script in a private temporary folder, unless
    MESOBENCH_PLUGIN_HOST names a mesobench binary."""
    global _plugin_host_ready
    if _plugin_host_ready or os.environ.get("MESOBENCH_PLUGIN_HOST"):
        return
    import atexit
    import shlex
    import shutil
    import sys
    import tempfile

    folder = tempfile.mkdtemp(prefix="mesobench-host-")
    atexit.register(shutil.rmtree, folder, True)
    code = (
        "import importlib.util as u, sys; "
        f"s = u.spec_from_file_location('mesobench._native', {_native.__file__!r}); "
        "m = u.module_from_spec(s); s.loader.exec_module(m); m.plugin_host_main(sys.argv[2:])"
    )
    script = os.path.join(folder, "mesobench-plugin-host")
    with open(script, "w") as f:
        f.write(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -c {shlex.quote(code)} \"$@\"\n")
    os.chmod(script, 0o700)
    _native.set_plugin_host(script)
    _plugin_host_ready = True


def _scenario(scenario: Union[None, Scenario, PathLike]) -> Scenario:
    if scenario is None:
        return Scenario.default()
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, (str, os.PathLike)):
        return Scenario.load(scenario)
    raise TypeError(f"scenario must be a Scenario, a path or None, not {type(scenario).__name__}")


class RunResult:
    """The outcome of :func:`run`.

    ``summary`` (dict: the fields of summary.json), ``shots`` (DataFrame:
    shots.csv), ``needles`` (needles.csv), ``trace`` (trace.csv as a
    DataFrame, or None unless ``trace=True``), ``warnings`` (list of str),
    ``stopped`` (why the session stopped early, or None). ``csv(name)``
    gives the exact bytes of the file the command line writes.
    """

    def __init__(self, scenario: Scenario, shots: bytes, needles: bytes, summary: bytes, trace, warnings, stopped):
        self.scenario = scenario
        self._files = {"shots.csv": shots, "needles.csv": needles, "summary.json": summary}
        if trace is not None:
            self._files["trace.csv"] = trace
        self.summary = json.loads(summary)
        self.shots = read_table(shots)
        self.needles = read_table(needles)
        self.trace = None if trace is None else read_table(trace)
        self.warnings = list(warnings)
        self.stopped = stopped

    def csv(self, name: str) -> bytes:
        """The bytes the command line writes to ``name`` (shots.csv,
        needles.csv, summary.json, and trace.csv when traced)."""
        return self._files[name]

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<RunResult {s['scenario']}: {s['shots']} shots, dose {s['dose_mean_ul']:.4g} µL, "
            f"CV {s['dose_cv_pct']:.3g} %, {len(self.warnings)} warnings>"
        )


def run(scenario: Union[None, Scenario, PathLike] = None, set: Overrides = None, trace: bool = False) -> RunResult:
    """Simulate a scenario's session, as ``mesobench run`` does.

    ``scenario`` is a :class:`Scenario`, a path to a TOML file, or None for
    the default scenario; ``set`` overrides keys for this call only (a dict
    ``{"firmware.open_time_ms": 25}`` or ``["key=value", ...]``). With
    ``trace=True`` the result holds every trace sample (trace.csv).
    """
    sc = _scenario(scenario)
    _ensure_plugin_host()
    out = _native.run(sc._native, _set_args(set), trace)
    return RunResult(sc, *out)


def sweep(
    scenario: Union[Scenario, PathLike],
    set: Overrides = None,
    threads: Optional[int] = None,
    raw: bool = False,
):
    """Run the scenario's ``[sweep]``, as ``mesobench sweep`` does.

    Returns the sweep table (sweep.csv) as a DataFrame, or with ``raw=True``
    a pair ``(table, raw)`` whose second element is raw.csv (every shot).
    ``threads`` defaults to every core; the table is the same whatever the
    threads. ``table.attrs`` holds ``points``, ``sessions`` and ``shots``.
    Ctrl-C stops it between points (KeyboardInterrupt).
    """
    sc = _scenario(scenario)
    _ensure_plugin_host()
    table, raw_table, (points, sessions, shots) = _native.sweep(sc._native, _set_args(set), threads, raw)
    df = read_table(table)
    df.attrs.update(points=points, sessions=sessions, shots=shots)
    if raw:
        return df, read_table(raw_table)
    return df


def sensitivity(scenario: Union[Scenario, PathLike], set: Overrides = None, threads: Optional[int] = None) -> pd.DataFrame:
    """Sobol indices of the mean session dose over the scenario's
    ``[uncertain]`` parameters, as ``mesobench sensitivity`` computes them:
    the table of sensitivity.csv (parameter, first, first_lo, first_hi,
    total, total_lo, total_hi); ``attrs`` holds ``mean`` (µL), ``variance``
    (µL²) and ``evaluations``."""
    sc = _scenario(scenario)
    _ensure_plugin_host()
    text, analysis = _native.sensitivity(sc._native, _set_args(set), threads)
    df = read_table(text)
    a = json.loads(analysis)
    df.attrs.update(mean=a["mean"], variance=a["variance"], evaluations=a["evaluations"])
    return df


class CompareResult:
    """The outcome of :func:`compare`: ``shots`` (arms.csv: every shot of
    every arm), ``summary`` (compare_summary.json as a dict), ``arms`` (one row per
    arm and target, from the summary) and ``pairs`` (the arm comparisons)."""

    def __init__(self, arms_csv: bytes, summary: bytes):
        self._files = {"arms.csv": arms_csv, "compare_summary.json": summary}
        self.shots = read_table(arms_csv)
        self.summary = json.loads(summary)
        self.arms = pd.json_normalize(self.summary["arms"])
        self.pairs = pd.json_normalize(self.summary["pairs"])

    def csv(self, name: str) -> bytes:
        """The bytes the command line writes to ``name`` (arms.csv, compare_summary.json)."""
        return self._files[name]

    def __repr__(self) -> str:
        return f"<CompareResult {self.summary['study']}: {len(self.arms)} arm×target rows, {len(self.shots)} shots>"


def compare(study: PathLike, threads: Optional[int] = None) -> CompareResult:
    """Run a manual-versus-gun comparison study file, as ``mesobench compare``
    does. Ctrl-C stops it between sessions (KeyboardInterrupt)."""
    _ensure_plugin_host()
    arms_csv, summary = _native.compare(os.fspath(study), threads)
    return CompareResult(arms_csv, summary)


class FitResult:
    """The outcome of :func:`fit`: ``summary`` (fit_summary.json as a dict),
    ``estimates`` (one row per parameter: key, estimate, the 95 % interval,
    unit, identifiable), ``history`` (fit_history.csv), ``calibrated_toml``
    (the calibrated scenario's text), ``converged`` and ``warnings``."""

    def __init__(self, summary: bytes, history: bytes, calibrated: str):
        self._files = {"fit_summary.json": summary, "fit_history.csv": history, "calibrated.toml": calibrated.encode()}
        self.summary = json.loads(summary)
        self.history = read_table(history)
        self.calibrated_toml = calibrated
        self.converged = bool(self.summary["converged"])
        self.warnings = list(self.summary["warnings"])
        rows = []
        for key in self.summary["parameter_order"]:
            p = self.summary["parameters"][key]
            ci = p["ci95"] or [float("nan"), float("nan")]
            rows.append(
                {
                    "key": key,
                    "estimate": p["estimate"],
                    "ci95_lo": ci[0],
                    "ci95_hi": ci[1],
                    "unit": p["unit"],
                    "identifiable": p["identifiable"],
                }
            )
        self.estimates = pd.DataFrame(rows)

    def csv(self, name: str) -> bytes:
        """The bytes the command line writes to ``name`` (fit_summary.json, fit_history.csv, calibrated.toml)."""
        return self._files[name]

    def __repr__(self) -> str:
        state = "converged" if self.converged else "NOT converged"
        return f"<FitResult {len(self.estimates)} parameters, {state}>"


def fit(fit_file: PathLike, threads: Optional[int] = None, out: Optional[PathLike] = None) -> FitResult:
    """Calibrate the plant from bench data, as ``mesobench fit`` does (see
    docs/calibration.md). A fit that does not converge returns with
    ``converged`` False (the command line exits 1); ``out`` also writes
    every output file, plots included."""
    summary, history, calibrated = _native.fit(os.fspath(fit_file), threads, None if out is None else os.fspath(out))
    return FitResult(summary, history, calibrated)
