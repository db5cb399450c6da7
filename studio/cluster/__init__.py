"""Sweeps on a Ray cluster: many models x recipes, each (model, recipe) a Ray task that runs the studio's own
recipe worker on a node that can run it, every result committed to the local history as it arrives.

The only package that imports Ray (an optional extra: `pip install 'quantization-studio[cluster]'`).
"""
