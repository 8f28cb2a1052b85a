"""Notebook-style example: sweep open time x supply pressure on the
reference gun and plot the dose CV of every point as a heatmap.

    pip install ./python matplotlib
    python examples/python/sweep_heatmap.py --replicates 8 --out sweep_cv.png

Each cell is one sweep point (Monte Carlo replicates with valve, needle-lot,
friction and tissue variability, from scenarios/sweep_open_time_pressure.toml).
The table is the same as `mesobench sweep` writes to sweep.csv.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; in a notebook, drop this line
import matplotlib.pyplot as plt  # noqa: E402

import mesobench  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=ROOT / "scenarios" / "sweep_open_time_pressure.toml")
    ap.add_argument("--replicates", type=int, default=8, help="sessions per point (the file says 8)")
    ap.add_argument("--threads", type=int, default=None, help="default: every core")
    ap.add_argument("--out", default="sweep_cv.png")
    args = ap.parse_args()

    sc = mesobench.Scenario.load(args.scenario).set("sweep.replicates", args.replicates)
    table = mesobench.sweep(sc, threads=args.threads)
    print(f"{table.attrs['points']} points, {table.attrs['shots']} shots")

    x, y = "firmware.open_time_ms", "supply.pressure_bar"
    cv = table.pivot(index=y, columns=x, values="dose_cv_pct")
    mean = table.pivot(index=y, columns=x, values="dose_mean_ul")

    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    im = ax.imshow(cv.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(cv.columns)), [f"{v:g}" for v in cv.columns])
    ax.set_yticks(range(len(cv.index)), [f"{v:g}" for v in cv.index])
    ax.set_xlabel("open time, ms")
    ax.set_ylabel("supply pressure, bar (gauge)")
    ax.set_title(f"{sc.name}: dose CV over {args.replicates} sessions per point")
    lo, hi = cv.to_numpy().min(), cv.to_numpy().max()
    for i in range(cv.shape[0]):
        for j in range(cv.shape[1]):
            # Dark text on the light (yellow-green) end of viridis.
            light = (cv.iat[i, j] - lo) > 0.6 * (hi - lo)
            ax.text(j, i, f"{cv.iat[i, j]:.1f} %\n{mean.iat[i, j]:.1f} µL", ha="center", va="center",
                    fontsize=7, color="black" if light else "white")
    fig.colorbar(im, ax=ax, label="dose CV, %")
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
