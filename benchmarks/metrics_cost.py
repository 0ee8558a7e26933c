"""What ``aiosio.metrics`` costs: echo and broadcast on aiosio's native server without and with
``instrument(sio, path="/metrics")``, with run.py's load generator and measures, the runs
interleaved (off, on, off, on, ...) so that the machine's other load falls on both alike.

    .venv/bin/python benchmarks/metrics_cost.py [--runs 5] [--scenario echo,broadcast]

Prints each run and, per scenario, the medians and the median of the run-by-run ratios (on over
off: CPU per operation, throughput). Writes nothing but its logs (benchmarks/results/logs/metrics/,
ignored by git).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # benchmarks/run.py, beside this file (sys.path above)

OFF = run.SERVERS["aiosio-native"]
ON = run.ServerKind(
    "aiosio-native-metrics",
    (str(run.MAIN_PY), str(run.HERE / "servers" / "aiosio_native_metrics.py")),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenario", default="echo,broadcast")
    args = parser.parse_args()
    logdir = run.HERE / "results" / "logs" / "metrics"  # ignored by git, as run.py's logs
    logdir.mkdir(parents=True, exist_ok=True)
    for name in args.scenario.split(","):
        params = run.SCENARIOS[name].full
        pairs = []
        for i in range(args.runs):
            off = run.one_run(OFF, params, logdir)
            on = run.one_run(ON, params, logdir)
            pairs.append((off, on))
            print(
                f"{name} run {i + 1}: off {off['ops_per_s']:,.0f}/s "
                f"{off['cpu_us_per_op']:.2f} µs CPU/op (other load {off['other_load']:.2f}); "
                f"on {on['ops_per_s']:,.0f}/s {on['cpu_us_per_op']:.2f} µs CPU/op "
                f"(other load {on['other_load']:.2f})",
                flush=True,
            )
        cpu = statistics.median(on["cpu_us_per_op"] / off["cpu_us_per_op"] for off, on in pairs)
        rate = statistics.median(on["ops_per_s"] / off["ops_per_s"] for off, on in pairs)
        off_cpu = statistics.median(off["cpu_us_per_op"] for off, _ in pairs)
        on_cpu = statistics.median(on["cpu_us_per_op"] for _, on in pairs)
        print(
            f"{name}: CPU per op median off {off_cpu:.2f} µs, on {on_cpu:.2f} µs; "
            f"on/off run by run: CPU per op x{cpu:.3f}, throughput x{rate:.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
