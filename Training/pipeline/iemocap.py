"""IEMOCAP dialogues: the transcripts CSV of ../shared/data/iemocap-text (sessions 1-4, text only)
and the released corpus layout (IEMOCAP_full_release: transcriptions, EmoEvaluation, sentence
wavs), read into one form; the dialogue-level splits of the default model and of the paper.

Standard library only (CI runs the tests with the system python3, no venv).

    python3 Training/pipeline/iemocap.py SOURCE [--protocol sessions|random] [--seed N]

prints per-split dialogue, turn and label counts of a corpus (SOURCE: the CSV or the release
directory)."""
from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import pathlib
import random
import re
import sys
from typing import Iterable, Sequence

# Raw IEMOCAP categorical labels (xxx: the annotators did not agree).
EMOTIONS = ("ang", "hap", "exc", "neu", "sad", "fru", "sur", "fea", "dis", "oth", "xxx")
# The usual 4-class setup: excited merges into happy; every other label is a turn of the dialogue
# that is not scored.
LABELS = ("angry", "happy", "neutral", "sad")
LABEL4 = {"ang": "angry", "hap": "happy", "exc": "happy", "neu": "neutral", "sad": "sad"}

SPLITS = ("train", "validation", "test")
# The default model's protocol (the transcripts CSV has sessions 1-4 only).
DEFAULT_SESSIONS = dict(train=("Ses01", "Ses02", "Ses03"), validation=("Ses04",), test=())
# The session-independent protocol of the 5-session release (paper size): test on session 5.
SESSION_INDEPENDENT = dict(train=("Ses01", "Ses02", "Ses03"), validation=("Ses04",), test=("Ses05",))

_CSV_COLUMNS = ("fileid", "session", "dialogue", "speaker", "time", "emotion", "transcription")
_NUMBER = r"\d+(?:\.\d*)?"
_DIALOGUE_ID = re.compile(r"Ses\d{2}[FM]_\S+")
_SESSION_DIR = re.compile(r"Session(\d+)")
# "15.1400 - 17.2100" (CSV, EmoEvaluation) and "006.2901-008.2357" (transcriptions).
_SPAN = re.compile(rf"\s*({_NUMBER})\s*-\s*({_NUMBER})\s*")


class IemocapFormatError(ValueError):
    """A line of a corpus file that looks like an utterance but cannot be read."""

    def __init__(self, path, line: int | None, message: str):
        self.path = pathlib.Path(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


@dataclasses.dataclass(frozen=True)
class Turn:
    id: str  # utterance id, e.g. Ses01F_impro01_M003
    session: str  # "Ses01"
    dialogue: str  # "Ses01F_impro01"
    speaker: str  # "F" or "M": who speaks this turn (the letter of the utterance id's last part)
    start: float  # seconds from the start of the dialogue recording
    end: float
    emotion: str  # raw IEMOCAP label (EMOTIONS)
    transcript: str
    audio: pathlib.Path | None = None  # the sentence wav, when present

    @property
    def label4(self) -> str | None:
        """"angry", "happy" (hap or exc), "neutral", "sad", or None for a turn that is not scored."""
        return LABEL4.get(self.emotion)


@dataclasses.dataclass
class Dialogue:
    id: str
    session: str
    turns: list[Turn]  # by start time, ties by utterance id


def speaker_of(utterance_id: str) -> str:
    """The speaker letter of an utterance id: Ses01F_impro01_M003 -> "M"."""
    return utterance_id.rsplit("_", 1)[-1][:1]


def session_of(dialogue_id: str) -> str:
    return dialogue_id[:5]


def _sort_key(turn: Turn):
    return (turn.start, turn.id)


def _dialogue(dialogue_id: str, turns: Iterable[Turn]) -> Dialogue:
    return Dialogue(dialogue_id, session_of(dialogue_id), sorted(turns, key=_sort_key))


def _utterance_pattern(dialogue_id: str) -> re.Pattern:
    return re.compile(re.escape(dialogue_id) + r"_[FM]\d+")


def _span(text: str, path, line: int) -> tuple[float, float]:
    m = _SPAN.fullmatch(text)
    if not m:
        raise IemocapFormatError(path, line, f"time span {text!r} is not 'START - END' in seconds")
    start, end = float(m.group(1)), float(m.group(2))
    if end < start:
        raise IemocapFormatError(path, line, f"time span {text!r} ends before it starts")
    return start, end


def _emotion(label: str, path, line: int) -> str:
    if label not in EMOTIONS:
        raise IemocapFormatError(path, line, f"unknown emotion label {label!r} (expected one of {', '.join(EMOTIONS)})")
    return label


def _read_lines(path: pathlib.Path) -> list[str]:
    """The file's lines without line endings (LF, CRLF or CR), UTF-8 with a Latin-1 fallback."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.splitlines()


# ---------------------------------------------------------------------------------------------
# The transcripts CSV (../shared/data/iemocap-text/transcripts.csv)


def load_transcripts_csv(path) -> list[Dialogue]:
    """Dialogues of the transcripts CSV (columns fileid, session, dialogue, speaker, prev, next,
    time, emotion, transcription), sorted by id; no audio."""
    path = pathlib.Path(path)
    by_dialogue: dict[str, list[Turn]] = collections.defaultdict(list)
    seen: set[str] = set()
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _CSV_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise IemocapFormatError(path, 1, f"missing column(s) {', '.join(missing)} (header: {reader.fieldnames})")
        for row in reader:
            line = reader.line_num
            uid, dialogue = row["fileid"].strip(), row["dialogue"].strip()
            if not _DIALOGUE_ID.fullmatch(dialogue) or not _utterance_pattern(dialogue).fullmatch(uid):
                raise IemocapFormatError(path, line,
                                         f"utterance id {uid!r} is not an utterance of dialogue {dialogue!r}")
            if uid in seen:
                raise IemocapFormatError(path, line, f"utterance {uid} appears twice")
            seen.add(uid)
            session = row["session"].strip()
            if session != session_of(dialogue):
                raise IemocapFormatError(path, line, f"session {session!r} does not match dialogue {dialogue!r}")
            speaker = speaker_of(uid)
            if row["speaker"].strip() not in ("", speaker):
                raise IemocapFormatError(path, line, f"speaker {row['speaker']!r} does not match utterance id {uid}")
            start, end = _span(row["time"], path, line)
            emotion = _emotion(row["emotion"].strip(), path, line)
            by_dialogue[dialogue].append(Turn(uid, session, dialogue, speaker, start, end, emotion,
                                              row["transcription"].strip(), None))
    return [_dialogue(d, turns) for d, turns in sorted(by_dialogue.items())]


# ---------------------------------------------------------------------------------------------
# The released layout (IEMOCAP_full_release/SessionN/...)


def _session_dirs(root: pathlib.Path) -> list[pathlib.Path]:
    def find(d: pathlib.Path):
        return sorted((p for p in d.iterdir() if p.is_dir() and _SESSION_DIR.fullmatch(p.name)),
                      key=lambda p: int(_SESSION_DIR.fullmatch(p.name).group(1)))

    dirs = find(root)
    if not dirs and (root / "IEMOCAP_full_release").is_dir():
        dirs = find(root / "IEMOCAP_full_release")
    if not dirs:
        raise FileNotFoundError(f"{root}: no Session1..Session5 directories (expected the IEMOCAP release layout "
                                "SessionN/dialog/transcriptions, SessionN/dialog/EmoEvaluation)")
    return dirs


def _dialogue_files(directory: pathlib.Path) -> dict[str, pathlib.Path]:
    """<dialogue id>.txt files of a directory, skipping hidden files (._* resource forks)."""
    if not directory.is_dir():
        return {}
    return {p.stem: p for p in sorted(directory.glob("*.txt"))
            if not p.name.startswith(".") and _DIALOGUE_ID.fullmatch(p.stem)}


def _transcription_line_pattern(dialogue_id: str) -> re.Pattern:
    # Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.
    return re.compile(rf"({re.escape(dialogue_id)}_[FM]\d+)\s*\[([^\]]*)\]\s*:\s?(.*)")


def read_transcription(path, dialogue_id: str | None = None) -> list[tuple[str, float, float, str]]:
    """(utterance id, start, end, transcript) in file order. Lines whose first word is not an
    utterance id of the dialogue ("M: [BREATHING]", "..._MXX0 ...") are skipped."""
    path = pathlib.Path(path)
    dialogue_id = dialogue_id or path.stem
    utterance = _utterance_pattern(dialogue_id)
    pattern = _transcription_line_pattern(dialogue_id)
    out, seen = [], set()
    for n, raw in enumerate(_read_lines(path), 1):
        line = raw.strip()
        if not line:
            continue
        first = re.split(r"[\s\[:]", line, maxsplit=1)[0]
        if not utterance.fullmatch(first):
            continue
        m = pattern.fullmatch(line)
        if not m:
            raise IemocapFormatError(path, n, f"utterance line is not 'ID [START-END]: TEXT': {line!r}")
        uid = m.group(1)
        if uid in seen:
            raise IemocapFormatError(path, n, f"utterance {uid} appears twice")
        seen.add(uid)
        start, end = _span(m.group(2), path, n)
        out.append((uid, start, end, m.group(3).strip()))
    return out


def read_emo_evaluation(path, dialogue_id: str | None = None) -> dict[str, str]:
    """{utterance id: raw label} of an EmoEvaluation file. Header, annotator (C-E1:, A-F2:, ...)
    and blank lines are ignored; a line that names an utterance of the dialogue must parse."""
    path = pathlib.Path(path)
    dialogue_id = dialogue_id or path.stem
    utterance = re.compile(rf"(?<![\w]){re.escape(dialogue_id)}_[FM]\d+(?![\w])")
    # [6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
    pattern = re.compile(rf"\[([^\]]*)\]\s+({re.escape(dialogue_id)}_[FM]\d+)\s+(\S+)(?:\s+\[[^\]]*\])?")
    out: dict[str, str] = {}
    for n, raw in enumerate(_read_lines(path), 1):
        line = raw.strip()
        if not line or not utterance.search(line):
            continue
        m = pattern.fullmatch(line)
        if not m:
            raise IemocapFormatError(path, n, f"evaluation line is not '[START - END] ID LABEL [V, A, D]': {line!r}")
        _span(m.group(1), path, n)
        uid = m.group(2)
        if uid in out:
            raise IemocapFormatError(path, n, f"utterance {uid} is evaluated twice")
        out[uid] = _emotion(m.group(3), path, n)
    return out


def load_release(root) -> list[Dialogue]:
    """Dialogues of an IEMOCAP release directory (root/SessionN/dialog/transcriptions/<dialogue>.txt,
    root/SessionN/dialog/EmoEvaluation/<dialogue>.txt, root/SessionN/sentences/wav/<dialogue>/<utt>.wav),
    sorted by id. Turns are the utterances of the transcriptions; one without an evaluation gets
    "xxx"; audio is the sentence wav when it exists."""
    root = pathlib.Path(root)
    dialogues: dict[str, Dialogue] = {}
    for session_dir in _session_dirs(root):
        transcriptions = _dialogue_files(session_dir / "dialog" / "transcriptions")
        evaluations = _dialogue_files(session_dir / "dialog" / "EmoEvaluation")
        wav_dir = session_dir / "sentences" / "wav"
        for dialogue_id, path in transcriptions.items():
            if dialogue_id in dialogues:
                raise IemocapFormatError(path, None, f"dialogue {dialogue_id} appears in two session directories")
            labels = read_emo_evaluation(evaluations[dialogue_id], dialogue_id) if dialogue_id in evaluations else {}
            turns = []
            for uid, start, end, text in read_transcription(path, dialogue_id):
                wav = wav_dir / dialogue_id / f"{uid}.wav"
                turns.append(Turn(uid, session_of(dialogue_id), dialogue_id, speaker_of(uid), start, end,
                                  labels.get(uid, "xxx"), text, wav if wav.is_file() else None))
            dialogues[dialogue_id] = _dialogue(dialogue_id, turns)
    return [dialogues[d] for d in sorted(dialogues)]


def load(path) -> list[Dialogue]:
    """A transcripts CSV file or an IEMOCAP release directory."""
    path = pathlib.Path(path)
    if path.is_dir():
        return load_release(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return load_transcripts_csv(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    raise ValueError(f"{path}: expected a transcripts .csv file or an IEMOCAP release directory")


# ---------------------------------------------------------------------------------------------
# Splits (whole dialogues; a dialogue is in one split at most)


def _check_unique(dialogues: Sequence[Dialogue]) -> None:
    counts = collections.Counter(d.id for d in dialogues)
    twice = sorted(d for d, c in counts.items() if c > 1)
    if twice:
        raise ValueError(f"dialogue(s) listed more than once: {', '.join(twice[:5])}")


def session_split(dialogues: Sequence[Dialogue], train=DEFAULT_SESSIONS["train"],
                  validation=DEFAULT_SESSIONS["validation"],
                  test=DEFAULT_SESSIONS["test"]) -> dict[str, list[Dialogue]]:
    """{"train", "validation", "test": dialogues of those sessions, by id}. Dialogues of other
    sessions are left out; a session may belong to one split only."""
    _check_unique(dialogues)
    sessions = {"train": tuple(train), "validation": tuple(validation), "test": tuple(test)}
    owner: dict[str, str] = {}
    for name in SPLITS:
        for s in sessions[name]:
            if s in owner:
                raise ValueError(f"session {s} is in both {owner[s]} and {name}")
            owner[s] = name
    out: dict[str, list[Dialogue]] = {name: [] for name in SPLITS}
    for d in sorted(dialogues, key=lambda d: d.id):
        if d.session in owner:
            out[owner[d.session]].append(d)
    return out


def split_sizes(n: int, fractions=(0.8, 0.1, 0.1)) -> tuple[int, int, int]:
    """(train, validation, test) sizes for n dialogues: validation and test rounded, train the rest;
    with n >= 3 every split of a positive fraction gets at least one dialogue."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers with a positive sum, not {fractions}")
    total = float(sum(fractions))
    f = [x / total for x in fractions]
    sizes = [0, round(n * f[1]), round(n * f[2])]
    sizes[0] = n - sizes[1] - sizes[2]
    if n >= 3:
        for i in range(3):
            if f[i] > 0 and sizes[i] == 0:
                sizes[max(range(3), key=lambda j: sizes[j])] -= 1
                sizes[i] = 1
    return tuple(sizes)


def random_dialogue_split(dialogues: Sequence[Dialogue], seed: int = 0,
                          fractions=(0.8, 0.1, 0.1)) -> dict[str, list[Dialogue]]:
    """The paper's random split of whole dialogues: the sorted dialogue ids shuffled with
    random.Random(seed), cut into train/validation/test by split_sizes. Each split is by id."""
    _check_unique(dialogues)
    by_id = {d.id: d for d in dialogues}
    ids = sorted(by_id)
    random.Random(seed).shuffle(ids)
    n_train, n_val, _ = split_sizes(len(ids), fractions)
    parts = {"train": ids[:n_train], "validation": ids[n_train:n_train + n_val], "test": ids[n_train + n_val:]}
    return {name: [by_id[i] for i in sorted(parts[name])] for name in SPLITS}


# ---------------------------------------------------------------------------------------------
# Counting


def scored_turns(dialogues: Iterable[Dialogue]) -> list[Turn]:
    """The turns with a 4-class label, in dialogue order."""
    return [t for d in dialogues for t in d.turns if t.label4 is not None]


def label_counts(dialogues: Iterable[Dialogue], raw: bool = False) -> dict[str, int]:
    """Scored turns per 4-class label (LABELS order, zeros included); raw=True: all turns per raw
    IEMOCAP label (EMOTIONS order)."""
    turns = [t for d in dialogues for t in d.turns]
    if raw:
        counts = collections.Counter(t.emotion for t in turns)
        return {e: counts.get(e, 0) for e in EMOTIONS}
    counts = collections.Counter(t.label4 for t in turns if t.label4 is not None)
    return {label: counts.get(label, 0) for label in LABELS}


def summary(splits: dict[str, list[Dialogue]]) -> str:
    """A table of dialogues, turns, scored turns and label counts per split."""
    header = ["split", "dialogues", "turns", "scored", *LABELS]
    rows = []
    for name, ds in list(splits.items()) + [("total", [d for ds in splits.values() for d in ds])]:
        counts = label_counts(ds)
        rows.append([name, len(ds), sum(len(d.turns) for d in ds), sum(counts.values()), *counts.values()])
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def fmt(row):
        return "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths)))

    return "\n".join([fmt(header)] + [fmt(r) for r in rows])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Per-split dialogue, turn and label counts of an IEMOCAP corpus.")
    parser.add_argument("source", help="transcripts .csv or IEMOCAP release directory (Session1..Session5)")
    parser.add_argument("--protocol", choices=("sessions", "random"), default="sessions",
                        help="sessions: train Ses01-03, validation Ses04, test Ses05 (when present); "
                             "random: whole dialogues 80/10/10 (default: sessions)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random split (default 0)")
    args = parser.parse_args(argv)
    try:
        dialogues = load(args.source)
    except (OSError, ValueError) as e:
        print(f"iemocap: {e}", file=sys.stderr)
        return 1
    sessions = sorted({d.session for d in dialogues})
    n_audio = sum(t.audio is not None for d in dialogues for t in d.turns)
    n_turns = sum(len(d.turns) for d in dialogues)
    print(f"{args.source}: {len(dialogues)} dialogues, {n_turns} turns "
          f"({n_audio} with audio), sessions {', '.join(sessions) or '-'}")
    print("raw labels: " + ", ".join(f"{e} {c}" for e, c in label_counts(dialogues, raw=True).items()))
    if args.protocol == "sessions":
        splits = session_split(dialogues, **SESSION_INDEPENDENT)
        left = sorted(set(sessions) - {s for ss in SESSION_INDEPENDENT.values() for s in ss})
        print("protocol: sessions (" + "; ".join(f"{k} {', '.join(v)}" for k, v in SESSION_INDEPENDENT.items())
              + (f"; left out {', '.join(left)}" if left else "") + ")")
    else:
        splits = random_dialogue_split(dialogues, seed=args.seed)
        print(f"protocol: random dialogues 80/10/10, seed {args.seed}")
    print(summary(splits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
