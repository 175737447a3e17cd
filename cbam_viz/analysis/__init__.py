"""The analysis engine: what one analysis is asked (options), the single hooked pass per model (capture, gates), CAMs
(cam), interventions, the numbers that compare maps (metrics), the result types and their JSON Schema, and the model
cache. Everything here works on one model or one prepared input; ``cbam_viz.pipeline`` runs it over a picture.
"""
