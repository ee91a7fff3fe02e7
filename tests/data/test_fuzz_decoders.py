"""Seeded mutants of PNG, JPEG and DICOM files through the bytes decoder: medclass's own error or an image, never
any other exception (benchmarks/fuzz.py runs thousands)."""

from medclass.harness.fuzz import fuzz_decoder, mutants, seed_files
from medclass.data.images import decode_image_bytes


def test_seed_files_decode_and_mutants_are_reproducible():
    for name, data in seed_files().items():
        assert decode_image_bytes(data, name).size == (8, 8), name
    assert list(mutants(3, 20)) == list(mutants(3, 20)) != list(mutants(4, 20))


def test_no_mutant_escapes_as_another_exception():
    counts = fuzz_decoder(seed=27, count=600)
    assert not counts.escaped, counts.examples
    # the mutants exercise both outcomes: many are refused, some still decode
    assert counts.refused > 100 and counts.decoded > 20 and counts.total == 600
