"""An English language-modelling corpus that ships with every CPython: its own documentation.

Text sources, all read offline and in a fixed order:

1. the docstrings of a fixed, sorted list of standard-library modules (:data:`MODULES`), walked
   with ``inspect.getdoc``: each module, the classes and functions it defines, and their methods
   and properties;
2. the full-line ``#`` comments of those modules' Python sources, where the source files exist;
3. ``pydoc_data.topics.topics``, the language reference pages that ``help()`` shows.

Each paragraph becomes one line: doctest lines and rule lines (``*****``) dropped, whitespace
normalized, lowercased, split into words, numbers and punctuation marks. Exact duplicate paragraphs
(inherited docstrings) are kept once, and mostly-symbolic ones (code, tables) are dropped. A stable
hash of the line sends it to train (80%), valid (10%) or test (10%), so the split needs no seed and
a paragraph lands in the same split under every Python version. On CPython 3.11 this gives about
0.43M tokens (17k lines) in about a second.

The text depends on the Python version, so the result is cached per interpreter version under
``$AUTODROPOUT_CACHE`` (default ``~/.cache/autodropout``) and the version is recorded in the cache
file and in ``LMCorpus.meta["python_version"]``. It stands in for Penn Treebank, on which AutoDropout
(Pham & Le, AAAI 2021, arXiv 2101.01761) searches its Transformer patterns.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import platform
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from autodropout.core.atomic import atomic_write
from autodropout.core.checks import is_int
from autodropout.core.errors import DataError
from autodropout.data.language import LMCorpus, Vocab, encode_lines

__all__ = [
    "MODULES",
    "build_embedded_corpus",
    "default_cache_dir",
    "load_embedded_corpus",
    "write_atomic",
]

# Portable modules that import quietly and offline on CPython 3.10-3.13. Packages are listed by
# the submodules that define things, because a name re-exported by a package is skipped (it is
# documented where it is defined). Not here: platform-specific modules, modules deprecated for
# removal, and ones with import side effects (GUI, terminal, browser, easter eggs).
MODULES: tuple[str, ...] = (
    "_collections_abc", "_pydecimal", "_pyio", "_strptime", "_threading_local", "abc", "argparse",
    "array", "ast", "asyncio.base_events", "asyncio.events", "asyncio.exceptions",
    "asyncio.futures", "asyncio.locks", "asyncio.protocols", "asyncio.queues", "asyncio.runners",
    "asyncio.streams", "asyncio.subprocess", "asyncio.tasks", "asyncio.transports", "atexit",
    "base64", "bdb", "binascii", "bisect", "builtins", "bz2", "calendar", "cmath", "cmd", "code",
    "codecs", "codeop", "collections", "colorsys", "compileall", "concurrent.futures._base",
    "concurrent.futures.process", "concurrent.futures.thread", "configparser", "contextlib",
    "contextvars", "copy", "copyreg", "csv", "dataclasses", "datetime", "decimal", "difflib",
    "dis", "doctest", "email._policybase", "email.charset", "email.contentmanager",
    "email.errors", "email.feedparser", "email.generator", "email.header",
    "email.headerregistry", "email.message", "email.parser", "email.policy", "email.utils",
    "enum", "errno", "filecmp", "fileinput", "fnmatch", "fractions", "ftplib", "functools", "gc",
    "getopt", "gettext", "glob", "graphlib", "gzip", "hashlib", "heapq", "hmac", "html",
    "html.parser", "http", "http.client", "http.cookiejar", "http.cookies", "http.server",
    "imaplib", "importlib.abc", "importlib.metadata", "importlib.util", "inspect", "io",
    "ipaddress", "itertools", "json", "json.decoder", "json.encoder", "keyword", "linecache",
    "locale", "logging", "logging.config", "logging.handlers", "lzma", "mailbox", "marshal",
    "math", "mimetypes", "modulefinder", "multiprocessing.connection",
    "multiprocessing.context", "multiprocessing.managers", "multiprocessing.pool",
    "multiprocessing.process", "multiprocessing.queues", "multiprocessing.shared_memory",
    "multiprocessing.synchronize", "netrc", "numbers", "operator", "optparse", "os", "pathlib",
    "pdb", "pickle", "pickletools", "pkgutil", "platform", "plistlib", "poplib", "pprint",
    "profile", "pstats", "py_compile", "pyclbr", "pydoc", "queue", "quopri", "random", "re",
    "reprlib", "runpy", "sched", "secrets", "select", "selectors", "shelve", "shlex", "shutil",
    "signal", "smtplib", "socket", "socketserver", "ssl", "stat", "statistics", "string",
    "stringprep", "struct", "subprocess", "symtable", "sys", "sysconfig", "tabnanny", "tarfile",
    "tempfile", "textwrap", "threading", "time", "timeit", "token", "tokenize", "trace",
    "traceback", "tracemalloc", "types", "typing", "unicodedata", "unittest.case",
    "unittest.loader", "unittest.main", "unittest.mock", "unittest.result", "unittest.runner",
    "unittest.suite", "urllib.error", "urllib.parse", "urllib.request", "urllib.robotparser",
    "uuid", "warnings", "wave", "weakref", "wsgiref.handlers", "wsgiref.headers",
    "wsgiref.simple_server", "wsgiref.util", "wsgiref.validate", "xml.dom.minidom",
    "xml.dom.pulldom", "xml.etree.ElementTree", "xml.sax.handler", "xml.sax.saxutils",
    "xml.sax.xmlreader", "xmlrpc.client", "xmlrpc.server", "zipapp", "zipfile", "zipimport",
    "zlib", "zoneinfo",
)

_FORMAT = "autodropout.embedded_corpus"
_FORMAT_VERSION = 1
_SPLITS = ("train", "valid", "test")
_TOKEN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*|\d+|[^\w\s]")
_RULE = re.compile(r"([^\w\s])\1{2,}")  # reST underlines, ASCII-art borders
_COMMENT = re.compile(r"^[ \t]*#+!?[ \t]?(.*)$")
_MIN_TOKENS = 3


def default_cache_dir() -> Path:
    """``$AUTODROPOUT_CACHE`` if set, else ``~/.cache/autodropout`` (not created here)."""
    return Path(os.environ.get("AUTODROPOUT_CACHE") or Path.home() / ".cache" / "autodropout")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating the folder: concurrent workers filling the
    same cache never read a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


def _interpreter() -> str:
    """Cache key: the docstrings differ between implementations and versions."""
    return f"{sys.implementation.name}-{platform.python_version()}"


def _normalize(paragraph: str) -> str | None:
    """One paragraph -> one line of space-separated lowercase tokens, or None if not prose."""
    kept = [ln for ln in paragraph.splitlines() if not ln.lstrip().startswith((">>>", "..."))]
    tokens = _TOKEN.findall(_RULE.sub(" ", " ".join(kept)).lower())
    words = sum(tok[0].isalpha() for tok in tokens)
    # Prose is mostly words; code, tables and signatures are mostly symbols.
    if len(tokens) < _MIN_TOKENS or 2 * words <= len(tokens):
        return None
    return " ".join(tokens)


def _docstrings(module: ModuleType) -> Iterator[str]:
    def doc(obj: Any) -> str | None:
        try:
            return inspect.getdoc(obj)
        except Exception:  # exotic objects can fail lookups; their text is not essential
            return None

    yield doc(module) or ""
    for _, obj in sorted(vars(module).items()):
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        if not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        yield doc(obj) or ""
        if inspect.isclass(obj):
            for _, member in sorted(vars(obj).items()):
                # routines include classmethod / staticmethod objects; data descriptors, properties
                if inspect.isroutine(member) or inspect.isdatadescriptor(member):
                    yield doc(member) or ""


def _comment_blocks(module: ModuleType) -> Iterator[str]:
    source = getattr(module, "__file__", None)
    if not source or not source.endswith(".py") or not os.path.isfile(source):
        return
    with open(source, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    block: list[str] = []
    for line in [*lines, ""]:
        match = _COMMENT.match(line)
        if match and match.group(1).strip():
            block.append(match.group(1))
        elif block:
            yield "\n".join(block)
            block = []


def _import_modules() -> list[ModuleType]:
    modules = []
    for name in MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:  # absent from this build or this Python version
            continue
    return modules


def _split_of(line: str) -> str:
    bucket = int.from_bytes(hashlib.blake2b(line.encode(), digest_size=8).digest(), "big") % 10
    return "valid" if bucket == 0 else "test" if bucket == 1 else "train"


def build_embedded_corpus() -> dict[str, Any]:
    """Extract the corpus from this interpreter (no caching): lines per split plus provenance.

    Returns ``{"python_version", "implementation", "modules", "train", "valid", "test"}``; each
    split is a list of lines of space-separated tokens.
    """
    if sys.flags.optimize >= 2:
        raise DataError(
            "embedded corpus: this interpreter runs with -OO, which strips docstrings; build the "
            "cache once without -OO (it is reused afterwards)"
        )
    from pydoc_data.topics import topics

    texts: list[str] = []
    # Importing and walking old modules raises DeprecationWarnings (typing.io, ...) that are
    # noise to the caller.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        modules = _import_modules()
        for module in modules:
            texts.extend(_docstrings(module))
            texts.extend(_comment_blocks(module))
    texts.extend(topics[key] for key in sorted(topics))

    corpus: dict[str, Any] = {split: [] for split in _SPLITS}
    seen: set[str] = set()
    for text in texts:
        for paragraph in re.split(r"\n[ \t]*\n", text):
            line = _normalize(paragraph)
            if line is not None and line not in seen:
                seen.add(line)
                corpus[_split_of(line)].append(line)
    corpus["python_version"] = platform.python_version()
    corpus["implementation"] = sys.implementation.name
    corpus["modules"] = [m.__name__ for m in modules]
    return corpus


def _read_cache(path: Path) -> dict[str, Any] | None:
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
        valid = (
            data.get("format") == _FORMAT
            and data.get("version") == _FORMAT_VERSION
            and f"{data.get('implementation')}-{data.get('python_version')}" == _interpreter()
            and all(isinstance(data.get(s), list) and data[s] for s in _SPLITS)
            and isinstance(data.get("modules"), list)
        )
    except (OSError, ValueError, AttributeError) as e:
        warnings.warn(f"{path}: unreadable embedded-corpus cache ({e}); rebuilding", stacklevel=3)
        return None
    if not valid:
        warnings.warn(
            f"{path}: embedded-corpus cache in an unexpected format; rebuilding", stacklevel=3
        )
        return None
    return data


def _write_cache(path: Path, data: dict[str, Any]) -> None:
    payload = {"format": _FORMAT, "version": _FORMAT_VERSION, **data}
    try:
        write_atomic(path, json.dumps(payload).encode("utf-8"))
    except OSError as e:
        warnings.warn(f"{path}: could not write the embedded-corpus cache ({e})", stacklevel=3)


def load_embedded_corpus(
    vocab_size: int | None = 10000,
    cache_dir: str | os.PathLike[str] | None = None,
    max_train_tokens: int | None = None,
) -> LMCorpus:
    """The offline English corpus of this module's docstring, as an :class:`LMCorpus`.

    Built on first use and cached in ``cache_dir`` (default :func:`default_cache_dir`) as
    ``embedded_corpus-<implementation>-<python version>.json``. The vocabulary comes from the
    training split, capped at ``vocab_size`` entries including ``<unk>`` and ``<eos>``;
    ``max_train_tokens`` keeps only the leading training lines up to that many tokens, for quick
    runs. ``meta`` records ``python_version`` and ``implementation``, the modules read, the cache
    path and whether the cache was hit.
    """
    cap = max_train_tokens
    if cap is not None and not is_int(cap, 1):
        raise ValueError(f"max_train_tokens: expected None or a positive int, got {cap!r}")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = folder / f"embedded_corpus-{_interpreter()}.json"
    data = _read_cache(path) if path.is_file() else None
    cache_hit = data is not None
    if data is None:
        data = build_embedded_corpus()
        _write_cache(path, data)

    splits = {s: [line.split() for line in data[s]] for s in _SPLITS}
    if cap is not None:
        kept, total = [], 0
        for line in splits["train"]:
            total += len(line) + 1  # + <eos>
            if total > cap and kept:  # always keep one line, however long
                break
            kept.append(line)
        splits["train"] = kept
    vocab = Vocab.build(splits["train"], max_size=vocab_size)
    return LMCorpus(
        train=encode_lines(splits["train"], vocab),
        valid=encode_lines(splits["valid"], vocab),
        test=encode_lines(splits["test"], vocab),
        vocab=vocab,
        name="embedded",
        meta={
            "python_version": data["python_version"],
            "implementation": data["implementation"],
            "modules": list(data["modules"]),
            "cache_path": str(path),
            "cache_hit": cache_hit,
        },
    )
