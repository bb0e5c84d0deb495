"""Benchmark the StyleGAN2 generator: images/s of G(z), and forward+backward to w, native vs reference.

Random-weight generators in the official configurations: 256 (channel_base 16384) and 1024 (channel_base
32768), channel_max 512, z = w = 512, 8 mapping layers, conv_clamp 256, num_fp16_res 4 (float16 blocks run on
CUDA only; CPU is float32). Noise strengths and biases are moved off their zero init so every term runs.
Cases:
  * forward:          ``G(z)`` (mapping + synthesis, const noise) under no_grad;
  * forward+backward: ``synthesis(w broadcast to ws)`` and the gradient of a scalar of the image with respect
                      to w, weights frozen: what the identity algorithms pay per step.
Native and reference are checked against each other before timing (forward: relative to the image's largest
value; backward: relative L2 error of the gradient, see REL_TOL), and timed interleaved in one run.

    python benchmarks/bench_generator.py [--gen-res 256,1024] [--gen-batch 1,8] [--gen-cases forward,backward]
                                       [--gen-min-runs 3] [--quick] [--json out.json]

On CPU the default is the 256 config (add --full or --gen-res 256,1024 for 1024; a 1024 call at batch 8 takes
tens of seconds on 2 cores, so keep --gen-min-runs small).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

import torch

import _harness as H

CONFIGS = {256: 16384, 1024: 32768}  # resolution -> channel_base
CASES = ("forward", "backward")
# Agreement checks. Forward: max |native - reference| relative to the largest value. Backward: the relative L2
# error of the gradient, because float32 gradients through ~20 leaky-ReLU layers are sensitive: measured at 256,
# batch 1, against a float64 run, the float32 reference itself is off by 6e-4 (L2) and 4e-4 (max), native by
# 1e-3 and 8e-4. CUDA: float16 blocks round differently.
REL_TOL = {"cpu": {"forward": 1e-4, "backward": 5e-3}, "cuda": {"forward": 2e-2, "backward": 5e-2}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generator options")
    g.add_argument("--gen-res", default=None, help="configs to run, from 256,1024 (default: 256 on CPU, both on CUDA)")
    g.add_argument("--gen-batch", default="1,8", help="batch sizes (default: 1,8)")
    g.add_argument("--gen-cases", default="forward,backward", help="forward and/or backward (default: both)")
    g.add_argument("--gen-min-runs", type=int, default=3, help="timed runs per impl and case at least (default: 3)")


def build_generator(res: int, device: torch.device, seed: int = 0) -> Any:
    from synthcore.nets.stylegan2 import Generator

    G = Generator(
        z_dim=512, w_dim=512, c_dim=0, img_resolution=res, img_channels=3, channel_base=CONFIGS[res],
        channel_max=512, num_fp16_res=4, conv_clamp=256, mapping_kwargs={"num_layers": 8}, seed=seed,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
            elif name.endswith("bias") and ".affine." not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return G.eval().requires_grad_(False).to(device)


def _rel_err(a: torch.Tensor, b: torch.Tensor, case: str) -> float:
    a, b = a.double(), b.double()
    if case == "forward":
        return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def _case_fns(G: Any, case: str, z: torch.Tensor, w: torch.Tensor, gimg: torch.Tensor) -> dict[str, Callable]:
    def make(impl: str) -> Callable:
        if case == "forward":

            def fwd():
                with torch.no_grad():
                    return G(z, impl=impl)

            return fwd

        def fwd_bwd():
            wv = w.detach().requires_grad_(True)
            img = G.synthesis(wv.unsqueeze(1).expand(-1, G.num_ws, -1), impl=impl)
            (img * gimg).sum().backward()
            return wv.grad

        return fwd_bwd

    return {"reference": make("reference"), "native": make("native")}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    s = H.configure(args)
    default_res = "256,1024" if (s.device.type == "cuda" or s.full) else "256"
    resolutions = [int(r) for r in (args.gen_res or default_res).split(",") if r.strip()]
    batches = [int(b) for b in args.gen_batch.split(",") if b.strip()]
    cases = [c.strip() for c in args.gen_cases.split(",") if c.strip()]
    bad = [r for r in resolutions if r not in CONFIGS] + [c for c in cases if c not in CASES]
    if bad:
        raise SystemExit(f"unknown --gen-res/--gen-cases {bad}; choose from {list(CONFIGS)} and {list(CASES)}")
    if s.quick:
        resolutions, batches = resolutions[:1], batches[:1]
    timing = dict(s.timing, min_runs=1 if s.quick else args.gen_min_runs)
    if s.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # both impls use cuDNN/cuBLAS; keep the check meaningful
        torch.backends.cudnn.allow_tf32 = False

    rows = []
    for res in resolutions:
        G = build_generator(res, s.device)
        for batch in batches:
            gen = torch.Generator().manual_seed(batch)
            z = torch.randn(batch, 512, generator=gen).to(s.device)
            with torch.no_grad():
                w = G.mapping(z)[:, 0].contiguous()
            gimg = torch.randn(batch, 3, res, res, generator=gen).to(s.device)
            for case in cases:
                fns = _case_fns(G, case, z, w, gimg)
                ref, nat = fns["reference"](), fns["native"]()
                err = _rel_err(nat, ref, case)
                what = f"G{res} {case} batch {batch}"
                if not err <= REL_TOL[s.device.type][case]:
                    raise H.MismatchError(f"{what}: native differs from reference by {err:.2e} (relative)")
                del ref, nat
                stats = H.time_fns(fns, device=s.device, **timing)
                ref_ms, nat_ms = stats["reference"]["median_ms"], stats["native"]["median_ms"]
                row = {
                    "op": f"generator{res} {'forward' if case == 'forward' else 'forward+backward to w'}",
                    "shape": H.fmt_shape((batch, 3, res, res)),
                    "case": f"batch {batch}",
                    "device": s.device.type,
                    "dtype": "float32" if s.device.type == "cpu" else "mixed (fp16 blocks)",
                    "ref_ms": ref_ms,
                    "native_ms": nat_ms,
                    "speedup": ref_ms / nat_ms,
                    "ref_images_per_s": batch / (ref_ms / 1e3),
                    "native_images_per_s": batch / (nat_ms / 1e3),
                    "rel_err": err,
                    "reference": stats["reference"],
                    "native": stats["native"],
                    "note": "",
                }
                print(
                    f"  {what}: reference {ref_ms:.1f} ms ({row['ref_images_per_s']:.2f} img/s), native "
                    f"{nat_ms:.1f} ms ({row['native_images_per_s']:.2f} img/s), {row['speedup']:.2f}x",
                    file=sys.stderr,
                    flush=True,
                )
                rows.append(row)
                H.free_memory(s)
        del G
    return rows


def main(argv: list[str] | None = None) -> int:
    return H.bench_main(run, __doc__, add_arguments, argv)


if __name__ == "__main__":
    raise SystemExit(main())
