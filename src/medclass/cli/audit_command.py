"""`medclass audit`: find duplicates, leaks, masks and class-dependent image formats in a dataset."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from tqdm import tqdm

from medclass.cli.app import app, user_errors
from medclass.cli.options import reader_options
from medclass.data import open_dataset
from medclass.data.audit import NEAR_MIN_CORRELATION, NEAR_THRESHOLD, audit_dataset
from medclass.data.masks import PAIRED, is_mask_exclusion
from medclass.core.errors import DataError

EXAMPLES = 10  # examples printed per finding; the JSON report always has all of them


@app.command("audit")
@user_errors
@reader_options
def audit(
    data: Annotated[str, typer.Argument(help="Dataset: a folder of class folders, a .npz file or medmnist:NAME.")],
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the full JSON report to stdout instead of text.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit with status 1 when leakage is found.")] = False,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Also write the full JSON report to this file.")] = None,
    near_threshold: Annotated[int, typer.Option(
        help="Max phash bits apart for a near-duplicate candidate.")] = NEAR_THRESHOLD,
    near_min_correlation: Annotated[float, typer.Option(
        help="Min thumbnail correlation that confirms a near duplicate.")] = NEAR_MIN_CORRELATION,
    reader_options: dict | None = None,
):
    """Audit a dataset: counts, corrupt files, exact/near duplicates, masks, size artefacts, patient leaks."""
    dataset = open_dataset(data, **reader_options)
    with decode_progress() as progress:
        report = audit_dataset(dataset, near_threshold=near_threshold, near_min_correlation=near_min_correlation,
                               progress=progress)
    if out is not None:
        _write_json(report, out)
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    if strict and report["summary"]["leakage_found"]:
        raise typer.Exit(1)


@contextmanager
def decode_progress():
    """A progress bar on a terminal; elsewhere (a file, a pipe, CI) one summary line at the end. Both on stderr,
    so that `--json` output on stdout stays parseable."""
    started, seen = time.monotonic(), {"done": 0, "total": 0}
    with tqdm(desc="audit: decoding", unit="img", file=sys.stderr, disable=not sys.stderr.isatty(),
              leave=False) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
            seen.update(done=done, total=total)

        yield progress
    typer.echo(f"audit: decoded {seen['done']}/{seen['total']} images in {time.monotonic() - started:.1f} s",
               err=True)


def _write_json(report: dict, out: Path) -> None:
    try:
        out.write_text(json.dumps(report, indent=2) + "\n")
    except OSError as exc:
        raise DataError(f"{out}: cannot write the audit report ({exc.strerror})") from None
    typer.echo(f"audit: wrote {out}", err=True)


def format_report(report: dict) -> str:
    """The report as text: a counts table, then every finding with up to EXAMPLES examples."""
    summary, root, excluded = report["summary"], report.get("path"), report.get("excluded", [])
    tasks = report.get("tasks", {})
    learned = f" (tasks learned: {', '.join(tasks)})" if len(tasks) > 1 else ""
    lines = [f"Audit of {report['dataset']}: {summary['images']} images, target {report['target']!r}{learned}", ""]
    lines += _counts_table(report["counts"], report["classes"], report.get("patients"))
    lines += _unlabelled(tasks.get(report["target"]), report["target"]) + [""]
    for task, info in tasks.items():
        if task != report["target"]:
            lines += [f"task {task!r} ({info['kind']}):"] + _counts_table(info["counts"], info["classes"], None)
            lines += _unlabelled(info, task) + [""]
    lines.append("sizes: " + _top(report["images"]["sizes"]) + "   modes: " + _top(report["images"]["modes"]))
    sections = [
        ("corrupt files", report["corrupt"], lambda m: f"{_short(m['path'], root)}: {m['reason']}"),
        ("exact duplicate groups", report["duplicates"], lambda g: _group(g, root)),
        ("cross-split duplicate groups", report["cross_split_duplicates"], lambda g: _group(g, root)),
        ("conflicting-label duplicate groups", report["conflicting_label_duplicates"], lambda g: _group(g, root)),
        (f"near-duplicate groups ({summary['near_duplicate_conflicting_label_groups']} with conflicting labels, "
         f"{summary['near_duplicate_cross_split_groups']} across splits)", report["near_duplicates"],
         lambda g: _group(g, root)),
        ("mask-like files", report["masks"], lambda m: f"{_short(m['path'], root)}: {m['reason']}"),
        (f"segmentation masks left out ({PAIRED}; --keep-masks keeps them)",
         [r for r in excluded if is_mask_exclusion(r)], lambda r: f"{_short(r['source'], root)}: {r['reason']}"),
        ("images outside the CSV's folder (followed)", report.get("outside_csv_folder", []),
         lambda r: f"row {r['row']}: {r['image']}: {r['reason']}"),
        ("size/mode artefacts", report["size_artefacts"], lambda a: a["message"]),
        ("patients in several splits", report["patient_leaks"],
         lambda p: f"{p['patient']}: " + ", ".join(f"{s} {n}" for s, n in p["splits"].items())),
        ("classes missing from a split or too small to split", report["class_coverage"], lambda c: c["message"]),
        ("skipped rows (listed in the data, not read)", report["skipped"],
         lambda r: f"row {r['row']}: {r['image']}: {r['reason']}"),
    ]
    for title, items, describe in sections:
        lines += _section(title, items, describe)
    if summary["cross_split_duplicate_images"]:
        shared = ", ".join(f"{n} {split}" for split, n in summary["cross_split_duplicate_images"].items())
        lines.append(f"images whose pixels also occur in another split: {shared}")
    lines.append(f"leakage found: {_leakage_text(summary)}")
    return "\n".join(lines)


def _leakage_text(summary: dict) -> str:
    causes = [name for key, name in (("cross_split_duplicate_groups", "cross-split duplicates"),
                                     ("conflicting_label_duplicate_groups", "conflicting-label duplicates"),
                                     ("patient_leaks", "patients in several splits")) if summary[key]]
    return f"YES ({', '.join(causes)})" if causes else "no"


def _counts_table(counts: dict, classes: list[str], patients: dict | None) -> list[str]:
    header = ["split"] + classes + ["total"] + (["patients"] if patients else [])
    rows = [[split] + [str(row.get(c, 0)) for c in classes] + [str(sum(row.values()))]
            + ([str(patients.get(split, 0))] if patients else []) for split, row in counts.items()]
    widths = [max(len(r[k]) for r in [header] + rows) for k in range(len(header))]
    return ["  ".join(cell.rjust(w) if k else cell.ljust(w) for k, (cell, w) in enumerate(zip(r, widths)))
            for r in [header] + rows]


def _unlabelled(info: dict | None, task: str) -> list[str]:
    n = info["unlabelled"] if info else 0
    return [f"{n} image(s) without a label for {task!r}"] if n else []


def _section(title: str, items: list, describe) -> list[str]:
    lines = [f"{title}: {len(items)}"]
    lines += [f"  - {describe(item)}" for item in items[:EXAMPLES]]
    if len(items) > EXAMPLES:
        lines.append(f"  ... {len(items) - EXAMPLES} more (see --json)")
    return lines


def _group(group: dict, root: str | None) -> str:
    def label(member: dict) -> str:  # every learned task's label, so that a conflict in any of them shows
        return " / ".join(member["labels"].values()) if "labels" in member else member["label"]

    return " = ".join(f"{_short(m['path'], root)} [{label(m)}{'/' + m['split'] if m['split'] else ''}]"
                      for m in group["members"])


def _top(counts: dict, shown: int = 5) -> str:
    text = ", ".join(f"{value} ({n})" for value, n in list(counts.items())[:shown])
    return text + (f", ... {len(counts) - shown} more" if len(counts) > shown else "")


def _short(path: str, root: str | None) -> str:
    """Paths relative to the dataset folder, so that example lines stay readable."""
    if root and path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) + 1:]
    return path
