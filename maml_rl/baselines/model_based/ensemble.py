"""Learned one-step models of the readings and bootstrap ensembles of them (for Dyna).

Every model predicts the change of the readings, d = obs' - obs, from the input
z = [obs, a] (a: applied action). Two kinds:

* ``LinearModel``: d = W [obs, a, 1] by ridge least squares. The AWAKE dynamics inside the
  aperture are exactly d = G a (G = 100 action_scale R), so this class contains the truth
  and recovers it from noiseless data.
* ``MLPModel``: a small tanh MLP trained by Adam on the mean squared error; it contains no
  physics and must learn the linearity.

``BootstrapEnsemble`` fits each of K members on a resample (with replacement) of the data;
the spread of the members is a cheap estimate of the model's uncertainty (Efron 1979;
used for model-based RL by Chua et al. 2018, PETS, and Janner et al. 2019, MBPO).
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
import torch

ModelKind = Literal["linear", "mlp"]


class DynamicsModel(Protocol):
    def fit(self, inputs: np.ndarray, targets: np.ndarray) -> None: ...

    def predict(self, inputs: np.ndarray) -> np.ndarray: ...


class LinearModel:
    """d = W^T [z, 1], W = argmin ||[Z 1] W - D||^2 + ridge ||W_z||^2 (bias not penalised).

    Parameters
    ----------
    ridge
        Tikhonov weight; keeps the fit defined with fewer samples than unknowns (a bootstrap
        resample repeats points) and is negligible against O(1) inputs otherwise.
    """

    def __init__(self, ridge: float = 1e-8) -> None:
        self.ridge = float(ridge)
        self.weights: np.ndarray | None = None

    def fit(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        design = np.hstack([inputs, np.ones((len(inputs), 1))])
        penalty = self.ridge * np.eye(design.shape[1])
        penalty[-1, -1] = 0.0
        # Augmented least squares (QR/SVD), not the normal equations: keeps noiseless fits exact.
        augmented = np.vstack([design, np.sqrt(penalty)])
        padded = np.vstack([targets, np.zeros((design.shape[1], targets.shape[1]))])
        self.weights = np.linalg.lstsq(augmented, padded, rcond=None)[0]

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("fit the model first")
        return np.hstack([inputs, np.ones((len(inputs), 1))]) @ self.weights


class MLPModel:
    """A tanh MLP d = f_w(z) trained by Adam on the mean squared error (full batch).

    Parameters
    ----------
    hidden
        Widths of the hidden layers.
    epochs, lr, weight_decay
        Adam steps per ``fit`` (warm-started from the previous fit), step size, L2 weight.
    seed
        Initial weights.
    """

    def __init__(self, input_dim: int, output_dim: int, hidden: tuple[int, ...] = (64, 64), epochs: int = 200,
                 lr: float = 3e-3, weight_decay: float = 1e-5, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(int(seed))
        layers: list[torch.nn.Module] = []
        width = input_dim
        for size in hidden:
            layers += [torch.nn.Linear(width, size), torch.nn.Tanh()]
            width = size
        layers.append(torch.nn.Linear(width, output_dim))
        self.net = torch.nn.Sequential(*layers)  # float32: 7x faster than float64 here, ample for O(0.1) targets
        with torch.no_grad():
            for p in self.net.parameters():  # seeded re-initialisation, independent of the global stream
                p.copy_(torch.empty_like(p).uniform_(-1, 1, generator=generator) / np.sqrt(max(p.shape[-1], 1)))
        self.epochs, self.lr, self.weight_decay = int(epochs), float(lr), float(weight_decay)
        self.scale = np.ones(output_dim)

    def fit(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        # Targets are O(0.01-0.1): fit them in units of their rms so Adam's step size fits.
        self.scale = np.sqrt(np.mean(np.square(targets), axis=0)) + 1e-12
        x = torch.as_tensor(inputs, dtype=torch.float32)
        y = torch.as_tensor(targets / self.scale, dtype=torch.float32)
        optimiser = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        for _ in range(self.epochs):
            optimiser.zero_grad()
            loss = torch.mean((self.net(x) - y) ** 2)
            loss.backward()
            optimiser.step()

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net(torch.as_tensor(inputs, dtype=torch.float32)).double().numpy() * self.scale


class BootstrapEnsemble:
    """K models, each fitted on a bootstrap resample of the transitions.

    Parameters
    ----------
    input_dim, output_dim
        Dimensions of z = [obs, a] and of d.
    size
        Number of members K.
    kind
        ``"linear"`` or ``"mlp"``.
    bootstrap
        Resample the data for each member (False: every member sees all data).
    seed
        Resampling and MLP initialisation.
    """

    def __init__(self, input_dim: int, output_dim: int, size: int = 5, kind: ModelKind = "linear",
                 bootstrap: bool = True, seed: int = 0, **model_kwargs: object) -> None:
        if size < 1:
            raise ValueError(f"ensemble size must be >= 1, got {size!r}")
        if kind not in ("linear", "mlp"):
            raise ValueError(f"kind must be 'linear' or 'mlp', got {kind!r}")
        self.rng = np.random.default_rng([int(seed), 0xB007])
        if kind == "linear":
            self.members: list[DynamicsModel] = [LinearModel(**model_kwargs) for _ in range(size)]
        else:
            self.members = [MLPModel(input_dim, output_dim, seed=int(seed) * 1000 + k, **model_kwargs)
                            for k in range(size)]
        self.bootstrap = bool(bootstrap)
        self.fitted = False

    def __len__(self) -> int:
        return len(self.members)

    def fit(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        inputs, targets = np.asarray(inputs, float), np.asarray(targets, float)
        for member in self.members:
            rows = self.rng.integers(0, len(inputs), len(inputs)) if self.bootstrap else np.arange(len(inputs))
            member.fit(inputs[rows], targets[rows])
        self.fitted = True

    def predict(self, inputs: np.ndarray, member: int | None = None) -> np.ndarray:
        """Prediction of one member (``member``) or all: (K, M, output_dim)."""
        inputs = np.atleast_2d(np.asarray(inputs, float))
        if member is not None:
            return self.members[member].predict(inputs)
        return np.stack([m.predict(inputs) for m in self.members])
