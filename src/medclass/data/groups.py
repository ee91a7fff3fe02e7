"""Split groups: the units a train/val/test split never cuts, so no copy of a test image is trained on.

A patient when the data names patients (the curator's word beats a guess from pixels); otherwise, on request, the
clusters of exact and near duplicates that `medclass audit` reports (BUSI holds 122 such groups, and a random
split puts about half of them across splits); otherwise each image alone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from medclass.data.base import ImageDataset
from medclass.data.duplicates import duplicate_clusters
from medclass.data.image_hashes import ImageFacts, scan_dataset

PATIENT, DUPLICATES, NONE = "patient", "near-duplicate clusters", "none"


@dataclass(frozen=True)
class SplitGroups:
    by: str  # PATIENT, DUPLICATES or NONE
    ids: list[str]  # one per sample, in the dataset's order; equal ids must land in the same split

    def summary(self) -> dict:
        sizes = Counter(self.ids)
        return {"by": self.by, "groups": len(sizes), "multi_image_groups": sum(n > 1 for n in sizes.values())}

    def noun(self) -> str:
        """What a group is, for messages such as '12 patients are too few'."""
        nouns = {PATIENT: "patients/images", DUPLICATES: "groups (duplicate clusters, single images)"}
        return nouns.get(self.by, "images")


def split_groups(dataset: ImageDataset, by_patient: bool = True, group_duplicates: bool = False,
                 scanned: dict[str, ImageFacts] | None = None) -> SplitGroups:
    """Group ids for `dataset.samples`. Patients win when known (images without a patient id stand alone), and then
    no image is decoded; duplicate clusters need one decode of every image (`scanned` reuses an earlier one)."""
    samples = dataset.samples
    if by_patient and any(s.patient for s in samples):
        return SplitGroups(PATIENT, [f"patient:{s.patient}" if s.patient else f"image:{i}"
                                     for i, s in enumerate(samples)])
    ids = [f"image:{i}" for i in range(len(samples))]
    if not group_duplicates:
        return SplitGroups(NONE, ids)
    for number, members in enumerate(duplicate_clusters(scan_dataset(dataset, scanned=scanned))):
        for index in members:
            ids[index] = f"cluster:{number}"
    return SplitGroups(DUPLICATES, ids)
