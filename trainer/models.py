"""The models: d2l's LeNet, an MLP, and a small ResNet for 28x28 and 32x32 inputs."""

from __future__ import annotations

from torch import nn


class LeNet(nn.Sequential):
    """LeNet as the d2l chapter "Learning Rate Scheduling" defines it (ReLU and max-pooling).

    At 28x28 the flattened features are 16*5*5 = 400, exactly the chapter's Linear(400, 120); other input
    sizes change only that count.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10):
        side = ((image_size + 4 - 4) // 2 - 4) // 2  # conv k5 pad2, pool 2, conv k5, pool 2
        super().__init__(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )


class MLP(nn.Sequential):
    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        hidden: list[int] = (256, 128),
        dropout: float = 0.0,
    ):
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size * image_size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
            width = h
        super().__init__(*layers, nn.Linear(width, num_classes))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet: a 3x3 stem, then one stage per width (the first at stride 1, the rest at stride 2),
    global average pooling and a linear head. Any input size works (28x28 grey, 32x32 colour)."""

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, widths: list[int] = (16, 32, 64), blocks_per_stage: int = 1
    ):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        c = widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks_per_stage):
                layers.append(BasicBlock(c, w, stride=2 if i > 0 and j == 0 else 1))
                c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x):
        return self.head(self.features(x))
