"""Small CNNs built from a list of op names, for the exactness property of group parallelism.

Every op keeps the activation's shape (B, C, H, W), so any sequence is a valid model. Some ops are
channel-local, some read the channel count from ``x.shape``/``x.size()``, some tie weights to an earlier
layer, some mix channel groups: group parallelism must run each model exactly as one process does, or
refuse it naming the module and the op — never compute something else.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from tglc_zoo.layers import GroupConv2d, TwoLevelGroupConv2d

OPS = ("gc2l", "gc", "gc_2n", "bn", "relu", "residual", "avgpool", "maxpool", "se_gate", "tied_gc2l", "tied_bn",
       "scale_by_channels", "mul_by_size", "positional", "zeros_like_shape", "cat_width", "cat_batch",
       "dense_conv", "channel_mean", "layer_norm", "frozen", "tied_to_head")
CHANNELS, WIDTH = 8, 8


class RandomCNN(nn.Module):
    def __init__(self, ops: list[str], groups: int) -> None:
        super().__init__()
        c = CHANNELS
        self.ops = list(ops)
        self.stem = nn.Conv2d(3, c, 3, padding=1, bias=False)
        self.layers = nn.ModuleDict()
        first_gc2l: TwoLevelGroupConv2d | None = None
        first_bn: nn.BatchNorm2d | None = None
        for i, op in enumerate(ops):
            key = f"l{i}"
            if op in ("gc2l", "tied_gc2l"):
                layer = TwoLevelGroupConv2d(c, c, 3, padding=1, groups=groups)
                if op == "tied_gc2l" and first_gc2l is not None:
                    layer.conv.weight = first_gc2l.conv.weight
                    layer.restrict.weight = first_gc2l.restrict.weight
                    layer.coarse.weight = first_gc2l.coarse.weight
                first_gc2l = first_gc2l or layer
                self.layers[key] = layer
            elif op in ("gc", "gc_2n"):
                self.layers[key] = GroupConv2d(c, c, 3, padding=1, groups=groups * (2 if op == "gc_2n" else 1))
            elif op in ("bn", "tied_bn"):
                bn = nn.BatchNorm2d(c)
                if op == "tied_bn" and first_bn is not None:
                    bn.weight = first_bn.weight
                    bn.bias = first_bn.bias
                first_bn = first_bn or bn
                self.layers[key] = bn
            elif op == "se_gate":
                self.layers[key] = nn.Sequential(nn.Linear(c, c // 2), nn.ReLU(), nn.Linear(c // 2, c))
            elif op == "dense_conv":
                self.layers[key] = nn.Conv2d(c, c, 1)
            elif op == "layer_norm":
                self.layers[key] = nn.LayerNorm([c, WIDTH, WIDTH])
            elif op == "frozen":
                frozen = GroupConv2d(c, c, 1, groups=groups)
                frozen.weight.requires_grad_(False)
                self.layers[key] = frozen
            elif op == "tied_to_head":  # a split layer's bias shared with a replicated layer's
                self.layers[key] = GroupConv2d(c, c, 1, groups=groups, bias=True)
        self.positional = nn.Parameter(torch.randn(1, 2 * c, 1, 1) * 0.1)
        self.pre = nn.Linear(c, c)   # on the pooled features: replicated
        self.fc = nn.Linear(c, 10)
        for i, op in enumerate(ops):
            if op == "tied_to_head":
                self.layers[f"l{i}"].bias = self.pre.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i, op in enumerate(self.ops):
            key = f"l{i}"
            if op in ("gc2l", "tied_gc2l", "gc", "gc_2n", "bn", "tied_bn", "dense_conv", "layer_norm", "frozen"):
                x = self.layers[key](x)
            elif op == "tied_to_head":
                x = self.layers[key](x)
            elif op == "relu":
                x = F.relu(x)
            elif op == "residual":
                x = x + F.relu(x) * 0.5
            elif op == "avgpool":
                x = F.avg_pool2d(x, 3, stride=1, padding=1)
            elif op == "maxpool":
                x = F.max_pool2d(x, 3, stride=1, padding=1)
            elif op == "se_gate":  # the classic SENet: sizes from x.size(), the gate viewed with them
                b, c, _, _ = x.size()
                y = F.adaptive_avg_pool2d(x, 1).view(b, c)
                x = x * torch.sigmoid(self.layers[key](y)).view(b, c, 1, 1)
            elif op == "scale_by_channels":
                x = x / x.shape[1] ** 0.5
            elif op == "mul_by_size":
                x = x * (x.size(1) / 8.0)
            elif op == "positional":
                x = x + self.positional[:, :x.size(1)]
            elif op == "zeros_like_shape":
                x = x + torch.zeros((x.size(0), x.size(1), 1, 1), dtype=x.dtype)
            elif op == "cat_width":
                x = F.avg_pool2d(torch.cat([x, 2 * x], dim=3), (1, 2))
            elif op == "cat_batch":
                x = torch.cat([x, torch.zeros(x.shape, dtype=x.dtype)], dim=0)
            elif op == "channel_mean":
                x = x - x.mean(dim=1, keepdim=True)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(self.pre(x))


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / max(1.0, float(b.abs().max()))) if a.numel() else 0.0


def check_models(rank: int, world: int, specs: list[list[str]], inplace: bool = False) -> list[dict[str, Any]]:
    """For each spec: group-parallel against one process (float64: logits, gradients, one SGD step), or the
    refusal; any other exception is reported as a failure."""
    import copy

    from tglc_zoo.distributed import GroupParallelError, group_parallel

    out: list[dict[str, Any]] = []
    for i, ops in enumerate(specs):
        torch.manual_seed(100 + i)
        model = RandomCNN(ops, world).double().train()
        ref = copy.deepcopy(model)
        g = torch.Generator().manual_seed(7 + i)
        x = torch.randn(4, 3, WIDTH, WIDTH, generator=g, dtype=torch.float64)
        try:
            shard = group_parallel(model, example_input=x, inplace=inplace)
        except GroupParallelError as e:
            out.append({"ops": ops, "refused": str(e)})
            continue
        except Exception as e:  # a raw error is a defect: report it
            out.append({"ops": ops, "raw": f"{type(e).__name__}: {e}"})
            continue
        try:
            ref_out, got = ref(x), shard(x)
            ((ref_out ** 2).mean() + ref_out.mean()).backward()
            ((got ** 2).mean() + got.mean()).backward()
            full = dict(ref.named_parameters())
            sharded = set(shard.plan.sharded)
            grad = 0.0
            for k, p in shard.module.named_parameters():
                want = full[k].grad
                if want is None or p.grad is None:
                    assert (want is None) == (p.grad is None), k
                    continue
                want = shard.plan.local_slice(want, shard.rank, k) if k in sharded else want
                grad = max(grad, _maxdiff(p.grad, want))
            for params in (ref.parameters(), shard.parameters()):
                torch.optim.SGD([p for p in params if p.requires_grad], lr=0.1).step()
            state, ref_state = shard.full_state_dict(), ref.state_dict()
            step = max(_maxdiff(state[k], ref_state[k]) for k in ref_state)
            out.append({"ops": ops, "logits": _maxdiff(got, ref_out), "grad": grad, "step": step})
        except Exception as e:
            out.append({"ops": ops, "raw": f"{type(e).__name__}: {e}"})
        dist.barrier()
    return out
