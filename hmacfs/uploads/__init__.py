"""The resumable upload engine shared by the chunked, Drive and tus protocols.

Its cleanup steps (stale uploads, stale scratch parts) are listed in ``hmacfs.composition``.
"""
