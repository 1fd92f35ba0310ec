"""The exit and portability runbook: what the deployment stores where, and how to take it out.

- :mod:`stores`: every data store of a deployment, where it lives and how it is exported;
- :mod:`topology`: the picture of sites, hosts, data stores and the flows between them.
"""
