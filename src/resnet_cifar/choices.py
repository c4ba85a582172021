"""The names each choice accepts, defined once, without importing torch.

The modules that implement a choice (the loader's flips, the optimizers, the
export formats, ...) check their argument against these; the settings, the
command-line flags and the docs take their lists from here. Importing nothing
heavy keeps `resnet-cifar --help` and argument errors instant.
"""

STEMS = ("cifar", "imagenet")
DATASETS = ("cifar10", "cifar100", "folder")
# Test sets for evaluation only (resnet_cifar.data.shifted): CIFAR-10.1 and the published corrupted test splits.
EVALUATION_DATASETS = ("cifar10.1", "cifar10-c", "cifar100-c")
CIFAR101_VERSIONS = ("v6", "v4")
# The 15 corruptions of CIFAR-10-C (Hendrycks & Dietterich 2019), in the paper's order; resnet_cifar.data.corruptions
# generates them, and the published corrupted sets hold one file per name.
CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
               "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
               "jpeg_compression")
SEVERITIES = (1, 2, 3, 4, 5)
# The label of every figure from generated corruptions: they are not the published files, and their figures
# compare only with each other.
GENERATED_CORRUPTIONS = "CIFAR-10-C style (generated)"
SPLITS = ("train", "val", "test")
LABELS = ("fine", "coarse")
PADDING_MODES = ("reflect", "zeros")
FLIPS = ("none", "random", "alternate")
AUGMENT_POLICIES = ("none", "autoaugment", "randaugment", "trivialaugment")
MAGNITUDE_BINS = 31  # RandAugment's and TrivialAugmentWide's magnitude scale: bins 0..30
OPTIMIZERS = ("sgd", "muon", "adam", "adamw")
SCHEDULES = ("constant", "multistep", "cosine", "linear")
TTA_MODES = ("none", "flip", "flip-translate")
AMP_MODES = ("auto", "off", "bf16", "fp16")
EXPORT_FORMATS = ("onnx", "torchscript")
# The file name endings each export format is written under. TorchScript has no ending of its own:
# PyTorch's documentation uses .pt, which checkpoints use too; .ts and .torchscript keep them apart.
EXPORT_SUFFIXES = {"onnx": (".onnx",), "torchscript": (".ts", ".torchscript", ".pt", ".pth")}
