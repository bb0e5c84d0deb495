"""Least-squares similarity transforms (uniform scale, rotation, translation) between point sets."""

import torch


def estimate_similarity(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """[N, 2, 3] maps taking each ``src[n]`` ([N, P, 2]) onto ``dst`` ([P, 2] or [N, P, 2]) in least squares.

    The 4-parameter model [[a, -b, tx], [b, a, ty]] covers every scaled rotation and no reflection or shear;
    minimising the squared point error over (a, b, tx, ty) is a linear problem whose solution is the one
    Umeyama's method gives for the no-reflection case. Closed form, batched, differentiable.
    """
    if src.ndim != 3 or src.shape[-1] != 2:
        raise ValueError(f"expected landmarks [N, P, 2], got {list(src.shape)}")
    dst = dst.to(src.dtype).expand_as(src)
    mu_s, mu_d = src.mean(dim=1, keepdim=True), dst.mean(dim=1, keepdim=True)
    s, d = src - mu_s, dst - mu_d
    spread = (s * s).sum(dim=(1, 2))
    if bool((spread <= torch.finfo(src.dtype).tiny).any()):
        raise ValueError("landmarks of at least one image all coincide: no similarity transform is defined")
    a = (s[..., 0] * d[..., 0] + s[..., 1] * d[..., 1]).sum(dim=1) / spread
    b = (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0]).sum(dim=1) / spread
    mx, my = mu_s[:, 0, 0], mu_s[:, 0, 1]
    tx = mu_d[:, 0, 0] - (a * mx - b * my)
    ty = mu_d[:, 0, 1] - (b * mx + a * my)
    return torch.stack([torch.stack([a, -b, tx], dim=-1), torch.stack([b, a, ty], dim=-1)], dim=1)
