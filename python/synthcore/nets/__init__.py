"""Networks: face-recognition embedders (and, later, the generator), with safe model-file loading.

Built from plain torch and ``synthcore.ops``; never from ``synthcore._C`` directly.
"""
