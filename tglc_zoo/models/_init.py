"""The weight initialisation every family gets after it is built."""
from torch import nn

__all__ = ["init_weights_"]


def init_weights_(model: nn.Module) -> None:
    """He init for plain convs (replaced convs initialise themselves), unit BN, small linear."""
    for m in model.modules():
        if type(m) is nn.Conv2d:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
