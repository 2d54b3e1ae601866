#!/usr/bin/env python3
"""The paper-size recipe on a real IEMOCAP release (GatedxLSTM, arXiv 2503.20919):

  1. the corpus (IEMOCAP_full_release: transcriptions, EmoEvaluation, sentence wavs) and a split
     of whole dialogues: `sessions` (train sessions 1-3, validation 4, test 5) or `random` (the
     paper's random 80/10/10 dialogue split, --seed)
  2. the encoder package (CLAP converted from the public checkpoint) copied to the work package
  3. every turn's own wav and transcript embedded with the Swift `emotion embed` (the serving code)
  4. the 12-stream gated xLSTM classifier (paper size by default: width 512, 8 blocks, 4 heads,
     16 steps x 32) trained with Adam 1e-3, weight decay 1e-4, batch 32, early stopping on
     validation macro-F1; exported into the package
  5. DED: p0 on the training dialogues only, alpha and beam on validation
  6. the Swift `emotion evaluate` on validation and test, modalities both, text and audio, and
     train/serve parity (PyTorch on the Swift embeddings vs the Swift classifier, every turn)
  7. results.json, the model card (README.md) and provenance in the package, copied to --out

Every stage caches in --work (embeddings by encoder and corpus, the classifier by configuration),
so a rerun resumes.

    Training/.venv/bin/python Training/pipeline/build_paper.py --iemocap /data/IEMOCAP_full_release \\
        --encoder Models/clap --out Models/paper-sessions --protocol sessions
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import pathlib
import shutil
import sys
import time

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "convert"))
from gatedxlstm.model import ClassifierConfig  # noqa: E402
from pipeline import classifier, ded, fusion, iemocap, parity, swift  # noqa: E402

REPO = HERE.parents[1]
LABELS = fusion.LABELS
MODALITIES = ("both", "text", "audio")
EVALUATED_SPLITS = ("validation", "test")


class BuildError(Exception):
    """An input the build cannot use (message for the user)."""


class Log:
    def __init__(self, path: pathlib.Path, quiet: bool = False):
        self.file = open(path, "a")
        self.t0 = time.time()
        self.quiet = quiet

    def __call__(self, msg: str):
        line = f"[{time.time() - self.t0:7.0f} s] {msg}"
        if not self.quiet:
            print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()

    def close(self):
        self.file.close()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iemocap", required=True, help="IEMOCAP release directory (Session1..Session5)")
    ap.add_argument("--encoder", required=True, help="model package holding the encoder towers (audio + text)")
    ap.add_argument("--out", required=True, help="where the finished package is copied (replaced if it exists)")
    ap.add_argument("--work", default=str(REPO / "Training" / "work" / "paper"), help="cache and work directory")
    ap.add_argument("--protocol", choices=("sessions", "random"), default="sessions",
                    help="sessions: train Ses01-03, validation Ses04, test Ses05; "
                         "random: whole dialogues 80/10/10 by --seed (default: sessions)")
    ap.add_argument("--seed", type=int, default=0, help="split (random protocol) and training seed (default 0)")
    ap.add_argument("--name", default=None, help="package name (default gatedxlstm-iemocap-PROTOCOL)")
    g = ap.add_argument_group("classifier size (defaults: the paper's)")
    g.add_argument("--embedding-dim", type=int, default=None,
                   help="encoder output size (default: read from the encoder package; must match it)")
    g.add_argument("--width", type=int, default=512)
    g.add_argument("--blocks", type=int, default=8)
    g.add_argument("--heads", type=int, default=4)
    g.add_argument("--steps", type=int, default=16, help="each stream vector is read as steps x step-dim")
    g.add_argument("--step-dim", type=int, default=32)
    g.add_argument("--dropout", type=float, default=0.1, help="dropout in the mLSTM stacks while training (default 0.1)")
    r = ap.add_argument_group("recipe (defaults: the paper's)")
    r.add_argument("--epochs", type=int, default=50, help="at most this many epochs (default 50)")
    r.add_argument("--patience", type=int, default=10,
                   help="stop after this many epochs without a better validation macro-F1 (default 10)")
    r.add_argument("--batch", type=int, default=32)
    r.add_argument("--lr", type=float, default=1e-3)
    r.add_argument("--weight-decay", type=float, default=1e-4)
    r.add_argument("--modality-dropout", action="store_true",
                   help="train with classifier.Modality's whole-dialogue and per-turn modality drops (default off)")
    r.add_argument("--context-dropout", type=float, default=0.0,
                   help="fraction of training examples that see no context (default 0)")
    ap.add_argument("--dtype", choices=("f32", "f16", "bf16"), default="f32", help="classifier weights (default f32)")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch threads (default 2)")
    ap.add_argument("--emotion", default=None,
                    help="the Swift `emotion` tool (default: built with `bash Scripts/build-release.sh emotion`)")
    ap.add_argument("--quiet", action="store_true", help="log to WORK/build.log only")
    return ap.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# Corpus


def make_split(dialogues, protocol: str, seed: int) -> dict:
    if protocol == "sessions":
        return iemocap.session_split(dialogues, **iemocap.SESSION_INDEPENDENT)
    return iemocap.random_dialogue_split(dialogues, seed=seed)


def has_text(turn) -> bool:
    return bool(turn.transcript and turn.transcript.strip())


def has_audio(turn) -> bool:
    return turn.audio is not None


def usable(turn, modality: str = "both") -> bool:
    """Whether the turn can be sent to the service in this modality view (a turn needs audio or a
    non-blank transcript; `text` drops the audio, `audio` the transcript)."""
    if modality == "text":
        return has_text(turn)
    if modality == "audio":
        return has_audio(turn)
    return has_text(turn) or has_audio(turn)


def view(dialogues, modality: str) -> list:
    """The dialogues as one modality view sees them: turns with nothing to send left out, empty
    dialogues dropped."""
    out = []
    for d in dialogues:
        turns = [t for t in d.turns if usable(t, modality)]
        if turns:
            out.append(iemocap.Dialogue(d.id, d.session, turns))
    return out


def split_summary(dialogues) -> dict:
    return {"dialogues": [d.id for d in dialogues],
            "sessions": sorted({d.session for d in dialogues}),
            "turns": sum(len(d.turns) for d in dialogues),
            "turns_with_audio": sum(has_audio(t) for d in dialogues for t in d.turns),
            "scored_turns": len(iemocap.scored_turns(dialogues)),
            "labels": iemocap.label_counts(dialogues)}


# ---------------------------------------------------------------------------------------------
# Package


def encoder_dim(manifest: dict) -> int:
    """The encoder's embedding size: the audio projection and the text output must agree."""
    dims = {}
    audio = manifest.get("audio") or {}
    text = manifest.get("text") or {}
    if "projection_dim" in audio:
        dims["audio.projection_dim"] = int(audio["projection_dim"])
    if text:
        proj = text.get("projection") or {}
        dims["text output"] = int(proj.get("output_size", text.get("hidden_size", 0)))
    if len(dims) != 2:
        raise BuildError("the encoder package needs both towers (model.json sections `audio` and `text`); "
                         f"found {', '.join(k for k in ('audio', 'text') if k in manifest) or 'neither'}")
    if len(set(dims.values())) != 1:
        raise BuildError(f"the encoder towers' output sizes differ: {dims}")
    return next(iter(dims.values()))


def prepare_package(encoder: pathlib.Path, package: pathlib.Path, name: str) -> dict:
    """Copies the encoder package to `package` with the classifier's labels and without any
    classifier or DED section (both come from this build). Returns the encoder's manifest."""
    manifest_path = encoder / "model.json"
    if not manifest_path.is_file():
        raise BuildError(f"{encoder}: not a model package (no model.json)")
    encoder_manifest = json.loads(manifest_path.read_text())
    if package.exists():
        shutil.rmtree(package)
    package.mkdir(parents=True)
    for rel in ["model.json", encoder_manifest.get("weights", "weights.safetensors"), *package_files(encoder_manifest, encoder)]:
        src, dst = encoder / rel, package / rel
        if not src.is_file():
            raise BuildError(f"{encoder}: {rel} is missing")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        dst.chmod(0o644)
    manifest = json.loads((package / "model.json").read_text())
    manifest.pop("classifier", None)
    manifest.pop("ded", None)
    manifest["name"] = name
    manifest["labels"] = list(LABELS)  # the classifier's output order; an encoder package's labels are placeholders
    (package / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return encoder_manifest


def package_files(manifest: dict, root: pathlib.Path) -> list[str]:
    """Files a manifest names besides the weights (tokenizer vocabularies, merges): the string
    values of the `audio` and `text` sections that are relative paths of files in `root`."""
    found = []

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif (isinstance(v, str) and v and not v.startswith("/") and ".." not in v.split("/")
              and (root / v).is_file()):
            found.append(v)

    walk({k: manifest.get(k) for k in ("audio", "text")})
    return sorted(set(found))


def weights_sha256(package: pathlib.Path, manifest: dict) -> str:
    if manifest.get("weights_sha256"):
        return manifest["weights_sha256"]
    h = hashlib.sha256()
    with open(package / manifest.get("weights", "weights.safetensors"), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Build


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        return build(a)
    except (BuildError, iemocap.IemocapFormatError, FileNotFoundError) as e:
        print(f"build_paper: {e}", file=sys.stderr)
        return 2


def build(a) -> int:
    started = time.time()
    torch.set_num_threads(a.threads)
    work, out, encoder = pathlib.Path(a.work).resolve(), pathlib.Path(a.out).resolve(), pathlib.Path(a.encoder).resolve()
    if out in (encoder, work) or work in out.parents or encoder in out.parents or out in encoder.parents:
        raise BuildError(f"--out {out} must be apart from --encoder and --work")
    if a.steps * a.step_dim <= 0:
        raise BuildError("--steps and --step-dim must be positive")
    work.mkdir(parents=True, exist_ok=True)
    log = Log(work / "build.log", quiet=a.quiet)
    try:
        return run(a, work, out, encoder, log, started)
    finally:
        log.close()


def run(a, work: pathlib.Path, out: pathlib.Path, encoder: pathlib.Path, log: Log, started: float) -> int:
    name = a.name or f"gatedxlstm-iemocap-{a.protocol}"
    log(f"build_paper: iemocap {a.iemocap}, encoder {encoder}, protocol {a.protocol}, seed {a.seed}, "
        f"work {work}, out {out}")

    # 1. Corpus and split.
    dialogues = iemocap.load_release(a.iemocap)
    split = make_split(dialogues, a.protocol, a.seed)
    log(f"corpus: {len(dialogues)} dialogues, sessions {', '.join(sorted({d.session for d in dialogues}))}\n"
        + iemocap.summary(split))
    for s in ("train", "validation"):
        if not iemocap.scored_turns(split[s]):
            raise BuildError(f"the {s} split has no four-class turns (protocol {a.protocol})")
    if not split["test"]:
        log("no test split (the corpus has no dialogue for it): validation figures only")

    # 2. Package.
    package = work / "package"
    encoder_manifest = prepare_package(encoder, package, name)
    dim = encoder_dim(encoder_manifest)
    if a.embedding_dim is not None and a.embedding_dim != dim:
        raise BuildError(f"--embedding-dim {a.embedding_dim} but the encoder outputs {dim}")
    if a.steps * a.step_dim != dim:
        raise BuildError(f"--steps {a.steps} x --step-dim {a.step_dim} must equal the embedding size {dim}")
    cfg = ClassifierConfig(embedding_dim=dim, steps=a.steps, step_dim=a.step_dim, width=a.width, blocks=a.blocks,
                           heads=a.heads, num_labels=len(LABELS), dropout=a.dropout)
    encoder_sha = weights_sha256(encoder, encoder_manifest)
    log(f"encoder {encoder_manifest.get('name')} (weights {encoder_sha[:12]}), embedding size {dim}")

    # 3. Embeddings with the serving code: one item per turn, its own wav and transcript.
    emotion = pathlib.Path(a.emotion) if a.emotion else swift.tool()
    used = sorted((d for ds in split.values() for d in ds), key=lambda d: d.id)
    items = []
    for d in used:
        for t in d.turns:
            if not usable(t):
                continue
            item = {"id": t.id}
            if has_audio(t):
                item["audio"] = str(pathlib.Path(t.audio).resolve())
            if has_text(t):
                item["text"] = t.transcript
            items.append(item)
    embed_key = digest({"encoder": encoder_sha, "items": items})
    ids, audio_emb, text_emb = swift.embed(emotion, package, items, work / "embeddings" / embed_key / "turns")
    row = {i: n for n, i in enumerate(ids)}
    skipped = sum(len(d.turns) for d in used) - len(items)
    log(f"embeddings: {len(ids)} turns ({sum(has_audio(t) for d in used for t in d.turns)} with audio; "
        f"{skipped} with neither audio nor transcript left out)")

    def embeddings(d, modality: str = "both"):
        """(audio (n, d), text (n, d)) of a dialogue's turns, zeros for what the view drops."""
        rows = [row[t.id] for t in d.turns]
        audio = audio_emb[rows].astype(np.float32)
        text = text_emb[rows].astype(np.float32)
        if modality == "text":
            audio[:] = 0
        elif modality == "audio":
            text[:] = 0
        return audio, text

    def stream_vectors(d, modality: str = "both"):
        audio, text = embeddings(d, modality)
        return fusion.streams(audio, text, [t.speaker for t in d.turns])

    def dialogue_data(d):
        _, text = embeddings(d)
        return classifier.DialogueData(id=d.id, speakers=[t.speaker for t in d.turns], text=text,
                                       labels=np.array([LABELS.index(t.label4) if t.label4 else -1 for t in d.turns]),
                                       turns=d.turns)

    # 4. Classifier.
    train_view, val_view = view(split["train"], "both"), view(split["validation"], "both")
    train_dd, val_dd = [dialogue_data(d) for d in train_view], [dialogue_data(d) for d in val_view]
    audio_rows = {d.id: np.array([row[t.id] for t in d.turns], dtype=np.int64) for d in train_view + val_view}
    mode = classifier.training_modes(classifier.Modality()) if a.modality_dropout else classifier.fixed_mode("both")
    fixed_train = None

    def make_train(epoch):
        nonlocal fixed_train
        if not a.modality_dropout:  # the same examples every epoch
            if fixed_train is None:
                fixed_train = classifier.examples(train_dd, lambda dd: audio_rows[dd.id], audio_emb, mode,
                                                  np.random.default_rng(a.seed))
            return fixed_train
        rng = np.random.default_rng(a.seed * 7919 + epoch)
        return classifier.examples(train_dd, lambda dd: audio_rows[dd.id], audio_emb, mode, rng)

    val_sets = {"both": classifier.examples(val_dd, lambda dd: audio_rows[dd.id], audio_emb,
                                            classifier.fixed_mode("both"), np.random.default_rng(0))}
    recipe = {"optimizer": "Adam", "lr": a.lr, "weight_decay": a.weight_decay, "batch": a.batch,
              "max_epochs": a.epochs, "patience": a.patience, "selection": "validation macro-F1 (both modalities)",
              "modality_dropout": dataclasses.asdict(classifier.Modality()) if a.modality_dropout else None,
              "context_dropout": a.context_dropout, "dropout": a.dropout, "seed": a.seed}
    train_key = digest({"config": dataclasses.asdict(cfg), "recipe": recipe, "embeddings": embed_key,
                        "train": [d.id for d in split["train"]], "validation": [d.id for d in split["validation"]]})
    ckpt = work / f"classifier-{train_key}.pt"
    if not ckpt.exists():
        log(f"classifier: width {cfg.width}, {cfg.blocks} blocks, {cfg.heads} heads, {cfg.steps} x {cfg.step_dim}; "
            f"{len(val_sets['both'][1])} validation turns")
    provenance = {"classifier": {"trained_on": f"IEMOCAP, protocol {a.protocol}", "recipe": recipe}}
    model, history = classifier.train_export(
        cfg, ckpt,
        lambda: classifier.train(cfg, make_train, val_sets, epochs=a.epochs, patience=a.patience,
                                 batch=a.batch, lr=a.lr, weight_decay=a.weight_decay, seed=a.seed,
                                 select=("both",), context_dropout=a.context_dropout, log=log),
        package, a.dtype, provenance=provenance)
    n_params = sum(p.numel() for p in model.parameters())
    best = max(history, key=lambda h: h["selection"])
    log(f"classifier: {n_params / 1e6:.2f} M parameters, best epoch {best['epoch']} of {len(history)} "
        f"(validation macro-F1 {best['selection']:.4f})")

    # 5. DED.
    p0, shifts, pairs = ded.estimate_p0(split["train"])
    log(f"DED p0 {p0:.4f} ({shifts} shifts in {pairs} same-speaker pairs of the training dialogues)")
    val_logits = [classifier.predict(model, stream_vectors(d)) for d in val_view]
    alpha, beam, grid = ded.choose(val_view, {"both": val_logits}, p0, log=log)
    log(f"DED alpha {alpha} beam {beam}")
    from package_writer import write_stage
    write_stage(package, "ded", {"p0": p0, "alpha": alpha, "beam": beam}, {}, ())

    # 6. Evaluation with the serving code, and parity.
    evaluation = work / "evaluation"
    evaluation.mkdir(exist_ok=True)
    results, parities, left_out = {}, {}, {}
    for s in EVALUATED_SPLITS:
        if not split[s]:
            continue
        for modality in MODALITIES:
            dialogues_v = view(split[s], modality)
            key = f"{s} {modality}"
            left_out[key] = sum(len(d.turns) for d in split[s]) - sum(len(d.turns) for d in dialogues_v)
            if not dialogues_v:
                log(f"evaluate {key}: no turn has this modality, skipped")
                continue
            path = evaluation / f"{s}-{modality}.jsonl"
            write_dialogues(path, dialogues_v)
            metrics, turns = swift.evaluate(emotion, package, path, modality, evaluation / f"{s}-{modality}")
            results.setdefault(s, {})[modality] = metrics
            log(f"evaluate {key}: {metrics['scored_turns']} scored turns; "
                + " ".join(f"{k} acc {metrics[k]['accuracy']:.4f} uar {metrics[k]['uar']:.4f}"
                           for k in ("classifier", "ded_online", "ded_offline")))
            parities[key] = parity.check(model, [stream_vectors(d, modality) for d in dialogues_v], turns,
                                         ids=[(d.id, t.id) for d in dialogues_v for t in d.turns],
                                         log=log, name=f"parity {key}")

    # 7. Results, model card, provenance, copy.
    report = {
        "name": name, "protocol": a.protocol, "seed": a.seed,
        "corpus": {"dialogues": len(dialogues), "sessions": sorted({d.session for d in dialogues}),
                   "turns": sum(len(d.turns) for d in dialogues)},
        "splits": {s: split_summary(split[s]) for s in iemocap.SPLITS},
        "encoder": {"name": encoder_manifest.get("name"), "weights_sha256": encoder_sha, "embedding_dim": dim,
                    "provenance": encoder_manifest.get("provenance")},
        "classifier_config": cfg.manifest_section(), "parameters": n_params, "dtype": a.dtype, "recipe": recipe,
        "history": history, "best_epoch": best["epoch"],
        "ded": {"p0": p0, "shifts": shifts, "pairs": pairs, "alpha": alpha, "beam": beam, "grid": grid},
        "evaluation": results, "turns_left_out_of_views": left_out, "parity": parities,
        "minutes": (time.time() - started) / 60,
    }
    (package / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    write_card(package, report)
    shutil.copyfile(package / "results.json", work / "results.json")
    from package_writer import publish
    log(f"wrote {out} ({publish(package, out):.1f} MB) in {report['minutes']:.1f} min")
    return 0


def write_dialogues(path: pathlib.Path, dialogues) -> None:
    """`emotion evaluate` input: one dialogue a line, absolute audio paths, 4-class labels (null:
    context only)."""
    with open(path, "w") as f:
        for d in dialogues:
            turns = []
            for t in d.turns:
                turn = {"id": t.id, "speaker": t.speaker, "label": t.label4}
                if has_text(t):
                    turn["transcript"] = t.transcript
                if has_audio(t):
                    turn["audio"] = str(pathlib.Path(t.audio).resolve())
                turns.append(turn)
            f.write(json.dumps({"dialogue": d.id, "turns": turns}) + "\n")


# ---------------------------------------------------------------------------------------------
# Model card

PROTOCOLS = {
    "sessions": "session-independent: train on sessions 1-3, validation session 4, test session 5 "
                "(`iemocap.SESSION_INDEPENDENT`)",
    "random": "random split of whole dialogues, 80/10/10 (`iemocap.random_dialogue_split`), as in the paper",
}
IEMOCAP_TERMS = ("IEMOCAP is distributed by the SAIL lab of the University of Southern California under its own "
                 "release agreement, for research use; the corpus may not be redistributed. This model is derived "
                 "from it: use it for non-commercial research within that agreement's terms.")


def _f(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def write_card(package: pathlib.Path, report: dict) -> None:
    manifest_path = package / "model.json"
    manifest = json.loads(manifest_path.read_text())
    ev = report["evaluation"]
    headline = {s: {m: {k: round(v[k]["accuracy"], 4) for k in ("classifier", "ded_online", "ded_offline")}
                    for m, v in views.items()} for s, views in ev.items()}
    manifest["provenance"] = {
        **(manifest.get("provenance") or {}),
        "kind": "research model trained on IEMOCAP (non-commercial: IEMOCAP's release agreement)",
        "recipe": "Training/pipeline/build_paper.py (paper recipe, arXiv 2503.20919)",
        "seed": report["seed"],
        "data": {"corpus": "IEMOCAP (release layout), four classes: angry, happy (hap + exc), neutral, sad",
                 "protocol": report["protocol"],
                 "splits": {s: {"dialogues": len(v["dialogues"]), "scored_turns": v["scored_turns"]}
                            for s, v in report["splits"].items()}},
        "encoder": {"name": report["encoder"]["name"], "weights_sha256": report["encoder"]["weights_sha256"]},
        "ded": {"p0_from": "training dialogues only", "alpha_beam_from": "validation"},
        "accuracy": headline,
        "license": "IEMOCAP release agreement: non-commercial research use only",
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")

    cc, r, d = report["classifier_config"], report["recipe"], report["ded"]
    split_rows = ["| split | sessions | dialogues | turns | with audio | scored | " + " | ".join(LABELS) + " |",
                  "|---|---|---|---|---|---|" + "---|" * len(LABELS)]
    for s, v in report["splits"].items():
        split_rows.append(f"| {s} | {', '.join(v['sessions']) or '-'} | {len(v['dialogues'])} | {v['turns']} | "
                          f"{v['turns_with_audio']} | {v['scored_turns']} | "
                          + " | ".join(str(v["labels"][k]) for k in iemocap.LABELS) + " |")
    fig_rows = ["| split | modality | scored turns | classifier acc | UAR | weighted F1 | macro F1 | "
                "+ DED online acc | UAR | + DED offline acc | UAR | weighted F1 |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s, views in ev.items():
        for m, v in views.items():
            c, on, off = v["classifier"], v["ded_online"], v["ded_offline"]
            fig_rows.append(f"| {s} | {m} | {c['count']} | {_f(c['accuracy'])} | {_f(c['uar'])} | "
                            f"{_f(c['weighted_f1'])} | {_f(c['macro_f1'])} | {_f(on['accuracy'])} | {_f(on['uar'])} | "
                            f"{_f(off['accuracy'])} | {_f(off['uar'])} | {_f(off['weighted_f1'])} |")
    main_split = "test" if "test" in ev else "validation"
    confusion = ""
    if "both" in ev.get(main_split, {}):
        m = ev[main_split]["both"]["ded_offline"]
        rows = ["| true \\ predicted | " + " | ".join(LABELS) + " |", "|---|" + "---|" * len(LABELS)]
        rows += [f"| {label} | " + " | ".join(str(x) for x in row) + " |" for label, row in zip(LABELS, m["confusion"])]
        confusion = f"\nConfusion matrix, {main_split}, text + audio, with DED offline (rows: true label):\n\n" + \
            "\n".join(rows) + "\n"
    par = report["parity"]
    worst = max((p["max_abs_probability_difference"] for p in par.values()), default=0.0)
    modality_dropout = "on (classifier.Modality)" if r["modality_dropout"] else "off"
    text = f"""# {report['name']}: GatedxLSTM on IEMOCAP (paper recipe)

Trained by `Training/pipeline/build_paper.py` (protocol `{report['protocol']}`, seed {report['seed']},
{report['minutes']:.0f} minutes). Labels: {", ".join(LABELS)}. **IEMOCAP licence**: {IEMOCAP_TERMS}

## Data

IEMOCAP in its release layout: {report['corpus']['dialogues']} dialogues, {report['corpus']['turns']} turns
(sessions {", ".join(report['corpus']['sessions'])}). Each turn is embedded from its own sentence wav and
transcript; excited is merged into happy, and turns outside the four classes are context only
(classified and decoded with the dialogue, not scored). Protocol: {PROTOCOLS[report['protocol']]}.

{chr(10).join(split_rows)}

## Model and recipe

| stage | what |
|---|---|
| encoder | `{report['encoder']['name']}` (weights SHA-256 {report['encoder']['weights_sha256'][:12]}...), frozen, {report['encoder']['embedding_dim']}-d audio and text embeddings |
| classifier | 12-stream gated xLSTM: width {cc['width']}, {cc['blocks']} mLSTM block{'s' if cc['blocks'] != 1 else ''}, {cc['heads']} heads, {cc['embedding_dim']} = {cc['steps']} x {cc['step_dim']}; {report['parameters'] / 1e6:.2f} M parameters, {report['dtype']} |
| training | Adam, learning rate {r['lr']:g}, weight decay {r['weight_decay']:g}, batch {r['batch']}, dropout {r['dropout']:g}, context dropout {r['context_dropout']:g}, modality dropout {modality_dropout}; early stopping on validation macro-F1 (patience {r['patience']}): best epoch {report['best_epoch']} of {len(report['history'])} (at most {r['max_epochs']}) |
| DED | p0 = {d['p0']:.4f} from the training dialogues ({d['shifts']} shifts in {d['pairs']} same-speaker pairs); alpha = {d['alpha']:g}, beam = {d['beam']} chosen on validation (offline DED accuracy) |

## Figures

Measured with the Swift `emotion evaluate` (the code that serves). The validation split chose the
epoch and DED's alpha and beam, so its figures are optimistic. `text` drops every turn's audio,
`audio` every transcript (a turn left with nothing is left out of that view). DED online is the
final path of a session fed turn by turn, offline decodes the dialogue repeated twice.

{chr(10).join(fig_rows)}
{confusion}
Train/serve parity: the PyTorch classifier with the shipped weights, on the embeddings of the
Swift `emotion embed`, and the Swift classifier agree on every evaluated turn (same argmax;
largest probability difference {worst:.1e}).
"""
    (package / "README.md").write_text(text)


if __name__ == "__main__":
    sys.exit(main())
