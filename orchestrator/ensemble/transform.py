"""Transformation blocks that turn members' patch features into one fused feature map.

Independent transformation (Heller et al. 2023; thesis 2.5, 4.3.2): one PCA per member,
fitted on that member's *training* patch features, keeps a share of a total number of
components; each reduced map is bilinearly resized to the largest spatial size among the
members and the maps are concatenated along channels. The global variant concatenates the
(resized) raw features first and fits one PCA on the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def split_components(total: int, channels: Sequence[int]) -> list[int]:
    """Share ``total`` components among members as evenly as possible.

    Each member gets ``total // n``; the remainder ``total % n`` is spread one each over the
    members *after the first* (then wrapping to the first), so the first member (whose
    channel count is the default total) never gets more than the others. A member never
    gets more components than it has channels; what it cannot take goes to the others.
    """
    n = len(channels)
    if n == 0:
        raise ValueError("no members")
    if total < n:
        raise ValueError(f"need at least one component per member: total {total} < {n}")
    if total > sum(channels):
        raise ValueError(f"total {total} exceeds the members' channels {list(channels)}")
    share = [total // n] * n
    order = list(range(1, n)) + [0]
    for i in range(total % n):
        share[order[i % n]] += 1
    # cap at each member's channel count, hand the excess to members with room (same order)
    excess = sum(max(0, s - c) for s, c in zip(share, channels, strict=True))
    share = [min(s, c) for s, c in zip(share, channels, strict=True)]
    while excess:
        for i in order:
            if excess and share[i] < channels[i]:
                share[i] += 1
                excess -= 1
    return share


def components_for_variance(explained_ratio: np.ndarray, threshold: float) -> int:
    """Smallest number of components whose cumulative explained variance reaches ``threshold``."""
    cum = np.cumsum(explained_ratio)
    return int(min(np.searchsorted(cum, threshold - 1e-12) + 1, len(explained_ratio)))


@dataclass
class PCA:
    """A PCA on patch features ``[N, C, h, w]`` (each patch a C-vector), via SVD."""

    mean: np.ndarray  # [C]
    components: np.ndarray  # [K, C], rows ordered by explained variance
    explained_ratio: np.ndarray  # [C'] of all components found

    @classmethod
    def fit(cls, feats: np.ndarray, max_patches: int = 200_000, seed: int = 0) -> PCA:
        x = patches(feats)
        if len(x) > max_patches:
            x = x[np.random.default_rng(seed).choice(len(x), max_patches, replace=False)]
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        var = s**2
        ratio = var / var.sum() if var.sum() > 0 else np.full_like(var, 1.0 / len(var))
        return cls(mean.astype(np.float32), vt.astype(np.float32), ratio)

    def keep(self, k: int) -> PCA:
        return PCA(self.mean, self.components[:k], self.explained_ratio)

    @property
    def k(self) -> int:
        return len(self.components)

    def transform(self, feats: np.ndarray) -> np.ndarray:
        n, _, h, w = feats.shape
        z = (patches(feats) - self.mean) @ self.components.T
        return z.reshape(n, h, w, -1).transpose(0, 3, 1, 2).astype(np.float32)


def patches(feats: np.ndarray) -> np.ndarray:
    """``[N, C, h, w]`` -> ``[N*h*w, C]`` (float64 for a stable SVD)."""
    n, c, h, w = feats.shape
    return feats.transpose(0, 2, 3, 1).reshape(-1, c).astype(np.float64)


def resize(feats: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``[N, C, h, w]`` to ``size`` (no-op when already there)."""
    if feats.shape[2:] == tuple(size):
        return feats.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
    return F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False).numpy()


def largest_size(sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The largest spatial size (by area; ties by height) among members."""
    return tuple(max(sizes, key=lambda s: (s[0] * s[1], s[0])))  # type: ignore[return-value]


class IndependentTransform:
    """Per-member PCA -> resize to the largest size -> concat (the thesis' choice)."""

    kind = "ift"

    def __init__(
        self, total: int | None = None, variance: float | None = None, seed: int = 0
    ) -> None:
        self.total, self.variance, self.seed = total, variance, seed
        self.pcas: list[PCA] = []
        self.size: tuple[int, int] = (0, 0)

    def fit(self, train_feats: Sequence[np.ndarray]) -> IndependentTransform:
        """Fit on the members' *training* features (one ``[N, C, h, w]`` array each)."""
        channels = [f.shape[1] for f in train_feats]
        full = [PCA.fit(f, seed=self.seed) for f in train_feats]
        if self.variance is not None:
            ks = [components_for_variance(p.explained_ratio, self.variance) for p in full]
        else:
            ranks = [p.k for p in full]  # components available (<= channels, <= patches)
            total = self.total if self.total is not None else channels[0]
            ks = split_components(min(total, sum(ranks)), ranks)
        self.pcas = [p.keep(k) for p, k in zip(full, ks, strict=True)]
        self.size = largest_size([f.shape[2:] for f in train_feats])
        return self

    @property
    def shares(self) -> list[int]:
        return [p.k for p in self.pcas]

    @property
    def out_channels(self) -> int:
        return sum(self.shares)

    def transform_members(self, feats: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each member reduced and resized (``[N, k_i, H, W]``), before concatenation."""
        return [resize(p.transform(f), self.size) for p, f in zip(self.pcas, feats, strict=True)]

    def transform(self, feats: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate(self.transform_members(feats), axis=1)

    def state(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {"size": np.array(self.size)}
        for i, p in enumerate(self.pcas):
            out[f"mean_{i}"], out[f"comp_{i}"], out[f"ratio_{i}"] = (
                p.mean,
                p.components,
                p.explained_ratio,
            )
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        n = sum(1 for k in state if k.startswith("mean_"))
        self.pcas = [
            PCA(state[f"mean_{i}"], state[f"comp_{i}"], state[f"ratio_{i}"]) for i in range(n)
        ]
        self.size = tuple(int(v) for v in state["size"])  # type: ignore[assignment]


class GlobalTransform(IndependentTransform):
    """Resize -> concat -> one PCA over all members' channels (the comparison variant)."""

    kind = "global"

    def fit(self, train_feats: Sequence[np.ndarray]) -> GlobalTransform:
        self.size = largest_size([f.shape[2:] for f in train_feats])
        cat = np.concatenate([resize(f, self.size) for f in train_feats], axis=1)
        pca = PCA.fit(cat, seed=self.seed)
        if self.variance is not None:
            k = components_for_variance(pca.explained_ratio, self.variance)
        else:
            k = min(self.total if self.total is not None else train_feats[0].shape[1], pca.k)
        self.pcas = [pca.keep(k)]
        self._channels = [f.shape[1] for f in train_feats]
        return self

    def transform_members(self, feats: Sequence[np.ndarray]) -> list[np.ndarray]:
        cat = np.concatenate([resize(f, self.size) for f in feats], axis=1)
        return [self.pcas[0].transform(cat)]


def make_transform(
    kind: str, total: int | None = None, variance: float | None = None, seed: int = 0
) -> IndependentTransform:
    if kind == "ift":
        return IndependentTransform(total, variance, seed)
    if kind == "global":
        return GlobalTransform(total, variance, seed)
    raise ValueError(f"fusion must be 'ift' or 'global', got {kind!r}")
