"""Named recipes (`--preset`): each a small table of the settings it changes from TrainConfig's defaults.

A recipe is only data. `--config FILE` and flags override any value here, so a
recipe is a starting point, not a cage. To tune one, edit its table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resnet_cifar.config import check_values
from resnet_cifar.errors import UserError


@dataclass(frozen=True)
class Recipe:
    purpose: str  # one line for --help and docs/training.md
    settings: dict[str, Any]


# airbench94_muon's recipe (Jordan 2024) on our residual network, its values translated
# from its summed loss and decoupled form to PyTorch's mean loss and coupled SGD.
FAST: dict[str, Any] = {
    "model": "fastresnet8",  # 0.236 GFLOPs per 32x32 image forward; the run: 0.29 PFLOPs
    "whiten_stem": True,  # 2x2 patch whitening from the data: saves the first epochs
    "stem_bias_epochs": 3,  # its bias learns for 3 epochs, then backward stops before the stem
    "batch_size": 2000,  # 22 steps per epoch: few, large steps
    "epochs": 12,  # airbench94_muon's 8, plus two for the JPEG copy's harder images, plus two of cheap crops
    "early_crop_size": 24,  # the first 5 epochs on 24x24 windows, 0.53 of the FLOPs each: 90.74% over
    "early_crop_epochs": 5,  # two seeds for 0.29 PFLOPs, against 90.72% for 10 whole epochs' 0.30
    "optimizer": "muon",  # orthogonalised updates for the filters: 8 epochs do what SGD needs 10 for
    "muon_lr": 0.24,
    "muon_momentum": 0.6,
    "nesterov": True,
    "momentum": 0.85,  # SGD for the classifier and the biases
    "lr": 1.5,  # airbench's 11.5 per 1024 images divided by 1 + 1/(1 - momentum)
    "weight_decay": 2.67e-3,  # lr x wd = 0.004 of each weight per step at the peak (airbench94_muon's)
    "weight_decay_bn_bias": True,
    "bn_bias_lr_scale": 64.0,  # BN biases at lr 96; their decay per step stays 0.004
    "schedule": "linear",  # from the peak at the first step linearly to zero: Muon needs no warmup
    "label_smoothing": 0.2,
    "crop_padding": 2,  # translate by up to 2 pixels (reflect), as airbench94 does
    "padding_mode": "reflect",
    "flip": "alternate",  # every image seen both ways in any two epochs
    "brightness": 0.14,  # hiverge's cifar10-speedrun (2025): each image shifted by up to 0.14 std and its
    "contrast": 0.13,  # contrast scaled by up to 13%
    "tta": "flip-translate",
    "tta_fraction": 0.25,  # the views only for the quarter of images least sure without them: as accurate, 56% cheaper
}

RECIPES: dict[str, Recipe] = {
    "seed": Recipe(
        "the tutorial this project replaces, as written, with its accounting bugs fixed (accuracy not measured "
        "on a CPU: needs a GPU; one H200 epoch ran at 1,329 images/s, 1.9x the tutorial's loop)",
        {
            "model": "resnet50",
            "stem": "imagenet",  # torchvision's ImageNet network, unchanged
            "input_size": 224,  # CIFAR images blown up to ImageNet size: 49x the work of 32x32
            "mean": [0.5, 0.5, 0.5],  # Normalize((0.5,)*3, (0.5,)*3), not the data's statistics
            "std": [0.5, 0.5, 0.5],
            "optimizer": "adam",
            "lr": 1e-3,
            "weight_decay": 0.0,
            "schedule": "constant",
            "batch_size": 64,
            "epochs": 10,
            # No augmentation (the defaults). Fixed: the tutorial chose its model on the test set;
            # here a 5,000-image validation split does that, and losses are averaged per sample.
        },
    ),
    "paper": Recipe(
        "He et al. 2016, section 4.2: resnet20 (or --model resnet32..1202), the baseline to compare against "
        "(182 epochs; not measured on a CPU: needs a GPU)",
        {
            "model": "resnet20",
            "optimizer": "sgd",
            "lr": 0.1,
            "momentum": 0.9,
            "weight_decay": 1e-4,
            "batch_size": 128,
            # 64k iterations of 128 images from a 45k/5k split: 351 steps per epoch, so 182 epochs
            # (63,882 steps); lr divided by 10 at half and three quarters of them (32k and 48k).
            "epochs": 182,
            "schedule": "multistep",
            "milestones": [0.5, 0.75],
            "crop_padding": 4,  # "4 pixels are padded on each side", zeros
            "padding_mode": "zeros",
            "flip": "random",
            "val_split": 5000,
        },
    ),
    "paper-cpu": Recipe(
        "the paper's networks on a CPU, and their default there: resnet20 (or --model resnet32..1202, slower), 22 "
        "epochs (the first 6 on 24-pixel crops) of one-cycle Nesterov SGD with fast's lessons; resnet20 reached "
        "88.18% validation (3 seeds) in 28 minutes each on a 2-core CPU, 2.3 GB",
        {
            "model": "resnet20",
            "optimizer": "sgd",
            "nesterov": True,
            "momentum": 0.9,
            # A short run wants a high peak: lr 0.4 at batch 256 is twice the paper's rate per image,
            # reached over two epochs of warmup, then a straight line to zero (the one-cycle shape).
            "lr": 0.4,
            "warmup_epochs": 2,
            "schedule": "linear",
            "weight_decay": 5e-4,  # the short schedules' usual decay, five times the paper's
            "batch_size": 256,  # on two cores as many images/s as 512, with twice the steps
            "epochs": 22,
            "early_crop_size": 24,  # fast's lesson: early epochs learn as well on 24x24 windows, at 0.56 of the cost
            "early_crop_epochs": 6,
            "label_smoothing": 0.1,
            "crop_padding": 2,  # short runs gain from light augmentation: 2 pixels, reflected, as fast
            "padding_mode": "reflect",
            "flip": "alternate",  # every image seen both ways in any two epochs
            "tta": "flip-translate",
        },
    ),
    "resnet18": Recipe(
        "the common strong baseline: ResNet-18 with the CIFAR stem, 200 epochs, about 95% on CIFAR-10 in the "
        "literature (not measured on a CPU: needs a GPU)",
        {
            "model": "resnet18",
            "optimizer": "sgd",
            "lr": 0.1,
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "batch_size": 128,
            "epochs": 200,
            "schedule": "cosine",
            "crop_padding": 4,
            "flip": "random",
        },
    ),
    "wrn28_10": Recipe(
        "Zagoruyko and Komodakis 2016: WRN-28-10 with dropout 0.3, the paper's 200 epochs "
        "(not measured on a CPU: needs a GPU)",
        {
            "model": "wrn28_10",
            "dropout": 0.3,  # between the two convolutions of each block
            "optimizer": "sgd",
            "lr": 0.1,
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 5e-4,
            "batch_size": 128,
            "epochs": 200,
            "schedule": "multistep",
            "milestones": [0.3, 0.6, 0.8],  # epochs 60, 120 and 160 of 200
            "milestone_gamma": 0.2,
            "crop_padding": 4,
            "padding_mode": "reflect",  # the paper pads by reflection
            "flip": "random",
        },
    ),
    "fast": Recipe(
        "the quickest way to high accuracy, the default with CUDA: airbench94_muon's recipe on fastresnet8, 12 "
        "epochs (the first 5 on 24-pixel crops), batches of 2,000, 0.29 PFLOPs; measured over 3 seeds before its "
        "brightness/contrast jitter and selective TTA (2026-12-07, not measured since): 90.35% validation on an H200 "
        "(12 epochs in 2.1-2.2 s once cuDNN is tuned), 90.57% on a 2-core CPU in 49 minutes of training each, 6 GB "
        "(docs/benchmarks.md)",
        FAST,
    ),
    "cpu": Recipe(
        "the default without CUDA: fast at batches of 500, for half the memory; measured over 3 seeds on a "
        "2-core CPU: 90.50% validation, 30 minutes from start to end in a slow hour (0.89x the recipe before its "
        "2026-12-07 changes), 2.8 GB at most (docs/benchmarks.md)",
        {
            **FAST,
            # A CPU gains nothing from batches of 2,000 (a step of 500 runs at the same images/s) and they need
            # 6 GB; at 500 the process peaks under 3 GB. Four times the steps: the SGD part's rate scales with the
            # batch (lr x wd per step, the decay per step, scales with it too, the same per epoch), Muon's angle
            # per step with its square root. Seed 0: 90.64% against fast's 90.42% at 2,000.
            "batch_size": 500,
            "lr": 0.375,
            "muon_lr": 0.12,
        },
    ),
}

for _name, _recipe in RECIPES.items():
    check_values(_recipe.settings, f"recipe {_name!r}")


def default_preset(model: str, device_type: str) -> str:
    """The recipe a bare `train --model MODEL` uses: the one its registry entry names for this device."""
    from resnet_cifar.models import model_entry  # imports torch, which only a run needs

    entry = model_entry(model)
    return entry.recipe if device_type == "cuda" else entry.cpu_recipe


def recipe_settings(name: str) -> dict[str, Any]:
    """The settings of recipe `name`, including its own name as `preset`."""
    if name not in RECIPES:
        raise UserError(f"Unknown preset {name!r} (--preset); choose one of: {', '.join(RECIPES)}.")
    return {"preset": name, **RECIPES[name].settings}
