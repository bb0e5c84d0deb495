import h5py
import numpy as np
import pytest

from synthcore.dataset import SampleCollection, export_package, import_package

from .conftest import fill


def test_export_layout_and_round_trip(tmp_path):
    src = tmp_path / "samples.h5"
    with SampleCollection.create(src, w_dim=4, z_dim=4, embedding_dim=3, options={"network_type": "sg2"}) as c:
        g = np.random.default_rng(0)
        labels = ["reference"] + [f"augmentation_{a}" for a in (0, 1, 2, 10)]
        for i in (0, 1, 12):
            c.append(i, labels, w=g.standard_normal((5, 4)).astype(np.float32),
                     z=g.standard_normal((5, 4)).astype(np.float32),
                     embedding=g.standard_normal((5, 3)).astype(np.float32))  # fmt: skip
    pkg = tmp_path / "package.h5"
    with SampleCollection.open(src) as c:
        export_package(c, pkg, embedding_type="iresnet50", progress=False)
        original = c.read()
    with h5py.File(pkg, "r") as f:
        assert f.attrs["magic"] == "synthetics_collection" and (f.attrs["major"], f.attrs["minor"]) == (2, 0)
        assert sorted(f) == ["00000", "00001", "00012"]
        g = f["00012/augmentation_10"]
        assert dict(g.attrs) == {"network_type": "sg2", "embedding_type": "iresnet50"}
        assert g["w_latent"].shape == (1, 4) and g["w_latent"].dtype == np.float32
        assert set(g) == {"w_latent", "z_latent", "embedding"}
        assert np.array_equal(g["embedding"][0], original["embedding"][14])
    out = import_package(pkg, tmp_path / "imported.h5", progress=False)
    with out:
        back = out.read()
        assert out.options["network_type"] == "sg2" and out.options["embedding_type"] == "iresnet50"
    # Natural label order (reference first, augmentation_2 before augmentation_10): the original order here.
    for k in ("identity", "label", "w", "z", "embedding"):
        assert np.array_equal(back[k], original[k]), k


def test_import_w_plus_partial_columns_and_errors(tmp_path):
    pkg = tmp_path / "p.h5"
    with h5py.File(pkg, "w") as f:
        f.attrs["magic"] = "synthetics_collection"
        f.attrs["major"], f.attrs["minor"] = 2, 0
        for i, label in ((3, "b"), (3, "a"), (1, "reference")):
            g = f.create_group(f"{i:05}/{label}")
            g.create_dataset("w_plus_latent", data=np.full((1, 2, 4), i, np.float32))
            if label != "a":
                g.create_dataset("embedding", data=np.ones((1, 5), np.float32))
            g.create_group("bfm_model").create_dataset("id", data=np.zeros((1, 80), np.float32))
    with pytest.warns(UserWarning):
        c = import_package(pkg, tmp_path / "s.h5", progress=False)
    with c:
        assert c.w_space == "w_plus" and "embedding" not in c.columns
        d = c.read()
        assert d["identity"].tolist() == [1, 3, 3] and d["label"].tolist() == ["reference", "a", "b"]
        assert d["w_plus"].shape == (3, 2, 4)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.attrs["magic"] = "something_else"
    with pytest.raises(ValueError, match="magic"):
        import_package(tmp_path / "bad.h5", tmp_path / "x.h5")
    with pytest.raises(FileExistsError):
        import_package(pkg, tmp_path / "s.h5")


def test_export_refuses_overwrite(tmp_path):
    with SampleCollection.create(tmp_path / "s.h5", w_dim=2, embedding_dim=2) as c:
        fill(c, identities=1, variations=0)
    (tmp_path / "p.h5").write_bytes(b"x")
    with SampleCollection.open(tmp_path / "s.h5") as c:
        with pytest.raises(FileExistsError):
            export_package(c, tmp_path / "p.h5", progress=False)


def test_a_failed_export_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    with SampleCollection.create(tmp_path / "s.h5", w_dim=2, embedding_dim=2) as c:
        fill(c, identities=2, variations=1)
    with SampleCollection.open(tmp_path / "s.h5") as c:
        export_package(c, tmp_path / "p.h5", progress=False)
    old = (tmp_path / "p.h5").read_bytes()
    # "a b" and "a_b" map to the same package name: the export fails after writing part of the file.
    with SampleCollection.create(tmp_path / "t.h5", w_dim=2, embedding_dim=2) as c:
        c.append([0, 0, 0], ["reference", "a b", "a_b"], w=np.zeros((3, 2)), embedding=np.ones((3, 2)))
    with SampleCollection.open(tmp_path / "t.h5") as c:
        with pytest.raises(ValueError, match="same package name"):
            export_package(c, tmp_path / "p.h5", overwrite=True, progress=False)
    assert (tmp_path / "p.h5").read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.h5", "s.h5", "t.h5"]
