"""The ResNet model zoo: `create_model(name)` and `list_models()`."""
from resnet_cifar.models.registry import count_parameters, create_model, list_models
from resnet_cifar.models.resnet import BasicBlock, Bottleneck, ResNet

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "count_parameters", "create_model", "list_models"]
