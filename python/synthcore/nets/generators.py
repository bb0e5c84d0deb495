"""The generic generator interface: what the identity algorithms, render, evaluation and editing may ask of a
generator, whatever its family.

A family wraps a network and states:
- its latent space: ``z_dim``, ``c_dim`` (labels), ``w_dim`` (the space the algorithms move), ``num_ws`` (how
  many copies of w drive synthesis), ``map(z, c, psi)`` (z to truncated w, no gradient), ``mean_latent()`` (the
  centre truncation and the confinement force pull towards), ``synthesize(w)`` (w [N, w_dim] or w_plus
  [N, num_ws, w_dim] to frames [N, 3, R, R] in [-1, 1], differentiable);
- its frame (:class:`Frame`): resolution, where the face sits, and how frames reach a recognition network's
  crop: a fixed crop preset of ``synthcore.align`` (faces always at the same place, e.g. FFHQ-aligned StyleGAN2),
  or detected landmarks (faces that move: detector + 5-point predictor per image, then the differentiable chip
  warp; see :class:`LandmarkAlignment`).

Families today:

- ``stylegan2``: w = mapping(z, c); mean latent the tracked ``w_avg``; truncation ``w_avg + psi (w - w_avg)``;
  FFHQ-aligned frames of any size, reaching the recognition crop by a fixed preset (default ``arcface``).
- ``dcgan``: w = z [N, 100] (the mapping is the identity); mean latent 0; truncation ``psi z``; 64 px DigiFace-1M
  face crops in which faces move, reaching the recognition crop by detected landmarks.

A new family (EG3D next) adds a class here and an entry in :func:`as_generator` / :func:`load_generator`; the
algorithms only see this interface (``synthcore.identity.FacePipeline``).
"""

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

__all__ = [
    "DCGANFamily",
    "Frame",
    "GeneratorFamily",
    "LandmarkAlignment",
    "StyleGAN2Family",
    "as_generator",
    "load_generator",
]

Point = Tuple[float, float]


@dataclass(frozen=True)
class Frame:
    """Where a family's faces sit and how its frames reach a recognition crop.

    Attributes:
        resolution: frames are ``resolution`` x ``resolution`` (None: the network's own size).
        layout: where the face sits, in words.
        alignment: ``"fixed"`` (a fixed crop preset of ``synthcore.align`` always lands on the face) or
            ``"landmarks"`` (detect landmarks per image, then warp).
        crop: the default fixed-crop preset for ``"fixed"`` (None for ``"landmarks"``).
        landmarks5: dlib's five points (x, y; pixel centres at integers) of a typical face in this frame, used for
            frames where no face is detected (None: the family has no typical face position).
    """

    resolution: Optional[int]
    layout: str
    alignment: str
    crop: Optional[str] = None
    landmarks5: Optional[Tuple[Point, ...]] = None

    def __post_init__(self) -> None:
        if self.alignment not in ("fixed", "landmarks"):
            raise ValueError(f"alignment must be 'fixed' or 'landmarks', got {self.alignment!r}")


class GeneratorFamily:
    """Base of the family adapters; ``module`` is the wrapped network (frozen, eval mode)."""

    family = "generic"
    frame: Frame
    noise_modes: Tuple[str, ...] = ("const", "none")
    # Settings of the identity algorithms that the family's latent space needs instead of the published ones
    # (which are StyleGAN2's): LangevinConfig / DispersionConfig field -> value. The commands use them where the
    # user gives none.
    langevin_defaults: Dict[str, float] = {}
    dispersion_defaults: Dict[str, float] = {}

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    # --- latent space ------------------------------------------------------------------------------------
    @property
    def z_dim(self) -> int:
        return int(self.module.z_dim)

    @property
    def c_dim(self) -> int:
        return int(getattr(self.module, "c_dim", 0))

    @property
    def w_dim(self) -> int:
        return int(self.module.w_dim)

    @property
    def num_ws(self) -> int:
        return int(getattr(self.module, "num_ws", 1))

    @property
    def img_resolution(self) -> int:
        return int(self.module.img_resolution)

    @property
    def img_channels(self) -> int:
        return int(getattr(self.module, "img_channels", 3))

    @property
    def device(self) -> torch.device:
        for t in self.module.parameters():
            return t.device
        for t in self.module.buffers():
            return t.device
        return torch.device("cpu")

    def mean_latent(self) -> torch.Tensor:
        """The centre of the latent space, [w_dim] float32 (truncation and confinement pull towards it)."""
        raise NotImplementedError

    def map(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1.0) -> torch.Tensor:
        """Latents w [N, w_dim] (float32, no gradient) of z [N, z_dim], truncated towards the mean latent."""
        raise NotImplementedError

    def synthesize(self, w: torch.Tensor, noise_mode: str = "const", impl: Optional[str] = None) -> torch.Tensor:
        """Frames [N, C, R, R] (nominally [-1, 1], not clipped) of w [N, w_dim] or w_plus [N, num_ws, w_dim]."""
        raise NotImplementedError

    def largest_feature_bytes(self) -> Optional[int]:
        """Bytes per image of the largest float32 feature map (for chunking on CPU), or None if unknown."""
        return None

    def confine(self, w: torch.Tensor, w_avg: torch.Tensor, strength: float) -> torch.Tensor:
        """The force that keeps latents ``w`` [N, w_dim] where the generator makes faces (the identity algorithms'
        confinement): by default the harmonic pull ``strength (w_avg - w)`` to the mean latent."""
        return strength * (w_avg - w)

    def project(self, w: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
        """Latents after an update, put back where the family's faces are; ``radius`` [N] is each row's latent
        norm before the update. By default nothing is constrained: ``w`` itself."""
        return w

    def describe(self) -> str:
        return f"{self.family} generator, {self.frame.layout}"


class StyleGAN2Family(GeneratorFamily):
    """StyleGAN2 (``synthcore.nets.stylegan2.Generator`` or anything with its ``mapping`` / ``synthesis``
    interface): w from the mapping network, tracked ``w_avg``, truncation ``w_avg + psi (w - w_avg)``."""

    family = "stylegan2"
    frame = Frame(None, "FFHQ-aligned (eyes at fixed positions)", "fixed", crop="arcface")

    @property
    def device(self) -> torch.device:
        return self.module.mapping.w_avg.device

    def mean_latent(self) -> torch.Tensor:
        return self.module.mapping.w_avg.detach().float()

    def map(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1.0) -> torch.Tensor:
        if c is None:
            c = z.new_zeros(z.shape[0], self.c_dim)
        with torch.no_grad():
            ws = self.module.mapping(z.to(self.device), c.to(self.device), truncation_psi=truncation_psi)
        return ws[:, 0].float()

    def synthesize(self, w: torch.Tensor, noise_mode: str = "const", impl: Optional[str] = None) -> torch.Tensor:
        ws = w.unsqueeze(1).expand(w.shape[0], self.num_ws, w.shape[1]) if w.ndim == 2 else w
        return self.module.synthesis(ws, noise_mode=noise_mode, impl=impl)

    def largest_feature_bytes(self) -> Optional[int]:
        synthesis = self.module.synthesis
        sizes = []
        for res in getattr(synthesis, "block_resolutions", ()):
            conv = getattr(getattr(synthesis, f"b{res}", None), "conv1", None)
            weight = getattr(conv, "weight", None)
            if isinstance(weight, torch.Tensor):
                sizes.append(int(weight.shape[0]) * int(res) ** 2 * 4)
        return max(sizes) if sizes else None


# dlib's five points (outer and inner corner of the image-right eye, outer and inner corner of the image-left eye,
# bottom of the nose) of a typical dcgan-digiface-64 face, read off the mean of 256 generated frames (psi 0.7) by
# eye (about +-2 px); used only for frames where the detector finds no face, to give them a plausible chip.
DCGAN_DIGIFACE_LANDMARKS5: Tuple[Point, ...] = ((45.5, 27.0), (37.0, 27.5), (18.5, 27.5), (27.0, 28.0), (32.0, 41.0))


class DCGANFamily(GeneratorFamily):
    """The DCGAN (``synthcore.nets.dcgan.DCGANGenerator``): w = z, mean latent 0, truncation ``psi z``; faces
    move inside the frame, so recognition crops come from detected landmarks."""

    family = "dcgan"
    frame = Frame(64, "DigiFace-1M face crops, 64 px; faces vary in position and scale", "landmarks",
                  landmarks5=DCGAN_DIGIFACE_LANDMARKS5)  # fmt: skip
    noise_modes = ("const", "none", "random")  # no noise inputs: every mode gives the same image
    # z ~ N(0, I) on a shell |z| ~ 10: the published tau 0.3 moves the fastest identity by 0.3 of the closest
    # latent distance (~2.4 at psi 0.8) and the repulsion oscillates (16 identities: confusable pairs 18% -> 9%,
    # jumping); 0.05 settles (18% -> 0.8% in 12 steps). Variations of an identity start 0.2 sqrt(200) ~ 2.8 apart:
    # they repel within 4, not StyleGAN2 W's 12.
    langevin_defaults = {"tau": 0.05}
    dispersion_defaults = {"r_w": 4.0}

    def mean_latent(self) -> torch.Tensor:
        return torch.zeros(self.w_dim, device=self.device)

    def map(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1.0) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        with torch.no_grad():
            return self.module.mapping(z.to(self.device), None, truncation_psi=truncation_psi)[:, 0].float()

    def synthesize(self, w: torch.Tensor, noise_mode: str = "const", impl: Optional[str] = None) -> torch.Tensor:
        return self.module.synthesis(w, noise_mode=noise_mode)

    def largest_feature_bytes(self) -> Optional[int]:
        return max(c * r * r * 4 for c, r in self.module.synthesis.feature_sizes())

    def confine(self, w: torch.Tensor, w_avg: torch.Tensor, strength: float) -> torch.Tensor:
        # z ~ N(0, I) lives on the shell |z| ~ sqrt(dim), not at its mean 0 (the mean face): a pull to 0 shrinks
        # every face towards the average one (measured: |z| 7.15 -> 2.56 in 3 Langevin steps, closest pair 0.52 ->
        # 0.13). The shell is kept by :meth:`project` instead, and the pull's only direction, radial, is removed
        # by it anyway: no force here, so the adaptive step is sized by the identity forces alone.
        return torch.zeros_like(w)

    def project(self, w: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
        """Each latent rescaled to its radius before the update: identities move across the Gaussian shell."""
        return w * (radius.to(w.dtype) / w.norm(dim=1).clamp_min(1e-12))[:, None]


def as_generator(G: Union[GeneratorFamily, nn.Module]) -> GeneratorFamily:
    """The family adapter of a network (an adapter is returned as is)."""
    if isinstance(G, GeneratorFamily):
        return G
    from synthcore.nets.dcgan import DCGANGenerator

    if isinstance(G, DCGANGenerator):
        return DCGANFamily(G)
    if hasattr(G, "mapping") and hasattr(G, "synthesis") and hasattr(G.mapping, "w_avg"):
        return StyleGAN2Family(G)
    raise TypeError(f"{type(G).__name__} is not a generator synthcore knows (StyleGAN2 or DCGAN family)")


def load_generator(
    name_or_path: Union[str, Path], device: Union[str, torch.device] = "cpu", key: str = "G_ema"
) -> nn.Module:
    """A frozen, eval-mode generator network from an installed model name (``dcgan-digiface-64``) or a file: an
    official StyleGAN2(-ADA) ``.pkl`` snapshot, synthcore's ``.pt`` / ``.safetensors`` generator format, or a DCGAN
    checkpoint (``{"netG_state_dict": ...}``, e.g. the ``weights.tar`` of ``gan-face-generate``). Wrap it with
    :func:`as_generator` for the family interface. Nothing stored in a file is executed."""
    from synthcore import models
    from synthcore.nets import dcgan, generator_files

    text = str(name_or_path)
    path = Path(name_or_path)
    if not path.exists() and models.is_model_name(text):
        path = models.model_path(text)
    if generator_files.file_kind(path) == "torch":
        from synthcore.nets.model_files import load_torch_file

        obj = load_torch_file(path)
        if dcgan.is_dcgan_file(obj):
            return dcgan.from_checkpoint(obj, str(path)).to(device)
        del obj
    return generator_files.load_generator(path, device=device, key=key)


class LandmarkAlignment:
    """Frames to dlib chips through per-image detected landmarks: a ``crop`` for ``FacePipeline`` / ``prepare``.

    Landmarks are computed once per image without gradient (detector + 5-point predictor on the 8-bit frame,
    ``synthcore.align.face_landmarks.detect_landmarks``); the chip warp (``synthcore.align.dlib_chip``) is
    differentiable with respect to the frames, so gradients reach the latents through the aligned path.
    Frames without a detected face use ``fallback`` (the family's typical five points) and are counted in
    ``last_found``.

    Args:
        detector: ``synthcore.nets.dlib.mmod.MMODDetector`` (or anything ``detect_landmarks`` accepts).
        predictor: ``synthcore.nets.dlib.shape_predictor.ShapePredictor``.
        size, padding: dlib chip geometry (150, 0.25: what dlib's ResNet was trained on).
        upsample: detector upsampling steps (small frames need 1 or more for the MMOD detector).
        fallback: [5, 2] landmarks for frames without a detected face; None: such frames are an error.
        detect: the landmark function (default ``synthcore.align.face_landmarks.detect_landmarks``).
    """

    CACHE_FRAMES = 65536  # ~10 MB of landmarks: every frame of two steps of a large run

    def __init__(
        self,
        detector: Any,
        predictor: Any,
        size: int = 150,
        padding: float = 0.25,
        upsample: int = 1,
        fallback: Optional[Sequence[Point]] = None,
        detect: Optional[Callable[..., Tuple[Any, Any]]] = None,
    ) -> None:
        self.detector, self.predictor = detector, predictor
        self.size, self.padding, self.upsample = int(size), float(padding), int(upsample)
        self.fallback = None if fallback is None else np.asarray(fallback, dtype=np.float64).reshape(5, 2)
        self._detect = detect
        self.last_found: Optional[np.ndarray] = None
        # Landmarks of recent 8-bit frames by content: the identity algorithms check each updated latent's frame
        # for a face, and the next step's forward sees the same frame again; detection is the costly part.
        self._recent: OrderedDict[bytes, Tuple[np.ndarray, bool]] = OrderedDict()

    def landmarks(self, images: torch.Tensor) -> Tuple[np.ndarray, np.ndarray]:
        """(landmarks [N, 5, 2] float64, found [N] bool) of frames [N, 3, H, W], without gradient."""
        detect = self._detect
        if detect is None:
            from synthcore.align.face_landmarks import detect_landmarks as detect
        from synthcore.imageio import to_uint8

        pixels = to_uint8(images)  # what the detector sees
        keys = [hashlib.blake2b(p.tobytes(), digest_size=16).digest() for p in pixels]
        todo = [i for i, k in enumerate(keys) if k not in self._recent]
        if todo:
            lm_new, found_new = detect(pixels[todo], self.detector, self.predictor, self.upsample)
            lm_new = np.asarray(lm_new, dtype=np.float64).reshape(len(todo), 5, 2)
            for j, i in enumerate(todo):
                self._recent[keys[i]] = (lm_new[j].copy(), bool(np.asarray(found_new).reshape(-1)[j]))
        lm = np.stack([self._recent[k][0] for k in keys]).copy()
        found = np.array([self._recent[k][1] for k in keys], dtype=bool)
        for k in keys:
            self._recent.move_to_end(k)
        while len(self._recent) > self.CACHE_FRAMES:
            self._recent.popitem(last=False)
        if not found.all():
            if self.fallback is None:
                raise ValueError(f"no face found in {int((~found).sum())} of {found.size} frames")
            lm[~found] = self.fallback
        self.last_found = found
        return lm, found

    def transforms(self, landmarks: np.ndarray) -> torch.Tensor:
        """Chip transforms of [N, 5, 2] landmarks, stacked (``synthcore.align.dlib_chip.chip_transform``)."""
        from synthcore.align.dlib_chip import chip_transform

        mats = [torch.as_tensor(np.asarray(chip_transform(p, size=self.size, padding=self.padding))) for p in landmarks]
        return torch.stack(mats)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        from synthcore.align.dlib_chip import warp_to_chips

        lm, _ = self.landmarks(images)
        mats = self.transforms(lm).to(images.device)
        return warp_to_chips(images, mats, size=self.size)
