"""Near-duplicate groups (as `medclass audit` reports them) that a seeded split puts across train/val/test, with and
without keeping duplicate clusters together. Every image is decoded once; both splits and audits reuse the decode.

    python benchmarks/split_leaks.py [DATA] [--seed 0] [--val 0.15] [--test 0.15]

DATA defaults to BUSI (busi_256/Dataset_BUSI_with_GT under the shared data folder), a class folder without patient ids.
"""

from __future__ import annotations

import argparse

from common import data_roots
from medclass.data import open_dataset
from medclass.data.audit import audit_dataset
from medclass.data.splits import stratified_split


def default_data() -> str | None:
    for root in data_roots():
        if (root / "busi_256" / "Dataset_BUSI_with_GT").is_dir():
            return str(root / "busi_256" / "Dataset_BUSI_with_GT")
    return None


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val", type=float, default=0.15)
    parser.add_argument("--test", type=float, default=0.15)
    args = parser.parse_args(argv)
    data = args.data or default_data()
    if data is None:
        return "split leaks skipped: BUSI not found under " + ", ".join(map(str, data_roots())) + "; pass DATA"
    dataset = open_dataset(data)
    scanned = {}
    lines = [f"Near-duplicate leaks of a seeded split, {dataset.name}: {len(dataset)} images; seed {args.seed}, "
             f"val {args.val}, test {args.test}"]
    for group_duplicates in (False, True):
        split = stratified_split(dataset, args.val, args.test, args.seed, group_duplicates, scanned)
        summary = audit_dataset(split, scanned=scanned)["summary"]
        lines.append(f"grouped by {split.meta['split_grouping']['by']:24}: near-duplicate groups across splits "
                     f"{summary['near_duplicate_cross_split_groups']} of {summary['near_duplicate_groups']}, "
                     f"exact-duplicate groups across splits {summary['cross_split_duplicate_groups']} of "
                     f"{summary['duplicate_groups']}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
