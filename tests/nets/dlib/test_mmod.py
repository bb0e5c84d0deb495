"""synthcore.nets.dlib.mmod: dlib's MMOD CNN face detector against answers measured with dlib itself.

Known answers (dlib 20.0.1, ``dlib-bin``, ``cnn_face_detection_model_v1(mmod_human_face_detector.dat)``,
``det(image, upsample)`` -> (left, top, right, bottom, confidence)):

* ``skimage.data.astronaut()`` (512x512), upsample 0: (168, 69, 263, 164) score 1.0625124
* ``chip_astronaut.png`` (../shared/testdata/realmodels, 150x150), upsample 0: (6, 7, 119, 121) score 1.0617173
* the same chip, upsample 1: (2, -3, 120, 115) score 1.0651069
* ``chip_noise_seed0.png`` and ``chip_gradient.png``, upsample 0 and 1: no detection.

The port reproduced these boxes exactly and the scores to 2e-6; it also gave dlib's boxes on 200/200 random
DCGAN frames at upsample 1 (scores within 8e-4; dlib's uint8 2x upsampling rounds a few pixels differently).
"""

import numpy as np
import pytest
import torch
from PIL import Image

from synthcore.nets.dlib.mmod import MMODDetector, MMODNet, read_mmod, tiled_pyramid_layout
from synthcore.nets.dlib.serialize import DlibFormatError
from tests.nets.dlib.conftest import enc_float, enc_int, enc_string, enc_tensor, model_file, realmodels_dir

SCORE_TOL = 2e-3  # scores agree to ~2e-6; the margin covers BLAS summation order on other machines

ASTRONAUT_UP0 = ((168, 69, 263, 164), 1.0625124)
CHIP_UP0 = ((6, 7, 119, 121), 1.0617173)
CHIP_UP1 = ((2, -3, 120, 115), 1.0651069)


@pytest.fixture(scope="module")
def detector():
    return MMODDetector.load(model_file("dlib-mmod-detector"))


def _png(name: str) -> np.ndarray:
    return np.asarray(Image.open(realmodels_dir() / f"chip_{name}.png").convert("RGB"))


def _check(found, expected):
    assert len(found) == 1, found
    box, score = expected
    assert tuple(found[0][:4]) == box
    assert found[0][4] == pytest.approx(score, abs=SCORE_TOL)


def test_file_contents(detector):
    o = detector.options
    assert o.windows == ((80, 80),)
    assert o.nms_iou_threshold == pytest.approx(0.3382761, abs=1e-6)
    assert o.nms_percent_covered_threshold == 1.0
    # three stride-2 5x5 convolutions without padding: output cell x sits at input 8x + 14
    assert (detector.net.scale, detector.net.offset) == (8, 14)
    convs = [m for m in detector.net.body if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 32, 45, 45, 45, 1]


def test_astronaut(detector):
    skimage_data = pytest.importorskip("skimage.data", reason="the astronaut image comes from scikit-image")
    _check(detector.detect(skimage_data.astronaut(), upsample=0), ASTRONAUT_UP0)


def test_chip_and_upsampling(detector):
    chip = _png("astronaut")
    _check(detector.detect(chip, upsample=0), CHIP_UP0)
    _check(detector.detect(chip, upsample=1), CHIP_UP1)


def test_no_face(detector):
    for name in ("noise_seed0", "gradient"):
        assert detector.detect(_png(name), upsample=1) == []


def test_batch_matches_single(detector):
    images = np.stack([_png("astronaut"), _png("noise_seed0"), _png("astronaut")[:, ::-1]])
    batch = detector.detect_batch(images, upsample=0, chunk=2)
    assert batch == [detector.detect(im, upsample=0) for im in images]
    assert len(batch[2]) == 1 and batch[2][0][4] > 0.5  # the mirrored face is found too


def test_bad_images(detector):
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((40, 40, 3), np.float32))
    with pytest.raises(ValueError, match="upsample"):
        detector.detect(np.zeros((40, 40, 3), np.uint8), upsample=-1)
    assert detector.detect(np.zeros((3, 3, 3), np.uint8)) == []


@pytest.mark.parametrize("size", [(64, 64), (129, 130), (512, 512), (700, 600), (40, 400), (1025, 1026)])
def test_layout_invariants(size):
    h, w = size
    canvas_h, canvas_w, rects = tiled_pyramid_layout(h, w)
    assert rects[0] == (11, 11, w, h) and canvas_w == w + 22
    for i, (left, top, lw, lh) in enumerate(rects):
        assert 0 <= left and left + lw <= canvas_w and 0 <= top and top + lh <= canvas_h
        if i:
            assert (lh, lw) == (int(rects[i - 1][3] * 5 / 6), int(rects[i - 1][2] * 5 / 6))
        for other in rects[:i]:  # levels never overlap
            ol, ot, ow, oh = other
            assert left >= ol + ow or ol >= left + lw or top >= ot + oh or ot >= top + lh


# -- hand-made files: the reader's semantics and its refusals ---------------------------------------------------


def _training_state() -> bytes:
    return b"110" + (enc_int(2) + enc_int(0) * 4) * 3


def _tiny_file(tag: str = "loss_mmod_", relu: str = "relu_", filters: int = 2) -> bytes:
    """A valid two-convolution MMOD file: con 3->2 3x3 pad 1, bn_con2, relu, con 2->1 1x1; window 8x8."""
    rng = np.random.default_rng(1)
    out = enc_int(1) + enc_string(tag) + enc_int(1) + enc_int(8) + enc_int(8)
    out += b"".join(enc_float(v) for v in (1.0, 1.0, 0.5, 0.375, 1.0, 0.5, 1.0))
    out += enc_int(2) * 3 + enc_int(3) + enc_string("input_rgb_image_pyramid")
    out += b"".join(enc_float(v) for v in (120.0, 110.0, 100.0))
    w1 = rng.standard_normal(filters * 3 * 9 + filters).astype(np.float32)
    out += enc_string("con_4") + enc_tensor(w1) + b"".join(enc_int(v) for v in (filters, 3, 3, 1, 1, 1, 1))
    out += enc_int(1) + b"".join(enc_int(v) for v in (filters, 3, 3, 3))
    out += enc_int(1) + b"".join(enc_int(v) for v in (1, filters, 1, 1))
    out += b"".join(enc_float(v) for v in (1.0, 1.0, 1.0, 0.0)) + _training_state() + enc_int(1)
    gamma_beta = np.array([1.5, 0.5, 0.25, -0.25], np.float32)
    stats = [np.array([0.1, 0.2], np.float32), np.array([1.0, 1.0], np.float32)]
    running = [np.array([0.5, -0.5], np.float32), np.array([4.0, 0.25], np.float32)]
    out += enc_string("bn_con2") + enc_tensor(gamma_beta)
    out += (enc_int(1) + b"".join(enc_int(v) for v in (1, 2, 1, 1))) * 2
    out += b"".join(enc_tensor(t) for t in stats + running) + enc_int(100) + enc_int(100)
    out += b"".join(enc_float(v) for v in (1.0, 0.0, 1.0, 1.0, 0.0)) + _training_state()
    out += enc_string(relu) + _training_state()
    w2 = np.array([0.75, -1.25, 0.5], np.float32)
    out += enc_string("con_4") + enc_tensor(w2) + b"".join(enc_int(v) for v in (1, 1, 1, 1, 1, 0, 0))
    out += enc_int(1) + b"".join(enc_int(v) for v in (1, 2, 1, 1))
    out += enc_int(1) + b"".join(enc_int(v) for v in (1, 1, 1, 1))
    out += b"".join(enc_float(v) for v in (1.0, 1.0, 1.0, 0.0)) + _training_state()
    return out


def test_tiny_file_semantics(tmp_path):
    path = tmp_path / "tiny.dat"
    path.write_bytes(_tiny_file())
    options, means, layers = read_mmod(path)
    assert options.windows == ((8, 8),) and options.nms_iou_threshold == 0.375
    assert means == (120.0, 110.0, 100.0)
    net = MMODNet(means, layers)
    # The same network written out plainly: batch norm with running statistics (epsilon 0 here), ReLU, 1x1 conv.
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    w1 = torch.from_numpy(layers[0].weight).double()
    b1 = torch.from_numpy(layers[0].bias).double()
    y = torch.nn.functional.conv2d(x, w1, b1, padding=1)
    y = (y - torch.tensor([0.5, -0.5]).view(1, 2, 1, 1)) / torch.tensor([2.0, 0.5]).view(1, 2, 1, 1)
    y = torch.relu(y * torch.tensor([1.5, 0.5]).view(1, 2, 1, 1) + torch.tensor([0.25, -0.25]).view(1, 2, 1, 1))
    y = torch.nn.functional.conv2d(
        y, torch.tensor([0.75, -1.25]).view(1, 2, 1, 1).double(), torch.tensor([0.5]).double()
    )
    torch.testing.assert_close(net(x.float()).double(), y, atol=1e-5, rtol=1e-5)
    assert (net.scale, net.offset) == (1, 0)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b.replace(b"loss_mmod_", b"loss_mmoX_"), "loss layer tag"),
        (lambda b: b.replace(b"relu_", b"relx_"), "unsupported layer 'relx_'"),
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:-3], "truncated"),
        (lambda b: b + b"\x00", "trailing"),
        (lambda b: b.replace(b"input_rgb_image_pyramid", b"input_rgb_image_pyramiX"), "input layer tag"),
    ],
)
def test_refused_files(tmp_path, mutate, message):
    path = tmp_path / "bad.dat"
    path.write_bytes(mutate(_tiny_file()))
    with pytest.raises(DlibFormatError, match=message):
        read_mmod(path)


def test_absurd_dimensions_refused_without_allocation(tmp_path):
    data = _tiny_file()
    first = enc_string("con_4") + enc_int(2) + enc_int(2 * 27 + 2)  # the first parameter tensor's n
    huge = enc_string("con_4") + enc_int(2) + enc_int(1 << 40)
    assert data.count(first) == 1
    path = tmp_path / "absurd.dat"
    path.write_bytes(data.replace(first, huge))
    with pytest.raises(DlibFormatError, match="absurd"):
        read_mmod(path)
    # A parameter count that does not match the declared filters x inputs x kernel.
    geometry = b"".join(enc_int(v) for v in (2, 3, 3, 1, 1, 1, 1))
    assert data.count(geometry) == 1
    path.write_bytes(data.replace(geometry, b"".join(enc_int(v) for v in (3, 3, 3, 1, 1, 1, 1))))
    with pytest.raises(DlibFormatError, match="parameters, expected"):
        read_mmod(path)


def test_truncated_real_file_refused(tmp_path):
    data = model_file("dlib-mmod-detector").read_bytes()
    path = tmp_path / "cut.dat"
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(DlibFormatError, match="truncated"):
        MMODDetector.load(path)
