"""The LSTM controller trained with REINFORCE (Pham & Le, AAAI 2021, sec. 3.3): the default searcher.

Its classes predate the registry and live in :mod:`autodropout.controller.searcher` (the Ray adapter),
:mod:`~autodropout.controller.policy` and :mod:`~autodropout.controller.reinforce`; they are named by
path, so that checking ``search.controller: lstm`` imports neither Ray nor torch's policy. Its settings
are :class:`~autodropout.controller.config.ControllerConfig`, spelt in the experiment file as the
flat ``search`` keys they always had (``samples_per_update``, ``controller_lr``, ...;
:data:`autodropout.runs.experiment.CONTROLLER_KEYS`).
"""
from autodropout.controller.config import ControllerConfig
from autodropout.controller.searchers.registry import SearcherInfo, register

register(SearcherInfo(name="lstm", searcher="autodropout.controller.searcher:ControllerSearcher",
                      summary="LSTM controller, REINFORCE", reference="Pham & Le, AAAI 2021",
                      settings=ControllerConfig))
