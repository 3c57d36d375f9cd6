"""The evaluation report of a model: its sections (``metrics.json``), the HTML page (a jinja2 template,
autoescaped), its plots and the tables printed in the terminal.
"""
