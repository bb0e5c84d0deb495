"""``FacePipeline``: latents to images to identity embeddings, batched, with gradients back to the latents.

The identity algorithms move latents ``w`` [N, w_dim] of a generator seen through the generic family interface
(``synthcore.nets.generators``: StyleGAN2, where one w drives every synthesis layer; the DCGAN, where w = z). The
frame goes to the recognition crop the way the family states: a fixed crop preset, or per-image detected
landmarks (computed once per image without gradient, then the differentiable chip warp); the face-recognition
network gives the identity embedding (raw, not normalised). Both networks run in eval mode with frozen
parameters, and synthesis noise is ``const`` by default, so an embedding is a deterministic function of its own
latent alone: that is what makes batched gradients equal to per-identity ones (see ``langevin.py``). New
generator families plug in through ``synthcore.nets.generators`` without touching the algorithms.
"""

from typing import Callable, Iterator, Optional, Tuple

import torch
from torch import nn

from synthcore.embedding import Crop, prepare
from synthcore.identity.metric import IdentityMetric, identity_metric
from synthcore.nets.generators import GeneratorFamily, LandmarkAlignment, as_generator
from synthcore.progress import Progress

__all__ = ["AUTO_CROP", "FacePipeline", "batches", "landmark_alignment"]

AUTO_CROP = "auto"  # the generator family's own way to the recognition crop

NOISE_MODES = ("const", "none")

# On CPU a generator call gets as many rows as keep its largest feature map within this many bytes: the 256
# generator (64 x 256 x 256 float32 = 16.8 MB per image) measured 186 / 166 / 204 / 222 ms per image forward+
# backward at batch 1 / 2 / 4 / 8 (2 threads; larger batches fall out of cache), while iResNet-50 fell from 80 to
# 56 ms per image from batch 1 to 8 (benchmarks/RESULTS.md). Small generators (the demo's 64 x 64, 0.5 MB per
# image) are faster unsplit, which this budget gives them.
CPU_GENERATOR_CHUNK_BYTES = 40 << 20


def batches(n: int, batch: int) -> Iterator[Tuple[int, int]]:
    """(lo, hi) row ranges of at most ``batch`` rows covering 0..n."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    for lo in range(0, n, batch):
        yield lo, min(n, lo + batch)


def landmark_alignment(family: GeneratorFamily, embedder: nn.Module) -> LandmarkAlignment:
    """Detected-landmark alignment for ``family``'s frames onto ``embedder``'s chips, with the installed dlib MMOD
    detector and 5-point predictor (``synthcore models install dlib-mmod-detector dlib-shape-predictor-5``)."""
    from synthcore.models import model_path
    from synthcore.nets.dlib.mmod import MMODDetector
    from synthcore.nets.dlib.shape_predictor import ShapePredictor

    size = int(getattr(embedder, "input_size", 150))
    detector = MMODDetector.load(model_path("dlib-mmod-detector"))
    predictor = ShapePredictor.load(model_path("dlib-shape-predictor-5"))
    # Small frames (the DCGAN's 64 px) hold faces below the detector's 40-80 px window: upsample once.
    upsample = 1 if family.img_resolution < 128 else 0
    return LandmarkAlignment(detector, predictor, size=size, upsample=upsample, fallback=family.frame.landmarks5)


class FacePipeline:
    """Generator + crop + embedder, as one map from latents w to identity embeddings.

    Args:
        generator: a generator network (``synthcore.nets.stylegan2.Generator``, ``synthcore.nets.dcgan.
            DCGANGenerator``, anything with StyleGAN2's ``mapping`` / ``synthesis`` interface) or a family adapter
            (``synthcore.nets.generators.GeneratorFamily``).
        embedder: module mapping crops [N, 3, S, S] (RGB, [-1, 1]) to raw features [N, e]
            (``synthcore.nets.embedders.Embedder``); its ``metric`` / ``threshold`` give :attr:`identity_metric`.
        crop: how generator frames become recognition crops: ``"auto"`` (default: the family's way; ``arcface``
            for StyleGAN2, detected landmarks for the DCGAN), a ``synthcore.align.fixed_crop`` preset,
            ``"landmarks"`` (detected landmarks with the installed dlib models), a callable (e.g. a
            ``LandmarkAlignment``), or None (the embedder takes the frames).
        noise_mode: synthesis noise, ``"const"`` (the generator's stored noise; default) or ``"none"``. Random
            noise is not offered: it would make embeddings differ from those of the saved images.
        impl: op implementation passed to synthesis (None, "native" or "reference").
        generator_batch: at most this many rows per synthesis call; larger batches are split (the embedder
            still sees them whole). None: on CPU as many rows as keep the largest feature map within
            ``CPU_GENERATOR_CHUNK_BYTES`` (2 for the 256 generator, whose forward and backward cost more per
            image at larger batches while the embedder's cost less); unsplit elsewhere.

    Both networks are put in eval mode with ``requires_grad_(False)``: gradients are only ever taken with
    respect to latents.
    """

    def __init__(
        self,
        generator: nn.Module,
        embedder: nn.Module,
        crop: Crop = AUTO_CROP,
        noise_mode: str = "const",
        impl: Optional[str] = None,
        generator_batch: Optional[int] = None,
    ) -> None:
        if generator_batch is not None and (
            isinstance(generator_batch, bool) or not isinstance(generator_batch, int) or generator_batch < 1
        ):
            raise ValueError(f"generator_batch must be an integer >= 1 or None, got {generator_batch!r}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        family = as_generator(generator)
        if family.img_channels != 3:
            raise ValueError(
                f"the generator makes {family.img_channels}-channel images; identity embedders need RGB (3)"
            )
        family.module.eval().requires_grad_(False)
        self.generator = family
        self.G = family.module
        self.E = embedder.eval().requires_grad_(False)
        if crop == AUTO_CROP:
            crop = family.frame.crop if family.frame.alignment == "fixed" else "landmarks"
        if crop == "landmarks":
            crop = landmark_alignment(family, embedder)
        self.crop = crop
        self.noise_mode = noise_mode
        self.impl = impl
        self.input_size = int(getattr(embedder, "input_size", 112))
        self.generator_batch = generator_batch
        self.identity_metric: IdentityMetric = identity_metric(embedder)
        self._feature_bytes = self._largest_feature_bytes()  # fixed by the architecture: once, not per call

    # --- facts about the generator ------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.generator.device

    @property
    def w_dim(self) -> int:
        return self.generator.w_dim

    @property
    def z_dim(self) -> int:
        return self.generator.z_dim

    @property
    def c_dim(self) -> int:
        return self.generator.c_dim

    @property
    def w_avg(self) -> torch.Tensor:
        """The generator's mean latent (StyleGAN2: the tracked ``w_avg``; DCGAN: 0), [w_dim], float32."""
        return self.generator.mean_latent()

    # --- maps ---------------------------------------------------------------------------------------------

    def map(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 0.7) -> torch.Tensor:
        """Latents w [N, w_dim] of z [N, z_dim] (and labels c [N, c_dim]), truncated towards the mean latent."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        return self.generator.map(z, c, truncation_psi=truncation_psi)

    def images(self, w: torch.Tensor) -> torch.Tensor:
        """Generator frames [N, 3, R, R] (nominally [-1, 1], not clipped) of latents w [N, w_dim]."""
        if w.ndim != 2 or w.shape[1] != self.w_dim:
            raise ValueError(f"w must be [N, {self.w_dim}], got {list(w.shape)}")
        rows = self.generator_rows(w.device)
        if rows is None or w.shape[0] <= rows:
            return self.generator.synthesize(w, noise_mode=self.noise_mode, impl=self.impl)
        parts = [self.generator.synthesize(w[lo:hi], noise_mode=self.noise_mode, impl=self.impl)
                 for lo, hi in batches(w.shape[0], rows)]  # fmt: skip
        return torch.cat(parts)

    def generator_rows(self, device: torch.device) -> Optional[int]:
        """Rows per synthesis call on ``device`` (None: unsplit); see ``generator_batch``."""
        if self.generator_batch is not None:
            return self.generator_batch
        if device.type != "cpu":
            return None
        largest = self._feature_bytes
        return None if largest is None else max(1, CPU_GENERATOR_CHUNK_BYTES // largest)

    def _largest_feature_bytes(self) -> Optional[int]:
        """Bytes per image of the generator's largest float32 feature map, or None (unknown layout)."""
        return self.generator.largest_feature_bytes()

    @property
    def checks_faces(self) -> bool:
        """Whether frames reach the embedder through detected landmarks, so whether a frame holds a face can be
        asked (:meth:`faces_found`); fixed-crop families take every frame as a face."""
        return isinstance(self.crop, LandmarkAlignment)

    def faces_found(self, w: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """bool [N] on w's device: whether the landmark detector finds a face in each latent's 8-bit frame."""
        if not isinstance(self.crop, LandmarkAlignment):
            raise ValueError("faces_found needs a landmark-aligned pipeline (crop 'landmarks')")
        found = []
        with torch.no_grad():
            for lo, hi in batches(w.shape[0], batch):
                found.append(torch.from_numpy(self.crop.landmarks(self.images(w[lo:hi]))[1]))
        return torch.cat(found).to(w.device)

    def crops(self, images: torch.Tensor) -> torch.Tensor:
        """Recognition crops of generator frames (what the embedder sees)."""
        return prepare(images, self.input_size, self.crop)

    def embed(self, w: torch.Tensor) -> torch.Tensor:
        """Raw embeddings [N, e] of W latents; differentiable in ``w`` (one forward, no batching)."""
        return self.E(self.crops(self.images(w)))

    def embed_batched(
        self, w: torch.Tensor, batch: int, progress: Optional[Progress] = None, label: str = ""
    ) -> torch.Tensor:
        """Embeddings of many latents, ``batch`` rows at a time, without gradients; float32 on w's device."""
        out = []
        with torch.no_grad():
            for lo, hi in batches(w.shape[0], batch):
                out.append(self.embed(w[lo:hi].to(self.device)).float())
                if progress is not None:
                    progress.update(hi - lo)
        if not out:
            return w.new_zeros(0, self._embedding_size())
        return torch.cat(out).to(w.device)

    def forward_with_graph(self, w: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(latent leaf, embeddings) of one forward pass that keeps its autograd graph, for :meth:`pull_back`."""
        leaf = w.detach().to(self.device).requires_grad_(True)
        with torch.enable_grad():
            return leaf, self.embed(leaf)

    @staticmethod
    def pull_back(leaf: torch.Tensor, e: torch.Tensor, embedding_grad: torch.Tensor) -> torch.Tensor:
        """dU/dw [n, w_dim] from dU/de through the graph of :meth:`forward_with_graph` (which it frees)."""
        (grad_w,) = torch.autograd.grad(e, leaf, grad_outputs=embedding_grad.to(e.dtype))
        return grad_w.float()

    def backprop(
        self, w: torch.Tensor, embedding_grad: Callable[[torch.Tensor], torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of ``w`` and the gradient dU/dw of a potential U given through its embedding gradient.

        ``embedding_grad(e)`` receives the embeddings [n, e] (detached) and returns dU/de. Because every
        embedding depends on its own latent only, one backward pass gives each row's dU_i/dw_i.
        Returns (embeddings [n, e] detached, dU/dw [n, w_dim]).
        """
        leaf, e = self.forward_with_graph(w)
        g = embedding_grad(e.detach().float())
        return e.detach().float(), self.pull_back(leaf, e, g)

    def backprop_potential(
        self, w: torch.Tensor, potential: Callable[[torch.Tensor], torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Like :meth:`backprop`, for a potential written as a differentiable function of the embeddings."""

        def embedding_grad(e: torch.Tensor) -> torch.Tensor:
            e = e.detach().requires_grad_(True)
            with torch.enable_grad():
                (g,) = torch.autograd.grad(potential(e), e)
            return g

        return self.backprop(w, embedding_grad)

    def _embedding_size(self) -> int:
        size = getattr(self.E, "embedding_size", None)
        if size is not None:
            return int(size)
        with torch.no_grad():
            return int(self.embed(self.w_avg[None].to(self.device)).shape[1])
