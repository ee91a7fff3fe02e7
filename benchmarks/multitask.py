"""One model answering two tasks against two single-task models, on a Multi Cancer layout (ROOT/<organ>/<class>)
built from the shared data, as people who start from the Multi Cancer dataset train them:

- Brain: brain tumour MRI (glioma, meningioma, pituitary: tumour present; notumor: absent), `--per-class` images of
  each class from its Training folder;
- Breast: BUSI ultrasound (malignant: present; benign and normal: absent), every image (masks left out).

Tasks: `organ` (Brain / Breast) and `finding` (present / absent), from a mapping YAML. All three runs use one split
(made once by medclass, duplicate clusters kept whole), the same recipe, input size and epochs. The reference is the
pair of single-task models measured in the same run: per-task test accuracy and AUC (95% bootstrap CI), training
wall time and model size.

    python benchmarks/multitask.py [--per-class 200] [--epochs 12] [--img-size 64]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from common import data_roots, out_dir
from medclass.data import open_dataset
from medclass.data.splits import make_splits, save_splits
from medclass.evaluation import evaluate_run
from medclass.inference import ModelArtifact
from medclass.training import TrainConfig, train

BRAIN = Path("brain_tumor_mri_224") / "Training"
BUSI = Path("busi_256") / "Dataset_BUSI_with_GT"
ORGANS = {"Brain": (BRAIN, {"glioma": "present", "meningioma": "present", "pituitary": "present",
                            "notumor": "absent"}),
          "Breast": (BUSI, {"malignant": "present", "benign": "absent", "normal": "absent"})}


def find(relative: Path) -> Path | None:
    return next((root / relative for root in data_roots() if (root / relative).is_dir()), None)


def build_layout(root: Path, per_class: int) -> tuple[Path, Path]:
    """Symbolic links ROOT/<organ>/<organ>_<class>/<file> (nothing copied) and the mapping of every class folder."""
    mapping = {}
    for organ, (relative, findings) in ORGANS.items():
        source = find(relative)
        for name, finding in findings.items():
            folder = root / "data" / organ / f"{organ.lower()}_{name}"
            folder.mkdir(parents=True, exist_ok=True)
            files = sorted(p for p in (source / name).iterdir() if "_mask" not in p.stem)
            for path in files[:per_class] if organ == "Brain" else files:
                link = folder / path.name
                if not link.exists():
                    link.symlink_to(path.resolve())
            mapping[folder.name] = {"organ": organ, "finding": finding}
    mapping_file = root / "mapping.yaml"
    mapping_file.write_text(yaml.safe_dump(mapping))
    return root / "data", mapping_file


def one_split(data: Path, mapping: Path, out: Path, seed: int) -> Path:
    dataset = open_dataset(data, mapping=str(mapping), tasks="organ,finding")
    path = out / "splits.csv"
    save_splits(make_splits(dataset, seed=seed, group_duplicates=True), path)
    return path


def timed_run(data: Path, out: Path, reader_options: dict, splits: Path, **options) -> dict:
    start = time.time()
    result = train(TrainConfig(data=str(data), out=str(out), reader_options=reader_options, splits=str(splits),
                               **options))
    seconds = time.time() - start
    metrics, _ = evaluate_run(out, split="test")
    tasks = metrics.get("tasks") or {metrics["task"]: metrics}
    artifact = ModelArtifact.load(out)
    params = sum(t.numel() for t in artifact.state_dict.values())
    return {"seconds": seconds, "epochs": result.epochs_run, "tasks": tasks, "params": params,
            "megabytes": (out / "model.safetensors").stat().st_size / 2 ** 20}


def row(name: str, task: str, run: dict, time_and_size: bool) -> str:
    m = run["tasks"][task]
    low, high = m["ci"]["auc"]
    cost = (f"{run['seconds']:.0f} s | {run['params'] / 1e6:.2f} M / {run['megabytes']:.1f} MB"
            if time_and_size else "(above) | (above)")
    return f"| {name} | {task} | {m['accuracy']:.3f} | {m['auc']:.3f} ({low:.3f}-{high:.3f}) | {cost} |"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=200, help="brain MRI images per class")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    missing = [str(rel) for rel in (BRAIN, BUSI) if find(rel) is None]
    if missing:
        return f"multi-task benchmark skipped: {', '.join(missing)} not found in {', '.join(map(str, data_roots()))}"
    out = out_dir("runs/bench", "multitask").resolve()  # train() resolves the data path; the split file must match
    data, mapping = build_layout(out, args.per_class)
    splits = one_split(data, mapping, out, args.seed)
    options = dict(epochs=args.epochs, patience=args.epochs, img_size=args.img_size, in_chans=1, seed=args.seed,
                   audit=False)
    both = timed_run(data, out / "two-task", {"mapping": str(mapping), "tasks": "organ,finding"}, splits, **options)
    single = {task: timed_run(data, out / f"{task}-only", {"mapping": str(mapping), "target": task}, splits, **options)
              for task in ("organ", "finding")}
    seconds = sum(r["seconds"] for r in single.values())
    params = sum(r["params"] for r in single.values())
    megabytes = sum(r["megabytes"] for r in single.values())
    n = sum(1 for _ in (data.glob("*/*/*")))
    lines = [f"Two tasks, one model vs one model per task: Multi Cancer layout from brain MRI + BUSI, {n} images, "
             f"{args.img_size} px grayscale, {args.epochs} epochs, default recipe (model auto), one split, seed "
             f"{args.seed}; test split:",
             "| model | task | accuracy | AUC (95% CI) | training wall time | parameters / artefact |",
             "|---|---|---|---|---|---|",
             row("two-task (organ + finding)", "organ", both, True),
             row("two-task (organ + finding)", "finding", both, False),
             row("organ only", "organ", single["organ"], True),
             row("finding only", "finding", single["finding"], True),
             f"| two single-task models together | | | | {seconds:.0f} s | {params / 1e6:.2f} M / {megabytes:.1f} MB |"]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
