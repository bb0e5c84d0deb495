"""Benchmark `synthcore render`'s image path: images per second writing a collection's PNGs with the former
hand-written PNG codec (zlib level 6, no row filters, read from git at --baseline-rev) and with the Pillow
encoder of synthcore.imageio, in one run.

Two measurements on the demo's random generator (z = w = 128, channel_base 2048, channel_max 128):
  encode: the PNG encoder alone, one thread, on the rendered crops (images/s, bytes per image); Pillow at
          each --levels compression level, so the level in synthcore.imageio can be chosen from the same run;
  render: dataset.render.render_collection end to end (synthesis, crop, uint8 conversion, PNG encoding and
          atomic writes on its thread pool), overwrite=True, the same collection and generator; only the
          function that writes one PNG differs. Rounds alternate which variant runs first; medians reported.

    python benchmarks/bench_render.py [--render-images 128] [--render-res 64] [--render-crop arcface]
                                      [--render-rounds 3] [--levels 1,3,6] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np
import torch

import _harness as H

# The last commit whose synthcore/imageio.py is the hand-written codec ("today's" render, the baseline).
BASELINE_REV = "646a166"
REPO = Path(__file__).resolve().parents[1]


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("render options")
    g.add_argument("--render-images", type=int, default=128, help="images per render (default: 128)")
    g.add_argument("--render-res", type=int, default=64, help="generator resolution (default: 64, the demo's)")
    g.add_argument(
        "--render-crop", default="arcface", help="crop preset, or none for full frames (default: arcface, 112 px)"
    )
    g.add_argument("--render-batch", type=int, default=16, help="samples per synthesis call (default: 16)")
    g.add_argument("--render-rounds", type=int, default=3, help="timed renders per variant (default: 3)")
    g.add_argument("--levels", default="1,3,6", help="Pillow compression levels of the encode sweep")
    g.add_argument("--baseline-rev", default=BASELINE_REV, help=f"git revision of the old codec ({BASELINE_REV})")


def load_baseline(rev: str, workdir: Path) -> ModuleType:
    """The hand-written imageio.py of ``rev`` as a stand-alone module (it needs only numpy and torch)."""
    src = subprocess.run(
        ["git", "show", f"{rev}:python/synthcore/imageio.py"], cwd=REPO, capture_output=True, text=True, check=False
    )
    if src.returncode != 0 or "def encode_png" not in src.stdout or "PIL" in src.stdout:
        raise SystemExit(f"cannot read the hand-written codec at {rev}: {src.stderr.strip() or 'not that codec'}")
    path = workdir / "imageio_baseline.py"
    path.write_text(src.stdout)
    spec = importlib.util.spec_from_file_location("imageio_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(res: int, n: int, folder: Path):
    """The demo's generator at ``res`` (random weights, seeded) and a collection of ``n`` samples for it."""
    from synthcore.dataset import SampleCollection
    from synthcore.nets.stylegan2 import Generator

    G = Generator(
        z_dim=128, w_dim=128, img_resolution=res, mapping_kwargs={"num_layers": 2}, channel_base=2048,
        channel_max=128, seed=0,
    ).eval()  # fmt: skip
    with torch.no_grad():
        w = G.mapping(torch.randn(n, 128, generator=torch.Generator().manual_seed(1)), None, truncation_psi=0.7)[:, 0]
    path = folder / "samples.h5"
    per = 8  # a reference and 7 variations per identity, like a real collection's folders
    labels = ["reference"] + [f"v{i}" for i in range(per - 1)]
    with SampleCollection.create(path, w_dim=128) as c:
        for lo in range(0, n, per):
            k = min(per, n - lo)
            c.append(lo // per, labels[:k], w=w[lo : lo + k].numpy())
    return G, path


def rendered_pixels(G, collection_path: Path, crop: str | None, n: int) -> list[np.ndarray]:
    """The uint8 [H, W, 3] images render_collection would write (for the encoder-only measurement)."""
    from synthcore.align import fixed_crop
    from synthcore.dataset import SampleCollection

    with SampleCollection.open(collection_path) as c, torch.no_grad():
        w = torch.from_numpy(c.read(np.arange(n), ["w"])["w"])
        frames = G.synthesis(w.unsqueeze(1).expand(-1, G.num_ws, -1), noise_mode="const")
        if crop is not None:
            frames = fixed_crop(frames, crop)
    px = (frames + 1.0).mul(255.0 / 2.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return list(px)


def time_encoders(pixels: list[np.ndarray], encoders: dict[str, Callable[[np.ndarray], bytes]], rounds: int):
    """images/s (median over rounds, encoders interleaved) and mean bytes per image of each encoder."""
    rates: dict[str, list[float]] = {k: [] for k in encoders}
    sizes = {k: float(np.mean([len(fn(p)) for p in pixels])) for k, fn in encoders.items()}  # also the warm-up
    for r in range(rounds):
        order = list(encoders) if r % 2 == 0 else list(reversed(encoders))
        for k in order:
            t0 = time.perf_counter()
            for p in pixels:
                encoders[k](p)
            rates[k].append(len(pixels) / (time.perf_counter() - t0))
    return {k: (statistics.median(v), sizes[k]) for k, v in rates.items()}


def _writer_name(R: ModuleType) -> str:
    """The name under which dataset/render.py calls its one-PNG writer ``(path, pixels)``: swapped per variant."""
    for name in ("_write_png", "write_png"):
        if callable(getattr(R, name, None)):
            return name
    raise SystemExit("synthcore.dataset.render has no write_png/_write_png(path, pixels): update bench_render.py")


def time_renders(G, collection_path: Path, out: Path, writers: dict[str, Callable], args, crop: str | None):
    """images/s of render_collection with each PNG writer (median over rounds, alternating order)."""
    from synthcore.dataset import SampleCollection
    from synthcore.dataset import render as R

    hook = _writer_name(R)
    original = getattr(R, hook)
    rates: dict[str, list[float]] = {k: [] for k in writers}
    try:
        with SampleCollection.open(collection_path) as coll:

            def once(name: str) -> float:
                setattr(R, hook, writers[name])
                t0 = time.perf_counter()
                res = R.render_collection(
                    coll, G, out / name, crop=crop, batch=args.render_batch, overwrite=True, progress=False
                )
                dt = time.perf_counter() - t0
                assert res.written == len(coll), res
                return res.written / dt

            for name in writers:  # warm-up: allocator, oneDNN primitives, first directory creation
                once(name)
            for r in range(args.render_rounds):
                order = list(writers) if r % 2 == 0 else list(reversed(writers))
                for name in order:
                    rates[name].append(once(name))
                    print(f"  round {r + 1}: {name} {rates[name][-1]:.2f} images/s", file=sys.stderr, flush=True)
    finally:
        setattr(R, hook, original)
    return rates


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    H.configure(args)
    from synthcore import imageio

    crop = None if args.render_crop in ("none", "full") else args.render_crop
    levels = [int(v) for v in args.levels.split(",") if v.strip()]
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_render_") as tmp:
        tmp = Path(tmp)
        old = load_baseline(args.baseline_rev, tmp)
        G, coll = build(args.render_res, args.render_images, tmp)
        n_enc = min(args.render_images, 128)
        pixels = rendered_pixels(G, coll, crop, n_enc)
        shape = "x".join(str(s) for s in pixels[0].shape)
        encoders: dict[str, Callable[[np.ndarray], bytes]] = {"hand-written (level 6)": old.encode_png}
        for lv in levels:
            encoders[f"pillow level {lv}"] = lambda p, lv=lv: imageio.encode_png(p, compress_level=lv)
        print(f"encoding {n_enc} rendered {shape} images, one thread ...", file=sys.stderr, flush=True)
        for name, (rate, size) in time_encoders(pixels, encoders, max(3, args.render_rounds)).items():
            rows.append({"measure": "encode", "variant": name, "shape": shape, "images_per_s": rate, "bytes": size})

        from synthcore.dataset import render as R

        writers = {
            "hand-written": lambda path, px: old.write_atomic(path, old.encode_png(px)),
            "pillow": getattr(R, _writer_name(R)),  # what render.py writes with now
        }
        print(
            f"rendering {args.render_images} images ({args.render_res} px generator, crop {crop}), "
            f"{args.render_rounds} rounds per variant ...",
            file=sys.stderr,
            flush=True,
        )
        rates = time_renders(G, coll, tmp / "images", writers, args, crop)
        for name, v in rates.items():
            rows.append(
                {
                    "measure": "render",
                    "variant": name,
                    "shape": shape,
                    "images_per_s": statistics.median(v),
                    "runs": [round(x, 2) for x in v],
                    "compress_level": 6 if name == "hand-written" else imageio.PNG_COMPRESS_LEVEL,
                }
            )
    load_after = os.getloadavg()
    for r in rows:
        r["loadavg_before"], r["loadavg_after"] = load_before, load_after
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    enc = [r for r in rows if r["measure"] == "encode"]
    base = next(r["images_per_s"] for r in enc if r["variant"].startswith("hand-written"))
    print(f"PNG encoder alone, {enc[0]['shape']} images, one thread:")
    for r in enc:
        ratio = r["images_per_s"] / base
        print(f"  {r['variant']:<24} {r['images_per_s']:8.1f} images/s  {ratio:5.2f}x  {r['bytes'] / 1024:6.1f} KiB")
    ren = {r["variant"]: r for r in rows if r["measure"] == "render"}
    print("render_collection end to end (synthesis + crop + PNG writes on the thread pool):")
    for name, r in ren.items():
        runs = ", ".join(f"{x:.1f}" for x in r["runs"])
        print(f"  {name:<24} {r['images_per_s']:8.1f} images/s  (runs {runs}; level {r['compress_level']})")
    ratio = ren["pillow"]["images_per_s"] / ren["hand-written"]["images_per_s"]
    print(
        f"render images/s, Pillow / hand-written: {ratio:.3f}x ({'within 10% or better' if ratio >= 0.9 else 'SLOWER'})"
    )
    lb, la = rows[0]["loadavg_before"], rows[0]["loadavg_after"]
    print(f"load average before {lb[0]:.2f} {lb[1]:.2f} {lb[2]:.2f}, after {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}")


def main(argv: list[str] | None = None) -> int:
    return H.bench_main(run, __doc__, add_arguments, argv, print_rows=print_rows)


if __name__ == "__main__":
    raise SystemExit(main())
