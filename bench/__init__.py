"""Benchmarks (`make bench`). Each module has a ``main()`` that prints its figures."""
