"""Inference: the registry of runnable models (EfficientNet-Lite0/1/2, timm:, torchvision:) and the runner that
applies one to an image set on CPU or GPU, resumably and in shards, and publishes its predictions to the store.

The top library layer: may import every layer below (store, taxonomy, knowledge); only the CLI and the
dashboard's Run page import it.
"""
