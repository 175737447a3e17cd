"""The command line, ``python -m cbam_viz`` (console script ``cbam-viz``): ``main`` dispatches to one module per
command (analyze, weights, train-demo). Modules import torch only inside their handlers, so ``--help`` stays quick.
"""
