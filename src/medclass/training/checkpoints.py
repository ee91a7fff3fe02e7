"""Checkpoints of a run folder, read as untrusted input.

A run folder may come from anywhere (a colleague, a download, a shared drive), and `torch.load` with
`weights_only=False` runs whatever a pickle asks for. Every checkpoint medclass opens (resume, best model) goes
through `load_checkpoint`: tensors and plain containers only, and a one-line error for anything else.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from medclass.core.errors import MedclassError

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"
# A frozen backbone's weights never change, so a frozen run's checkpoints leave them out (a frozen VGG16 run held
# two 550 MB checkpoints of the same weights beside its artefact): the run takes them again from its pretrained
# source, and this entry records which tensors were left out and a hash of them, checked when they are put back.
FROZEN = "frozen_backbone"
MODEL_STATES = ("state_dict", "current_model_state")  # the latter: the live weights beside an EMA's averaged ones


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint at `path` as a dict, loaded with `weights_only=True`; refuses foreign or tampered files."""
    path = Path(path)
    if not path.is_file():
        raise MedclassError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for code in the pickle; RuntimeError/EOFError/... for damaged files
        raise MedclassError(f"{path}: refused: not a checkpoint medclass wrote, or tampered with "
                            f"({_reason(exc)}); nothing in it was run. Delete it, or train again") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise MedclassError(f"{path}: not a Lightning checkpoint (no state_dict); delete it, or train again")
    return checkpoint


def leave_out_frozen(checkpoint: dict, frozen: list[str], digest: str) -> None:
    """Drop the frozen tensors `frozen` (state-dict names) from a checkpoint being saved, recording them and their
    hash. Buffers (BatchNorm statistics) are not among them: they are small, and --bn-recalibrate sets them."""
    for key in MODEL_STATES:
        if isinstance(checkpoint.get(key), dict):
            for name in frozen:
                checkpoint[key].pop(name, None)
    checkpoint[FROZEN] = {"tensors": sorted(frozen), "hash": digest}


def put_back_frozen(checkpoint: dict, own: dict, digest: str, source) -> None:
    """Fill a checkpoint that left out its frozen tensors from `own` (the state dict of the network built from the
    run's pretrained `source`), after checking that they are the weights the run was trained with (`digest`)."""
    record = checkpoint.get(FROZEN)
    if not record:
        return
    if record["hash"] != digest:
        raise MedclassError(f"the checkpoint's frozen backbone weights differ from those loaded now from {source} "
                            f"(hash {record['hash'][:12]}, now {digest[:12]}): the weights changed since the run "
                            "started. Put the original weights back, or train a new run (continuing would train "
                            "the classifier on other features)")
    for key in MODEL_STATES:
        if isinstance(checkpoint.get(key), dict):
            checkpoint[key].update({name: own[name] for name in record["tensors"]})


def vet_checkpoints_to_resume(run_dir: Path) -> None:
    """Vet what a resume will load before any epoch runs: last.ckpt, and the best checkpoint it names, which must
    lie in the run's own checkpoints folder."""
    folder = (run_dir / CHECKPOINT_DIR).resolve()
    last = folder / LAST
    if not last.exists():
        raise MedclassError(f"{run_dir / CHECKPOINT_DIR / LAST}: nothing to resume (no last checkpoint in the run "
                            "folder)")
    best = best_checkpoint_named_in(load_checkpoint(last))
    if best is None:
        return
    best = Path(best).resolve()
    if best.parent != folder:
        raise MedclassError(f"{last}: names a best checkpoint outside the run's {CHECKPOINT_DIR} folder ({best}); "
                            "refusing to load it")
    if best.exists():
        load_checkpoint(best)


def best_checkpoint_named_in(checkpoint: dict) -> str | None:
    """The best model path recorded by the monitored ModelCheckpoint callback, if any."""
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if str(key).startswith("ModelCheckpoint") and isinstance(state, dict) and state.get("monitor"):
            return state.get("best_model_path") or None
    return None


def _reason(exc: Exception) -> str:
    """A short reason. torch's weights-only message goes on to suggest allow-listing the global, which is exactly
    what must not be done with a file from elsewhere, so only the global's name is kept."""
    text = str(exc)
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsafe:
        return f"its pickle asks to call {unsafe.group(1)}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = next((line for line in lines if line.startswith("Unsupported")), lines[0] if lines else "")
    if "Weights only load failed" in detail:  # torch's preamble, not the reason
        detail = ""
    return f"{exc.__class__.__name__}: {detail[:160]}" if detail else exc.__class__.__name__
