"""The small networks of the tabular evaluation tasks.

The digits task uses :class:`secmark.examples.digits.DigitsCNN`; the two
tabular tasks use the multilayer perceptrons here. Both end in an
``nn.Linear`` layer, which is what the last-layer attacks re-initialise and
fine-tune (:func:`last_linear`).
"""

from __future__ import annotations

import torch
from torch import nn

from secmark.errors import EncodingError

__all__ = ["TabularClassifier", "TabularRegressor", "last_linear", "weight_layers"]


def _perceptron(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    if hidden < 1:
        raise EncodingError(f"a hidden layer needs at least one unit, not {hidden}")
    return nn.Sequential(
        nn.Linear(inputs, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, outputs),
    )


class TabularClassifier(nn.Module):
    """``inputs`` standardised features -> ``hidden`` -> ``hidden`` -> ``classes``
    logits, with ReLU between."""

    def __init__(self, inputs: int, classes: int, *, hidden: int) -> None:
        super().__init__()
        self.layers = _perceptron(inputs, hidden, classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.layers(features)
        return logits


class TabularRegressor(nn.Module):
    """``inputs`` standardised features -> ``hidden`` -> ``hidden`` -> 1 (ReLU
    between), answered in target units.

    The network predicts the standardised target; the fixed buffers
    ``target_mean`` and ``target_std`` map it back, so the model's answer is
    directly comparable with a regression label committed in target units.
    Returns shape (batch,).
    """

    target_mean: torch.Tensor
    target_std: torch.Tensor

    def __init__(self, inputs: int, *, hidden: int, target_mean: float, target_std: float) -> None:
        super().__init__()
        if not target_std > 0:
            raise EncodingError(f"target_std must be positive, not {target_std!r}")
        self.layers = _perceptron(inputs, hidden, 1)
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        standardised: torch.Tensor = self.layers(features).squeeze(1)
        return standardised * self.target_std + self.target_mean


def weight_layers(model: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    """The convolution and linear layers of ``model``, in module order: the
    weights that pruning and quantisation act on."""
    return [module for module in model.modules() if isinstance(module, (nn.Conv2d, nn.Linear))]


def last_linear(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of ``model`` in module order (its output layer).

    Raises:
        EncodingError: the model has no linear layer.
    """
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise EncodingError("the model has no nn.Linear layer to treat as its last layer")
    return linears[-1]
