"""init_from_torchvision: torchvision ImageNet weights into our models, all but the classifier."""
from __future__ import annotations

import pytest
import torch
import torchvision

from resnet_cifar import UserError, create_model
from resnet_cifar.models.pretrained import describe_architecture, init_from_torchvision


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_loads_everything_but_the_classifier(resnet18_file):
    model = create_model("resnet18", num_classes=10, stem="imagenet")
    fc_before = {k: v.clone() for k, v in model.fc.state_dict().items()}
    init_from_torchvision(model, resnet18_file)
    source = torch.load(resnet18_file, weights_only=True)
    for key, value in model.state_dict().items():
        if key.startswith("fc."):
            assert torch.equal(value, fc_before[key.removeprefix("fc.")])
        else:
            assert torch.equal(value, source[key]), key
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_old_files_without_batchnorm_counters_load(resnet18_file, tmp_path):
    state = torch.load(resnet18_file, weights_only=True)
    old = tmp_path / "old.pth"
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, old)
    model = create_model("resnet18", stem="imagenet")
    init_from_torchvision(model, old)
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])


def test_describes_torchvision_architectures():
    assert describe_architecture(torchvision.models.resnet50().state_dict()) == "resnet50"
    assert describe_architecture(create_model("resnet34", stem="imagenet").state_dict()) == "resnet34"


def test_other_architecture_is_named(resnet18_file):
    with pytest.raises(UserError, match="holds weights of resnet18, but the model is resnet34"):
        init_from_torchvision(create_model("resnet34", stem="imagenet"), resnet18_file)


@pytest.mark.parametrize("name", ["resnet20", "fastresnet8"])
def test_cifar_only_models_are_refused(resnet18_file, name):
    with pytest.raises(UserError, match=f"fit only resnet18, .*, but the model is {name}"):
        init_from_torchvision(create_model(name), resnet18_file)


def test_cifar_stem_is_refused(resnet18_file):
    with pytest.raises(UserError, match="stem='imagenet'"):
        init_from_torchvision(create_model("resnet18"), resnet18_file)


def test_option_a_shortcuts_do_not_fit(resnet18_file):
    with pytest.raises(UserError, match="does not fit resnet18"):
        init_from_torchvision(create_model("resnet18", stem="imagenet", shortcut="A"), resnet18_file)


def test_bad_files(tmp_path):
    model = create_model("resnet18", stem="imagenet")
    with pytest.raises(UserError, match="does not exist"):
        init_from_torchvision(model, tmp_path / "missing.pth")
    truncated = tmp_path / "truncated.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(UserError, match="truncated or corrupt"):
        init_from_torchvision(model, truncated)
    not_weights = tmp_path / "config.pth"
    torch.save({"epochs": 3}, not_weights)
    with pytest.raises(UserError, match="not a torchvision state_dict"):
        init_from_torchvision(model, not_weights)
