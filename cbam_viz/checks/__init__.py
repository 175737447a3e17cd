"""Can we trust these maps? The sanity checks of the CAMs and attention maps: parameter randomisation and the random
logit, deletion and insertion curves, and the pointing game on a box or a mask. Each works per model (for scripts
and tests) or per picture (for the app, the API and the CLI).
"""
