"""Dense → grouped conversion: GC (block Jacobi) or GC-2L weights from a trained dense network — any CNN.

* :func:`create_grouped` — a timm / torchvision name (or model) → its GC / GC-2L version, in one call;
* :func:`to_grouped` converts a model: a dense zoo model into its registered GC/GC-2L architecture, any
  other ``nn.Module`` by surgery on its eligible ``nn.Conv2d`` (:mod:`.surgery`), with a
  :class:`ConversionReport`;
* :func:`fit_conv` fits one dense kernel (the per-layer problem; see :mod:`tglc_zoo.convert.fit`);
* :func:`recalibrate_batchnorm` re-estimates BatchNorm statistics after conversion;
* :func:`input_moments` collects the calibration statistics (:mod:`tglc_zoo.convert.calibration`);
* :func:`dense_kernel` / :func:`kernel_error` give the dense kernel of a GC/GC-2L layer and the error
  of an approximation (:mod:`tglc_zoo.convert.kernel`);
* :mod:`.rebuild` — converted models as checkpoints (the timm-registered architecture ``tglc_grouped``).
"""
from .batchnorm import recalibrate_batchnorm
from .calibration import input_moments
from .create import create_dense, create_grouped
from .fit import METHODS, TARGET_TYPES, ConvFit, fit_conv
from .kernel import dense_kernel, diagonal_blocks, kernel_error
from .layer import layer_kernel
from .model import to_grouped
from .rebuild import GROUPED_ARCH, build_grouped
from .report import ConversionReport, LayerReport, SkippedConv
from .spec import ConversionError, GroupingSpec
from .surgery import ConvChoice, choose_convs

__all__ = ["METHODS", "TARGET_TYPES", "GROUPED_ARCH", "ConvChoice", "ConvFit", "ConversionError", "ConversionReport",
           "GroupingSpec", "LayerReport", "SkippedConv", "build_grouped", "choose_convs", "create_dense",
           "create_grouped", "dense_kernel", "diagonal_blocks", "fit_conv", "input_moments", "kernel_error",
           "layer_kernel", "recalibrate_batchnorm", "to_grouped"]
