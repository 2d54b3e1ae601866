"""A tiny synthetic IEMOCAP corpus in the release layout (standard library only), for tests:

    root/SessionN/dialog/transcriptions/<dialogue>.txt   Ses01F_impro01_F000 [006.2901-008.2357]: text
    root/SessionN/dialog/EmoEvaluation/<dialogue>.txt    [6.2901 - 8.2357]<TAB>id<TAB>neu<TAB>[V, A, D]
    root/SessionN/sentences/wav/<dialogue>/<utt>.wav     16 kHz mono 16-bit PCM

with the release's quirks: a header and annotator lines (C-E1:, A-F1:) in EmoEvaluation, lines
that are not utterances in the transcriptions (`M: [BREATHING]`, an ..._MXX0 segment), a `._`
resource-fork file, transcription lines out of time order, CRLF files (every second dialogue), two
turns starting at the same time, one utterance missing from EmoEvaluation (-> "xxx") and one
without a wav (-> audio None). The audio is a sine tone whose pitch depends on the label, plus a
little noise."""
from __future__ import annotations

import math
import pathlib
import random
import struct
import sys
import wave

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from pipeline.iemocap import Dialogue, Turn, session_of, speaker_of  # noqa: E402

SAMPLE_RATE = 16000
# Tone per 4-class label (Hz); unscored labels share one.
PITCH = {"angry": 330.0, "happy": 440.0, "neutral": 220.0, "sad": 165.0, None: 275.0}
# The first dialogue's labels cover the four classes, exc and unscored turns; the rest are drawn.
FIRST_LABELS = ["neu", "ang", "hap", "exc", "sad", "fru", "xxx", "sur"]
DRAWN_LABELS = ["ang", "hap", "exc", "neu", "neu", "sad", "fru", "fru", "xxx", "xxx", "sur"]
SENTENCES = ["Excuse me.", "Yeah.", "Is there a problem?", "I've been waiting here all day, okay?",
             "Wait: what did you say?", "Fine.", "[LAUGHTER] Oh, come on.", "I don't know, I just don't.",
             "Do you have your forms?", "Well, then let's go."]
ANNOTATORS = ["C-E1", "C-E2", "C-E4", "C-F1"]
VAD = ["val 3; act 2; dom  2;", "val 2; act 4; dom  3;"]


def tone(label4, seconds: float, rng: random.Random) -> bytes:
    """16-bit little-endian PCM: a sine at the label's pitch with a 10 ms fade, plus noise."""
    n = max(1, int(round(seconds * SAMPLE_RATE)))
    f = PITCH[label4]
    fade = int(0.01 * SAMPLE_RATE)
    out = bytearray()
    for i in range(n):
        env = min(1.0, i / fade, (n - 1 - i) / fade) if fade else 1.0
        x = 0.3 * env * math.sin(2 * math.pi * f * i / SAMPLE_RATE) + rng.gauss(0.0, 0.01)
        out += struct.pack("<h", max(-32768, min(32767, int(round(x * 32767)))))
    return bytes(out)


def write_wav(path: pathlib.Path, pcm: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm)


def _dialogue_ids(session: int, count: int) -> list[str]:
    ids = []
    for j in range(count):
        actor = "F" if j % 2 == 0 else "M"
        ids.append(f"Ses{session:02d}{actor}_impro{j // 2 + 1:02d}" if j % 4 < 2
                   else f"Ses{session:02d}{actor}_script{j // 4 + 1:02d}_{j % 2 + 1}")
    return ids


def _write(path: pathlib.Path, lines: list[str], crlf: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    eol = "\r\n" if crlf else "\n"
    path.write_bytes((eol.join(lines) + eol).encode("utf-8"))


def make(root, sessions: int = 2, dialogues_per_session: int = 2, turns: int = 6, seed: int = 0) -> list[Dialogue]:
    """Writes the corpus under root and returns the dialogues load_release should read from it
    (sorted by id, turns by start time then id, labels, transcripts, audio paths)."""
    if turns < 4:
        raise ValueError("turns must be >= 4 (the quirks need a few turns)")
    root = pathlib.Path(root)
    rng = random.Random(seed)
    expected = []
    first = True
    for s in range(1, sessions + 1):
        session_dir = root / f"Session{s}"
        for k, dialogue_id in enumerate(_dialogue_ids(s, dialogues_per_session)):
            crlf = k % 2 == 1
            # Conversation order: speakers mostly alternate; per-speaker numbering as in IEMOCAP.
            counters = {"F": 0, "M": 0}
            t = round(rng.uniform(1.0, 5.0), 4)
            made = []  # (Turn, evaluated?, vad)
            for i in range(turns):
                speaker = ("F" if i % 2 == 0 else "M") if rng.random() < 0.8 else rng.choice("FM")
                uid = f"{dialogue_id}_{speaker}{counters[speaker]:03d}"
                counters[speaker] += 1
                if first and i == 3:
                    start = made[-1][0].start  # overlapping speech: same start as the previous turn
                else:
                    start = t
                dur = rng.randint(1500, 4000)  # ten-thousandths of a second
                start_u = int(round(start * 10000))
                end_u = start_u + dur
                t = (end_u + rng.randint(500, 20000)) / 10000
                emotion = FIRST_LABELS[i % len(FIRST_LABELS)] if first else rng.choice(DRAWN_LABELS)
                evaluated = not (first and i == turns - 1)  # last turn of the first dialogue: not in EmoEvaluation
                if not evaluated:
                    emotion = "xxx"
                has_wav = not (first and i == 1)
                wav = session_dir / "sentences" / "wav" / dialogue_id / f"{uid}.wav"
                turn = Turn(uid, session_of(dialogue_id), dialogue_id, speaker_of(uid), start_u / 10000,
                            end_u / 10000, emotion, rng.choice(SENTENCES), wav if has_wav else None)
                if has_wav:
                    write_wav(wav, tone(turn.label4, dur / 10000, rng))
                made.append((turn, evaluated, rng.choice(VAD)))

            # Transcriptions: the release groups them roughly by time; write F's turns first so the
            # loader has to sort, and add lines that are not utterances.
            lines = []
            for turn, _, _ in sorted(made, key=lambda m: (m[0].speaker, m[0].start)):
                lines.append(f"{turn.id} [{turn.start:08.4f}-{turn.end:08.4f}]: {turn.transcript}")
            lines.insert(1, "M: [BREATHING]")
            last = made[-1][0]
            lines.append(f"{dialogue_id}_MXX0 [{last.end + 0.5:08.4f}-{last.end + 1.5:08.4f}]: [GARBAGE]")
            lines.append("")
            _write(session_dir / "dialog" / "transcriptions" / f"{dialogue_id}.txt", lines, crlf)

            # EmoEvaluation: header, then one block per evaluated turn in time order.
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            for turn, evaluated, vad in sorted(made, key=lambda m: (m[0].start, m[0].id)):
                if not evaluated:
                    continue
                v, a, d = (rng.choice([1.5, 2.0, 2.5, 3.0, 3.5, 4.0]) for _ in range(3))
                lines.append(f"[{turn.start:.4f} - {turn.end:.4f}]\t{turn.id}\t{turn.emotion}\t"
                             f"[{v:.4f}, {a:.4f}, {d:.4f}]")
                for annotator in ANNOTATORS:
                    lines.append(f"{annotator}:\tNeutral state;\t()")
                lines.append(f"A-E1:\t{vad}\t()")
                lines.append("")
            _write(session_dir / "dialog" / "EmoEvaluation" / f"{dialogue_id}.txt", lines, crlf)
            if first:
                # A macOS resource fork, as found in copies of the release.
                fork = session_dir / "dialog" / "transcriptions" / f"._{dialogue_id}.txt"
                fork.write_bytes(b"\x00\x05\x16\x07\xff")
            expected.append(Dialogue(dialogue_id, session_of(dialogue_id),
                                     sorted((m[0] for m in made), key=lambda u: (u.start, u.id))))
            first = False
    return sorted(expected, key=lambda d: d.id)


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "synthetic_iemocap")
    for d in make(out):
        print(d.id, " ".join(f"{t.id.rsplit('_', 1)[1]}:{t.emotion}" for t in d.turns))
