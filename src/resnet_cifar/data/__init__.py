"""Datasets as uint8 tensors in memory, and the loader that augments them in batches on the device.

Every source (CIFAR archives, image folders) ends as a `Dataset` of `Split`s:
images uint8 [N, 3, H, W] and labels int64 [N]. Nothing downstream reads files.
"""
from resnet_cifar.data.dataset import load_dataset
from resnet_cifar.data.loader import Loader
from resnet_cifar.data.splits import Dataset, Split

__all__ = ["Dataset", "Loader", "Split", "load_dataset"]
