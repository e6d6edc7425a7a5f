"""Model-wide BatchNorm momentum and eps."""

import pytest
import torch
from torch import nn

from detforge.models import build_model
from detforge.models.norm import set_batchnorm


def test_set_batchnorm_reaches_every_bn_module():
    m = build_model("yolo-n", 3)
    bns = [mod for mod in m.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) > 50
    assert any(b.momentum != 0.03 or b.eps != 1e-4 for b in bns)  # the test can fail
    assert set_batchnorm(m, momentum=0.03, eps=1e-4) == len(bns)
    assert all(b.momentum == 0.03 and b.eps == 1e-4 for b in bns)


def test_none_leaves_an_attribute_unchanged():
    m = nn.Sequential(nn.BatchNorm2d(2), nn.Conv2d(2, 2, 1), nn.BatchNorm1d(2))
    set_batchnorm(m, eps=1e-2)
    assert [m[0].momentum, m[0].eps, m[2].momentum, m[2].eps] == [0.1, 1e-2, 0.1, 1e-2]
    set_batchnorm(m, momentum=0.5)
    assert [m[0].momentum, m[0].eps] == [0.5, 1e-2]


def test_settings_change_what_bn_computes():
    bn = nn.BatchNorm2d(1)
    set_batchnorm(bn, momentum=0.25, eps=0.5)
    x = torch.full((2, 1, 3, 3), 4.0)
    bn.train()(x)
    assert bn.running_mean.item() == pytest.approx(0.25 * 4.0)  # new batch weighted by momentum
    bn.eval()
    with torch.no_grad():
        bn.running_mean.zero_()
        bn.running_var.fill_(1.5)
        y = bn(x)
    assert y[0, 0, 0, 0].item() == pytest.approx(4.0 / (1.5 + 0.5) ** 0.5)


@pytest.mark.parametrize("kw", [{"momentum": 0.0}, {"momentum": 1.5}, {"eps": 0.0}])
def test_invalid_values_are_errors(kw):
    with pytest.raises(ValueError, match="model.bn_"):
        set_batchnorm(nn.BatchNorm2d(1), **kw)
