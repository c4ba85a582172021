"""Grad-CAM (Selvaraju et al. 2017): where in an image the evidence for the predicted class lies.

The last residual stage's activations A (K channels on an h x w grid) are weighted
by how much the predicted class's logit gains from each channel on average, the
gradient dy/dA averaged over the grid; the map is the ReLU of that weighted sum,
scaled to 0-1 and stretched to the input's size. The last stage is used because it
is the last place the network still keeps a grid, and the most semantic one.

A forward hook on the last stage catches its output and cuts the graph there: with
the weights' requires_grad off for the pass, only the head after the last stage is
recorded for the backward pass, so explaining a batch takes about the memory of
predicting it, and the weights' .grad are never touched.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from resnet_cifar.inference import preprocess
from resnet_cifar.models import Network
from resnet_cifar.pictures import plot_gradcam


def last_stage(model: Network) -> nn.Module:
    """The module whose output Grad-CAM explains: the network's last residual stage."""
    return model.stages()[-1][1]


def grad_cam(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grad-CAM maps of each image's predicted class, for a normalised batch x [N, 3, H, W].

    Returns the maps (float [N, H, W], each scaled so its largest value is 1; all 0
    where nothing speaks for the class), the predicted classes [N] and their
    probabilities [N]. The model runs in eval mode, so the images do not affect one
    another and one backward pass serves the whole batch.
    """
    caught: list[torch.Tensor] = []

    def cut(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        caught.append(output.detach().requires_grad_())
        return caught[-1].clone()  # a clone, so a head that works in place never writes into what was caught

    hook = last_stage(model).register_forward_hook(cut)
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval()
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        with torch.enable_grad():
            logits = model(x.detach()).float()
            predicted = logits.argmax(1)
            (gradient,) = torch.autograd.grad(logits.gather(1, predicted[:, None]).sum(), caught[-1])
    finally:
        hook.remove()
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)
    activations = caught[-1].detach().float()
    weights = gradient.float().mean((2, 3), keepdim=True)
    cam = F.relu((weights * activations).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    cam = cam / cam.amax((1, 2), keepdim=True).clamp(min=1e-12)
    probability = logits.detach().softmax(1).gather(1, predicted[:, None])[:, 0]
    return cam, predicted, probability


def write_explanations(model: nn.Module, images: list[tuple[Path, torch.Tensor]], folder: Path,
                       taken: set[str]) -> None:
    """One Grad-CAM overlay PNG in `folder` per (file, uint8 [3, H, W] image): cat.jpg's is cat.jpg.png.

    `model` comes from load_checkpoint. `taken` holds the names already written by this
    command: a second cat.jpg (from another folder) gets cat.jpg-2.png, not the first one's.
    """
    if not images:
        return
    x = preprocess([image for _, image in images], model.preprocessing).to(next(model.parameters()).device)
    maps, predicted, probability = grad_cam(model, x)
    for (path, image), cam, index, p in zip(images, maps, predicted.tolist(), probability.tolist()):
        name, copy = f"{path.name}.png", 1
        while name in taken:
            copy += 1
            name = f"{path.name}-{copy}.png"
        taken.add(name)
        plot_gradcam(image, cam, f"{path}: {model.classes[index]} {p:.1%}", folder / name)
