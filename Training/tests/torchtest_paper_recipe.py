"""Training/pipeline/build_paper.py end to end on a synthetic corpus in IEMOCAP's release layout
(5 sessions, real wav files) with the random-weight tiny encoder package
(Tests/SharedFixtures/tiny-model, 64-d) and a tiny classifier, for both protocols.

Needs the venv (torch, xlstm) and the Swift `emotion` tool (built if .build/release/emotion is
missing), so its name does not match the stdlib pattern 'test_*.py' that Scripts/test.sh runs:

    Training/.venv/bin/python -m unittest Training/tests/torchtest_paper_recipe.py   (or Training/test.sh)
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import unittest

import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import synthetic_iemocap  # noqa: E402
from pipeline import build_paper, iemocap, swift  # noqa: E402

REPO = HERE.parents[1]
ENCODER = REPO / "Tests" / "SharedFixtures" / "tiny-model"
LABEL4 = {"ang": "angry", "hap": "happy", "exc": "happy", "neu": "neutral", "sad": "sad"}
SIZES = dict(embedding_dim=64, width=16, blocks=1, heads=2, steps=8, step_dim=8)
EPOCHS = 2


def emotion_tool() -> pathlib.Path:
    built = REPO / ".build" / "release" / "emotion"
    return built if built.exists() else swift.tool()


def independent_p0(dialogues) -> tuple[float, int, int]:
    """Shifts / pairs of consecutive four-class labels of each speaker, written out here."""
    shifts = pairs = 0
    for d in dialogues:
        last = {}
        for t in d.turns:
            label = LABEL4.get(t.emotion)
            if label is None:
                continue
            if t.speaker in last:
                pairs += 1
                shifts += label != last[t.speaker]
            last[t.speaker] = label
    return shifts / pairs, shifts, pairs


@contextlib.contextmanager
def stderr_to(path: pathlib.Path):
    """Sends file descriptor 2 (the Swift tools' summaries, Python's stderr) to a file."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "w") as f:
            os.dup2(f.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def blank_transcript(root: pathlib.Path, turn) -> None:
    """Rewrites the turn's transcription line with an empty text (keeps the file's line endings)."""
    path = root / f"Session{int(turn.session[3:])}" / "dialog" / "transcriptions" / f"{turn.dialogue}.txt"
    data = path.read_bytes()
    new, n = re.subn(rb"(" + re.escape(turn.id.encode()) + rb" \[[^\]]*\]:)[^\r\n]*", rb"\1 ", data)
    assert n == 1, turn.id
    path.write_bytes(new)


class PaperRecipe(unittest.TestCase):
    """Builds the corpus once and runs the recipe with both protocols."""

    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.tmp = tempfile.TemporaryDirectory()
        root = pathlib.Path(cls.tmp.name)
        cls.corpus = root / "IEMOCAP_full_release"
        made = synthetic_iemocap.make(cls.corpus, sessions=5, dialogues_per_session=2, turns=6, seed=3)
        by_id = {d.id: d for d in made}

        def first_scored(dialogue_id, with_audio=True):
            return next(t for t in by_id[dialogue_id].turns if t.label4 and (t.audio is not None or not with_audio))

        # Quirks the views must handle: a validation turn without a wav (left out of the audio
        # view), a test turn with a blank transcript (left out of the text view), and a training
        # turn with neither (left out of every input, still counted for p0).
        cls.no_wav = first_scored("Ses04F_impro01")
        cls.no_wav.audio.unlink()
        cls.no_text = first_scored("Ses05F_impro01")
        blank_transcript(cls.corpus, cls.no_text)
        cls.nothing = first_scored("Ses02M_impro01")
        cls.nothing.audio.unlink()
        blank_transcript(cls.corpus, cls.nothing)
        cls.dialogues = iemocap.load_release(cls.corpus)
        cls.emotion = emotion_tool()
        cls.runs = {}
        for protocol in ("sessions", "random"):
            out, work = root / f"out-{protocol}", root / f"work-{protocol}"
            argv = ["--iemocap", str(cls.corpus), "--encoder", str(ENCODER), "--out", str(out), "--work", str(work),
                    "--protocol", protocol, "--seed", "1", "--epochs", str(EPOCHS), "--patience", "2",
                    "--threads", "1", "--emotion", str(cls.emotion), "--quiet",
                    "--embedding-dim", str(SIZES["embedding_dim"]), "--width", str(SIZES["width"]),
                    "--blocks", str(SIZES["blocks"]), "--heads", str(SIZES["heads"]),
                    "--steps", str(SIZES["steps"]), "--step-dim", str(SIZES["step_dim"])]
            stderr = root / f"stderr-{protocol}.txt"
            with contextlib.redirect_stdout(io.StringIO()), stderr_to(stderr):
                rc = build_paper.main(argv)
            results = json.loads((out / "results.json").read_text()) if rc == 0 else None
            cls.runs[protocol] = {"rc": rc, "out": out, "work": work, "results": results,
                                  "stderr": stderr.read_text()[-3000:]}
        cls.argv = argv  # the random protocol's, for the error cases

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_of(self, protocol):
        run = self.runs[protocol]
        self.assertEqual(run["rc"], 0, f"build_paper exited {run['rc']}:\n{run['stderr']}")
        return run

    def split_dialogues(self, results, name):
        ids = set(results["splits"][name]["dialogues"])
        return [d for d in self.dialogues if d.id in ids]

    # -----------------------------------------------------------------------------------------

    def test_quirks_are_in_the_corpus(self):
        turns = {t.id: t for d in self.dialogues for t in d.turns}
        self.assertIsNone(turns[self.no_wav.id].audio)
        self.assertEqual(turns[self.no_text.id].transcript, "")
        self.assertIsNone(turns[self.nothing.id].audio)
        self.assertEqual(turns[self.nothing.id].transcript, "")

    def test_splits_are_disjoint_whole_dialogues(self):
        all_ids = {d.id for d in self.dialogues}
        for protocol in self.runs:
            with self.subTest(protocol=protocol):
                splits = self.run_of(protocol)["results"]["splits"]
                sets = {k: set(v["dialogues"]) for k, v in splits.items()}
                self.assertEqual(set(sets), {"train", "validation", "test"})
                self.assertFalse(sets["train"] & sets["validation"])
                self.assertFalse(sets["train"] & sets["test"])
                self.assertFalse(sets["validation"] & sets["test"])
                self.assertTrue(all(sets.values()), "every split has dialogues")
                self.assertEqual(sets["train"] | sets["validation"] | sets["test"], all_ids)
                if protocol == "sessions":
                    sessions = {k: {i[:5] for i in v} for k, v in sets.items()}
                    self.assertEqual(sessions, {"train": {"Ses01", "Ses02", "Ses03"}, "validation": {"Ses04"},
                                                "test": {"Ses05"}})
                else:
                    expected = iemocap.random_dialogue_split(self.dialogues, seed=1)
                    self.assertEqual(sets, {k: {d.id for d in v} for k, v in expected.items()})
                    self.assertEqual([len(v) for v in sets.values()], [8, 1, 1])

    def test_p0_from_training_labels_only(self):
        for protocol in self.runs:
            with self.subTest(protocol=protocol):
                run = self.run_of(protocol)
                results = run["results"]
                p0, shifts, pairs = independent_p0(self.split_dialogues(results, "train"))
                self.assertEqual((results["ded"]["shifts"], results["ded"]["pairs"]), (shifts, pairs))
                self.assertAlmostEqual(results["ded"]["p0"], p0, places=12)
                manifest = json.loads((run["out"] / "model.json").read_text())
                self.assertAlmostEqual(manifest["ded"]["p0"], p0, places=12)
                everything, _, _ = independent_p0(self.dialogues)
                if abs(everything - p0) > 1e-9:  # the test dialogues would change it: they were not used
                    self.assertNotAlmostEqual(manifest["ded"]["p0"], everything, places=9)

    def test_package_sections(self):
        for protocol in self.runs:
            with self.subTest(protocol=protocol):
                run = self.run_of(protocol)
                manifest = json.loads((run["out"] / "model.json").read_text())
                c = manifest["classifier"]
                for key, value in SIZES.items():
                    self.assertEqual(c[key], value, key)
                self.assertEqual(len(c["streams"]), 12)
                self.assertEqual(manifest["labels"], ["angry", "happy", "neutral", "sad"])
                d = manifest["ded"]
                self.assertEqual(set(d), {"p0", "alpha", "beam"})
                self.assertIn(d["alpha"], build_paper.ded.ALPHAS)
                self.assertIn(d["beam"], build_paper.ded.BEAMS)
                self.assertEqual((d["alpha"], d["beam"]), (run["results"]["ded"]["alpha"], run["results"]["ded"]["beam"]))
                self.assertEqual(manifest["name"], f"gatedxlstm-iemocap-{protocol}")
                self.assertEqual(manifest["provenance"]["data"]["protocol"], protocol)
                self.assertIn("audio", manifest)
                self.assertIn("text", manifest)
                self.assertLessEqual(len(run["results"]["history"]), EPOCHS)
                card = (run["out"] / "README.md").read_text()
                self.assertIn("IEMOCAP", card)
                self.assertIn("non-commercial", card)
                self.assertEqual(sorted(p.name for p in run["out"].iterdir()),
                                 ["README.md", "model.json", "results.json", "tokenizer", "weights.safetensors"])

    def test_evaluate_counts_every_scored_turn_of_each_view(self):
        for protocol in self.runs:
            results = self.run_of(protocol)["results"]
            for split in ("validation", "test"):
                dialogues = self.split_dialogues(results, split)
                scored = [t for d in dialogues for t in d.turns if t.label4]
                expected = {"both": len([t for t in scored if t.audio is not None or t.transcript.strip()]),
                            "text": len([t for t in scored if t.transcript.strip()]),
                            "audio": len([t for t in scored if t.audio is not None])}
                views = results["evaluation"][split]
                self.assertEqual(set(views), {"both", "text", "audio"})
                for modality, count in expected.items():
                    with self.subTest(protocol=protocol, split=split, modality=modality):
                        m = views[modality]
                        self.assertEqual(m["modality"], modality)
                        self.assertEqual(m["scored_turns"], count)
                        for path in ("classifier", "ded_online", "ded_offline"):
                            self.assertEqual(m[path]["count"], count)
                            self.assertGreaterEqual(m[path]["accuracy"], 0.0)
                        self.assertEqual(m["ded"]["p0"], results["ded"]["p0"])

    def test_views_leave_out_the_right_turns(self):
        results = self.run_of("sessions")["results"]
        left = results["turns_left_out_of_views"]
        self.assertEqual(left["validation audio"], 1)  # the Ses04 turn without a wav
        self.assertEqual(left["validation text"], 0)
        self.assertEqual(left["test text"], 1)  # the Ses05 turn with a blank transcript
        self.assertEqual(left["test both"], 0)
        self.assertEqual(results["splits"]["validation"]["turns_with_audio"],
                         results["splits"]["validation"]["turns"] - 1)

    def test_parity_on_every_view(self):
        for protocol in self.runs:
            results = self.run_of(protocol)["results"]
            self.assertEqual(len(results["parity"]), 6)
            for key, p in results["parity"].items():
                with self.subTest(protocol=protocol, view=key):
                    split, modality = key.split()
                    dialogues = build_paper.view(self.split_dialogues(results, split), modality)
                    self.assertEqual(p["turns"], sum(len(d.turns) for d in dialogues))
                    self.assertEqual(p["same_argmax"], p["turns"])
                    self.assertLessEqual(p["max_abs_probability_difference"], 1e-3)

    def test_the_copied_package_loads_and_serves_the_same(self):
        run = self.run_of("sessions")
        evaluation = run["work"] / "evaluation"
        metrics = run["work"] / "again.metrics.json"
        subprocess.run([str(self.emotion), "evaluate", "--model", str(run["out"]), "--input",
                        str(evaluation / "test-both.jsonl"), "--metrics", str(metrics)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        again = json.loads(metrics.read_text())
        first = run["results"]["evaluation"]["test"]["both"]
        for path in ("classifier", "ded_online", "ded_offline"):
            self.assertEqual(again[path], first[path])


    def test_modality_and_context_dropout_options(self):
        root = pathlib.Path(self.tmp.name)
        argv = list(self.argv) + ["--modality-dropout", "--context-dropout", "0.2", "--dtype", "f16"]
        argv[argv.index("--out") + 1] = str(root / "out-dropout")
        argv[argv.index("--work") + 1] = str(root / "work-dropout")
        with contextlib.redirect_stdout(io.StringIO()), stderr_to(root / "stderr-dropout.txt"):
            rc = build_paper.main(argv)
        self.assertEqual(rc, 0, (root / "stderr-dropout.txt").read_text()[-3000:])
        results = json.loads((root / "out-dropout" / "results.json").read_text())
        self.assertEqual(results["recipe"]["context_dropout"], 0.2)
        self.assertEqual(results["recipe"]["modality_dropout"]["text_only"], 0.3)
        self.assertEqual(results["dtype"], "f16")
        for p in results["parity"].values():  # the PyTorch side holds the shipped f16 weights
            self.assertEqual(p["same_argmax"], p["turns"])
            self.assertLessEqual(p["max_abs_probability_difference"], 1e-3)

    def test_sizes_that_do_not_fit_the_encoder_are_refused(self):
        root = pathlib.Path(self.tmp.name)

        def run(*changes):
            argv = list(self.argv)
            for flag, value in changes:
                argv[argv.index(flag) + 1] = value
            argv[argv.index("--out") + 1] = str(root / "out-refused")
            argv[argv.index("--work") + 1] = str(root / "work-refused")
            err = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                rc = build_paper.main(argv)
            return rc, err.getvalue()

        rc, err = run(("--embedding-dim", "512"))
        self.assertEqual(rc, 2)
        self.assertIn("--embedding-dim 512 but the encoder outputs 64", err)
        rc, err = run(("--steps", "16"))
        self.assertEqual(rc, 2)
        self.assertIn("must equal the embedding size 64", err)
        self.assertFalse((root / "out-refused").exists())


if __name__ == "__main__":
    unittest.main()
