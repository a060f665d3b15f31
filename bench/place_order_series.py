"""place_order.py several times in a row, and the median of its ratios.

    .venv/bin/python bench/place_order_series.py [--runs 5] [place_order.py options…]

On a small shared VM one run of place_order.py swings by ±15 % (the app and the hand-written
baseline are measured one after the other, and the machine's speed drifts between them).
This runs it `--runs` times, each a fresh database and app, passes every other option through
(`--orders`, `--wait-idle`, `--baseline`, `--app-entry`…), prints one line per run (app and
baseline orders/s, ratio, the cores other processes used during each phase) and then the
median, the spread and whether the median meets the target. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = 0.6


def one_run(passthrough: list[str]) -> dict:
    proc = subprocess.run([sys.executable, str(HERE / "place_order.py"), *passthrough],
                          capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"place_order.py exited {proc.returncode}: {proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="how many runs (default 5)")
    args, passthrough = p.parse_known_args()
    runs = []
    for i in range(args.runs):
        r = one_run(passthrough)
        runs.append(r)
        other = (r["app"]["cpu_cores_used"]["other"], r["baseline"]["cpu_cores_used"]["other"])
        print(f"run {i + 1}: app {r['app']['orders_per_second']} orders/s, baseline "
              f"{r['baseline']['orders_per_second']} orders/s, ratio {r['ratio']:.3f} "
              f"(other cores app/baseline {other[0]}/{other[1]})", flush=True)
    ratios = [r["ratio"] for r in runs]
    median = statistics.median(ratios)
    summary = {
        "bench": "place_order_series", "runs": len(runs), "ratios": ratios, "median_ratio": round(median, 3),
        "min_ratio": min(ratios), "max_ratio": max(ratios), "target": TARGET, "target_met": median >= TARGET,
        "app_orders_per_second": [r["app"]["orders_per_second"] for r in runs],
        "baseline_orders_per_second": [r["baseline"]["orders_per_second"] for r in runs],
        "server_cpu_ms_per_order": [r["app"]["server_cpu_ms_per_order"] for r in runs],
        "other_cores": [[r["app"]["cpu_cores_used"]["other"], r["baseline"]["cpu_cores_used"]["other"]] for r in runs],
        "statements_per_order": runs[-1]["statements_per_order"]["app"], "git": runs[-1]["git"],
        "machine": runs[-1]["machine"], "baseline_style": runs[-1]["baseline_style"],
    }
    print(f"\nmedian ratio app/baseline = {median:.3f} over {len(runs)} runs (min {min(ratios):.3f}, "
          f"max {max(ratios):.3f}; target >= {TARGET}: {'met' if median >= TARGET else 'NOT met'})")
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
