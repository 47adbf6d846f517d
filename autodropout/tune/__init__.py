"""The Ray side of the search: trainable, cluster connection, Tuner driver and result collection.

Only this package and ``controller/searcher.py`` import Ray; import its modules directly
(``autodropout.tune.search``), this ``__init__`` stays import-free so Ray loads only when needed.
"""
