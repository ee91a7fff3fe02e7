"""Exact and near duplicates: the groups the audit reports and the clusters a split keeps whole.

Exact copies share their decoded pixels' hash; near copies are look-alikes (perceptual hash within a few bits,
confirmed by the correlation of their thumbnails) of different pixel contents.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from medclass.data.base import ImageDataset
from medclass.data.image_hashes import ImageFacts, Progress, near_pairs, scan_dataset, thumbnail_correlation

# Measured on BUSI and Brain Tumor MRI: with thumbnail correlation >= 0.95 no pair of different-label images
# survives up to 8 phash bits, and 4 bits keeps ~85% of the pairs found at 8, so 4 costs little recall.
NEAR_THRESHOLD = 4
NEAR_MIN_CORRELATION = 0.95

def exact_duplicate_groups(dataset: ImageDataset, progress: Progress = None) -> list[list[str]]:
    """Sources of images with identical decoded pixels, one list per group of two or more."""
    facts = scan_dataset(dataset, progress)
    return [[dataset.samples[i].source for i in group] for group in exact_groups(facts)]


def duplicate_clusters(facts: list[ImageFacts], near_threshold: int = NEAR_THRESHOLD,
                       near_min_correlation: float = NEAR_MIN_CORRELATION) -> list[list[int]]:
    """Indices of the images the audit reports as exact or near duplicates of one another, merged into clusters
    (sorted lists of two or more) so that an image in several reported groups ties them all into one: a split
    that keeps each cluster whole can never put two of these copies on different sides."""
    groups = exact_groups(facts) + near_groups(facts, near_threshold, near_min_correlation)
    links = [(group[0], other) for group in groups for other in group[1:]]
    if not links:
        return []
    rows, cols = zip(*links)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(facts), len(facts)))
    _, component = connected_components(graph, directed=False)  # union-find over the reported groups
    clusters = defaultdict(list)
    for index in sorted({i for group in groups for i in group}):
        clusters[component[index]].append(index)
    return list(clusters.values())


def by_pixels(facts: list[ImageFacts]) -> dict[str, list[int]]:
    """Indices of the readable images, grouped by pixel hash (one entry per distinct content)."""
    by_hash = defaultdict(list)
    for index, fact in enumerate(facts):
        if fact.pixel_hash is not None:
            by_hash[fact.pixel_hash].append(index)
    return by_hash


def exact_groups(facts: list[ImageFacts]) -> list[list[int]]:
    return [group for group in by_pixels(facts).values() if len(group) > 1]


def near_groups(facts: list[ImageFacts], threshold: int, min_correlation: float) -> list[list[int]]:
    """Groups of look-alike images holding at least two *different* pixel contents.

    Exact copies are collapsed to one representative first, so a near group never repeats an exact one; the
    copies are listed again as members so that a reader sees every file involved.
    """
    copies = by_pixels(facts)
    reps = [group[0] for group in copies.values()]
    pairs = near_pairs([facts[i].phash for i in reps], threshold)
    rep_pairs = [(reps[i], reps[j], d) for i, j, d in pairs]
    correlation = thumbnail_correlation(facts, rep_pairs)
    confirmed = [(i, j) for (i, j, _), r in zip(pairs, correlation) if r >= min_correlation]
    if not confirmed:
        return []
    rows, cols = zip(*confirmed)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(reps), len(reps)))
    _, component = connected_components(graph, directed=False)
    groups = defaultdict(list)
    for rep_index, comp in enumerate(component):
        groups[comp].append(rep_index)
    return [sorted(i for r in members for i in copies[facts[reps[r]].pixel_hash])
            for members in groups.values() if len(members) > 1]
