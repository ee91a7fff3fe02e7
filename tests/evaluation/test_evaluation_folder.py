"""The evaluation folder is written as one set (evaluation/folder_set.py): a crash mid-write, `kill -9` included,
leaves the old set whole, with nothing new beside it; the next evaluate replaces it whole and keeps what else the
folder holds (a comparisons/ subfolder, a user's notes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import medclass.evaluation.evaluate as evaluate_module
from medclass.core.errors import MedclassError
from medclass.evaluation import evaluate_run

FOREIGN = {"notes.txt": b"my notes", "comparisons/a+b_test/comparison.json": b"{}"}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def old_set(run: Path, out: Path) -> dict[str, bytes]:
    """A finished evaluation in `out` (seed 0), with files of others beside it."""
    evaluate_run(run, out_dir=out, n_boot=20, seed=0)
    for name, content in FOREIGN.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(content)
    return snapshot(out)


def siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


def test_a_crash_mid_write_leaves_the_old_set_whole_and_a_full_evaluate_replaces_it(trained_run, tmp_path,
                                                                                    monkeypatch):
    out = tmp_path / "eval"
    before = old_set(trained_run, out)
    assert siblings(out) == []

    def crash(path, *args, **kwargs):  # after metrics.json, predictions.csv and every figure were written
        assert (Path(path).parent / "metrics.json").is_file() and list(Path(path).parent.glob("*.png"))
        raise RuntimeError("crash before report.html")

    monkeypatch.setattr(evaluate_module, "write_report", crash)
    with pytest.raises(RuntimeError, match="crash before report.html"):
        evaluate_run(trained_run, out_dir=out, n_boot=20, seed=1)  # another seed: other intervals in metrics.json
    assert snapshot(out) == before and siblings(out) == []
    monkeypatch.undo()

    metrics, _ = evaluate_run(trained_run, out_dir=out, n_boot=20, seed=1)
    after = snapshot(out)
    assert after["metrics.json"] != before["metrics.json"] and "report.html" in after
    assert {name: after[name] for name in FOREIGN} == FOREIGN  # kept
    from medclass.evaluation.evaluate import is_evaluation_file

    assert all(is_evaluation_file(name) for name in after if name not in FOREIGN)  # the set is all it wrote
    assert set(after) == set(before) and siblings(out) == []


def test_kill_9_during_evaluate_leaves_the_old_set_and_the_next_evaluate_cleans_up(trained_run, tmp_path):
    out = tmp_path / "eval"
    before = old_set(trained_run, out)
    script = ("import os, signal\n"
              "import medclass.evaluation.evaluate as e\n"
              "e.write_report = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
              f"e.evaluate_run({str(trained_run)!r}, out_dir={str(out)!r}, n_boot=20, seed=1)\n")
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert snapshot(out) == before
    assert [name.split("-")[0] for name in siblings(out)] == [".eval.writing"]  # the killed write's, unseen
    evaluate_run(trained_run, out_dir=out, n_boot=20, seed=1)
    assert snapshot(out)["metrics.json"] != before["metrics.json"] and siblings(out) == []


def test_a_write_killed_between_its_two_renames_is_undone_by_the_next(tmp_path):
    from medclass.evaluation.evaluate import is_evaluation_file
    from medclass.evaluation.folder_set import written_as_one_set

    folder = tmp_path / "test"
    folder.mkdir()
    (folder / "metrics.json").write_text("old")
    folder.rename(tmp_path / ".test.replaced")  # the old set moved aside, the new one not yet in place
    with pytest.raises(RuntimeError):
        with written_as_one_set(folder, is_evaluation_file) as staging:
            (staging / "metrics.json").write_text("new")
            raise RuntimeError("crash")
    assert (folder / "metrics.json").read_text() == "old" and siblings(folder) == []
    with written_as_one_set(folder, is_evaluation_file) as staging:
        (staging / "metrics.json").write_text("new")
    assert (folder / "metrics.json").read_text() == "new" and siblings(folder) == []


def test_out_must_not_hold_the_run_or_the_current_folder(trained_run, tmp_path, monkeypatch):
    with pytest.raises(MedclassError, match=r"holds the run"):
        evaluate_run(trained_run, out_dir=trained_run.parent, n_boot=20)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MedclassError, match=r"is the current folder or holds it"):
        evaluate_run(trained_run, out_dir=".", n_boot=20)
