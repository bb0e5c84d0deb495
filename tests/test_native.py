import pytest
import torch

from synthcore import _native


def test_native_module_builds_and_reports():
    info = _native.build_info()
    assert info["native"], info
    assert info["cpu_isa_active"] in ("avx2+fma", "generic x86-64")
    assert set(info["cpu_isa_compiled"]) == {"generic", "avx2"}
    assert isinstance(info["cuda_compiled"], bool)
    if info["cuda_compiled"]:
        assert info["cuda_archs"]
        # Where a GPU is visible to torch, the native module must see it too.
        if torch.cuda.is_available():
            assert info["cuda_device_count"] >= 1


def test_set_cpu_isa_rejects_unknown():
    mod = _native.native_module()
    with pytest.raises(ValueError, match="cpu isa"):
        mod.set_cpu_isa("avx512")
    mod.set_cpu_isa("auto")


def test_raw_entry_points_validate_arguments():
    """The native module checks what it receives even when called directly, and never crashes."""
    mod = _native.native_module()
    x = torch.randn(1, 2, 8, 8)
    f = torch.ones(2, 2)
    y = torch.empty(1, 2, 7, 7)
    mod.upfirdn2d(x, f, y, 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0, 1)  # numpy/torch objects via __dlpack__
    with pytest.raises(ValueError, match="contiguous"):
        mod.upfirdn2d(x.transpose(2, 3), f, y, 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0, 1)
    with pytest.raises(ValueError, match="output height"):
        mod.upfirdn2d(x, f, torch.empty(1, 2, 6, 7), 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0, 1)
    with pytest.raises(ValueError, match="overlaps"):
        buf = torch.empty(2 * 8 * 8 + 2 * 7 * 7)
        x_in = buf[: 2 * 8 * 8].view(1, 2, 8, 8)
        y_overlapping = buf[10 : 10 + 2 * 7 * 7].view(1, 2, 7, 7)
        mod.upfirdn2d(x_in, f, y_overlapping, 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0, 1)
    with pytest.raises(TypeError, match="dtype"):
        mod.upfirdn2d(x.half(), f, y.half(), 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0, 1)
    with pytest.raises(TypeError, match="__dlpack__"):
        mod.upfirdn2d("not an array", f, y, 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0, 1)
    with pytest.raises(ValueError, match="up_x must be between 1 and"):
        mod.upfirdn2d(x, f, y, 0, 1, 1, 1, 0, 0, 0, 0, False, 1.0, 1)
    with pytest.raises(ValueError, match="order"):
        mod.bias_act(x, None, x, torch.empty_like(x), 1, 2, 0.2, 1.0, -1.0, 3, 1)
    with pytest.raises(ValueError, match="grad"):
        mod.bias_act(x, None, None, torch.empty_like(x), 1, 2, 0.2, 1.0, -1.0, 1, 1)


def test_numpy_arrays_are_accepted():
    np = pytest.importorskip("numpy")
    mod = _native.native_module()
    x = np.random.default_rng(0).standard_normal((1, 1, 5, 5)).astype(np.float32)
    out = np.empty_like(x)
    mod.bias_act(x, None, None, out, 1, 1, 0.0, 1.0, -1.0, 0, 1)  # relu, gain 1
    np.testing.assert_array_equal(out, np.maximum(x, 0))
