"""The app's words in every language: the catalogues (locales/*.json), the current visitor's language, and the
plain-language explanations of each panel. Nothing here imports torch, so the CLI's parsers can use it.
"""
