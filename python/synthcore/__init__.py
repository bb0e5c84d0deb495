"""synthcore: synthetic face-dataset generation with native CPU/CUDA kernels.

Layers (see docs/ARCHITECTURE.md): ``synthcore._C`` kernels -> ``synthcore._native`` loader ->
``synthcore.ops`` public ops with pure-torch references -> networks, algorithms, datasets, CLI.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
