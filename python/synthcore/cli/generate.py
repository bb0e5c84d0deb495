"""``synthcore generate``: images from a StyleGAN2 generator for a list of seeds.

Conventions follow the official ``gen_images.py``: the latent of seed s is ``RandomState(s).randn(1, z_dim)``
(drawn per seed, so an image does not depend on the batch it ran in), images are written as ``seed%04d.png``
after ``clamp(img * 127.5 + 128, 0, 255)`` truncated to uint8. The latents used are written beside them
(``latents.npz``: ``seeds``, ``z`` float64 as drawn, ``c``, ``w`` the mapping output before truncation, ``w_avg``
and ``meta_json`` with the truncation settings; :func:`ws_from_latents` rebuilds the ws the images were made
from). One w per image rather than ``num_ws`` keeps the file 2 * log2(R) - 2 times smaller for large runs.
"""

import datetime
import io
import json
import math
from pathlib import Path
from typing import List, Optional

import numpy as np

from synthcore.cli.toolkit import (
    UserError,
    add_command,
    add_device_option,
    add_impl_option,
    check_at_least,
    finite_float,
    impl_of,
    model_file,
    resolve_device,
)

MAX_SEED = 2**32 - 1  # numpy RandomState seeds are 32-bit


def parse_seeds(text: str) -> List[int]:
    """Parse "0-9,20" -> [0, 1, ..., 9, 20]: comma-separated seeds and inclusive ranges, duplicates dropped."""
    seeds: List[int] = []
    seen = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise UserError(f"--seeds {text!r}: empty entry")
        lo_hi = part.split("-")
        try:
            if len(lo_hi) == 1:
                lo = hi = int(lo_hi[0])
            elif len(lo_hi) == 2:
                lo, hi = int(lo_hi[0]), int(lo_hi[1])
            else:
                raise ValueError
        except ValueError:
            raise UserError(f"--seeds: {part!r} is neither a seed nor a range like 0-9") from None
        if hi < lo:
            raise UserError(f"--seeds: range {part!r} runs backwards")
        if lo < 0 or hi > MAX_SEED:
            raise UserError(f"--seeds: seeds must lie in 0..{MAX_SEED}, got {part!r}")
        for s in range(lo, hi + 1):
            if s not in seen:
                seen.add(s)
                seeds.append(s)
    return seeds


def parse_label(text: str) -> List[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"--label {text!r}: expected comma-separated numbers") from None
    if not all(math.isfinite(v) for v in values):
        raise UserError(f"--label {text!r}: values must be finite numbers")
    return values


def ws_from_latents(latents) -> np.ndarray:
    """The ws [N, num_ws, w_dim] behind each image of a ``latents.npz`` (a path or the loaded file)."""
    import torch

    from synthcore.nets.stylegan2 import truncate_ws

    if not hasattr(latents, "files"):
        latents = np.load(latents)
    meta = json.loads(str(latents["meta_json"]))
    w, w_avg = torch.from_numpy(latents["w"]), torch.from_numpy(latents["w_avg"])
    return truncate_ws(w, w_avg, meta["num_ws"], meta["truncation_psi"], meta["truncation_cutoff"]).numpy()


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "generate",
        help="generate images from a StyleGAN2 network for a list of seeds",
        description="Generate seed%04d.png images (and latents.npz) from a StyleGAN2 generator.",
    )
    p.add_argument(
        "--network",
        required=True,
        help="official .pkl snapshot, synthcore .pt / .safetensors file, or an installed model's name",
    )
    p.add_argument("--seeds", required=True, help="seeds and inclusive ranges, e.g. 0-9,20")
    p.add_argument("--trunc", type=finite_float, default=1.0, help="truncation psi (1: none)")
    p.add_argument("--trunc-cutoff", type=int, default=None, help="truncate only the first N ws (None: all)")
    lab = p.add_mutually_exclusive_group()
    lab.add_argument("--class", dest="class_idx", type=int, default=None, help="class index (conditional networks)")
    lab.add_argument("--label", default=None, help="label vector v1,v2,... of length c_dim (conditional networks)")
    p.add_argument(
        "--noise-mode", choices=["const", "random", "none"], default="const",
        help="per-layer noise: the stored constant, fresh random noise (not reproducible), or none",
    )  # fmt: skip
    p.add_argument("--outdir", required=True, help="folder for the images (created if needed)")
    p.add_argument("--latents", default=None, help="where to write the latents (None: OUTDIR/latents.npz)")
    p.add_argument("--batch", type=int, default=16, help="images per generator call")
    add_device_option(p)
    add_impl_option(p)
    p.add_argument("--key", choices=["G_ema", "G"], default="G_ema", help="network to use from an official snapshot")
    p.set_defaults(run=run)


def _labels(G, class_idx: Optional[int], label: Optional[str], n: int) -> np.ndarray:
    c = np.zeros((n, G.c_dim), np.float32)
    if G.c_dim == 0:
        if class_idx is not None or label is not None:
            raise UserError("this network is unconditional (c_dim=0): drop --class / --label")
        return c
    if class_idx is None and label is None:
        raise UserError(f"this network is conditional (c_dim={G.c_dim}): pass --class K or --label v1,v2,...")
    if class_idx is not None:
        if not 0 <= class_idx < G.c_dim:
            raise UserError(f"--class {class_idx} is out of range for c_dim={G.c_dim}")
        c[:, class_idx] = 1
        return c
    values = parse_label(label)
    if len(values) != G.c_dim:
        raise UserError(f"--label has {len(values)} values but the network takes c_dim={G.c_dim}")
    c[:] = np.asarray(values, np.float32)
    return c


def run(args) -> int:
    import torch

    from synthcore import __version__, imageio
    from synthcore.fileio import sha256_file, write_bytes_atomic
    from synthcore.nets.generators import load_generator
    from synthcore.nets.stylegan2 import truncate_ws
    from synthcore.progress import Progress

    seeds = parse_seeds(args.seeds)
    check_at_least("--batch", args.batch, 1)
    if args.trunc_cutoff is not None:
        check_at_least("--trunc-cutoff", args.trunc_cutoff, 0)
    device = resolve_device(args.device)
    impl = impl_of(args)
    network = model_file("--network", args.network)
    G = load_generator(network, device=device, key=args.key)
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    latents_path = Path(args.latents) if args.latents else outdir / "latents.npz"

    c_all = _labels(G, args.class_idx, args.label, len(seeds))
    z_all = np.stack([np.random.RandomState(s).randn(G.z_dim) for s in seeds]) if seeds else np.zeros((0, G.z_dim))
    w_all = np.zeros((len(seeds), G.w_dim), np.float32)
    with Progress(len(seeds), "generate", enabled=not args.quiet) as bar, torch.no_grad():
        for start in range(0, len(seeds), args.batch):
            stop = min(start + args.batch, len(seeds))
            z = torch.from_numpy(z_all[start:stop]).to(device=device, dtype=torch.float32)
            c = torch.from_numpy(c_all[start:stop]).to(device)
            w = G.mapping(z, c, impl=impl)[:, 0]
            ws = truncate_ws(w, G.mapping.w_avg, G.num_ws, args.trunc, args.trunc_cutoff)
            img = G.synthesis(ws, noise_mode=args.noise_mode, impl=impl)
            pixels = (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy()
            for i, seed in enumerate(seeds[start:stop]):
                imageio.write_png(outdir / f"seed{seed:04d}.png", pixels[i])
            w_all[start:stop] = w.float().cpu().numpy()
            bar.update(stop - start)

    meta = {
        "format": "synthcore.latents/1",
        "synthcore_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "network": str(network.resolve()),
        "network_sha256": sha256_file(network),
        "key": args.key,
        "truncation_psi": args.trunc,
        "truncation_cutoff": args.trunc_cutoff,
        "num_ws": G.num_ws,
        "noise_mode": args.noise_mode,
        "class": args.class_idx,
        "label": args.label,
        "impl": args.impl,
        "device": str(device),
    }
    buf = io.BytesIO()
    w_avg = G.mapping.w_avg.float().cpu().numpy()
    np.savez(buf, seeds=np.asarray(seeds, np.int64), z=z_all, c=c_all, w=w_all, w_avg=w_avg,
             meta_json=np.array(json.dumps(meta)))  # fmt: skip
    write_bytes_atomic(latents_path, buf.getvalue())
    if not args.quiet:
        print(
            f"wrote {len(seeds)} images ({G.img_resolution}x{G.img_resolution}) to {outdir}, latents to {latents_path}"
        )
    return 0
