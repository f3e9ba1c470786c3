"""Coverage-guided fuzzing of the normalizer with atheris (libFuzzer for Python).

Optional, and not part of the test suite (`tests/unit/test_fuzz_normalize.py`
runs the same oracle under hypothesis in every test run). Needs atheris, which
ships wheels for CPython on Linux x86-64:

    .venv/bin/pip install atheris
    .venv/bin/python -m bench.fuzz_normalize -max_total_time=300 [CORPUS_DIR ...]

Each input is one byte choosing the topic, then the delivery body. Without a
corpus directory the seed payloads of `schemas/samples` are the starting
corpus (copied to a temporary directory), and a dictionary of JSON tokens,
the models' field names and odd values helps the mutator keep bodies JSON
(unless `-dict=` is given). The oracle is the unit suite's:
`normalize()` returns a `NormalizedEvent` or raises `NormalizationError`,
every money field is exactly the amount sent (never a float, never a silent
0 or None), and `schemas.retriage()` answers queued, quarantined or
ignored. Anything else is a crash: libFuzzer saves the input as `crash-*`.
Other libFuzzer flags (`-runs=N`, `-jobs=N`, `-dict=...`) pass through.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris
from pydantic import BaseModel

with atheris.instrument_imports(include=["schemas"]):
    from schemas import TOPICS, Order, Refund, retriage
    from schemas.samples import NAMES, load
    from tests.unit.test_fuzz_normalize import SAMPLES, check_normalize


def one_input(data: bytes) -> None:
    if not data:
        return
    topic = TOPICS[data[0] % len(TOPICS)]
    body = data[1:]
    check_normalize(topic, body)
    status, _, _, error = retriage(topic, "fuzz.genmystore.com", body)
    assert status in ("queued", "quarantined"), (status, error)


def _seed_corpus(directory: Path) -> None:
    for topic, name in SAMPLES:
        (directory / name).write_bytes(bytes([TOPICS.index(topic)]) + load(name))
    for name in NAMES:
        if not name.endswith(".json"):
            (directory / name).write_bytes(b"\x00" + load(name))


def _field_names(model: type[BaseModel], seen: set) -> set[str]:
    if model in seen:
        return set()
    seen.add(model)
    names = set()
    for info in model.model_fields.values():
        alias = info.validation_alias
        names |= {c for c in getattr(alias, "choices", [alias]) if isinstance(c, str)}
        for arg in _flat(info.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= _field_names(arg, seen)
    return names


def _flat(annotation) -> list:
    args = getattr(annotation, "__args__", ())
    return [annotation] if not args else [a for arg in args for a in _flat(arg)]


def _dictionary(path: Path) -> None:
    names = _field_names(Order, set()) | _field_names(Refund, set())
    tokens = ['"' + n + '":' for n in sorted(names)]
    tokens += ['{', '}', '[', ']', ',', ':', '"', 'null', 'true', 'false', '"null"', '""', '"true"', '"0.00"',
               '"-0"', '1e400', '-0.0', '"1,5"', '"\\u0000"', '"\\ud800"', '"[\\"a\\"]"', '"2022-01-01T11:00:00Z"',
               '"2022-01-01T11:00:00-01:00\\""', '"order":', '"refund":']
    path.write_text("".join('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"\n' for t in tokens))


def main() -> None:
    argv = list(sys.argv)
    with tempfile.TemporaryDirectory(prefix="orderhooks-fuzz-") as tmp:
        if not any(not a.startswith("-") for a in argv[1:]):
            corpus = Path(tmp) / "corpus"
            corpus.mkdir()
            _seed_corpus(corpus)
            argv.append(str(corpus))
        if not any(a.startswith("-dict=") for a in argv[1:]):
            _dictionary(Path(tmp) / "json.dict")
            argv.insert(1, f"-dict={Path(tmp) / 'json.dict'}")
        atheris.Setup(argv, one_input)
        atheris.Fuzz()


if __name__ == "__main__":
    main()
