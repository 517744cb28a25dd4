"""The Frechet distance between two sets of feature vectors (Heusel et al. 2017's FID formula):

    FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))

The feature network is the caller's: Inception-v3's 2048 pool features give FID (see
benchmarks/dcgan_fid.py); the project's small Fashion-MNIST classifier's 128 penultimate features
give the cheap figure every build and evaluation records. The trace of the matrix square root is
taken from the eigenvalues of S_a^(1/2) S_b S_a^(1/2) (symmetric, so no scipy and no complex parts).
"""

from typing import Callable, Tuple

import numpy as np
import torch


def statistics(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of features [n, d] (float64)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 feature vectors [n, d], got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """The Frechet distance between two Gaussians."""
    values, vectors = np.linalg.eigh(cov_a)
    sqrt_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def frechet_distance_of(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The Frechet distance between two feature sets [n, d]."""
    return frechet_distance(*statistics(features_a), *statistics(features_b))


@torch.inference_mode()
def extract_features(
    feature_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int = 500
) -> np.ndarray:
    """feature_fn over images [n, c, h, w] in batches, as a float64 numpy array [n, d]."""
    parts = [feature_fn(images[start : start + batch_size]).double().cpu() for start in range(0, len(images), batch_size)]
    return torch.cat(parts).numpy()
