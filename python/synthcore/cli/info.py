"""``synthcore info``: version, native build and hardware report."""

import ctypes
import json
import platform

from synthcore.cli.toolkit import add_command


def add_parser(sub) -> None:
    p = add_command(sub, "info", help="show the version, the native build and the hardware synthcore sees", quiet=False)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(run=run)


def collect() -> dict:
    import torch

    from synthcore import __version__, _native

    build = _native.build_info()
    gpus = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "synthcore": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "native_built": build.get("native", False),
        "native_error": build.get("error"),
        "cpu_isa_active": build.get("cpu_isa_active"),
        "cpu_isa_compiled": build.get("cpu_isa_compiled"),
        "cuda_kernels_compiled": build.get("cuda_compiled", False),
        "cuda_archs": build.get("cuda_archs", ""),
        "cuda_runtime_version": build.get("cuda_runtime_version", 0),
        "gpu_visible": bool(gpus),
        "gpus": gpus,
        "native_cuda_devices": build.get("cuda_device_count", 0),
        "native_cuda_note": build.get("cuda_error", ""),
        "gpu_driver_found": bool(gpus) or gpu_driver_found(),
    }


def gpu_driver_found() -> bool:
    """Whether the NVIDIA driver library can be loaded (without it the CUDA runtime reports an "insufficient
    driver version", which reads like a broken installation rather than a machine without a GPU)."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}" if v else "n/a"


def run(args) -> int:
    d = collect()
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    print(f"synthcore {d['synthcore']}  (python {d['python']}, torch {d['torch']}, {d['torch_threads']} threads)")
    if not d["native_built"]:
        print(f"native kernels: NOT BUILT ({d['native_error']}); ops run their pure-torch references")
        return 0
    print(
        f"native kernels: built; CPU variant in use: {d['cpu_isa_active']} "
        f"(compiled: {', '.join(d['cpu_isa_compiled'])})"
    )
    if d["cuda_kernels_compiled"]:
        runtime = _cuda_version(d["cuda_runtime_version"])
        print(f"CUDA kernels:   compiled for {d['cuda_archs']} (CUDA runtime {runtime})")
    else:
        print("CUDA kernels:   not compiled (no nvcc at build time)")
    if d["gpu_visible"]:
        print(f"GPU:            {', '.join(d['gpus'])}")
    else:
        note = ""
        if not d["gpu_driver_found"]:
            note = " (no GPU driver found)"
        elif d["native_cuda_note"] and d["cuda_kernels_compiled"]:
            note = f" (CUDA runtime: {d['native_cuda_note']})"
        print(f"GPU:            none visible{note}")
    return 0
