"""The test suite: one package per package of dispatcher, end-to-end runs, docs, benchmarks, and the helpers they share."""
