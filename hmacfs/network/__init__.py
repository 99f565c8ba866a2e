"""The client's network: measurements, link estimates, profiles and the sizes chosen from them.

Pure parts (no I/O, unit-tested on their own): ``tcp_info`` (decoding the
kernel's ``struct tcp_info``), ``estimate`` (samples and outcomes to a link
estimate), ``sizing`` (chunk and read-buffer sizes), ``strategy`` (A/B arms
and the automatic fallback). ``profiles`` and ``sql`` keep the estimates per
client in the ``client_profiles`` table. docs/adaptive.md describes the rules.
"""
