"""The three vision model families (torch only): LeNet-style CNNs, shallow autoencoders and
small decoder-only (causal) transformers over image patches.

Each family is described by frozen size specs, so a family is a list of specs of increasing
size and a model is rebuilt from its spec and seed alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Trainable parameters of a model."""
    return int(sum(p.numel() for p in model.parameters()))


# ----------------------------------------------------------------------------- CNN


@dataclass(frozen=True)
class CNNSize:
    """Channels of the two conv layers and width of the hidden fully connected layer."""

    conv1: int
    conv2: int
    hidden: int

    @property
    def name(self) -> str:
        """The size as it appears in model names."""
        return f"lenet-c{self.conv1}-{self.conv2}-h{self.hidden}"


class LeNet(nn.Module):
    """conv-relu-pool, conv-relu-pool, fc-relu, fc: the LeNet layout, for any image size."""

    def __init__(self, size: CNNSize, in_channels: int, n_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, size.conv1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(size.conv1, size.conv2, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * size.conv2, size.hidden), nn.ReLU(), nn.Linear(size.hidden, n_classes)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (n, h, w, c) -> logits
        """Class logits of images (n, h, w, c)."""
        return self.classifier(self.features(images.permute(0, 3, 1, 2)))


# ----------------------------------------------------------------------------- autoencoder


@dataclass(frozen=True)
class AutoencoderSize:
    """A one-hidden-layer autoencoder size: its hidden units."""

    hidden: int

    @property
    def name(self) -> str:
        """The size as it appears in model names."""
        return f"ae-h{self.hidden}"


class ShallowAutoencoder(nn.Module):
    """One nonlinear hidden layer: x -> tanh(W x + b) -> sigmoid(V h + c), pixels in [0, 1]."""

    def __init__(self, size: AutoencoderSize, n_inputs: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(n_inputs, size.hidden), nn.Tanh())
        self.decoder = nn.Sequential(nn.Linear(size.hidden, n_inputs), nn.Sigmoid())

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (n, h, w, c) -> same shape
        """The reconstruction of images (n, h, w, c), in [0, 1]."""
        flat = images.reshape(len(images), -1)
        return self.decoder(self.encoder(flat)).reshape(images.shape)


# ----------------------------------------------------------------------------- transformer


@dataclass(frozen=True)
class TransformerSize:
    """A causal patch transformer size: width, layers and attention heads."""

    d_model: int
    layers: int
    heads: int

    @property
    def name(self) -> str:
        """The size as it appears in model names."""
        return f"tf-d{self.d_model}-l{self.layers}"


def to_patch_sequence(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(n, h, w, c) -> (n, tokens, patch*patch*c), patches in raster order (h, w divisible)."""
    n, h, w, c = images.shape
    grid = images.reshape(n, h // patch, patch, w // patch, patch, c).permute(0, 1, 3, 2, 4, 5)
    return grid.reshape(n, (h // patch) * (w // patch), patch * patch * c)


class PatchTransformer(nn.Module):
    """Decoder-only transformer: each patch token attends only to earlier ones (causal mask),
    and the class is read autoregressively from the last position, after the whole image."""

    def __init__(self, size: TransformerSize, patch: int, n_tokens: int, token_dim: int, n_classes: int):
        super().__init__()
        self.patch = patch
        self.embed = nn.Linear(token_dim, size.d_model)
        self.position = nn.Parameter(torch.zeros(1, n_tokens, size.d_model))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            size.d_model, size.heads, dim_feedforward=2 * size.d_model, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, size.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(size.d_model)
        self.head = nn.Linear(size.d_model, n_classes)
        self.register_buffer("causal_mask", nn.Transformer.generate_square_subsequent_mask(n_tokens), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits read at the last position, after every patch of the image."""
        tokens = self.embed(to_patch_sequence(images, self.patch)) + self.position
        hidden = self.blocks(tokens, mask=self.causal_mask, is_causal=True)
        return self.head(self.norm(hidden[:, -1]))
