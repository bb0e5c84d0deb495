"""Public ops. Each takes ``impl=``: "native" (compiled kernels), "reference" (plain torch), or None (native
where it is built for the input's device and dtype, else reference)."""

from synthcore.ops.bias_act import ACTIVATIONS, bias_act, bias_act_reference
from synthcore.ops.conv2d_resample import conv2d_resample, conv2d_resample_reference
from synthcore.ops.langevin import adaptive_timestep, langevin_noise, langevin_update
from synthcore.ops.modconv import demod_coefficients, modconv, modconv_reference
from synthcore.ops.pairwise import (
    PairwiseResult,
    pairwise,
    pairwise_chunked,
    pairwise_reference,
    pairwise_stats,
    pairwise_summary,
)
from synthcore.ops.upfirdn2d import (
    centring_padding,
    downsample2d,
    filter2d,
    setup_filter,
    upfirdn2d,
    upfirdn2d_reference,
    upsample2d,
)

__all__ = [
    "ACTIVATIONS",
    "PairwiseResult",
    "adaptive_timestep",
    "conv2d_resample",
    "conv2d_resample_reference",
    "demod_coefficients",
    "modconv",
    "modconv_reference",
    "langevin_noise",
    "langevin_update",
    "pairwise",
    "pairwise_chunked",
    "pairwise_reference",
    "pairwise_stats",
    "pairwise_summary",
    "bias_act",
    "bias_act_reference",
    "centring_padding",
    "downsample2d",
    "filter2d",
    "setup_filter",
    "upfirdn2d",
    "upfirdn2d_reference",
    "upsample2d",
]
