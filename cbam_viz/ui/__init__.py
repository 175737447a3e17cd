"""The web app: the page's sections (``sections/``), the panels they show (``panels/``), the server around them
(``server/``), and the pieces they share (uploads, the gallery, lesson links, live frames, the tab's results).

``app.py`` at the repository root is the entry point (``python app.py``, Spaces); it calls ``layout.main``.
"""
