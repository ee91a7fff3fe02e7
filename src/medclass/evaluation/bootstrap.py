"""Bootstrap resampling as clinical papers need it: stratified (every resample keeps each class's count, so no
resample lacks a class and the AUC stays defined) and, when patients have several images, by patient (a patient's
images are drawn together: they are not independent observations)."""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np


def resample_indices(strata: np.ndarray, n_boot: int, seed: int = 0,
                     groups: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """`n_boot` index arrays into the rows, each a resample with replacement.

    strata: one value per row (its class; multi-label: whether it has any finding). Rows of one stratum are
    drawn from that stratum only, as many as it holds. groups: one id per row (e.g. patient): whole groups are
    drawn, within the stratum of the group's first row, so the resample's size varies slightly.
    """
    rng = np.random.default_rng(seed)
    strata = np.asarray(strata)
    if groups is None:
        members = [np.flatnonzero(strata == s) for s in np.unique(strata)]
        for _ in range(n_boot):
            yield np.concatenate([m[rng.integers(0, len(m), len(m))] for m in members])
        return
    group_ids, first_row, group_of_row = np.unique(np.asarray(groups), return_index=True, return_inverse=True)
    rows_of_group = [np.flatnonzero(group_of_row == g) for g in range(len(group_ids))]
    group_strata = strata[first_row]
    groups_by_stratum = [np.flatnonzero(group_strata == s) for s in np.unique(group_strata)]
    for _ in range(n_boot):
        drawn = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups_by_stratum])
        yield np.concatenate([rows_of_group[g] for g in drawn])


def percentile_interval(values, level: float = 0.95) -> list[float] | None:
    """The central `level` percentile interval of bootstrap values, ignoring undefined (NaN) draws; None if all are."""
    values = np.asarray(values, dtype=float)
    if not np.isfinite(values).any():
        return None
    tail = (1 - level) / 2 * 100
    return [float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))]


def resample_weights(strata: np.ndarray, n_boot: int, seed: int = 0, groups: np.ndarray | None = None,
                     budget: int = 2_000_000) -> Iterator[np.ndarray]:
    """The resamples of `resample_indices` (same seed, same draws) as counts: (resamples, rows) arrays, how often
    each row was drawn, as many resamples at a time as keep an array within `budget` cells."""
    n = len(strata)
    chunk = max(1, budget // max(n, 1))
    drawn: list[np.ndarray] = []
    for idx in resample_indices(strata, n_boot, seed, groups):
        drawn.append(idx)
        if len(drawn) == chunk:
            yield _counts(drawn, n)
            drawn = []
    if drawn:
        yield _counts(drawn, n)


def _counts(drawn: list[np.ndarray], n: int) -> np.ndarray:
    resample = np.repeat(np.arange(len(drawn)), [len(idx) for idx in drawn])
    cells = np.bincount(resample * n + np.concatenate(drawn), minlength=len(drawn) * n)
    return cells.reshape(len(drawn), n).astype(float)


def bootstrap_draws(statistics: Callable[[np.ndarray], dict[str, np.ndarray]], strata: np.ndarray, n_boot: int,
                    seed: int = 0, groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every number `statistics(weights)` returns ({name: one value per resample}, for (resamples, rows) counts),
    over `n_boot` resamples: {name: (n_boot,) values}."""
    draws: dict[str, list[np.ndarray]] = {}
    for weights in resample_weights(strata, n_boot, seed, groups):
        for key, values in statistics(weights).items():
            draws.setdefault(key, []).append(np.asarray(values, dtype=float))
    return {key: np.concatenate(values) for key, values in draws.items()}


def bootstrap_intervals(statistics: Callable[[np.ndarray], dict[str, np.ndarray]], strata: np.ndarray,
                        n_boot: int, seed: int = 0, groups: np.ndarray | None = None, level: float = 0.95) -> dict:
    """Percentile intervals of every number `statistics` returns over `n_boot` resamples (`bootstrap_draws`)."""
    return {key: percentile_interval(values, level)
            for key, values in bootstrap_draws(statistics, strata, n_boot, seed, groups).items()}
