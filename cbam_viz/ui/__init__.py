"""The web app, split by job: start-up (``engine``), uploads, the gallery, panels, export, handlers and the layout.

``app.py`` at the repository root is the entry point (``python app.py``, Spaces); it calls ``layout.main``.
"""
