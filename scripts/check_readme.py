#!/usr/bin/env python3
"""Checks that README.md's Rust, Python and Node quickstarts are the tested examples, verbatim.

The block between `// --8<-- [start:quickstart]` and `// --8<-- [end:quickstart]` in
examples/quickstart.rs, dedented, must equal the first ```rust block under "## Rust quickstart".
"""
import re
import sys
import textwrap
from pathlib import Path

root = Path(__file__).resolve().parent.parent
example = (root / "examples/quickstart.rs").read_text()
m = re.search(r"// --8<-- \[start:quickstart\]\n(.*?)\n\s*// --8<-- \[end:quickstart\]", example, re.S)
if not m:
    sys.exit("examples/quickstart.rs has no quickstart markers")
snippet = textwrap.dedent(m.group(1)).strip()

readme = (root / "README.md").read_text()
section = readme.split("## Rust quickstart", 1)
if len(section) != 2:
    sys.exit("README.md has no '## Rust quickstart' section")
block = re.search(r"```rust\n(.*?)\n```", section[1], re.S)
if not block or block.group(1).strip() != snippet:
    sys.exit("README.md's Rust quickstart differs from examples/quickstart.rs; copy the example's marked block")
print("README quickstart matches examples/quickstart.rs")

py_example = (root / "examples/python/quickstart.py").read_text()
m = re.search(r"# --8<-- \[start:quickstart\]\n(.*?)\n# --8<-- \[end:quickstart\]", py_example, re.S)
if not m:
    sys.exit("examples/python/quickstart.py has no quickstart markers")
section = readme.split("## Python quickstart", 1)
if len(section) != 2:
    sys.exit("README.md has no '## Python quickstart' section")
block = re.search(r"```python\n(.*?)\n```", section[1], re.S)
if not block or block.group(1).strip() != m.group(1).strip():
    sys.exit("README.md's Python quickstart differs from examples/python/quickstart.py; copy the example's marked block")
print("README Python quickstart matches examples/python/quickstart.py")

node_example = (root / "examples/node/quickstart.mjs").read_text()
m = re.search(r"// --8<-- \[start:quickstart\]\n(.*?)\n// --8<-- \[end:quickstart\]", node_example, re.S)
if not m:
    sys.exit("examples/node/quickstart.mjs has no quickstart markers")
section = readme.split("## Node quickstart", 1)
if len(section) != 2:
    sys.exit("README.md has no '## Node quickstart' section")
block = re.search(r"```js\n(.*?)\n```", section[1], re.S)
if not block or block.group(1).strip() != m.group(1).strip():
    sys.exit("README.md's Node quickstart differs from examples/node/quickstart.mjs; copy the example's marked block")
print("README Node quickstart matches examples/node/quickstart.mjs")
