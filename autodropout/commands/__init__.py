"""The commands: ``autodropout`` (``cli``), ``train``, ``transfer`` (and its report) and ``list``
(``catalog``); ``study`` is its own folder beside this one. The top layer: nothing imports it."""
