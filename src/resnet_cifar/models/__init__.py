"""The ResNet model zoo: `create_model(name)` and `list_models()`.

Importing a family module registers its networks; the order here is the order
`list_models()` and `resnet-cifar models` show them in.
"""
from resnet_cifar.models import resnet, preact, wide, fast  # noqa: F401  (registers the networks)
from resnet_cifar.models.network import Network
from resnet_cifar.models.preact import PreActBlock, PreActResNet
from resnet_cifar.models.registry import count_parameters, create_model, list_models, model_entry, register_model
from resnet_cifar.models.resnet import BasicBlock, Bottleneck, ResNet
from resnet_cifar.models.wide import WideResNet

__all__ = ["BasicBlock", "Bottleneck", "Network", "PreActBlock", "PreActResNet", "ResNet", "WideResNet",
           "count_parameters", "create_model", "list_models", "model_entry", "register_model"]
