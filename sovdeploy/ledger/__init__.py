"""The tamper-evident ledger: RFC 9162 Merkle trees in the C2SP tlog-tiles layout.

- :mod:`merkle`: hashing, inclusion and consistency proofs (RFC 9162);
- :mod:`tiles`: tile paths and entry bundles (c2sp.org/tlog-tiles);
- :mod:`note`, :mod:`checkpoint`: signed notes, checkpoints and witness cosignatures;
- :mod:`log`: the durable append path and its single writer;
- :mod:`records`: canonical JSON records with per-source sequence numbers;
- :mod:`proof`: inclusion receipts (c2sp.org/tlog-proof);
- :mod:`audit`: what an auditor runs against a copy or a live log;
- :mod:`archive`: the WORM archive in an S3 bucket under Object Lock.
"""
