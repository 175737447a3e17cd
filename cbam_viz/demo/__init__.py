"""The demo models: a generated shapes-in-clutter dataset with exact object masks, an independent second renderer of
it, the training recipe for the three small models, and their held-out evaluation. They let the app run, and its
maps be checked against ground truth, without downloading ImageNet weights.
"""
