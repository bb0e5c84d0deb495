"""Identity algorithms: reference identities (Langevin, random, reject) and their variations (Dispersion, DisCo).

All of them move W latents of a StyleGAN2-family generator and measure identity with a face-recognition
embedder, through :class:`FacePipeline`. Maths, defaults and the published code's known flaws that synthcore
avoids: ``../shared/docs/identity_diffusion.md``; our account: ``docs/ARCHITECTURE.md``.
"""

from synthcore.identity.langevin import LangevinConfig, LangevinResult, run_langevin
from synthcore.identity.pipeline import FacePipeline

__all__ = ["FacePipeline", "LangevinConfig", "LangevinResult", "run_langevin"]
