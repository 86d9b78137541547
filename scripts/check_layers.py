#!/usr/bin/env python3
"""Fails on any import in ace-core/src that points up a layer or sideways between organs.

ace-core is built in layers (see the map at the top of ace-core/src/lib.rs and
docs/architecture.md). A module may name only modules ranked below it: a lower layer, or, within
the foundation, vocabulary and composition layers, a module listed earlier in its layer. Organs
never name each other at all. Every `crate::module` path counts, in code and in doc links alike
(a doc link is a dependency a reader follows), and so does a root re-export (`crate::Report`)
through the module it comes from.

Usage: scripts/check_layers.py [ACE_CORE_SRC]      exit 1 and one line per offence, else 0
       scripts/check_layers.py --self-test         the check finds what it must, on a made-up tree
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

# Each layer lists its modules in the order they may import each other (earlier ones first).
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["error", "clock", "event", "tool", "ids", "shard", "telemetry", "config"]),
    ("vocabulary", ["signal", "decision", "record", "store", "cache"]),
    ("organs", ["monitor", "errors", "context", "trajectory", "intervene", "breaker", "playbook"]),
    ("composition", ["persist", "trace", "hot", "fleet"]),
    ("api", ["engine", "replay"]),
]
ORGANS = "organs"
RANK = {m: (i, j) for i, (_, mods) in enumerate(LAYERS) for j, m in enumerate(mods)}
LAYER = {m: LAYERS[i][0] for m, (i, _) in RANK.items()}

USE_BLOCK = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)
PATH = re.compile(r"\bcrate::([A-Za-z_]\w*)")
REEXPORT = re.compile(r"^pub use (\w+)::(?:\{([^}]*)\}|(\w+));", re.M)


def module_of(src: Path, f: Path) -> str:
    rel = f.relative_to(src)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def root_reexports(lib: str) -> dict[str, str]:
    """`pub use engine::{Ace, ...};` in lib.rs: name -> module."""
    out = {}
    for m in REEXPORT.finditer(lib):
        names = m.group(2) or m.group(3)
        for name in re.split(r"[,\s]+", names):
            if name:
                out[name.split(" as ")[-1]] = m.group(1)
    return out


def targets(line: str, reexports: dict[str, str]) -> set[str]:
    found = set()
    for name in PATH.findall(line):
        found.add(reexports.get(name, name))
    return found


def check(src: Path) -> list[str]:
    reexports = root_reexports((src / "lib.rs").read_text(encoding="utf-8"))
    problems = []
    unknown = set()
    for f in sorted(src.rglob("*.rs")):
        mod = module_of(src, f)
        if mod == "lib":
            continue
        if mod not in RANK:
            unknown.add(mod)
            continue
        text = f.read_text(encoding="utf-8")
        # A `use crate::{a::X, b::Y}` block spans lines: report it at its first line.
        blocks = {text.count("\n", 0, m.start()) + 1: m.group(1) for m in USE_BLOCK.finditer(text)}
        for n, line in enumerate(text.splitlines(), 1):
            names = targets(line, reexports)
            if n in blocks:
                names |= {p.split("::")[0] for p in re.split(r"[,{}\s]+", blocks[n]) if p}
            for target in sorted(names):
                if target == mod or target not in RANK:
                    continue
                if LAYER[mod] == ORGANS and LAYER[target] == ORGANS:
                    why = "an organ imports another organ"
                elif RANK[target] >= RANK[mod]:
                    why = f"{LAYER[mod]} module imports {LAYER[target]} module ranked above it"
                else:
                    continue
                problems.append(f"{f.relative_to(src.parent.parent)}:{n}: {mod} -> {target}: {why}: {line.strip()}")
    for mod in sorted(unknown):
        problems.append(f"ace-core/src/{mod}: a module no layer lists (add it to LAYERS in {Path(__file__).name})")
    return problems


def self_test() -> int:
    """Builds a small tree with one offence of each kind and checks each is reported."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "ace-core" / "src"
        (src / "errors").mkdir(parents=True)
        (src / "lib.rs").write_text("pub use decision::{Report, Strategy};\npub use engine::Ace;\n")
        (src / "errors" / "mod.rs").write_text("use crate::context::ContextOrgan;\n")
        (src / "record.rs").write_text("use crate::{clock::Timestamp, monitor::BaselineState};\n")
        (src / "event.rs").write_text("/// See [`crate::Ace::flush`].\nuse crate::error::Error;\n")
        (src / "signal.rs").write_text("use crate::Report;\n")
        (src / "hot.rs").write_text("use crate::persist::Wake;\nuse crate::fleet::Fleet;\n")
        found = check(src)
        expected = [
            "event.rs:1: event -> engine",
            "errors/mod.rs:1: errors -> context: an organ imports another organ",
            "hot.rs:2: hot -> fleet",
            "record.rs:1: record -> monitor",
            "signal.rs:1: signal -> decision",
        ]
        missing = [e for e in expected if not any(e in line for line in found)]
        if missing or len(found) != len(expected):
            print("layer check self-test failed; expected", expected, "got", found, sep="\n")
            return 1
    print(f"layer check self-test: ok ({len(expected)} offences of a made-up tree found, nothing else)")
    return 0


def main() -> int:
    if "--self-test" in sys.argv:
        return self_test()
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "ace-core" / "src"
    problems = check(src)
    for p in problems:
        print(p)
    if problems:
        print(f"layer check: {len(problems)} import(s) point up a layer or sideways between organs")
        return 1
    print(f"layer check: ok ({len(RANK)} modules in {len(LAYERS)} layers, every import points down)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
