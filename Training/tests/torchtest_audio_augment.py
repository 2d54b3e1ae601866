"""The audio tower's feature-domain augmentation against the waveform it stands for:
`audio_tower.random_gain` on a log-mel must equal the log-mel of the waveform scaled by the same
gain (the front end's own computation, ClapFeatureExtractor via speech.log_mel)."""
import pathlib
import sys
import unittest

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from pipeline import audio_tower, speech  # noqa: E402


class RandomGainTests(unittest.TestCase):
    def test_matches_scaling_the_waveform(self):
        rate = speech.FRONT_END["sample_rate"]
        t = np.arange(int(1.2 * rate)) / rate
        # A voiced segment between silences (the repeat-padded window ends in zeros: the floor).
        x = np.where((t > 0.2) & (t < 1.0), 0.05 * np.sin(2 * np.pi * 220 * t) + 0.02 * np.sin(2 * np.pi * 1700 * t), 0.0)
        x = x.astype(np.float32)
        ext = speech.feature_extractor()
        base = torch.from_numpy(speech.log_mel(ext, x, rate))[None]
        g = torch.Generator().manual_seed(3)
        out = audio_tower.random_gain(base, g, -12.0, 6.0)
        gain = float((out - base)[base > -50].mean())
        self.assertTrue(-12.0 <= gain <= 6.0)
        scaled = torch.from_numpy(speech.log_mel(ext, (x * np.float32(10 ** (gain / 20))).astype(np.float32), rate))
        self.assertTrue(bool((base <= audio_tower.FLOOR_DB + 1e-3).any()), "the test clip must reach the floor")
        # Bands well above the floor move exactly by the gain; floor bands stay at the floor.
        loud = scaled > audio_tower.FLOOR_DB + 20
        self.assertLess(float((out[0][loud] - scaled[loud]).abs().max()), 1e-3)
        floor = base[0] <= audio_tower.FLOOR_DB + 1e-3
        self.assertTrue(bool((out[0][floor] == audio_tower.FLOOR_DB).all()))

    def test_each_clip_gets_its_own_gain_in_range(self):
        x = torch.full((64, 10, 8), -40.0)
        out = audio_tower.random_gain(x, torch.Generator().manual_seed(0), -18.0, 6.0)
        gains = (out - x)[:, 0, 0]
        self.assertTrue(bool(((gains >= -18) & (gains <= 6)).all()))
        self.assertTrue(bool(((out - x) == gains[:, None, None]).all()))
        self.assertGreater(float(gains.std()), 4.0)


if __name__ == "__main__":
    unittest.main()
