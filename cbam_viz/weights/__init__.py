"""The weights: the registry of published checkpoints and named sets, the weights folder and its records, conversion of
each published key layout, the demo set's metadata, downloading, and resolving and loading a model.
"""
