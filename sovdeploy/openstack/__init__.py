"""OpenStack as its users meet it: credentials (clouds.yaml) and the user's-eye check.

- :mod:`usercheck`: what the verify phase does through the API as a new user would
  (token, catalog, image, network, server, volume), and the clouds.yaml it uses.
"""
