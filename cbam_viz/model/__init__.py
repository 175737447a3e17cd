"""The models: one ResNet-50 with a single attention slot per bottleneck, filled by nothing, SE or CBAM, and the
switches that let published checkpoints load strictly.
"""
