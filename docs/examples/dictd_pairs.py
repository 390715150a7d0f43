"""Question/answer CSV files from a dictd dictionary (Debian's dict-* packages), for docs/your-data.md.

A dictd dictionary is ``NAME.index`` (headword, offset and length in dictd's base-64 digits) plus
``NAME.dict.dz`` (gzip-compatible text). Each entry becomes a question ("What does 'bamf' mean?") and
its answer (the first sentences of the definition); every definition is also a corpus document.

    python docs/examples/dictd_pairs.py /usr/share/dictd/jargon --out my-data

writes ``my-data/``: ``known.csv`` (the hard cases a model must keep), ``weekly.csv`` (held-out
questions), ``new_questions.csv`` (candidates for ``crucible-ray mine``) and ``corpus.csv``. The split
is a hash of the headword, so the same dictionary always gives the same files.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import re
from pathlib import Path

_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
SPLITS = {"known": (0.0, 0.25), "weekly": (0.25, 0.32), "new_questions": (0.32, 0.62)}


def _number(text: str) -> int:
    value = 0
    for ch in text:
        value = value * 64 + _DIGITS.index(ch)
    return value


def _clean(body: str, term: str) -> str:
    """The definition without its headword line, pronunciation, part of speech or etymology."""
    lines = body.split("\n")[1:]  # the first line repeats the headword
    text = " ".join(line.strip() for line in lines)
    lead = r"^[\s,;:]*((/[^/]*/)|\[[^\]]*\]\.?|\b(n|v|adj|adv|interj|prob|pl|vt|vi|abbrev|suff|pref|excl)\.|1\.)"
    while (stripped := re.sub(lead, "", text, count=1)) != text:  # /pron/ n., [etymology] 1. ...
        text = stripped
    text = text.lstrip(" ,;:")
    text = text.replace("{", "").replace("}", "")
    text = " ".join(text.split())
    sentences = re.split(r"(?<=[.!?])\s+", text)
    out = ""
    for s in sentences:
        if len(out) + len(s) > 240 and out:
            break
        out = f"{out} {s}".strip()
    return out


def read_dictd(base: Path) -> list[tuple[str, str]]:
    """``(headword, definition)`` for every entry with a usable definition, in index order."""
    data = gzip.open(base.with_name(base.name + ".dict.dz")).read()
    entries: list[tuple[str, str]] = []
    seen: set[str] = set()
    for line in base.with_name(base.name + ".index").read_text(encoding="utf-8").splitlines():
        head, offset, length = line.split("\t")[:3]
        if head.startswith("00") or head.lower() in seen:
            continue
        start = _number(offset)
        body = data[start : start + _number(length)].decode("utf-8", errors="replace")
        definition = _clean(body, head)
        if len(definition) >= 40:
            seen.add(head.lower())
            entries.append((head, definition))
    return entries


def _share(term: str) -> float:
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "big") / 2**64


def write_pairs(base: Path, out: Path) -> dict[str, int]:
    """Write the four CSV files; returns their row counts."""
    entries = read_dictd(base)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, (low, high) in SPLITS.items():
        rows = [(f"What does '{t}' mean?", d) for t, d in entries if low <= _share(t) < high]
        with (out / f"{name}.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["question", "answer"])
            w.writerows(rows)
        counts[name] = len(rows)
    with (out / "corpus.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows(entries)  # the headword is the document id
    counts["corpus"] = len(entries)
    return counts


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dictionary", type=Path, help="e.g. /usr/share/dictd/jargon (without .index)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for name, n in write_pairs(args.dictionary, args.out).items():
        print(f"{name}: {n} rows")
