"""resnet-cifar: define, train, evaluate and use ResNets on CIFAR-10/100 and folders of images."""
from resnet_cifar.checkpoint import load_checkpoint
from resnet_cifar.errors import UserError
from resnet_cifar.inference import Prediction, predict
from resnet_cifar.models import create_model, list_models

__version__ = "0.1.0"

__all__ = ["Prediction", "UserError", "create_model", "list_models", "load_checkpoint", "predict", "__version__"]
