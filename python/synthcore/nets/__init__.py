"""Networks: the StyleGAN2 generator and face-recognition embedders, with safe model-file loading.

Built from plain torch and ``synthcore.ops``; never from ``synthcore._C`` directly.
"""
