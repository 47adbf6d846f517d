"""Uniform random search over the same space (the baseline every learned searcher is compared with;
Li & Talwalkar, UAI 2019, for why it is a strong one). The class is
:class:`~autodropout.controller.searcher.RandomSearcher`, named by path (no Ray import to check a
config); it takes no settings."""
from autodropout.controller.searchers.registry import SearcherInfo, register

register(SearcherInfo(name="random", searcher="autodropout.controller.searcher:RandomSearcher",
                      summary="random search in the same space", reference="Li & Talwalkar, UAI 2019"))
