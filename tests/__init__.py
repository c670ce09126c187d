"""The test suite: a package per package of dispatcher, whole runs, docs, benchmarks, helpers."""
