"""Pre-activation and Wide ResNets, and stochastic depth in every residual family."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops import StochasticDepth

import resnet_cifar
from checkpoints import write_checkpoint
from resnet_cifar.checkpoint import load_checkpoint
from resnet_cifar.models import PreActBlock, WideResNet, create_model

# One network of each residual family, small enough to run on a CPU in a moment.
FAMILIES = ["resnet20", "resnet50", "preactresnet18", "wrn16_8"]


def blocks(model: nn.Module) -> list[nn.Module]:
    return [block for _, stage in model.stages() for block in stage]


def execution_order(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of the convolutions, norms, activations, dropouts, pools and classifier, in the order they run."""
    kinds = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Dropout, nn.AdaptiveAvgPool2d, nn.Linear)
    order: list[str] = []
    hooks = [module.register_forward_hook(lambda m, i, o, name=name: order.append(name))
             for name, module in model.named_modules() if isinstance(module, kinds)]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return order


def test_preact_blocks_run_bn_relu_before_each_convolution():
    order = execution_order(create_model("preactresnet18").eval(), torch.randn(1, 3, 32, 32))
    # The stem is a bare convolution: the first block's BN-ReLU normalises its output.
    assert order[:2] == ["conv1", "layer1.0.bn1"]
    # The projection shortcut takes the pre-activated input; nothing follows the addition.
    assert [name for name in order if name.startswith("layer2.0.")] == [
        "layer2.0.bn1", "layer2.0.relu", "layer2.0.downsample", "layer2.0.conv1",
        "layer2.0.bn2", "layer2.0.relu", "layer2.0.conv2"]
    assert [name for name in order if name.startswith("layer2.1.")] == [
        "layer2.1.bn1", "layer2.1.relu", "layer2.1.conv1", "layer2.1.bn2", "layer2.1.relu", "layer2.1.conv2"]
    # The last block normalises and activates its sum, so the head pools rectified features.
    assert order[-5:] == ["layer4.1.conv2", "layer4.1.final_bn", "layer4.1.relu", "avgpool", "fc"]
    assert [isinstance(block.final_bn, nn.BatchNorm2d) for block in blocks(create_model("preactresnet18"))] == [
        False] * 7 + [True]


def test_preact_projection_shortcuts_have_no_batch_norm():
    model = create_model("preactresnet18")
    projections = [block.downsample for block in blocks(model) if block.downsample is not None]
    assert len(projections) == 3  # entering stages 2, 3 and 4
    assert all(isinstance(p, nn.Conv2d) and p.kernel_size == (1, 1) for p in projections)


def test_preact_imagenet_stem_quarters_the_resolution():
    model = create_model("preactresnet18", stem="imagenet", num_classes=1000).eval()
    assert model.forward_stem(torch.randn(1, 3, 64, 64)).shape == (1, 64, 16, 16)


def test_wide_resnet_widths_and_depth():
    model = create_model("wrn28_10")
    assert model.conv1.out_channels == 16
    assert [(len(stage), stage[0].conv1.out_channels) for _, stage in model.stages()] == [(4, 160), (4, 320), (4, 640)]


def test_wide_resnet_dropout_sits_between_the_convolutions():
    model = create_model("wrn16_8", dropout=0.3)
    dropouts = [block.dropout for block in blocks(model)]
    assert all(isinstance(d, nn.Dropout) and d.p == 0.3 for d in dropouts)
    order = execution_order(WideResNet(10, 1, dropout=0.3), torch.randn(2, 3, 32, 32))
    assert order[order.index("layer1.0.conv1"):order.index("layer1.0.conv2") + 1] == [
        "layer1.0.conv1", "layer1.0.bn2", "layer1.0.relu", "layer1.0.dropout", "layer1.0.conv2"]
    assert not any(isinstance(m, nn.Dropout) for m in create_model("wrn16_8").modules())


def test_wide_resnet_dropout_is_active_in_training_and_off_in_eval():
    torch.manual_seed(0)
    model, x = WideResNet(10, 1, dropout=0.5), torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))  # BN in training is deterministic: the difference is dropout
        model.eval()
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", FAMILIES)
def test_drop_path_rates_rise_linearly_from_zero_to_the_rate(name):
    with torch.device("meta"):
        model = create_model(name, drop_path=0.2)
    rates = [block.drop_path.p if isinstance(block.drop_path, StochasticDepth) else 0.0 for block in blocks(model)]
    assert rates[0] == 0.0 and rates[-1] == 0.2
    steps = [b - a for a, b in zip(rates, rates[1:])]
    assert steps == pytest.approx([0.2 / (len(rates) - 1)] * len(steps))
    assert isinstance(blocks(model)[0].drop_path, nn.Identity)
    assert all(block.drop_path.mode == "row" for block in blocks(model)[1:])


@pytest.mark.parametrize("name", FAMILIES)
def test_without_drop_path_no_block_has_stochastic_depth(name):
    with torch.device("meta"):
        model = create_model(name, drop_path=0.0)
    assert not any(isinstance(m, StochasticDepth) for m in model.modules())


@pytest.mark.parametrize("name", FAMILIES)
def test_drop_path_keeps_the_state_dict_and_is_off_in_eval(name):
    torch.manual_seed(0)
    plain = create_model(name)
    dropping = create_model(name, drop_path=0.5)
    assert list(dropping.state_dict()) == list(plain.state_dict())
    dropping.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dropping.eval()(x), plain.eval()(x), rtol=0, atol=0)


def test_drop_path_changes_training_outputs_and_none_is_deterministic():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        plain = create_model("resnet20")
        torch.testing.assert_close(plain(x), plain(x), rtol=0, atol=0)
        dropping = create_model("resnet20", drop_path=0.5)
        assert not torch.equal(dropping(x), dropping(x))


def test_drop_path_drops_whole_branches_per_image():
    torch.manual_seed(0)
    block = PreActBlock(8, 8, drop_path=0.5)  # its output is exactly its input where the branch is dropped
    x = torch.randn(256, 8, 4, 4)
    with torch.no_grad():
        kept = (block(x) != x).flatten(1).any(1)
    assert 0.3 < kept.float().mean() < 0.7
    block.eval()
    with torch.no_grad():
        assert (block(x) != x).flatten(1).any(1).all()


def test_torchvision_weights_still_load_with_drop_path():
    import torchvision

    model = create_model("resnet18", num_classes=1000, stem="imagenet", drop_path=0.1)
    reference = torchvision.models.resnet18().eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), reference(x), atol=1e-5)  # drop-path is off in eval mode


def test_checkpoint_with_dropout_and_drop_path_loads_for_deterministic_inference(tmp_path):
    path = write_checkpoint(tmp_path / "wrn.pt", "wrn16_8", dropout=0.3, drop_path=0.2)
    model = load_checkpoint(path)
    assert not model.training and model.layer3[-1].drop_path.p == 0.2
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["preactresnet18", "wrn16_8"])
def test_fine_tuning_replaces_the_classifier(name):
    with torch.device("meta"):
        model = create_model(name)
        model.reset_classifier(37)
    assert model.num_classes == 37 and model.fc.in_features == model.num_features


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"name": "resnet20", "dropout": 0.5}, "Unknown model option(s) dropout for resnet20"),
        ({"name": "preactresnet18", "dropout": 0.5}, "Unknown model option(s) dropout for preactresnet18"),
        ({"name": "fastresnet8", "drop_path": 0.1}, "Unknown model option(s) drop_path for fastresnet8"),
        ({"name": "resnet20", "drop_path": 1.0}, "drop_path must be at least 0 and below 1, got 1.0."),
        ({"name": "wrn16_8", "drop_path": -0.1}, "drop_path must be at least 0 and below 1, got -0.1."),
        ({"name": "wrn16_8", "dropout": 1.5}, "dropout must be at least 0 and below 1, got 1.5."),
        ({"name": "wrn16_8", "stem": "imagenet"}, "Unknown stem 'imagenet' for this network"),
        ({"name": "preactresnet18", "stem": "huge"}, "Unknown stem 'huge'"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, message):
    with pytest.raises(resnet_cifar.UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        with torch.device("meta"):
            create_model(**kwargs)
