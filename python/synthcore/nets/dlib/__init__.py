"""Readers of dlib's model files, in pure Python/numpy/torch; nothing stored in a file is executed.

* ``serialize``: dlib's binary serialisation (integers, floats, strings, tensors, matrices) with bounds checks.
* ``resnet``: the face-recognition ResNet (``dlib-resnet-v1``) as a differentiable embedder.
* ``shape_predictor``: the 5-point landmark regression-tree cascade (``dlib-shape-predictor-5``).
* ``files``: registered model names -> files.
"""

from synthcore.nets.dlib.files import DLIB_MODEL_FILES, dlib_model_file
from synthcore.nets.dlib.resnet import DlibResNet, load_dlib_resnet, read_dlib_network
from synthcore.nets.dlib.serialize import DlibFormatError, DlibReader
from synthcore.nets.dlib.shape_predictor import ShapePredictor, read_shape_predictor

__all__ = [
    "DLIB_MODEL_FILES",
    "DlibFormatError",
    "DlibReader",
    "DlibResNet",
    "ShapePredictor",
    "dlib_model_file",
    "load_dlib_resnet",
    "read_dlib_network",
    "read_shape_predictor",
]
