import torch
from torch import nn

from trainer.models import MLP, LeNet, ResNet


def test_lenet_is_the_d2l_network():
    net = LeNet()
    kinds = [type(m) for m in net]
    assert kinds == [
        nn.Conv2d,
        nn.ReLU,
        nn.MaxPool2d,
        nn.Conv2d,
        nn.ReLU,
        nn.MaxPool2d,
        nn.Flatten,
        nn.Linear,
        nn.ReLU,
        nn.Linear,
        nn.ReLU,
        nn.Linear,
    ]
    c1, c2 = net[0], net[3]
    assert (c1.in_channels, c1.out_channels, c1.kernel_size, c1.padding) == (1, 6, (5, 5), (2, 2))
    assert (c2.in_channels, c2.out_channels, c2.kernel_size, c2.padding) == (6, 16, (5, 5), (0, 0))
    assert [(m.in_features, m.out_features) for m in net if isinstance(m, nn.Linear)] == [
        (400, 120),
        (120, 84),
        (84, 10),
    ]
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_every_model_fits_grey_28_and_colour_32():
    for channels, size in [(1, 28), (3, 32)]:
        x = torch.randn(4, channels, size, size)
        for model in (LeNet(channels, size), MLP(channels, size), ResNet(channels)):
            assert model(x).shape == (4, 10)
