"""Shared plumbing of the op layer: choosing an implementation and handing tensors to the native module."""

from typing import Any, Optional

import torch
import torch.utils.dlpack

from synthcore import _native

IMPLS = ("native", "reference")

_CPU_DTYPES = (torch.float32, torch.float64)
_CUDA_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def native_unavailable_reason(device: torch.device, dtype: torch.dtype) -> Optional[str]:
    """Why the native kernels cannot run for this device and dtype, or None if they can."""
    if not _native.is_built():
        return f"the native module is not built ({_native.build_info().get('error')})"
    if device.type == "cpu":
        if dtype not in _CPU_DTYPES:
            return f"native CPU kernels take float32 or float64, not {dtype}"
        return None
    if device.type == "cuda":
        if not _native.cuda_compiled():
            return "this build of synthcore has no CUDA kernels (nvcc was not found when it was built)"
        if dtype not in _CUDA_DTYPES:
            return f"native CUDA kernels take float16, bfloat16, float32 or float64, not {dtype}"
        return None
    return f"no native kernels for device type {device.type!r}"


def choose_impl(op: str, impl: Optional[str], x: torch.Tensor, native_dtypes: Optional[tuple] = None) -> str:
    """Resolve ``impl`` (None, "native" or "reference") for an input tensor.

    None picks native where it is built for the tensor's device and dtype, else the reference.
    Asking for "native" where it cannot run is an error, never a silent fallback. ``native_dtypes`` narrows
    the dtypes an op's native kernels take.
    """
    if impl is not None and impl not in IMPLS:
        raise ValueError(f"{op}: impl must be None, 'native' or 'reference', got {impl!r}")
    if impl == "reference":
        return impl
    reason = native_unavailable_reason(x.device, x.dtype)
    if reason is None and native_dtypes is not None and x.dtype not in native_dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in native_dtypes)
        reason = f"the {op} kernels take {names}, not {x.dtype}"
    if reason is None:
        return "native"
    if impl == "native":
        raise RuntimeError(f"{op}: impl='native' is not available: {reason}")
    return "reference"


def activation_format(t: torch.Tensor) -> torch.memory_format:
    """The dense layout a native kernel runs a 4-D activation in: channels_last when ``t`` is channels_last on CPU
    (the CPU kernels have channels-last variants), else contiguous (NCHW). A tensor that is both (C == 1 or
    H * W == 1) counts as contiguous."""
    if (
        t.ndim == 4
        and t.device.type == "cpu"
        and not t.is_contiguous()
        and t.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.channels_last
    return torch.contiguous_format


def to_native(t: torch.Tensor) -> Any:
    """A DLPack capsule of a dense tensor (contiguous, or channels_last on CPU); the native side validates it again."""
    return torch.utils.dlpack.to_dlpack(t.detach())


# The native entry points refuse thread counts outside [1, 1024] (csrc/common/scalar_checks.h).
MAX_NATIVE_THREADS = 1024


def num_threads() -> int:
    """torch's intra-op thread count, within what the native entry points accept."""
    return max(1, min(torch.get_num_threads(), MAX_NATIVE_THREADS))


def cuda_stream(t: torch.Tensor) -> int:
    """The caller's current CUDA stream for t's device (0 on CPU): kernels run in stream order with torch."""
    if t.device.type != "cuda":
        return 0
    return torch.cuda.current_stream(t.device).cuda_stream


def require_tensor(op: str, name: str, t: Any, ndims: tuple = ()) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if ndims and t.ndim not in ndims:
        want = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{op}: {name} must have {want} dimensions, got shape {list(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{op}: {name} must be a floating-point tensor, got {t.dtype}")
    return t


def require_same_device(op: str, name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if t.device != ref.device:
        raise ValueError(f"{op}: {name} is on {t.device} but {ref_name} is on {ref.device}")
