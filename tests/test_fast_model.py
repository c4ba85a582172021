"""fastresnet8, the `fast` recipe's network: its size, its shortcuts and the zoo's contracts."""
from __future__ import annotations

import pytest
import torch

import resnet_cifar
from resnet_cifar.cli import main
from resnet_cifar.models import count_parameters, create_model
from resnet_cifar.models.fast import LOGIT_SCALE, PoolBlock
from resnet_cifar.models.summary import count_flops, layer_table


def test_size_and_flops_fit_the_budget_of_a_third_of_a_pflop():
    model = create_model("fastresnet8")
    assert count_parameters(model) == 1_972_792
    flops = count_flops(model)
    assert flops == pytest.approx(0.2363e9, rel=0.01)
    # Ten epochs of 45,000 images, forward and backward (about 3x the forward).
    assert 10 * 45_000 * 3 * flops < 0.36e15


def test_blocks_add_a_residual_branch_to_the_pooled_features():
    torch.manual_seed(0)
    block = PoolBlock(8, 16).eval()
    x = torch.randn(2, 8, 6, 6)
    pooled = block.act(block.bn1(block.pool(block.conv1(x))))
    branch = block.act(block.bn2(block.conv2(pooled)))
    torch.testing.assert_close(block(x), pooled + branch)


def test_widening_convolutions_start_as_the_identity_on_their_input_channels():
    block = create_model("fastresnet8").layer2[0]
    x = torch.randn(1, 64, 5, 5)
    out = block.conv1(x)
    torch.testing.assert_close(out[:, :64], x)


def test_only_batch_norm_shifts_are_trained_not_scales():
    model = create_model("fastresnet8")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 6
    assert all(not n.weight.requires_grad and n.bias.requires_grad for n in norms)


def test_layer_table_shows_each_stage_halving_the_resolution():
    rows = layer_table(create_model("fastresnet8"))
    assert [row.output_shape for row in rows] == [(24, 31, 31), (64, 15, 15), (256, 7, 7), (256, 3, 3), (10,)]


def test_forward_scales_the_logits_and_reset_classifier_keeps_features():
    torch.manual_seed(0)
    model = create_model("fastresnet8", num_classes=100).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model(x), model.fc(model.forward_features(x)) * LOGIT_SCALE)
    before = model.layer1[0].conv1.weight.clone()
    model.reset_classifier(7)
    assert model(x).shape == (2, 7) and model.num_classes == 7
    assert torch.equal(model.layer1[0].conv1.weight, before)


def test_larger_images_still_give_one_feature_vector():
    model = create_model("fastresnet8").eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"stem": "imagenet"}, "has only the 'cifar' stem"),
        ({"shortcut": "B"}, r"Unknown model option\(s\) shortcut for fastresnet8"),
        ({"num_classes": 0}, "num_classes must be a positive integer"),
    ],
)
def test_options_it_does_not_have_are_clear_errors(kwargs, message):
    with pytest.raises(resnet_cifar.UserError, match=message):
        create_model("fastresnet8", **kwargs)


def test_models_command_skips_it_for_other_stems_and_shows_its_layers(capsys):
    assert main(["models", "--stem", "imagenet"]) == 0
    assert "fastresnet8" not in capsys.readouterr().out
    assert main(["models", "fastresnet8"]) == 0
    assert "PoolBlock 0" in capsys.readouterr().out
