"""Who may use the inbox and the worker's web server: the decisions (:mod:`.webauth`, no server in
them) and the aiohttp middleware and sign-in page that ask them (:mod:`.webguard`).
"""
