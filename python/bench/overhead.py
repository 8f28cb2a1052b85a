"""Per-call overhead of `mesobench.run` from Python against the command line.

    python python/bench/overhead.py [--repeat 30] [--bin target/release/mesobench]

Times, per call (median and minimum of --repeat calls), for a one-shot
session of the reference scenario and for validation alone:

  native       mesobench._native.run: validate, simulate, build the CSV/JSON bytes
  run          mesobench.run: the same plus pandas parsing (the Python overhead)
  run+trace    mesobench.run(..., trace=True): every trace sample as a DataFrame
  cli run      `mesobench run --quiet --out DIR`: a process, every file and plot
  check        Scenario.check() against `mesobench check` (no simulation)
"""

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import mesobench
from mesobench import _native

ROOT = Path(__file__).resolve().parents[2]


def timed(f, repeat):
    f()  # warm up
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), min(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--bin", default=ROOT / "target" / "release" / "mesobench")
    ap.add_argument("--shots", type=int, default=1)
    args = ap.parse_args()
    path = ROOT / "scenarios" / "reference.toml"
    sets = [f"session.shots={args.shots}"]
    sc = mesobench.Scenario.load(path)
    out = Path(tempfile.mkdtemp())
    exe = str(args.bin)

    rows = [
        ("native", lambda: _native.run(sc._native, sets, False)),
        ("run", lambda: mesobench.run(sc, set=sets)),
        ("run+trace", lambda: mesobench.run(sc, set=sets, trace=True)),
        ("cli run", lambda: subprocess.run([exe, "run", str(path), "--quiet", "--out", str(out), "--set", sets[0]], check=True)),
        ("check (py)", lambda: sc.check()),
        ("check (cli)", lambda: subprocess.run([exe, "check", str(path)], check=True, capture_output=True)),
    ]
    results = {}
    print(f"reference scenario, {args.shots} shot(s), {args.repeat} calls each; mesobench {mesobench.__version__}")
    print(f"{'case':<12} {'median ms':>10} {'min ms':>10}")
    for name, f in rows:
        med, lo = timed(f, args.repeat)
        results[name] = med
        print(f"{name:<12} {med * 1e3:10.3f} {lo * 1e3:10.3f}")
    print(f"Python layer (run - native):      {(results['run'] - results['native']) * 1e3:.2f} ms per call")
    print(f"CLI against run from Python:      {(results['cli run'] - results['run']) * 1e3:.2f} ms per call")
    print(f"process start + parse (cli check - py check): {(results['check (cli)'] - results['check (py)']) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
