"""Muon: orthogonalised updates for the filters, plain SGD for everything else, in one optimizer."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resnet_cifar.config import TrainConfig
from resnet_cifar.models import create_model
from resnet_cifar.train.muon import Muon, orthogonalize
from resnet_cifar.train.optim import Schedule, apply_schedule, build_optimizer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("shape", [(64, 576), (576, 64), (10, 10)])
def test_orthogonalize_keeps_the_singular_vectors_and_evens_out_the_singular_values(shape):
    torch.manual_seed(0)
    rank = min(shape)
    u, _ = torch.linalg.qr(torch.randn(shape[0], rank))
    v, _ = torch.linalg.qr(torch.randn(shape[1], rank))
    matrix = u @ torch.diag(torch.logspace(0, 1, rank)) @ v.T  # singular values from 1 to 10
    result = orthogonalize(matrix)
    singular_values = torch.linalg.svdvals(result)
    assert singular_values.min() > 0.5 and singular_values.max() < 1.25  # a tenfold spread brought within 2.5x
    polar = u @ v.T  # the exact nearest semi-orthogonal matrix
    assert F.cosine_similarity(result.flatten(), polar.flatten(), dim=0) > 0.97


def test_groups_without_orthogonalize_are_updated_exactly_as_by_sgd():
    torch.manual_seed(0)
    ours, reference = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    reference.load_state_dict(ours.state_dict())
    muon = Muon(ours.parameters(), lr=0.1, momentum=0.85, nesterov=True, weight_decay=1e-2)
    sgd = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.85, nesterov=True, weight_decay=1e-2)
    for _ in range(4):
        x = torch.randn(8, 5)
        for model, optimizer in ((ours, muon), (reference, sgd)):
            optimizer.zero_grad()
            model(x).square().sum().backward()
            optimizer.step()
    for a, b in zip(ours.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b)


def test_a_filter_step_is_a_fixed_size_whatever_the_gradient_scale():
    """The update ignores the gradient's size, and the filter's own scale is reset first (BatchNorm follows it)."""
    torch.manual_seed(0)
    steps = []
    for grad_scale, weight_scale in ((1.0, 1.0), (1e3, 5.0)):
        weight = torch.nn.Parameter(torch.randn(16, 8, 3, 3) * weight_scale)
        weight.grad = torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(1)) * grad_scale
        optimizer = Muon([{"params": [weight], "orthogonalize": True}], lr=0.1, momentum=0.6)
        normalised = weight.detach() * (16**0.5 / weight.detach().norm())
        optimizer.step()
        steps.append(weight.detach() - normalised)
    torch.testing.assert_close(steps[0], steps[1], rtol=1e-3, atol=1e-4)
    assert 0.5 < steps[0].flatten(1).norm() / (0.1 * 16**0.5) < 1.3  # lr times the norm of an orthogonal 16-row matrix


def test_orthogonalising_a_vector_is_refused():
    with pytest.raises(ValueError, match="1-D parameters"):
        Muon([{"params": [torch.nn.Parameter(torch.zeros(3))], "orthogonalize": True}], lr=0.1, momentum=0.6)


def test_muon_puts_every_filter_in_one_orthogonalised_group_at_muon_lr():
    model = create_model("fastresnet8")
    model.conv1.weight.requires_grad_(False)  # as the whitened stem is
    config = TrainConfig(model="fastresnet8", optimizer="muon", lr=1.5, muon_lr=0.24, muon_momentum=0.6,
                         nesterov=True, momentum=0.85, bn_bias_lr_scale=64.0)
    optimizer = build_optimizer(model, config)
    apply_schedule(optimizer, Schedule("linear", 1.5, 10), step=5)  # half-way down: every group at half its peak
    filters = [g for g in optimizer.param_groups if g["orthogonalize"]]
    assert len(filters) == 1 and filters[0]["lr"] == pytest.approx(0.12) and filters[0]["momentum"] == 0.6
    trainable_filters = {id(p) for p in model.parameters() if p.ndim == 4 and p.requires_grad}
    assert {id(p) for p in filters[0]["params"]} == trainable_filters and len(trainable_filters) == 6
    others = [g for g in optimizer.param_groups if not g["orthogonalize"]]
    assert all(p.ndim < 4 for g in others for p in g["params"])
    assert {g["lr"] for g in others} == {0.75, 0.75 * 64}
    assert id(model.conv1.weight) not in {id(p) for g in optimizer.param_groups for p in g["params"]}


def test_muon_trains_a_resnet():
    """Colour decides the class: a few Muon steps take the loss far below chance."""
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=3)
    optimizer = build_optimizer(model, TrainConfig(optimizer="muon", lr=0.05, muon_lr=0.05, nesterov=True))
    labels = torch.randint(0, 3, (96,))
    images = torch.randn(96, 3, 8, 8) * 0.5 + F.one_hot(labels, 3).float().view(96, 3, 1, 1)
    for _ in range(15):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert F.cross_entropy(model(images), labels).item() < 0.5  # chance: ln 3 = 1.10
