#!/usr/bin/env python3
"""Independent reference implementation of the Dialogical Emotion Decoder (DED).

Plain Python 3 (no numpy), written straight from the specification in Docs/DED.md so that the
Swift implementation (Sources/DialogicalEmotionDecoder) can be checked against it. It is
deliberately naive: a hypothesis is a dict that carries its whole label path, per-speaker last
labels and per-label entry counts, and every beam step builds all candidates and ranks them with
Python's stable `sorted`.

Floating-point operations are done in the same order as the Swift code (math.log / math.exp from
the C library, left-to-right sums), so the two implementations produce bit-identical scores and
therefore identical decoded sequences, ties included.

Used by Training/fixtures/make_ded_fixtures.py. It can also be run as a command that mirrors
`emotion ded` (same input and output format) for cross-checking:

    Training/.venv/bin/python Training/reference/ded_reference.py --input d.jsonl --p0 0.3
"""

import argparse
import itertools
import json
import math
import sys

P0_MIN = 1e-6
P0_MAX = 1.0 - 1e-6


# --------------------------------------------------------------------------------------------
# Scores


def log_softmax(logits):
    """log_softmax in float64: x - (m + log(sum(exp(x - m)))), m = max(x)."""
    m = max(logits)
    s = 0.0
    for v in logits:
        s = s + math.exp(v - m)
    lse = m + math.log(s)
    return [v - lse for v in logits]


def transition_prior(hyp, speaker, e, p0, alpha):
    """Log prior of giving label `e` to a turn of `speaker`, extending hypothesis `hyp`.

    Returns (log_prior, entered), where `entered` says whether state e is entered (n_e += 1).
    """
    counts = hyp["counts"]
    n_total = sum(counts)
    n_e = counts[e]
    last = hyp["last"].get(speaker)
    if last is None:
        # The speaker's first turn: a ddCRP draw, always an entry.
        if n_e > 0:
            return math.log(n_e / (n_total + alpha)), True
        return math.log(alpha / (n_total + alpha)), True
    if e == last:
        return math.log(1 - p0), False
    if n_e > 0:
        return math.log(p0) + math.log(n_e) - math.log(n_total + alpha), True
    return math.log(p0) + math.log(alpha) - math.log(n_total + alpha), True


def initial_hypothesis(label_count):
    return {"path": [], "score": 0.0, "last": {}, "counts": [0] * label_count}


def extend(hyp, speaker, log_probs, e, p0, alpha):
    prior, entered = transition_prior(hyp, speaker, e, p0, alpha)
    counts = list(hyp["counts"])
    if entered:
        counts[e] += 1
    last = dict(hyp["last"])
    last[speaker] = e
    return {
        "path": hyp["path"] + [e],
        "score": hyp["score"] + (log_probs[e] + prior),
        "last": last,
        "counts": counts,
    }


def check_parameters(label_count, p0, alpha, beam):
    if not (0.0 < p0 < 1.0):
        raise ValueError("invalid_parameter: p0 must be in (0, 1)")
    if not (alpha > 0.0) or math.isinf(alpha):
        raise ValueError("invalid_parameter: alpha must be > 0")
    if beam < 1:
        raise ValueError("invalid_parameter: beam must be >= 1")
    if label_count < 1:
        raise ValueError("invalid_parameter: label count must be >= 1")


def check_turn(turn, label_count):
    speaker, logits = turn
    if len(logits) != label_count:
        raise ValueError("label_count_mismatch")
    if not all(math.isfinite(v) for v in logits):
        raise ValueError("non_finite_logits")


def beam_step(hyps, turn, label_count, p0, alpha, beam):
    """Extend every hypothesis by every label; keep the best `beam` (stable on ties)."""
    speaker, logits = turn
    log_probs = log_softmax(logits)
    candidates = []
    for hyp in hyps:  # hypothesis rank order
        for e in range(label_count):  # then label order
            candidates.append(extend(hyp, speaker, log_probs, e, p0, alpha))
    ranked = sorted(candidates, key=lambda c: -c["score"])  # sorted() is stable
    return ranked[:beam]


def decode_online(turns, label_count, p0, alpha, beam):
    """Online decoding: the best full path after each turn (a list of T paths)."""
    check_parameters(label_count, p0, alpha, beam)
    hyps = [initial_hypothesis(label_count)]
    best_paths = []
    for turn in turns:
        check_turn(turn, label_count)
        hyps = beam_step(hyps, turn, label_count, p0, alpha, beam)
        best_paths.append(list(hyps[0]["path"]))
    return best_paths


def decode_offline(turns, label_count, p0, alpha, beam, repeat_twice=False):
    """Offline decoding of a whole dialogue; with repeat_twice, decode turns+turns, keep last copy."""
    check_parameters(label_count, p0, alpha, beam)
    turns = list(turns)
    if not turns:
        return []
    sequence = turns + turns if repeat_twice else turns
    hyps = [initial_hypothesis(label_count)]
    for turn in sequence:
        check_turn(turn, label_count)
        hyps = beam_step(hyps, turn, label_count, p0, alpha, beam)
    best = hyps[0]["path"]
    return best[len(best) - len(turns):]


def path_score(turns, path, label_count, p0, alpha):
    """Score of a complete label path, accumulated exactly as the beam search does."""
    hyp = initial_hypothesis(label_count)
    for turn, e in zip(turns, path):
        speaker, logits = turn
        hyp = extend(hyp, speaker, log_softmax(logits), e, p0, alpha)
    return hyp["score"]


def exhaustive_best(turns, label_count, p0, alpha):
    """The optimum over all label_count**T paths (first in lexicographic order on ties)."""
    best_path, best_score = [], None
    for path in itertools.product(range(label_count), repeat=len(turns)):
        s = path_score(turns, path, label_count, p0, alpha)
        if best_score is None or s > best_score:
            best_path, best_score = list(path), s
    return best_path, best_score


# --------------------------------------------------------------------------------------------
# p0 estimation


def estimate_p0(dialogues, labels):
    """p0 = (#consecutive same-speaker pairs with different labels) / (#pairs), clamped.

    `dialogues` is a list of dialogues, each a list of (speaker, label-or-None). Turns whose label
    is not in `labels` are dropped before pairing. Returns (p0, shifts, pairs).
    """
    label_set = set(labels)
    shifts = 0
    pairs = 0
    for dialogue in dialogues:
        by_speaker = {}
        for speaker, label in dialogue:
            if label is None or label not in label_set:
                continue
            by_speaker.setdefault(speaker, []).append(label)
        for seq in by_speaker.values():
            for a, b in zip(seq, seq[1:]):
                pairs += 1
                if a != b:
                    shifts += 1
    if pairs == 0:
        raise ValueError("no_transition_pairs")
    p = shifts / pairs
    return min(max(p, P0_MIN), P0_MAX), shifts, pairs


# --------------------------------------------------------------------------------------------
# Metrics, computed by hand (no scikit-learn)


def accuracy(gold, pred):
    assert len(gold) == len(pred) and gold
    return sum(1 for g, p in zip(gold, pred) if g == p) / len(gold)


def unweighted_average_recall(gold, pred):
    """Mean per-class recall over the classes that occur in `gold`."""
    assert len(gold) == len(pred) and gold
    classes = sorted(set(gold))
    recalls = []
    for c in classes:
        support = sum(1 for g in gold if g == c)
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        recalls.append(tp / support)
    return sum(recalls) / len(recalls)


def weighted_f1(gold, pred):
    """Per-class F1 weighted by gold support (classes absent from gold weigh nothing)."""
    assert len(gold) == len(pred) and gold
    total = 0.0
    for c in sorted(set(gold)):
        support = sum(1 for g in gold if g == c)
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        predicted = sum(1 for p in pred if p == c)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        total += f1 * support
    return total / len(gold)


# --------------------------------------------------------------------------------------------
# Command line, mirroring `emotion ded`


def _main(argv):
    ap = argparse.ArgumentParser(description="Reference DED decoder (mirrors `emotion ded`).")
    ap.add_argument("--input", required=True)
    ap.add_argument("--labels", default="ang,hap,neu,sad")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--p0", type=float)
    group.add_argument("--estimate-p0", action="store_true")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--offline", action="store_true")
    args = ap.parse_args(argv)

    labels = args.labels.split(",")
    index = {name: i for i, name in enumerate(labels)}
    stream = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")
    dialogues = []
    for line in stream:
        if line.strip():
            dialogues.append(json.loads(line))

    if args.estimate_p0:
        p0, shifts, pairs = estimate_p0(
            [[(t["speaker"], t.get("label")) for t in d["turns"]] for d in dialogues], labels)
        print(f"p0 estimated from {pairs} same-speaker transitions ({shifts} shifts): {p0!r}",
              file=sys.stderr)
    else:
        p0 = args.p0

    gold, clf, ded = [], [], []
    for d in dialogues:
        turns = [(t["speaker"], [float(x) for x in t["logits"]]) for t in d["turns"]]
        if args.offline:
            path = decode_offline(turns, len(labels), p0, args.alpha, args.beam, repeat_twice=True)
        else:
            online = decode_online(turns, len(labels), p0, args.alpha, args.beam)
            path = online[-1] if online else []
        print(json.dumps({"dialogue": d["dialogue"], "decoded": [labels[i] for i in path]},
                         ensure_ascii=False))
        for t, e in zip(d["turns"], path):
            if t.get("label") in index:
                gold.append(index[t["label"]])
                logits = t["logits"]
                clf.append(max(range(len(logits)), key=lambda k: (logits[k], -k)))
                ded.append(e)
    n_turns = sum(len(d["turns"]) for d in dialogues)
    print(f"dialogues: {len(dialogues)}, turns: {n_turns}, labelled turns: {len(gold)}",
          file=sys.stderr)
    if not gold:
        print("no turn has a label in --labels: metrics skipped", file=sys.stderr)
    else:
        for name, pred in (("classifier", clf), ("ded", ded)):
            print(f"{name}: accuracy {accuracy(gold, pred):.4f}, "
                  f"UAR {unweighted_average_recall(gold, pred):.4f}, "
                  f"weighted F1 {weighted_f1(gold, pred):.4f}", file=sys.stderr)


if __name__ == "__main__":
    _main(sys.argv[1:])
