"""``synthcore convert``: an official StyleGAN2 snapshot (``.pkl``) to synthcore's generator format.

The output format follows the extension: ``.safetensors``, or a ``torch.save`` file (``.pt``/``.pth``) that
loads with ``weights_only=True``. The snapshot is read with the restricted unpickler; nothing in it runs.
"""

import argparse
from pathlib import Path

_OUT_SUFFIXES = (".pt", ".pth", ".safetensors")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a generator (official .pkl) to synthcore's .pt / .safetensors format",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("src", help="official .pkl snapshot (or a synthcore generator file)")
    p.add_argument("dst", help="output file: .pt, .pth or .safetensors")
    p.add_argument("--key", choices=["G_ema", "G"], default="G_ema", help="network to take from a snapshot")
    p.add_argument("--overwrite", action="store_true", help="replace dst if it exists")
    p.add_argument("--quiet", action="store_true", help="no summary line")
    p.set_defaults(run=run)


def run(args) -> int:
    from synthcore import __version__
    from synthcore.cli.embed import sha256
    from synthcore.nets.generator_files import load_generator, save_generator

    src, dst = Path(args.src), Path(args.dst)
    if dst.suffix.lower() not in _OUT_SUFFIXES:
        raise ValueError(f"{dst}: the output must end in {', '.join(_OUT_SUFFIXES)}")
    if dst.exists() and not args.overwrite:
        raise ValueError(f"{dst} exists; pass --overwrite to replace it")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise ValueError("src and dst are the same file")
    G = load_generator(src, key=args.key)
    metadata = {"source": src.name, "source_sha256": sha256(src), "key": args.key, "synthcore_version": __version__}
    save_generator(G, dst, metadata=metadata)
    if not args.quiet:
        n = sum(t.numel() for t in G.state_dict().values())
        print(
            f"wrote {dst}: {G.img_resolution}x{G.img_resolution}x{G.img_channels}, z_dim {G.z_dim}, "
            f"c_dim {G.c_dim}, w_dim {G.w_dim}, {G.num_ws} ws, {n:,} values"
        )
    return 0
