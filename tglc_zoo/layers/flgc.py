"""FLGC: fully learnable group convolution (Wang et al., CVPR 2019) and its deployed form.

Training form: a dense weight masked by learned group assignments. Two logit matrices assign every
input channel (``C_in × N``) and every filter (``C_out × N``) to one of N groups; the forward pass
uses the hard one-hot assignment with the gradient of the softmax (straight-through), and filter o
sees input channel i only when both were assigned to the same group.

Deployed form (:class:`DeployedFLGC`): the same function as a few real grouped convolutions over
permuted channels. Groups come out uneven in general, so every non-empty group keeps its own
slice; when all groups have the same sizes it is a single ``groups=N`` convolution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import IntOrPair, check_groups, pair, resolve_padding
from .init import he_init_


def hard_assignment(logits: torch.Tensor) -> torch.Tensor:
    """One-hot argmax in the forward pass, softmax gradient in the backward pass."""
    soft = logits.softmax(dim=1)
    hard = F.one_hot(soft.argmax(dim=1), logits.shape[1]).to(soft.dtype)
    return hard - soft.detach() + soft


def _contiguous_logits(channels: int, groups: int) -> torch.Tensor:
    """Logits that start at GC's contiguous assignment, with a small random perturbation."""
    logits = torch.randn(channels, groups) * 1e-2
    logits[torch.arange(channels), torch.arange(channels) * groups // channels] += 1.0
    return logits


class FLGCConv2d(nn.Module):
    """Learnable-assignment group convolution (training form: dense weight + assignment logits)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair | None = None, groups: int = 1, bias: bool = False,
                 dilation: IntOrPair = 1) -> None:
        super().__init__()
        check_groups(in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.dilation = pair(dilation, "dilation")
        self.padding = resolve_padding(kernel_size, padding, dilation)
        conv = nn.Conv2d(in_channels, out_channels, self.kernel_size, bias=bias)
        he_init_(conv)
        self.weight = conv.weight
        self.bias = conv.bias
        self.in_assign = nn.Parameter(_contiguous_logits(in_channels, groups))
        self.out_assign = nn.Parameter(_contiguous_logits(out_channels, groups))

    def mask(self) -> torch.Tensor:
        """(C_out, C_in) connectivity: 1 where filter and input channel share a group."""
        return hard_assignment(self.out_assign) @ hard_assignment(self.in_assign).t()

    def in_groups(self) -> torch.Tensor:
        return self.in_assign.argmax(dim=1)

    def out_groups(self) -> torch.Tensor:
        return self.out_assign.argmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.mask().to(self.weight.dtype)[:, :, None, None]
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups} (learned)")


class DeployedFLGC(nn.Module):
    """Inference form of :class:`FLGCConv2d`: real grouped convs over permuted channels.

    ``in_index`` gathers the input channels group by group; the convolution output (filters group
    by group) is scattered back to natural filter order through ``out_index``.
    """

    def __init__(self, layer: FLGCConv2d) -> None:
        super().__init__()
        in_g, out_g = layer.in_groups().cpu(), layer.out_groups().cpu()
        self.in_channels, self.out_channels, self.groups = layer.in_channels, layer.out_channels, layer.groups
        self.kernel_size, self.stride, self.padding = layer.kernel_size, layer.stride, layer.padding
        self.dilation = layer.dilation
        in_sizes = torch.bincount(in_g, minlength=layer.groups)
        out_sizes = torch.bincount(out_g, minlength=layer.groups)
        in_order = torch.argsort(in_g, stable=True)
        out_order = torch.argsort(out_g, stable=True)
        self.in_index: torch.Tensor  # buffers, registered next
        self.out_index: torch.Tensor
        self.register_buffer("in_index", in_order, persistent=True)
        # position of natural filter o inside the group-ordered output
        self.register_buffer("out_index", torch.argsort(out_order), persistent=True)
        self.balanced = bool((in_sizes == in_sizes[0]).all() and (out_sizes == out_sizes[0]).all()
                             and in_sizes[0] > 0)
        w = layer.weight.detach()
        b = layer.bias.detach() if layer.bias is not None else None
        self.convs = nn.ModuleList()
        self.splits: list[int] = []
        self.out_sizes: list[int] = []
        # per conv of ``convs``: where its input channels start in the gathered input, and how many there are
        self.in_starts: list[int] = []
        self.in_counts: list[int] = []
        in_start = out_start = 0
        blocks = []
        for g in range(layer.groups):
            ni, no = int(in_sizes[g]), int(out_sizes[g])
            blocks.append((in_order[in_start:in_start + ni], out_order[out_start:out_start + no]))
            in_start, out_start = in_start + ni, out_start + no
        if self.balanced:
            weight = torch.cat([w[o][:, i] for i, o in blocks], dim=0)
            conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                             self.dilation, groups=self.groups, bias=b is not None)
            conv.weight.data.copy_(weight)
            if b is not None:
                assert conv.bias is not None  # built with bias=b is not None
                conv.bias.data.copy_(torch.cat([b[o] for _, o in blocks]))
            self.convs.append(conv)
            self.splits = [self.in_channels]
            self.out_sizes = [self.out_channels]
            self.in_starts, self.in_counts = [0], [self.in_channels]
        else:
            start = 0
            for i, o in blocks:
                self.splits.append(len(i))
                self.out_sizes.append(len(o))
                start += len(i)
                if len(o) == 0:
                    continue
                conv = nn.Conv2d(max(len(i), 1), len(o), self.kernel_size, self.stride, self.padding,
                                 self.dilation, bias=b is not None)
                if len(i) == 0:  # filters that see no input: only their bias survives
                    conv.weight.data.zero_()
                else:
                    conv.weight.data.copy_(w[o][:, i])
                if b is not None:
                    assert conv.bias is not None  # built with bias=b is not None
                    conv.bias.data.copy_(b[o])
                self.convs.append(conv)
                self.in_starts.append(start - len(i))
                self.in_counts.append(len(i))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # branches only on what construction fixed, so FX traces it and TorchScript compiles it
        x = x.index_select(1, self.in_index)
        if self.balanced:
            y = self.convs[0](x)
        else:
            outs: list[torch.Tensor] = []
            for i, conv in enumerate(self.convs):
                start, count = self.in_starts[i], self.in_counts[i]
                # a group without input channels: its convolution sees one channel of zeros
                xs = x[:, start:start + count] if count > 0 else torch.zeros_like(x[:, :1])
                outs.append(conv(xs))
            y = torch.cat(outs, dim=1)
        return y.index_select(1, self.out_index)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, balanced={self.balanced}, in_sizes={self.splits}, out_sizes={self.out_sizes}"
