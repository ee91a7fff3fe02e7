"""`make bench`: every benchmark, each against a reference measured in the same run. Parts can run alone:

    python benchmarks/run.py [--parts speed,throughput,recipes,shift,splits,transfer,multitask,compare,localize,
                             predict,serve,evaluate,fuzz,ood,coverage,medmnist] [--minutes 15]
    python benchmarks/{speed,throughput,recipes,shift,split_leaks,transfer,multitask,compare_busi,localize,
                       predict_speed,serve_load,evaluate_speed,fuzz,ood,coverage}.py
    medclass benchmark medmnist --root DIR

Data: MedMNIST npz files, BUSI, brain MRI and the NIH ChestX-ray14 boxes under $MEDCLASS_DATA or ../shared/data; a
part whose files are missing is skipped.
The tables are printed at the end and written to runs/bench/results.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare_busi  # noqa: E402
import coverage  # noqa: E402
import evaluate_speed  # noqa: E402
import fuzz  # noqa: E402
import localize  # noqa: E402
import multitask  # noqa: E402
import ood  # noqa: E402
import predict_speed  # noqa: E402
import speed  # noqa: E402
import split_leaks  # noqa: E402
import recipes  # noqa: E402
import serve_load  # noqa: E402
import shift  # noqa: E402
import throughput  # noqa: E402
import transfer  # noqa: E402
from common import data_roots, find_npz, out_dir  # noqa: E402
from medclass.harness.medmnist import DEFAULT_DATASETS, benchmark_dataset, format_table  # noqa: E402


def medmnist_table(minutes: float) -> str:
    found = {name: find_npz(name) for name in DEFAULT_DATASETS}
    missing = [name for name, path in found.items() if path is None]
    out = out_dir("runs/bench", "medmnist")
    results = [benchmark_dataset(name, str(path.parent), out, minutes) for name, path in found.items() if path]
    table = format_table(results, minutes) if results else ""
    skipped = f"\nskipped (not found in {', '.join(map(str, data_roots()))}): {', '.join(missing)}" if missing else ""
    return f"MedMNIST benchmark, official splits, {minutes:g} min per dataset on this machine:\n{table}{skipped}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts",
                        default="speed,throughput,recipes,shift,splits,transfer,multitask,compare,localize,"
                                "predict,serve,evaluate,fuzz,ood,coverage,medmnist")
    parser.add_argument("--minutes", type=float, default=15)
    args = parser.parse_args()
    parts = {"speed": lambda: speed.main([]), "throughput": lambda: throughput.main([]),
             "recipes": lambda: recipes.main([]), "shift": lambda: shift.main([]),
             "splits": lambda: split_leaks.main([]),
             "transfer": lambda: transfer.main([]), "multitask": lambda: multitask.main([]),
             "compare": lambda: compare_busi.main([]), "localize": lambda: localize.main([]),
             "predict": lambda: predict_speed.main([]), "serve": lambda: serve_load.main([]),
             "evaluate": lambda: evaluate_speed.main([]), "fuzz": lambda: fuzz.main([]),
             "ood": lambda: ood.main([]), "coverage": lambda: coverage.main([]),
             "medmnist": lambda: medmnist_table(args.minutes)}
    tables = []
    for name in args.parts.split(","):
        print(f"== {name}", flush=True)
        tables.append(parts[name]())
        print(tables[-1], flush=True)
    report = "\n\n".join(tables)
    Path("runs/bench").mkdir(parents=True, exist_ok=True)
    Path("runs/bench/results.md").write_text(report + "\n")
    print("\n" + report)


if __name__ == "__main__":
    main()
