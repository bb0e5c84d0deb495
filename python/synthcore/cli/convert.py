"""``synthcore convert``: an official StyleGAN2 snapshot (``.pkl``) to synthcore's generator format.

The output format follows the extension: ``.safetensors``, or a ``torch.save`` file (``.pt``/``.pth``) that
loads with ``weights_only=True``. The snapshot is read with the restricted unpickler; nothing in it runs.
"""

from pathlib import Path

from synthcore.cli.toolkit import UserError, add_command, model_file

_OUT_SUFFIXES = (".pt", ".pth", ".safetensors")


def add_parser(sub) -> None:
    p = add_command(sub, "convert", help="convert a generator (official .pkl) to synthcore's .pt / .safetensors format")
    p.add_argument("src", help="official .pkl snapshot (or a synthcore generator file, or an installed model's name)")
    p.add_argument("dst", help="output file: .pt, .pth or .safetensors")
    p.add_argument("--key", choices=["G_ema", "G"], default="G_ema", help="network to take from a snapshot")
    p.add_argument("--overwrite", action="store_true", help="replace dst if it exists")
    p.set_defaults(run=run)


def run(args) -> int:
    from synthcore import __version__
    from synthcore.fileio import sha256_file
    from synthcore.nets.generator_files import load_generator, save_generator

    dst = Path(args.dst)
    if dst.suffix.lower() not in _OUT_SUFFIXES:
        raise UserError(f"{dst}: the output must end in {', '.join(_OUT_SUFFIXES)}")
    src = model_file("src", args.src)
    if dst.exists() and not args.overwrite:
        raise UserError(f"{dst} exists; pass --overwrite to replace it")
    if dst.exists() and dst.resolve() == src.resolve():
        raise UserError("src and dst are the same file")
    G = load_generator(src, key=args.key)
    metadata = {
        "source": src.name,
        "source_sha256": sha256_file(src),
        "key": args.key,
        "synthcore_version": __version__,
    }
    save_generator(G, dst, metadata=metadata)
    if not args.quiet:
        n = sum(t.numel() for t in G.state_dict().values())
        print(
            f"wrote {dst}: {G.img_resolution}x{G.img_resolution}x{G.img_channels}, z_dim {G.z_dim}, "
            f"c_dim {G.c_dim}, w_dim {G.w_dim}, {G.num_ws} ws, {n:,} values"
        )
    return 0
