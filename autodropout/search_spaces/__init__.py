"""Search spaces of dropout patterns (pure Python, no torch).

>>> from autodropout.search_spaces import ConvSpace
>>> space = ConvSpace(num_sites=4)
>>> tokens = space.sample(0)
>>> space.encode(space.decode(tokens)) == tokens
True
"""
from autodropout.core.errors import PatternError
from autodropout.search_spaces.conv import ConvLayerPattern, ConvSpace
from autodropout.search_spaces.pattern_json import (
    PatternFormatError,
    PatternSet,
    RankedPattern,
    load_patterns,
    parse_patterns,
    save_patterns,
)
from autodropout.search_spaces.space import Decision, Pattern, SearchSpace
from autodropout.search_spaces.space_json import SPACES, pattern_from_json, space_from_json, space_to_json
from autodropout.search_spaces.transformer import (
    EMBEDDING_UNITS,
    SUBLAYERS,
    EmbeddingPattern,
    TransformerLayerPattern,
    TransformerSpace,
    hidden_run,
    nominal_rate,
)
from autodropout.search_spaces.values import ConvValues, EmbeddingValues, TransformerValues

__all__ = [
    "EMBEDDING_UNITS", "SPACES", "SUBLAYERS", "ConvLayerPattern", "ConvSpace", "ConvValues", "Decision",
    "EmbeddingPattern", "EmbeddingValues", "Pattern", "PatternError", "PatternFormatError", "PatternSet",
    "RankedPattern", "SearchSpace", "TransformerLayerPattern", "TransformerSpace", "TransformerValues",
    "hidden_run", "load_patterns", "nominal_rate", "parse_patterns", "pattern_from_json", "save_patterns",
    "space_from_json", "space_to_json",
]
