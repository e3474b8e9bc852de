"""Benchmarks (``scripts/bench``, ``constellate bench``): kept out of the service's core package.

``bench.run`` is the quick/full bench, ``bench.service`` the running-service sections (ingest through
the API, routes, ``/search`` under wrk), ``bench.scale`` the scale series, ``bench.data`` the stores
of jittered real vectors they share.
"""
