"""Training/pipeline/iemocap.py: the release layout (synthetic corpus), the transcripts CSV (a small
written one and the real ../shared/data one), malformed lines, the splits and the label map.

    python3 -m unittest discover -s Training/tests -p 'test_*.py'      (from the repository root)"""
from __future__ import annotations

import collections
import contextlib
import io
import pathlib
import sys
import tempfile
import unittest
import wave

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import synthetic_iemocap  # noqa: E402
from pipeline import iemocap  # noqa: E402
from pipeline.iemocap import Dialogue, IemocapFormatError, Turn  # noqa: E402

REPO = HERE.parents[1]
REAL_CSV = REPO.parent / "shared" / "data" / "iemocap-text" / "transcripts.csv"


def dialogues_named(names_by_session: dict[str, int]) -> list[Dialogue]:
    """Dialogues with one turn each: {"Ses01": 3, ...} -> Ses01F_impro01..03."""
    out = []
    for session, n in names_by_session.items():
        for i in range(n):
            did = f"{session}F_impro{i + 1:02d}"
            out.append(Dialogue(did, session, [Turn(f"{did}_F000", session, did, "F", 1.0, 2.0, "neu", "Hi.")]))
    return out


class ReleaseLayout(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.root = pathlib.Path(cls.tmp.name) / "IEMOCAP_full_release"
        cls.expected = synthetic_iemocap.make(cls.root, sessions=2, dialogues_per_session=2, turns=6, seed=0)
        cls.loaded = iemocap.load_release(cls.root)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def session_dir(self, dialogue):
        return self.root / f"Session{int(dialogue.session[3:])}"

    def test_matches_what_was_written(self):
        self.assertEqual([d.id for d in self.loaded], [d.id for d in self.expected])
        self.assertEqual(len(self.loaded), 4)
        for got, want in zip(self.loaded, self.expected):
            self.assertEqual(got.session, want.session)
            self.assertEqual([t.id for t in got.turns], [t.id for t in want.turns], got.id)
            self.assertEqual(got.turns, want.turns, got.id)
        self.assertEqual(self.loaded, self.expected)

    def test_turn_order_by_start_then_id(self):
        for d in self.loaded:
            keys = [(t.start, t.id) for t in d.turns]
            self.assertEqual(keys, sorted(keys), d.id)
        # The synthetic transcriptions list F's turns first, so file order is not time order.
        first = self.loaded[0]
        path = self.root / "Session1" / "dialog" / "transcriptions" / f"{first.id}.txt"
        file_order = [uid for uid, *_ in iemocap.read_transcription(path)]
        self.assertNotEqual(file_order, [t.id for t in first.turns])
        # Two turns of the first dialogue start together: the smaller id comes first.
        starts = collections.Counter(t.start for t in first.turns)
        tied = [t for t in first.turns if starts[t.start] == 2]
        self.assertEqual(len(tied), 2)
        self.assertLess(tied[0].id, tied[1].id)

    def test_fields(self):
        for d in self.loaded:
            self.assertEqual(d.session, d.id[:5])
            self.assertEqual(len(d.turns), 6)  # non-utterance lines (M: ..., _MXX0) are skipped
            for t in d.turns:
                self.assertEqual(t.dialogue, d.id)
                self.assertEqual(t.session, d.session)
                self.assertTrue(t.id.startswith(d.id + "_"))
                self.assertEqual(t.speaker, t.id.rsplit("_", 1)[1][0])
                self.assertIn(t.speaker, ("F", "M"))
                self.assertIn(t.emotion, iemocap.EMOTIONS)
                self.assertLess(t.start, t.end)
                self.assertNotIn("\r", t.transcript)
                self.assertTrue(t.transcript)
        self.assertEqual({d.session for d in self.loaded}, {"Ses01", "Ses02"})

    def test_speaker_from_utterance_id(self):
        self.assertEqual(iemocap.speaker_of("Ses01F_impro01_M003"), "M")
        self.assertEqual(iemocap.speaker_of("Ses01M_script02_1_F011"), "F")

    def test_missing_evaluation_is_xxx(self):
        first = self.loaded[0]
        path = self.session_dir(first) / "dialog" / "EmoEvaluation" / f"{first.id}.txt"
        evaluations = iemocap.read_emo_evaluation(path)
        unevaluated = [t for t in first.turns if t.id not in evaluations]
        self.assertEqual(len(unevaluated), 1)
        self.assertEqual(unevaluated[0].emotion, "xxx")
        self.assertIsNone(unevaluated[0].label4)
        for t in first.turns:
            if t.id in evaluations:
                self.assertEqual(t.emotion, evaluations[t.id])

    def test_labels(self):
        first = self.loaded[0]
        self.assertEqual([t.emotion for t in sorted(first.turns, key=lambda t: t.start)][:1], ["neu"])
        self.assertEqual(sorted(t.emotion for t in first.turns), sorted(["neu", "ang", "hap", "exc", "sad", "xxx"]))
        counts = iemocap.label_counts([first])
        self.assertEqual(counts, {"angry": 1, "happy": 2, "neutral": 1, "sad": 1})
        self.assertEqual(list(counts), list(iemocap.LABELS))
        self.assertEqual(len(iemocap.scored_turns([first])), 5)
        raw = iemocap.label_counts(self.loaded, raw=True)
        self.assertEqual(list(raw), list(iemocap.EMOTIONS))
        self.assertEqual(sum(raw.values()), 24)

    def test_audio(self):
        missing = [t for d in self.loaded for t in d.turns if t.audio is None]
        self.assertEqual(len(missing), 1)
        self.assertEqual(missing[0].dialogue, self.loaded[0].id)
        for d in self.loaded:
            for t in d.turns:
                if t.audio is None:
                    continue
                self.assertEqual(t.audio, self.session_dir(d) / "sentences" / "wav" / d.id / f"{t.id}.wav")
                with wave.open(str(t.audio)) as w:
                    self.assertEqual((w.getnchannels(), w.getsampwidth(), w.getframerate()), (1, 2, 16000))
                    self.assertAlmostEqual(w.getnframes() / 16000, t.end - t.start, places=3)

    def test_crlf_files(self):
        crlf = [d for d in self.loaded
                if b"\r\n" in (self.session_dir(d) / "dialog" / "transcriptions" / f"{d.id}.txt").read_bytes()]
        self.assertEqual(len(crlf), 2)
        for d in crlf:
            self.assertEqual(len(d.turns), 6)
            self.assertFalse(any("\r" in t.transcript or "\r" in t.emotion for t in d.turns))

    def test_load_dispatch(self):
        self.assertEqual(iemocap.load(self.root), self.loaded)
        self.assertEqual(iemocap.load(self.root.parent), self.loaded)  # the folder holding IEMOCAP_full_release
        with self.assertRaises(FileNotFoundError):
            iemocap.load(self.root / "nope")
        with self.assertRaises(ValueError):
            iemocap.load(self.root / "Session1" / "dialog" / "transcriptions" / f"{self.loaded[0].id}.txt")

    def test_deterministic(self):
        with tempfile.TemporaryDirectory() as tmp:
            again = synthetic_iemocap.make(pathlib.Path(tmp), sessions=2, dialogues_per_session=2, turns=6, seed=0)
        self.assertEqual([(t.id, t.start, t.emotion) for d in again for t in d.turns],
                         [(t.id, t.start, t.emotion) for d in self.expected for t in d.turns])

    def test_cli(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(iemocap.main([str(self.root)]), 0)
        text = out.getvalue()
        self.assertIn("4 dialogues, 24 turns (23 with audio)", text)
        self.assertRegex(text, r"train\s+4\s+24\s")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(iemocap.main([str(self.root), "--protocol", "random", "--seed", "3"]), 0)
        self.assertRegex(out.getvalue(), r"total\s+4\s+24\s")


class MalformedLines(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = pathlib.Path(self.tmp.name)
        self.dialogues = synthetic_iemocap.make(self.root, sessions=1, dialogues_per_session=1, turns=4, seed=1)
        self.did = self.dialogues[0].id
        self.transcription = self.root / "Session1" / "dialog" / "transcriptions" / f"{self.did}.txt"
        self.evaluation = self.root / "Session1" / "dialog" / "EmoEvaluation" / f"{self.did}.txt"

    def tearDown(self):
        self.tmp.cleanup()

    def append(self, path, line):
        with open(path, "a", newline="") as f:
            f.write(line + "\n")

    def line_count(self, path):
        return len(path.read_text().splitlines())

    def assertFormatError(self, path, fragment):
        with self.assertRaises(IemocapFormatError) as caught:
            iemocap.load_release(self.root)
        message = str(caught.exception)
        self.assertIn(path.name, message)
        self.assertIn(f":{self.line_count(path)}:", message)
        self.assertIn(fragment, message)
        self.assertEqual(caught.exception.path, path)
        self.assertEqual(caught.exception.line, self.line_count(path))
        self.assertIsInstance(caught.exception, ValueError)

    def test_bad_transcription_time(self):
        self.append(self.transcription, f"{self.did}_F099 [012.50x-013.0000]: Hello.")
        self.assertFormatError(self.transcription, "012.50x-013.0000")

    def test_transcription_without_brackets(self):
        self.append(self.transcription, f"{self.did}_M099: Hello.")
        self.assertFormatError(self.transcription, "ID [START-END]: TEXT")

    def test_reversed_time(self):
        self.append(self.transcription, f"{self.did}_M099 [013.0000-012.0000]: Hello.")
        self.assertFormatError(self.transcription, "ends before it starts")

    def test_duplicate_utterance(self):
        uid = self.dialogues[0].turns[0].id
        self.append(self.transcription, f"{uid} [099.0000-100.0000]: Again.")
        self.assertFormatError(self.transcription, "appears twice")

    def test_bad_evaluation_line(self):
        uid = self.dialogues[0].turns[0].id
        self.append(self.evaluation, f"[6.2901 - 8.2357]\t{uid}")
        self.assertFormatError(self.evaluation, "evaluation line")

    def test_unknown_label(self):
        self.append(self.transcription, f"{self.did}_F099 [099.0000-100.0000]: New.")
        self.append(self.evaluation, f"[99.0000 - 100.0000]\t{self.did}_F099\thappy\t[2.5000, 2.5000, 2.5000]")
        self.assertFormatError(self.evaluation, "unknown emotion label 'happy'")

    def test_other_lines_are_ignored(self):
        self.append(self.transcription, "F: [LAUGHTER]")
        self.append(self.transcription, "Ses01F_other01_F000 [001.0000-002.0000]: another dialogue's id")
        self.append(self.transcription, "just some text")
        self.append(self.evaluation, "C-E3:\tAnger; Frustration;\t(annoyed)")
        self.append(self.evaluation, "A-F1:\tval 2; act 3; dom  3;\t()")
        self.assertEqual(iemocap.load_release(self.root), self.dialogues)

    def test_no_sessions(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(FileNotFoundError, "Session1"):
                iemocap.load_release(tmp)

    def test_bad_csv_time(self):
        path = self.root / "t.csv"
        path.write_text("fileid,session,dialogue,speaker,prev,next,time,emotion,transcription\n"
                        "Ses01F_impro01_F000,Ses01,Ses01F_impro01,F,,,1.0 - 2.0,neu,Hi.\n"
                        "Ses01F_impro01_M000,Ses01,Ses01F_impro01,M,,,1.0 to 2.0,neu,Hi.\n")
        with self.assertRaises(IemocapFormatError) as caught:
            iemocap.load_transcripts_csv(path)
        self.assertIn("t.csv:3:", str(caught.exception))
        self.assertIn("1.0 to 2.0", str(caught.exception))

    def test_csv_speaker_mismatch_and_missing_column(self):
        path = self.root / "t.csv"
        path.write_text("fileid,session,dialogue,speaker,prev,next,time,emotion,transcription\n"
                        "Ses01F_impro01_F000,Ses01,Ses01F_impro01,M,,,1.0 - 2.0,neu,Hi.\n")
        with self.assertRaisesRegex(IemocapFormatError, r"t\.csv:2: speaker"):
            iemocap.load_transcripts_csv(path)
        path.write_text("fileid,session,dialogue,speaker,emotion,transcription\n")
        with self.assertRaisesRegex(IemocapFormatError, "missing column.*time"):
            iemocap.load_transcripts_csv(path)


class TranscriptsCsv(unittest.TestCase):
    def test_small_csv(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "transcripts.csv"
            path.write_bytes(
                b"fileid,session,dialogue,speaker,prev,next,time,emotion,transcription\r\n"
                b"Ses02M_script01_1_M001,Ses02,Ses02M_script01_1,M,,,5.5000 - 6.0000,exc,\"Oh, great.\"\r\n"
                b"Ses02M_script01_1_F000,Ses02,Ses02M_script01_1,F,,,1.0000 - 2.0000,fru,Again?\r\n"
                b"Ses01F_impro01_M000,Ses01,Ses01F_impro01,M,,,3.0000 - 4.0000,sad,\"He said \"\"no\"\".\"\r\n"
                b"Ses01F_impro01_F000,Ses01,Ses01F_impro01,F,,,3.0000 - 3.5000,ang,Stop.\r\n"
                b"Ses02M_script01_1_M000,Ses02,Ses02M_script01_1,M,,,1.5000 - 2.5000,xxx,Hm.\r\n")
            dialogues = iemocap.load(path)
        self.assertEqual([d.id for d in dialogues], ["Ses01F_impro01", "Ses02M_script01_1"])
        self.assertEqual([d.session for d in dialogues], ["Ses01", "Ses02"])
        first, second = dialogues
        self.assertEqual([t.id for t in first.turns], ["Ses01F_impro01_F000", "Ses01F_impro01_M000"])  # tie: by id
        self.assertEqual([t.id for t in second.turns],
                         ["Ses02M_script01_1_F000", "Ses02M_script01_1_M000", "Ses02M_script01_1_M001"])
        self.assertEqual(first.turns[1], Turn("Ses01F_impro01_M000", "Ses01", "Ses01F_impro01", "M", 3.0, 4.0, "sad",
                                              'He said "no".', None))
        self.assertEqual(second.turns[2].transcript, "Oh, great.")
        self.assertEqual(second.turns[2].label4, "happy")
        self.assertEqual([t.speaker for t in second.turns], ["F", "M", "M"])
        self.assertTrue(all(t.audio is None for d in dialogues for t in d.turns))


class Label4(unittest.TestCase):
    def test_map(self):
        want = {"ang": "angry", "hap": "happy", "exc": "happy", "neu": "neutral", "sad": "sad",
                "fru": None, "sur": None, "fea": None, "dis": None, "oth": None, "xxx": None}
        self.assertEqual(set(want), set(iemocap.EMOTIONS))
        for emotion, label in want.items():
            turn = Turn("Ses01F_impro01_F000", "Ses01", "Ses01F_impro01", "F", 0.0, 1.0, emotion, "x")
            self.assertEqual(turn.label4, label, emotion)
        self.assertEqual(iemocap.LABELS, ("angry", "happy", "neutral", "sad"))

    def test_turn_is_frozen(self):
        turn = Turn("Ses01F_impro01_F000", "Ses01", "Ses01F_impro01", "F", 0.0, 1.0, "neu", "x")
        with self.assertRaises(Exception):
            turn.emotion = "ang"


class Splits(unittest.TestCase):
    def check_partition(self, splits, dialogues, complete=True):
        self.assertEqual(list(splits), ["train", "validation", "test"])
        ids = [d.id for part in splits.values() for d in part]
        self.assertEqual(len(ids), len(set(ids)), "a dialogue is in two splits")
        if complete:
            self.assertEqual(sorted(ids), sorted(d.id for d in dialogues))
        by_id = {d.id: d for d in dialogues}
        for part in splits.values():
            self.assertEqual([d.id for d in part], sorted(d.id for d in part))
            for d in part:
                self.assertIs(d, by_id[d.id])  # whole dialogues, untouched

    def test_session_split(self):
        dialogues = dialogues_named({"Ses01": 3, "Ses02": 2, "Ses03": 1, "Ses04": 2, "Ses05": 4})
        splits = iemocap.session_split(dialogues)
        self.check_partition(splits, dialogues, complete=False)
        self.assertEqual({k: sorted({d.session for d in v}) for k, v in splits.items()},
                         {"train": ["Ses01", "Ses02", "Ses03"], "validation": ["Ses04"], "test": []})
        self.assertEqual([len(v) for v in splits.values()], [6, 2, 0])
        splits = iemocap.session_split(dialogues, **iemocap.SESSION_INDEPENDENT)
        self.check_partition(splits, dialogues)
        self.assertEqual([len(v) for v in splits.values()], [6, 2, 4])
        self.assertEqual(iemocap.SESSION_INDEPENDENT,
                         dict(train=("Ses01", "Ses02", "Ses03"), validation=("Ses04",), test=("Ses05",)))
        splits = iemocap.session_split(dialogues, train=("Ses02", "Ses03", "Ses04", "Ses05"), validation=("Ses01",))
        self.assertEqual([len(v) for v in splits.values()], [9, 3, 0])
        with self.assertRaisesRegex(ValueError, "Ses04"):
            iemocap.session_split(dialogues, train=("Ses01", "Ses04"), validation=("Ses04",))
        with self.assertRaisesRegex(ValueError, "more than once"):
            iemocap.session_split(dialogues + dialogues[:1])

    def test_random_split(self):
        dialogues = dialogues_named({"Ses01": 30, "Ses02": 30, "Ses03": 30, "Ses04": 30})
        a = iemocap.random_dialogue_split(dialogues, seed=0)
        self.check_partition(a, dialogues)
        self.assertEqual([len(v) for v in a.values()], [96, 12, 12])
        b = iemocap.random_dialogue_split(list(reversed(dialogues)), seed=0)  # input order does not matter
        self.assertEqual({k: [d.id for d in v] for k, v in a.items()}, {k: [d.id for d in v] for k, v in b.items()})
        c = iemocap.random_dialogue_split(dialogues, seed=1)
        self.check_partition(c, dialogues)
        self.assertNotEqual([d.id for d in a["test"]], [d.id for d in c["test"]])
        # The recipe: random.Random(seed) shuffles the sorted ids, then train, validation, test.
        import random
        ids = sorted(d.id for d in dialogues)
        random.Random(0).shuffle(ids)
        self.assertEqual([d.id for d in a["validation"]], sorted(ids[96:108]))
        self.assertEqual([d.id for d in a["test"]], sorted(ids[108:]))

    def test_random_split_sizes(self):
        for n, want in [(3, (1, 1, 1)), (4, (2, 1, 1)), (5, (3, 1, 1)), (10, (8, 1, 1)), (20, (16, 2, 2)),
                        (151, (121, 15, 15)), (120, (96, 12, 12))]:
            dialogues = dialogues_named({"Ses01": n})
            splits = iemocap.random_dialogue_split(dialogues, seed=7)
            self.check_partition(splits, dialogues)
            self.assertEqual(tuple(len(v) for v in splits.values()), want, n)
        for n in (0, 1, 2):
            splits = iemocap.random_dialogue_split(dialogues_named({"Ses01": n}), seed=0)
            self.assertEqual(sum(len(v) for v in splits.values()), n)
        self.assertEqual(iemocap.split_sizes(10, (0.5, 0.5, 0)), (5, 5, 0))
        self.assertEqual(iemocap.split_sizes(10, (8, 1, 1)), (8, 1, 1))
        with self.assertRaises(ValueError):
            iemocap.split_sizes(10, (0.8, 0.2))
        with self.assertRaises(ValueError):
            iemocap.split_sizes(10, (0.8, -0.1, 0.3))

    def test_synthetic_corpus_splits(self):
        with tempfile.TemporaryDirectory() as tmp:
            synthetic_iemocap.make(tmp, sessions=5, dialogues_per_session=2, turns=4, seed=2)
            dialogues = iemocap.load_release(tmp)
        self.assertEqual(len(dialogues), 10)
        splits = iemocap.session_split(dialogues, **iemocap.SESSION_INDEPENDENT)
        self.check_partition(splits, dialogues)
        self.assertEqual([len(v) for v in splits.values()], [6, 2, 2])
        splits = iemocap.random_dialogue_split(dialogues, seed=0)
        self.check_partition(splits, dialogues)
        self.assertEqual([len(v) for v in splits.values()], [8, 1, 1])
        self.assertEqual(sum(len(d.turns) for v in splits.values() for d in v), 40)


class RealTranscriptsCsv(unittest.TestCase):
    """../shared/data/iemocap-text/transcripts.csv (read in place, never copied). CI has it."""

    @classmethod
    def setUpClass(cls):
        cls.dialogues = iemocap.load(REAL_CSV) if REAL_CSV.is_file() else None

    def setUp(self):
        if self.dialogues is None:
            self.fail(f"{REAL_CSV} is missing: the IEMOCAP transcripts must be at ../shared/data relative to the "
                      "repository (see ../shared/data/README.md)")

    def test_counts(self):
        self.assertEqual(len(self.dialogues), 120)
        self.assertEqual(sum(len(d.turns) for d in self.dialogues), 7869)
        self.assertEqual(sorted({d.session for d in self.dialogues}), ["Ses01", "Ses02", "Ses03", "Ses04"])
        self.assertEqual(iemocap.label_counts(self.dialogues),
                         {"angry": 933, "happy": 1194, "neutral": 1324, "sad": 839})
        self.assertEqual(len(iemocap.scored_turns(self.dialogues)), 4290)
        ses04 = [d for d in self.dialogues if d.session == "Ses04"]
        self.assertEqual(len(iemocap.scored_turns(ses04)), 1031)
        self.assertEqual(iemocap.label_counts(self.dialogues, raw=True)["xxx"], 1987)

    def test_turns(self):
        for d in self.dialogues:
            keys = [(t.start, t.id) for t in d.turns]
            self.assertEqual(keys, sorted(keys), d.id)
            for t in d.turns:
                self.assertEqual((t.dialogue, t.session), (d.id, d.session))
                self.assertIn(t.speaker, ("F", "M"))
                self.assertIsNone(t.audio)
                self.assertLessEqual(t.start, t.end)
        first = self.dialogues[0].turns[0]
        self.assertEqual(first.dialogue, "Ses01F_impro01")

    def test_splits(self):
        splits = iemocap.session_split(self.dialogues)
        self.assertEqual([len(v) for v in splits.values()], [90, 30, 0])
        self.assertEqual(len(iemocap.scored_turns(splits["validation"])), 1031)
        splits = iemocap.random_dialogue_split(self.dialogues, seed=0)
        self.assertEqual([len(v) for v in splits.values()], [96, 12, 12])
        self.assertEqual(sum(len(d.turns) for v in splits.values() for d in v), 7869)


if __name__ == "__main__":
    unittest.main()
