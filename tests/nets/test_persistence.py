"""The restricted snapshot unpickler: official layouts load, nothing stored runs, bad files give clear errors."""

import importlib
import os
import pickle
import struct
import subprocess

import pytest
import torch

from synthcore.nets.persistence import (
    PersistentRecord,
    SnapshotError,
    UnsafePickleError,
    loads_snapshot,
    read_snapshot,
)
from synthcore.nets.snapshot import load_network_pickle
from synthcore.nets.stylegan2 import Generator
from tests.nets import hostile_snapshots as H
from tests.nets.sg2_data import MODELS, layout, pkl

PLACEHOLDER = b"# source text omitted from this test file; a loader must never execute this field\n"


@pytest.mark.parametrize("name", MODELS)
def test_snapshot_records_match_layout(name):
    """Every network record of the file is read with the layout the official code dumped (classes, tensors)."""
    data = read_snapshot(pkl(name))
    lay = layout(name)
    assert list(data) == lay["top_level_keys"]
    assert data["training_set_kwargs"] == lay["training_set_kwargs"]
    for key in ("G", "D", "G_ema", "augment_pipe"):
        if lay[key] is None:
            assert data[key] is None
            continue
        records = dict(data[key].named_records())
        assert [m["path"] for m in lay[key]] == list(records), key
        for m in lay[key]:
            rec = records[m["path"]]
            assert rec.class_name == m["class_name"]
            assert rec.init_kwargs == m["init_kwargs"]
            shapes = {k: list(t.shape) for k, t in rec.tensors().items() if t is not None}
            want = {k: v["shape"] for k, v in {**m["parameters"], **m["buffers"]}.items()}
            assert shapes == want, m["path"]
            assert all(t.dtype == torch.float32 for t in rec.tensors().values() if t is not None)


@pytest.mark.parametrize("name", MODELS)
def test_generator_structure_matches_layout(name):
    """synthcore's Generator has the official module tree, tensor names and shapes, and stored attributes."""
    G = load_network_pickle(pkl(name), keys=["G_ema"])["G_ema"]
    assert isinstance(G, Generator)
    mods = dict(G.named_modules())
    for m in layout(name)["G_ema"]:
        ours = mods[m["path"]]
        assert type(ours).__name__ == m["class_name"], m["path"]
        tensors = {k: list(v.shape) for k, v in list(ours._parameters.items()) + list(ours._buffers.items())}
        assert tensors == {k: v["shape"] for k, v in {**m["parameters"], **m["buffers"]}.items()}, m["path"]
        for attr, value in m["attributes"].items():
            if isinstance(value, dict) and "__numpy_scalar__" in value:
                value = value["value"]
            if attr in getattr(ours, "STRUCT_ATTRS", ()) + getattr(ours, "VALUE_ATTRS", ()):
                assert getattr(ours, attr) == value, f"{m['path']}.{attr}"
    assert len(mods) == len(layout(name)["G_ema"])


def test_g_and_g_ema_differ_and_augment_pipe_stays_inert():
    nets = load_network_pickle(pkl("sg2ada_r32_uncond_fp16"))
    assert type(nets["D"]).__name__ == "Discriminator"
    assert isinstance(read_snapshot(pkl("sg2ada_r32_uncond_fp16"))["D"], PersistentRecord)
    assert isinstance(nets["augment_pipe"], PersistentRecord) and nets["augment_pipe"].class_name == "AugmentPipe"
    w_g, w_ema = nets["G"].mapping.w_avg, nets["G_ema"].mapping.w_avg
    assert not torch.equal(w_g, w_ema)
    assert not any(p.requires_grad for p in nets["G_ema"].parameters()) and not nets["G_ema"].training


def _replace_module_src(data: bytes, source: str) -> bytes:
    """The test pickles store module_src once (BINUNICODE); swap in other text with a correct length prefix."""
    old = b"X" + struct.pack("<I", len(PLACEHOLDER)) + PLACEHOLDER
    assert data.count(old) == 1
    new = source.encode()
    return data.replace(old, b"X" + struct.pack("<I", len(new)) + new)


def test_module_src_is_never_executed(tmp_path):
    marker = tmp_path / "executed.txt"
    src = f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit('module_src was executed')\n"
    bad = tmp_path / "evil_src.pkl"
    bad.write_bytes(_replace_module_src(pkl("sg2ada_r16_orig_gray").read_bytes(), src))
    nets = load_network_pickle(bad)
    G = nets["G_ema"]
    z = torch.randn(2, G.z_dim)
    c = torch.eye(G.c_dim)[:2]
    with torch.no_grad():
        assert torch.isfinite(G(z, c)).all()
    assert not marker.exists()
    assert read_snapshot(bad)["D"].module_src_chars == len(src)  # the text was read as data, nothing more


class _Call:
    """Pickles as a call of ``fn(*args)``: how a malicious pickle runs code."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize(
    "fn, args, name",
    [
        (os.system, ("touch {marker}",), f"{os.system.__module__}.system"),
        (eval, ("open({marker!r}, 'w')",), "builtins.eval"),
        (subprocess.Popen, (["touch", "{marker}"],), "subprocess.Popen"),
        (importlib.import_module, ("os",), "importlib.import_module"),
    ],
)
def test_forbidden_global_is_refused_by_name(tmp_path, fn, args, name):
    marker = str(tmp_path / "pwned")
    args = tuple(a.format(marker=marker) if isinstance(a, str) else a for a in args)
    args = tuple([v.format(marker=marker) for v in a] if isinstance(a, list) else a for a in args)
    payload = {"G": None, "training_set_kwargs": {"path": _Call(fn, *args)}}
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(UnsafePickleError, match=name.replace(".", r"\.")):
        load_network_pickle(path)
    assert not os.path.exists(marker)


def test_forbidden_global_inside_a_real_network_is_refused(tmp_path):
    """A hostile global hidden in a module's state (after many allowed ones) is still refused."""
    data = pkl("sg2ada_r16_orig_gray").read_bytes()
    key = b"\x8c\x08training\x94\x89"  # SHORT_BINUNICODE 'training', MEMOIZE, NEWFALSE: first module's state
    assert key in data
    evil = pickle.dumps(_Call(os.system, "true"), protocol=4)[2:-1]  # the call's opcodes without PROTO and STOP
    path = tmp_path / "evil2.pkl"
    path.write_bytes(data.replace(key, key[:-1] + evil, 1))
    with pytest.raises(UnsafePickleError, match="system"):
        read_snapshot(path)


def test_truncated_file_gives_clear_error(tmp_path):
    data = pkl("sg2ada_r16_orig_gray").read_bytes()
    for cut in (1, 100, len(data) // 2, len(data) - 1):
        path = tmp_path / "cut.pkl"
        path.write_bytes(data[:cut])
        with pytest.raises(SnapshotError, match=r"cut\.pkl.*(truncated|corrupt)"):
            load_network_pickle(path)


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"", "empty file"),
        (bytes(range(256)) * 8, "not a pickle"),
        (b"\x80\x04" + bytes(range(7, 250)), "truncated or corrupt"),
        (b"PK\x03\x04" + b"\0" * 64, "zip archive"),
        (pickle.dumps([1, 2, 3]), "expected a dict"),
    ],
)
def test_garbage_gives_clear_error(tmp_path, blob, message):
    path = tmp_path / "garbage.pkl"
    path.write_bytes(blob)
    with pytest.raises(SnapshotError, match=message):
        load_network_pickle(path)


def test_corrupt_tensor_storage_is_reported():
    data = bytearray(pkl("sg2ada_r16_orig_gray").read_bytes())
    # Each tensor's bytes are a legacy torch.save stream that starts with a magic number; damage the first one.
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    at = data.find(magic)
    assert at > 0
    data[at + 3 : at + 5] = b"\xff\xff"
    with pytest.raises(SnapshotError, match="magic"):
        loads_snapshot(bytes(data))


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        read_snapshot("/nonexistent/network.pkl")


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_plain_data_variants_decode(protocol):
    """bytes (protocol 2 uses _codecs.encode), numpy scalars of either NumPy generation, sets, OrderedDicts."""
    import collections

    import numpy as np

    payload = {
        "raw": b"\x00\xffabc",
        "f64": np.float64(0.125),
        "f32": np.float32(2.5),
        "i64": np.int64(-7),
        "set": {1, 2},
        "od": collections.OrderedDict(a=1),
        "arr": np.arange(6, dtype=np.int32).reshape(2, 3),
    }
    out = loads_snapshot(pickle.dumps(payload, protocol=protocol))
    assert out["raw"] == b"\x00\xffabc"
    assert out["f64"] == 0.125 and out["f32"] == 2.5 and out["i64"] == -7
    assert out["set"] == {1, 2} and out["od"] == {"a": 1}
    np.testing.assert_array_equal(out["arr"], np.arange(6).reshape(2, 3))


def test_numpy_object_arrays_are_refused():
    import numpy as np

    blob = pickle.dumps({"arr": np.array([1, "x"], dtype=object)}, protocol=4)
    with pytest.raises(UnsafePickleError):
        loads_snapshot(blob)


# --- hostile files: work and memory bounded by what the file really holds ------------------------------------------


def _nested_pairs(depth: int) -> list:
    """A list doubled ``depth`` times by reference: a few bytes pickled, 2**depth leaves when walked naively."""
    x = [0]
    for _ in range(depth):
        x = [x, x]
    return x


def _stride0_generator(path, resolution: int = 1024) -> int:
    """A complete generator record (official class and tensor names) whose every tensor is a stride-0 view of one
    stored float: 13 KB on disk, 33 million values once a reader materialises the views."""
    cfg = {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": resolution, "img_channels": 3,
           "mapping_kwargs": {}, "synthesis_kwargs": {"channel_base": 32768, "channel_max": 512}}  # fmt: skip
    with torch.device("meta"):
        G = Generator(**cfg, init=False)
    one = H.Storage(torch.ones(1))
    rec = H.record_tree(G, lambda name, t: H.View(one, tuple(t.shape), (0,) * t.ndim), init_kwargs=G.config)
    H.write_snapshot(path, {"G_ema": rec, "G": rec})
    return sum(t.numel() for t in G.state_dict().values())


def test_hostile_files_are_refused_within_1s_and_100mb(tmp_path):
    """The files of issue 14.1, each loaded in a fresh interpreter: refused with a reason, fast, without memory.
    (Before: the stride-0 file loaded as a generator of ones, adding 132 MB; the shared lists ran for minutes.)"""
    files = {"stride0.pkl": "stride-0", "shared25.pkl": "expand to over", "shared26.pkl": "expand to over",
             "deep.pkl": "nested more than"}  # fmt: skip
    assert _stride0_generator(tmp_path / "stride0.pkl") > 30_000_000
    assert (tmp_path / "stride0.pkl").stat().st_size < 20_000
    for depth in (25, 26):
        blob = pickle.dumps({"G_ema": None, "training_set_kwargs": {"x": _nested_pairs(depth)}}, protocol=4)
        assert len(blob) < 250
        (tmp_path / f"shared{depth}.pkl").write_bytes(blob)
    depth = 10_000  # pickle's own writer cannot even write this (recursion), so it is assembled by opcodes
    (tmp_path / "deep.pkl").write_bytes(
        H.opcodes(
            pickle.EMPTY_DICT, H.text("x"), pickle.EMPTY_LIST * depth, pickle.APPEND * (depth - 1), pickle.SETITEM
        )  # fmt: skip
    )
    results = H.measure_loads([tmp_path / name for name in files], how="generator")
    for (name, reason), res in zip(files.items(), results):
        assert res["error"] is not None and res["error"].startswith("SnapshotError"), (name, res)
        assert name in res["error"] and reason in res["error"], (name, res)
        # CPU time: on a shared test machine the wall clock also counts other processes' turns.
        assert res["cpu_seconds"] < 1.0 and res["seconds"] < 10, (name, res)
        assert res["grown_mb"] < 100, (name, res)


def test_overlapping_views_of_one_storage_are_refused(tmp_path):
    storage = H.Storage(torch.arange(12.0))
    cases = {
        "interleaved": {"t": H.View(storage, (3, 4), (1, 1))},  # rows overlap: element 1 is (0, 1) and (1, 0)
        "two views": {"a": H.View(storage, (12,), (1,)), "b": H.View(storage, (6,), (2,))},
        "stride 0": {"t": H.View(storage, (5, 2), (0, 1))},
    }
    for what, data in cases.items():
        path = tmp_path / f"{what.replace(' ', '_')}.pkl"
        H.write_snapshot(path, data)
        with pytest.raises(SnapshotError, match=rf"{path.name}: .*(overlapping|more than once)"):
            read_snapshot(path)
    # What real files hold still loads: disjoint views of one storage, size-1 dimensions with any stride,
    # transposed and empty views.
    fine = {"a": H.View(storage, (2, 3), (3, 1)), "b": H.View(storage, (3, 2), (1, 3), offset=6),
            "c": H.View(storage, (1, 0), (0, 0))}  # fmt: skip
    H.write_snapshot(tmp_path / "fine.pkl", fine)
    out = read_snapshot(tmp_path / "fine.pkl")
    assert out["a"].tolist() == [[0, 1, 2], [3, 4, 5]] and out["b"].tolist() == [[6, 9], [7, 10], [8, 11]]
    assert out["c"].shape == (1, 0)


def test_tensor_referenced_over_and_over_is_refused(tmp_path):
    t = torch.zeros(100_000)
    path = tmp_path / "refs.pkl"
    H.write_snapshot(path, {"x": [t] * 3})  # the same tensor three times: fine
    assert len(read_snapshot(path)["x"]) == 3
    H.write_snapshot(path, {"x": [[t] * 4] * 4})  # 16 references to 100k elements stored once
    with pytest.raises(SnapshotError, match="referenced so often"):
        read_snapshot(path)


def test_hash_bomb_key_and_cycle_are_refused():
    """A tuple doubled 60 times as a dict key would make the dict hash 2**60 leaves (forever): refused before
    hashing. A list that holds itself is refused instead of recursing."""
    bomb = H.opcodes(
        pickle.EMPTY_DICT, H.text("x"), pickle.EMPTY_DICT, H.text("k"), (pickle.DUP + pickle.TUPLE2) * 60,
        pickle.NONE, pickle.SETITEM, pickle.SETITEM,
    )  # fmt: skip
    with pytest.raises(SnapshotError, match="dictionary key is a tuple"):
        loads_snapshot(bomb, "bomb.pkl")
    doubled = H.text("k") + (pickle.DUP + pickle.TUPLE2) * 60
    for name, args in (
        (b"builtins\nset\n", pickle.EMPTY_LIST + doubled + pickle.APPEND),  # set([bomb])
        (b"dnnlib.util\nEasyDict\n", pickle.EMPTY_LIST + doubled + pickle.NONE + pickle.TUPLE2 + pickle.APPEND),
    ):  # the second is EasyDict([(bomb, None)])
        blob = H.opcodes(pickle.EMPTY_DICT, H.text("x"), pickle.GLOBAL + name, args, pickle.TUPLE1, pickle.REDUCE,
                         pickle.SETITEM)  # fmt: skip
        with pytest.raises(SnapshotError, match="set item is a tuple|EasyDict called with arguments"):
            loads_snapshot(blob, "bomb.pkl")
    cycle = H.opcodes(pickle.EMPTY_DICT, H.text("x"), pickle.EMPTY_LIST, pickle.MEMOIZE, pickle.BINGET + b"\x00",
                      pickle.APPEND, pickle.SETITEM)  # fmt: skip
    with pytest.raises(SnapshotError, match="cycle.pkl: a list contains itself"):
        loads_snapshot(cycle, "cycle.pkl")


def test_build_on_a_record_or_tensor_is_refused(tmp_path):
    """BUILD (set an object's state) is only used on numpy dtypes; on a record, tensor or list it is refused."""
    path = tmp_path / "build.pkl"
    for target, what in ((PersistentRecord("Generator", {}), "PersistentRecord"), (torch.ones(2), "Tensor")):
        H.write_snapshot(path, {"G": H.WithState(target, {"class_name": "x"})})
        with pytest.raises(SnapshotError, match=f"build.pkl: a BUILD opcode sets the state of a {what}"):
            read_snapshot(path)
    state = pickle.EMPTY_DICT + H.text("x") + pickle.NONE + pickle.SETITEM  # {'x': None}
    blob = H.opcodes(pickle.EMPTY_DICT, H.text("t"), pickle.EMPTY_LIST, state, pickle.BUILD, pickle.SETITEM)
    with pytest.raises(SnapshotError, match="BUILD opcode sets the state of a list"):
        loads_snapshot(blob, "build.pkl")


def test_shared_containers_are_converted_once():
    """Shared (memoised) containers stay shared after loading instead of being copied per reference."""
    inner = {"a": [1, 2]}
    out = loads_snapshot(pickle.dumps({"x": [inner, inner], "y": (inner,)}, protocol=4))
    assert out["x"][0] is out["x"][1] is out["y"][0] and out["x"][0] == {"a": [1, 2]}


def test_record_tables_need_text_names(tmp_path):
    """A tensor or child named by a number (a damaged file) is one clear error, not a failed sort later on."""
    path = tmp_path / "names.pkl"
    H.write_snapshot(path, {"G_ema": PersistentRecord("Generator", {"_parameters": {1: torch.ones(2)}})})
    with pytest.raises(SnapshotError, match=r"names\.pkl: Generator record: _parameters has a name that is not text"):
        read_snapshot(path)
