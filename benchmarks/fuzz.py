"""Decoder fuzzing, the long run: thousands of seeded mutants of PNG, JPEG and DICOM files (bit flips, truncation,
byte insertion and deletion, and DICOM header edits: wrong VRs, text in numeric elements, NumberOfFrames, transfer
syntaxes, window/LUT/rescale elements, pixel data length) through `decode_image_bytes`, the server's decoder, and
then through a real medclass server's /predict (a smallcnn trained here on the built-in phantoms).
Reference, the same mutants in the same run: Pillow and pydicom called as a notebook calls them
(`Image.open(...).convert("RGB")`, `pydicom.dcmread(...).pixel_array`). The promise: nothing but medclass's own
error escapes the decoder (0 in the last row), and the server answers 200 or a JSON 4xx, never a 500.
`make test` runs a few hundred (tests/data/test_fuzz_decoders.py, tests/serve/test_serve_fuzz.py).

    python benchmarks/fuzz.py [--count 5000] [--server-count 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

from medclass.harness.fuzz import FuzzCounts, fuzz_decoder, fuzz_server


def library_decode(data: bytes, name: str) -> None:
    """What a notebook does with an upload: pydicom for DICOM, else Pillow, nothing caught."""
    if data[128:132] == b"DICM":
        import pydicom

        pydicom.dcmread(io.BytesIO(data)).pixel_array
    else:
        from PIL import Image

        Image.open(io.BytesIO(data)).convert("RGB")


def decoder_table(ours: FuzzCounts, library: FuzzCounts, seed: int) -> str:
    def types(counts: FuzzCounts) -> str:
        return ", ".join(f"{kind} {n}" for kind, n in counts.escaped.most_common(6)) or "-"

    return "\n".join([
        f"Decoder fuzzing (seed {seed}): {ours.total} mutants of PNG, JPEG and DICOM",
        "| outcome | medclass decode_image_bytes | Pillow + pydicom called directly (reference) |", "|---|---|---|",
        f"| decoded | {ours.decoded} | {library.decoded} |",
        f"| refused with medclass's own one-line error | {ours.refused} | - |",
        f"| any other exception | {sum(ours.escaped.values())} | {sum(library.escaped.values())} |",
        f"| their types (most common) | {types(ours)} | {types(library)} |"]
        + [f"first {kind}: {example}" for kind, example in ours.examples.items()])


def server_table(seed: int, count: int) -> str:
    from fastapi.testclient import TestClient

    from medclass.data.demo import generate_demo_data
    from medclass.serve import create_app
    from medclass.training import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        data = generate_demo_data(Path(tmp) / "data", n_per_class=10, size=32, seed=0)
        train(TrainConfig(data=str(data), out=f"{tmp}/run", model="smallcnn", epochs=1, batch_size=16, seed=0))
        app = create_app({"demo": f"{tmp}/run"}, audit_url=f"{tmp}/audit.sqlite")
        with TestClient(app, raise_server_exceptions=False) as client:
            while client.get("/health").status_code != 200:
                time.sleep(0.1)
            statuses = fuzz_server(client, seed, count)
    rows = [f"| {status} | {n} |" for status, n in sorted(statuses.items(), key=lambda item: str(item[0]))]
    failed = sum(n for status, n in statuses.items() if not isinstance(status, int) or status >= 500)
    return "\n".join([f"Server fuzzing (seed {seed}): {count} mutant uploads to /predict", "| answer | uploads |",
                      "|---|---|", *rows, f"| 500 or malformed (promise: 0) | {failed} |"])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--server-count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    decoders = decoder_table(fuzz_decoder(args.seed, args.count),
                             fuzz_decoder(args.seed, args.count, decode=library_decode), args.seed)
    server = server_table(args.seed, args.server_count)
    return f"{decoders}\n\n{server}\n({time.perf_counter() - start:.1f} s)"


if __name__ == "__main__":
    print(main())
