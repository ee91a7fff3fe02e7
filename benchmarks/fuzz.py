"""Decoder fuzzing, the long run: thousands of seeded mutants of PNG, JPEG and DICOM files (bit flips, truncation,
byte insertion and deletion, and DICOM header edits: wrong VRs, text in numeric elements, NumberOfFrames, transfer
syntaxes, window/LUT/rescale elements, pixel data length) through `decode_image_bytes`, the server's decoder. The
table counts what happened to them: refused with medclass's own error, decoded, or escaped as another exception
(the promise is 0). `make test` runs a few hundred (tests/data/test_fuzz_decoders.py).

    python benchmarks/fuzz.py [--count 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

from medclass.benchmarks.fuzz import format_counts, fuzz_decoder


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    counts = fuzz_decoder(args.seed, args.count)
    return f"{format_counts(counts, args.seed)}\n({time.perf_counter() - start:.1f} s)"


if __name__ == "__main__":
    print(main())
