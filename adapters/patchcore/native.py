"""PatchCore, native source: the project's own implementation after the paper and upstream.

fit: locally aware patch features of all training images (adapters.common.PatchEmbedder) form
the memory bank, subsampled by approximate greedy coreset selection (``coreset_percentage``,
random projection to ``coreset_projection_dim`` dims, 10 random starting points).
predict: every test patch's squared L2 distance to its nearest memory-bank entry (faiss;
averaged over ``anomaly_scorer_num_nn`` neighbours as upstream's NearestNeighbourScorer);
the map is the patch-score grid upsampled to ``image_size`` and Gaussian-smoothed
(``smoothing_sigma`` 4). Image score: the maximum patch score (upstream's default), or with
``reweight: true`` the paper's re-weighting (eq. 7) of the maximum patch distance.
"""

from __future__ import annotations

import numpy as np
import torch

from adapters.common import build_embedder, gaussian_blur, upsample
from adapters.common.engine import EngineBase
from adapters.patchcore.coreset import approximate_greedy_coreset
from orchestrator.data.types import SampleSet


class NearestNeighbours:
    """faiss exact L2 search over the memory bank (a GPU index when faiss-gpu and CUDA)."""

    def __init__(self, bank: np.ndarray, on_gpu: bool = False):
        import faiss

        self.bank = np.ascontiguousarray(bank, dtype=np.float32)
        index = faiss.IndexFlatL2(self.bank.shape[1])
        if on_gpu and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
            index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
        index.add(self.bank)
        self.index = index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Squared L2 distances and indices of the k nearest bank entries."""
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


class NativePatchCore(EngineBase):
    """The native engine behind ``adapters.patchcore.PatchCore``."""

    def __init__(self, config: dict, device: torch.device):
        super().__init__(config, device)
        self.embedder = build_embedder(config, device)
        self.bank: np.ndarray | None = None
        self._nn: NearestNeighbours | None = None

    def patch_features(self, data: SampleSet) -> torch.Tensor:
        """``[N, h, w, D]`` patch features of a sample set (on the CPU)."""
        return torch.cat([self.embedder(x).cpu() for x in self.batches(data)])

    def index(self) -> NearestNeighbours:
        if self._nn is None:
            self._nn = NearestNeighbours(self.bank, on_gpu=self.device.type == "cuda")
        return self._nn

    def fit(self, train: SampleSet) -> None:
        feats = self.patch_features(train)
        flat = feats.reshape(-1, feats.shape[-1])
        idx = approximate_greedy_coreset(
            flat.to(self.device),
            float(self.config["coreset_percentage"]),
            int(self.config["coreset_projection_dim"]),
            seed=int(self.config["seed"]),
        )
        self.set_state({"memory_bank": flat[idx].numpy().astype(np.float32)})

    def predict(self, test: SampleSet) -> tuple[np.ndarray, torch.Tensor]:
        feats = self.patch_features(test)
        n, h, w, d = feats.shape
        q = feats.reshape(-1, d).numpy()
        k = max(int(self.config["anomaly_scorer_num_nn"]), 1)
        dist, idx = self.index().search(q, k)
        patch = dist.mean(axis=1).reshape(n, h * w)
        scores = patch.max(axis=1).astype(np.float64)
        if self.config.get("reweight"):
            scores = self._reweight(q.reshape(n, h * w, d), patch, idx[:, 0].reshape(n, -1))
        maps = torch.from_numpy(patch.reshape(n, h, w))
        maps = upsample(maps, self.size)
        return scores, gaussian_blur(maps, float(self.config["smoothing_sigma"]))

    def _reweight(self, q: np.ndarray, patch: np.ndarray, nn_idx: np.ndarray) -> np.ndarray:
        """Paper eq. 7: ``s = (1 - exp|m* - m*_nn| / sum_b exp|m* - m_b|) * |m* - m*_nn|``.

        ``m*`` is the test patch with the largest distance, ``m_b`` the ``reweight_neighbours``
        bank entries nearest to its nearest bank entry (distances in L2, not squared).
        """
        b = int(self.config.get("reweight_neighbours", 3))
        rows = np.arange(len(patch))
        j = patch.argmax(axis=1)
        m_test = q[rows, j]  # [N, D]
        m_star = self.bank[nn_idx[rows, j]]  # [N, D]
        _, nb = self.index().search(m_star, b)  # [N, b]
        d = np.linalg.norm(self.bank[nb] - m_test[:, None], axis=2)  # [N, b]
        d_star = np.linalg.norm(m_star - m_test, axis=1)  # [N]
        top = d.max(axis=1, keepdims=True)
        weight = 1.0 - np.exp(d_star - top[:, 0]) / np.exp(d - top).sum(axis=1)
        return weight * d_star

    def features(self, images: SampleSet) -> np.ndarray:
        """``|m_test - nn(m_test)|`` per patch, ``[N, D, h, w]``."""
        feats = self.patch_features(images)
        n, h, w, d = feats.shape
        q = feats.reshape(-1, d).numpy()
        _, idx = self.index().search(q, 1)
        diff = np.abs(q - self.bank[idx[:, 0]])
        return diff.reshape(n, h, w, d).transpose(0, 3, 1, 2)

    def state(self) -> dict[str, np.ndarray]:
        return {"memory_bank": self.bank}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.bank = np.ascontiguousarray(state["memory_bank"], dtype=np.float32)
        self._nn = None
