"""`medclass demo`: the whole path on built-in data, small enough for a laptop CPU in a few minutes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from medclass.data.demo import CLASSES, generate_demo_data
from medclass.evaluation import evaluate_run
from medclass.explain import format_table, localize_eval
from medclass.inference import Predictor
from medclass.evaluation.sample import sample_lines, sample_test_images, save_sample_grid
from medclass.training import TrainConfig, train


def run_demo(out: str | Path, epochs: int = 12, n_per_class: int = 200, seed: int = 0,
             echo: Callable[[str], None] = print) -> Path:
    """Generate data, train a small CNN, evaluate on the held-out test split, show a random batch of test images,
    explain the test lesions with Grad-CAM and Otsu boxes and score them against the true boxes.

    Returns the path of the evaluation report. A previous demo in `out` is replaced.
    """
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    data_dir = generate_demo_data(out / "data", n_per_class=n_per_class, size=64, seed=seed)
    echo(f"demo data: {n_per_class} images in each of {', '.join(CLASSES)} -> {data_dir}")
    run_dir = out / "run"
    config = TrainConfig(data=str(data_dir), out=str(run_dir), model="smallcnn", epochs=epochs, batch_size=64,
                         lr=3e-3, seed=seed, patience=epochs, drop_rate=None)  # smallcnn's own dropout
    result = train(config)
    echo(f"trained {config.model}: best val AUC {result.best_val_auc:.3f}; run folder: {run_dir}")
    metrics, eval_dir = evaluate_run(run_dir, split="test")
    echo(f"test: AUC {metrics['auc']:.3f}, accuracy {metrics['accuracy']:.3f}, "
         f"balanced accuracy {metrics['balanced_accuracy']:.3f} on {metrics['n']} images")
    predictor = Predictor(run_dir)
    sampled, seed = sample_test_images(run_dir, n=8, seed=seed, predictor=predictor)
    echo("a random batch of held-out test images, true -> predicted:")
    for line in sample_lines(predictor.heads, sampled):
        echo(f"  {line}")
    echo(f"  grid: {save_sample_grid(predictor.heads, sampled, out / 'sample.png', seed)}")
    # Grad-CAM and Otsu boxes of the test lesions, scored against the phantoms' true boxes beside random boxes
    result, loc_dir = localize_eval(run_dir, box_file=str(data_dir / "boxes.csv"), methods=("gradcam", "otsu"),
                                    out=out / "localization", seed=seed, n_overlays=6)
    for line in format_table(result).splitlines():
        echo(f"  {line}")
    echo(f"  Grad-CAM overlays (white: predicted box, green: true box): {loc_dir / 'overlays'}")
    return eval_dir / "report.html"
