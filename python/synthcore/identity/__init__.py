"""Identity algorithms: reference identities (Langevin, random, reject) and their variations (Dispersion, DisCo).

All of them move W latents of a StyleGAN2-family generator and measure identity with a face-recognition
embedder, through :class:`FacePipeline`. Maths, defaults and the published code's known flaws that synthcore
avoids: ``../shared/docs/identity_diffusion.md``; our account: ``docs/ARCHITECTURE.md``.
"""

from synthcore.identity.directions import LatentDirection, disco_offsets, read_directions, write_directions
from synthcore.identity.dispersion import DispersionConfig, DispersionResult, run_dispersion
from synthcore.identity.langevin import LangevinConfig, LangevinResult, run_langevin
from synthcore.identity.pipeline import FacePipeline
from synthcore.identity.references import ReferenceSet, sample_random, sample_reject

__all__ = [
    "DispersionConfig",
    "DispersionResult",
    "FacePipeline",
    "LangevinConfig",
    "LangevinResult",
    "LatentDirection",
    "ReferenceSet",
    "disco_offsets",
    "read_directions",
    "run_dispersion",
    "run_langevin",
    "sample_random",
    "sample_reject",
    "write_directions",
]
