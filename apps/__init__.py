"""What people run: the ``churnwatch`` command line, the demo and the CSM inbox.

The apps sit above both halves of churnwatch — the stream (:mod:`pipeline`) and the offline side
(:mod:`training`) — and above the development tools (:mod:`devtools`); nothing below imports them.
"""
