"""The operator's pages, one module per page: parse, call one selector or service, render.

How a page answers htmx and how an action answers is in ``dashboard.htmx``.
"""
