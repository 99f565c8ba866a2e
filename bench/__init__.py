"""Benchmarks (``make bench``): each module here with a ``main(argv)`` is a suite."""
