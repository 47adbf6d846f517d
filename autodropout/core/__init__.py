"""The foundation every other folder may import: errors and their exit status (``errors``), type
predicates (``checks``), atomic writes (``atomic``), the output-folder rule (``folders``), typed
configs from and to dicts (``config``), the name registries (``registry``) and the statistics every
report uses (``stats``: means, standard errors, t-intervals, paired differences). Nothing here knows
about patterns, models or Ray."""
