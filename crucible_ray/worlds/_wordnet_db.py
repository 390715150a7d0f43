"""A reader of the WordNet 3.0 database files (``data.noun``), with no dependency beyond the files.

WordNet is found in, in order: an explicit folder, ``$WORDNET_DIR``, Debian's ``wordnet-base``
(``/usr/share/wordnet``), or an NLTK data folder's ``corpora/wordnet``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from crucible_ray.errors import DataError

DEBIAN_DIR = Path("/usr/share/wordnet")

# WordNet's lexicographer files (lexnames(5WN)); nouns are 03-28.
LEXNAMES: tuple[str, ...] = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change",
    "verb.cognition", "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social",
    "verb.stative", "verb.weather", "adj.ppl",
)  # fmt: skip

MISSING_WORDNET = (
    "WordNet 3.0 was not found. Supply it in one of three ways: install Debian's wordnet-base "
    "(apt-get install wordnet-base, giving /usr/share/wordnet; `make` does this when root), "
    "an NLTK data folder with corpora/wordnet (python -m nltk.downloader wordnet; found via $NLTK_DATA "
    "or ~/nltk_data), or --wordnet-dir DIR pointing at a folder holding data.noun."
)


@dataclass(frozen=True)
class Synset:
    """One noun synset: its offset id, lexicographer file, lemma names, hypernyms and gloss."""

    offset: str
    lexfile: int
    lemmas: tuple[str, ...]
    hypernyms: tuple[str, ...]
    gloss: str

    @property
    def synset_id(self) -> str:
        return f"wn:n:{self.offset}"

    @property
    def lexname(self) -> str:
        return LEXNAMES[self.lexfile] if 0 <= self.lexfile < len(LEXNAMES) else f"lex.{self.lexfile}"

    @property
    def definition(self) -> str:
        """The gloss without its quoted usage examples."""
        return self.gloss.split('; "')[0].split(' "')[0].strip().rstrip(";").strip()

    @property
    def text(self) -> str:
        """The lemma names, underscores as spaces, joined by commas (``dog, domestic dog, Canis familiaris``)."""
        return ", ".join(self.lemmas)


def _nltk_dirs() -> list[Path]:
    roots = [Path(p) for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    roots += [Path.home() / "nltk_data", Path(sys.prefix) / "nltk_data", Path(sys.prefix) / "share" / "nltk_data"]
    roots += [Path(p) for p in ("/usr/share/nltk_data", "/usr/local/share/nltk_data", "/usr/lib/nltk_data")]
    return [r / "corpora" / "wordnet" for r in roots]


def find_wordnet(wordnet_dir: str | Path | None = None) -> Path:
    """The folder holding ``data.noun``; a :class:`DataError` naming the three ways to supply it."""
    if wordnet_dir is not None:
        path = Path(wordnet_dir).expanduser()
        for candidate in (path, path / "dict", path / "corpora" / "wordnet"):
            if (candidate / "data.noun").is_file():
                return candidate
        raise DataError(f"{path}: no WordNet data.noun in this folder. {MISSING_WORDNET}")
    candidates = [Path(os.environ["WORDNET_DIR"])] if os.environ.get("WORDNET_DIR") else []
    candidates += [DEBIAN_DIR, *_nltk_dirs()]
    for candidate in candidates:
        if (candidate / "data.noun").is_file():
            return candidate
    raise DataError(MISSING_WORDNET)


def _parse_line(line: str, path: Path, lineno: int) -> Synset:
    data, _, gloss = line.partition(" | ")
    f = data.split()
    try:
        offset, lexfile, w_cnt = f[0], int(f[1]), int(f[3], 16)
        lemmas = [f[4 + 2 * i].replace("_", " ") for i in range(w_cnt)]
        i = 4 + 2 * w_cnt
        p_cnt = int(f[i])
        hypernyms = []
        for k in range(p_cnt):
            symbol, target, pos = f[i + 1 + 4 * k], f[i + 2 + 4 * k], f[i + 3 + 4 * k]
            if symbol in ("@", "@i") and pos == "n":
                hypernyms.append(target)
    except (IndexError, ValueError):
        raise DataError(f"{path}:{lineno}: not a WordNet data line") from None
    return Synset(offset, lexfile, tuple(dict.fromkeys(lemmas)), tuple(hypernyms), gloss.strip())


def read_noun_synsets(wordnet_dir: Path) -> dict[str, Synset]:
    """Every noun synset of ``wordnet_dir/data.noun`` keyed by offset, in file order."""
    path = wordnet_dir / "data.noun"
    out: dict[str, Synset] = {}
    with path.open("r", encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if line.startswith("  ") or not line.strip():
                continue  # the licence header
            synset = _parse_line(line, path, lineno)
            out[synset.offset] = synset
    if not out:
        raise DataError(f"{path}: no synsets found")
    return out
