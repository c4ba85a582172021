"""The model zoo: exact sizes, torchvision compatibility, and every model trains."""
from __future__ import annotations

import pytest
import torch
import torchvision

import resnet_cifar
from resnet_cifar.cli import main
from resnet_cifar.models import count_parameters, create_model, list_models
from resnet_cifar.models.resnet import PadShortcut
from resnet_cifar.models.summary import count_flops, layer_table

PAPER = {"resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018,
         "resnet110": 1_727_962, "resnet1202": 19_421_274}
TORCHVISION_1000 = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                    "resnet101": 44_549_160, "resnet152": 60_192_808}
CIFAR_STEM_10 = {"resnet18": 11_173_962, "resnet50": 23_520_842}
# Pre-activation ResNets with a final BN-ReLU and Wide ResNets, 10 classes. preactresnet34 is resnet34's
# 21,282,122 less the stem's BN and the shortcuts' BNs, with each block's first BN on its input (fewer
# channels where a stage widens), plus the final BN: the same 1,792 fewer as preactresnet18 against resnet18.
PREACT = {"preactresnet18": 11_172_170, "preactresnet34": 21_280_330}
WIDE = {"wrn16_8": 10_961_370, "wrn28_10": 36_479_194}


def test_list_models_names_every_family_in_zoo_order():
    assert list_models() == [*PAPER, *TORCHVISION_1000, *PREACT, *WIDE, "fastresnet8"]
    assert resnet_cifar.list_models() == list_models()


@pytest.mark.parametrize("name,expected", PAPER.items())
def test_paper_parameter_counts(name, expected):
    assert count_parameters(create_model(name)) == expected


@pytest.mark.parametrize("name,expected", TORCHVISION_1000.items())
def test_imagenet_parameter_counts(name, expected):
    assert count_parameters(create_model(name, num_classes=1000, stem="imagenet")) == expected


@pytest.mark.parametrize("name,expected", CIFAR_STEM_10.items())
def test_cifar_stem_parameter_counts(name, expected):
    assert count_parameters(create_model(name)) == expected


@pytest.mark.parametrize("name,expected", {**PREACT, **WIDE}.items())
def test_preact_and_wide_parameter_counts(name, expected):
    with torch.device("meta"):  # counted without allocating wrn28_10's 36M weights
        assert count_parameters(create_model(name)) == expected


@pytest.mark.parametrize("name", list(TORCHVISION_1000))
def test_torchvision_weights_load_strictly_and_give_identical_outputs(name):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)().eval()
    ours = create_model(name, num_classes=1000, stem="imagenet").eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("num_classes", [10, 100])
def test_every_model_runs_forward_and_backward(name, num_classes):
    model = create_model(name, num_classes=num_classes)
    x = torch.randn(2, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (2, num_classes)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_paper_models_use_parameter_free_option_a_shortcuts_by_default():
    model = create_model("resnet20")
    shortcuts = [m for m in model.modules() if isinstance(m, PadShortcut)]
    assert len(shortcuts) == 2  # entering stages 2 and 3
    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).view(2, 16, 4, 4)
    out = shortcuts[0](x)
    assert out.shape == (2, 32, 2, 2)
    torch.testing.assert_close(out[:, :16], x[:, :, ::2, ::2])
    assert out[:, 16:].abs().sum() == 0


def test_option_b_adds_projection_shortcuts():
    model = create_model("resnet20", shortcut="B")
    assert not any(isinstance(m, PadShortcut) for m in model.modules())
    projection = model.layer2[0].downsample
    assert isinstance(projection[0], torch.nn.Conv2d) and projection[0].kernel_size == (1, 1)
    # Two 1x1 projections (16->32, 32->64) with their batch norms.
    assert count_parameters(model) == PAPER["resnet20"] + 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64


def test_bottleneck_stride_is_on_the_3x3_convolution():
    block = create_model("resnet50").layer2[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)


def test_cifar_stem_keeps_resolution_and_imagenet_stem_quarters_it():
    cifar = layer_table(create_model("resnet18"), 32)
    imagenet = layer_table(create_model("resnet18", stem="imagenet"), 32)
    assert cifar[0].output_shape == (64, 32, 32)
    assert imagenet[0].output_shape == (64, 8, 8)


def test_zero_init_residual_zeroes_the_last_batch_norm_of_each_branch():
    model = create_model("resnet50", zero_init_residual=True)
    assert all(block.bn3.weight.abs().sum() == 0 for stage in (model.layer1, model.layer4) for block in stage)
    assert create_model("resnet50").layer1[0].bn3.weight.abs().sum() > 0


def test_kaiming_init_gives_convolutions_the_fan_out_scale():
    torch.manual_seed(0)
    conv = create_model("resnet18").layer3[0].conv2
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)


def test_reset_classifier_for_fine_tuning_keeps_the_features():
    model = create_model("resnet18", num_classes=1000, stem="imagenet")
    before = model.layer1[0].conv1.weight.clone()
    model.reset_classifier(37)
    assert model.num_classes == 37
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 37)
    assert torch.equal(model.layer1[0].conv1.weight, before)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"name": "resnet7"}, "Unknown model 'resnet7'; choose one of: resnet20"),
        ({"name": "resnet20", "stem": "huge"}, "Unknown stem 'huge'"),
        ({"name": "resnet20", "shortcut": "C"}, "Unknown shortcut 'C'"),
        ({"name": "resnet20", "num_classes": 0}, "num_classes must be a positive integer"),
        ({"name": "resnet20", "dropout": 0.5}, "Unknown model option(s) dropout"),
    ],
)
def test_bad_names_and_options_are_clear_errors(kwargs, message):
    with pytest.raises(resnet_cifar.UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        create_model(**kwargs)


def test_flop_counts_are_measured():
    # resnet20 is about 41 million multiply-adds on a 32x32 image (the paper's "0.04 GFLOPs" counts MACs).
    assert count_flops(create_model("resnet20")) == pytest.approx(2 * 40.8e6, rel=0.02)
    assert count_flops(create_model("resnet18"), 64) == pytest.approx(4 * count_flops(create_model("resnet18")), rel=0.01)


def test_counting_on_the_meta_device_gives_the_real_count_and_leaves_the_network_as_it_was():
    model = create_model("resnet20").eval()
    x = torch.randn(2, 3, 32, 32)
    before = model(x)
    with torch.device("meta"):
        shapes_only = create_model("resnet20")
    assert count_flops(shapes_only) == count_flops(model)
    assert torch.equal(model(x), before)  # BatchNorm normalises again after the count
    model.train()
    count_flops(model)
    assert model.training


def test_models_command_prints_the_zoo(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "resnet1202" in out and "19,421,274" in out and "GFLOPs" in out
    assert "fastresnet8" in out
    for name, parameters in {**PREACT, **WIDE}.items():
        assert name in out and f"{parameters:,}" in out


def test_models_command_prints_a_layer_table(capsys):
    assert main(["models", "resnet56", "--input-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "layer3   BasicBlock 8" in out and "64x8x8" in out and "853,018" in out


def test_models_command_rejects_unknown_name_in_one_line(capsys):
    assert main(["models", "resnet7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Unknown model 'resnet7'" in err
