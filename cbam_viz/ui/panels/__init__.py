"""The panels: each one declared once (``registry``), the cells that show them (``cells``), and what the gate,
intervention and trust panels draw."""
