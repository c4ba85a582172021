"""Patch-whitening initialisation of a stem convolution (`whiten_stem: true`, applied by its recipe hook).

Neighbouring pixels of natural images are strongly correlated, so a freshly
initialised first layer spends its first epochs learning to decorrelate them.
Setting it from the data instead skips that: each filter is an eigenvector of
the covariance of the training images' 2x2 patches, scaled by one over the
square root of its eigenvalue, so the stem's outputs are uncorrelated with unit
variance (ZCA/PCA whitening, as in Page's and Jordan's fast CIFAR-10 networks).
Every direction appears twice, with both signs, so the activation after it
loses nothing. The weights are then frozen; the bias still trains.
"""
from __future__ import annotations

import torch
from torch import nn

from resnet_cifar.errors import UserError

# Images used to estimate the patch covariance: 5,000 give 4.8 million patches,
# far more than the 144 entries of a 12x12 covariance need.
SAMPLE_IMAGES = 5000
# Added to the eigenvalues so that near-constant directions (JPEG artefacts,
# flat patches) are not amplified into noise.
EPS = 5e-4


def misfit(conv: nn.Conv2d) -> str | None:
    """Why `conv` cannot be whitened, in words that follow "cannot take whiten_stem": None if it can.

    Whitening fills every output with one direction of the patches or its negative, so the
    outputs must be exactly twice the patch's dimensions, at stride 1 and without groups."""
    dims = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    if conv.out_channels == 2 * dims and conv.stride == (1, 1) and conv.groups == 1:
        return None
    return (f"its first convolution has {conv.out_channels} outputs at stride {conv.stride[0]}; whitening its "
            f"{conv.kernel_size[0]}x{conv.kernel_size[1]} patches needs {2 * dims} at stride 1")


def whiten(conv: nn.Conv2d, images: torch.Tensor) -> None:
    """Set `conv`'s weights to whiten the patches of `images` [N, C, H, W], normalised as the loader feeds
    them, on `conv`'s device, and freeze them."""
    channels = conv.in_channels
    kh, kw = conv.kernel_size
    dims = channels * kh * kw
    reason = misfit(conv)
    if reason is not None:
        raise UserError(f"whiten_stem cannot be applied: {reason}; use a model such as fastresnet8.")
    patches = images.unfold(2, kh, 1).unfold(3, kw, 1)  # N, C, H', W', kh, kw
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, dims)
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    filters = (eigenvectors.T / torch.sqrt(eigenvalues + EPS)[:, None]).reshape(dims, channels, kh, kw)
    with torch.no_grad():
        conv.weight.copy_(torch.cat([filters, -filters]).to(conv.weight.dtype))
        if conv.bias is not None:
            conv.bias.zero_()
    conv.weight.requires_grad_(False)
