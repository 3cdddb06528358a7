"""Dense → grouped conversion: GC (block Jacobi) or GC-2L weights from a trained dense network.

* :func:`to_grouped` converts a whole SC zoo model;
* :func:`fit_conv` fits one dense kernel (the per-layer problem; see :mod:`tglc_zoo.convert.fit`);
* :func:`recalibrate_batchnorm` re-estimates BatchNorm statistics after conversion;
* :func:`input_moments` collects the calibration statistics (:mod:`tglc_zoo.convert.calibration`);
* :func:`dense_kernel` / :func:`kernel_error` give the dense kernel of a GC/GC-2L layer and the error
  of an approximation (:mod:`tglc_zoo.convert.kernel`).
"""
from .batchnorm import recalibrate_batchnorm
from .calibration import input_moments
from .fit import METHODS, TARGET_TYPES, ConvFit, fit_conv
from .kernel import dense_kernel, diagonal_blocks, kernel_error
from .layer import layer_kernel
from .model import LayerReport, to_grouped

__all__ = ["METHODS", "TARGET_TYPES", "ConvFit", "LayerReport", "dense_kernel", "diagonal_blocks", "fit_conv",
           "input_moments", "kernel_error", "layer_kernel", "recalibrate_batchnorm", "to_grouped"]
