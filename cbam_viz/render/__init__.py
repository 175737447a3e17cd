"""Pictures of an analysis: the app's panels (overlays, colour bars, attention plots and grids) drawn with numpy and
Pillow on a small text engine, the typefaces for each language, and the matplotlib export figure.
"""
