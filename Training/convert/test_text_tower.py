"""Self-test of Training/convert/text_tower.py on fake checkpoints with the real names.

Run: HF_HUB_OFFLINE=1 Training/.venv/bin/python Training/convert/test_text_tower.py   (or pytest)
"""
import hashlib
import json
import pathlib
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import text_tower  # noqa: E402
from text_tower import ConversionError  # noqa: E402

TEXT = dict(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=24,
            max_position_embeddings=20, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1, projection_dim=8)


def small_clap():
    from transformers import ClapConfig, ClapModel
    audio = dict(depths=[1, 1], num_attention_heads=[1, 2], patch_embeds_hidden_size=8, hidden_size=16,
                 projection_dim=8, spec_size=64, num_mel_bins=16, window_size=4)
    torch.manual_seed(0)
    return ClapModel(ClapConfig(text_config=TEXT, audio_config=audio, projection_dim=8)).eval()


def laion_names(model):
    """The ClapModel's weights under laion_clap's names, as a DDP-trained checkpoint holds them."""
    sd = {}
    for k, v in model.state_dict().items():
        if k.startswith("text_model."):
            if k.endswith("token_type_ids"):
                continue  # old transformers had no such buffer
            sd["module.text_branch." + k[len("text_model."):]] = v
        elif k.startswith("text_projection.linear1."):
            sd["module.text_projection.0." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("text_projection.linear2."):
            sd["module.text_projection.2." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("audio_model.audio_encoder."):
            sd["module.audio_branch." + k[len("audio_model.audio_encoder."):]] = v
        elif k.startswith("audio_projection.linear"):
            sd["module.audio_projection." + ("0." if "linear1" in k else "2.") + k.rsplit(".", 1)[1]] = v
    sd["module.logit_scale_a"] = torch.tensor(2.6)
    sd["module.logit_scale_t"] = torch.tensor(2.6)
    for i in (0, 3):
        sd[f"module.text_transform.sequential.{i}.weight"] = torch.zeros(8, 8)
        sd[f"module.audio_transform.sequential.{i}.weight"] = torch.zeros(8, 8)
    return sd


def expected_names(layers=3, pooler=True, projection=True):
    names = {f"text_model.embeddings.{n}" for n in (
        "word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight",
        "LayerNorm.weight", "LayerNorm.bias")}
    for i in range(layers):
        for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                  "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"):
            names |= {f"text_model.encoder.layer.{i}.{n}.weight", f"text_model.encoder.layer.{i}.{n}.bias"}
    if pooler:
        names |= {"text_model.pooler.dense.weight", "text_model.pooler.dense.bias"}
    if projection:
        names |= {f"text_projection.linear{i}.{w}" for i in (1, 2) for w in ("weight", "bias")}
    return names


def test_hf_clap_and_laion_agree():
    model = small_clap()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        model.save_pretrained(tmp / "hf")
        section, tensors, _ = text_tower.convert_hf(tmp / "hf")
        assert set(tensors) == expected_names(), set(tensors) ^ expected_names()
        assert section["architecture"] == "roberta" and section["pooling"] == "first_pooler"
        assert section["num_layers"] == 3 and section["num_heads"] == 2 and section["intermediate_size"] == 24
        assert section["max_position_embeddings"] == 20 and section["pad_token_id"] == 1
        assert section["projection"] == {"hidden_size": 8, "output_size": 8, "activation": "relu"}
        sd = model.state_dict()
        assert all(torch.equal(tensors[k], sd[k]) for k in tensors)

        torch.save({"state_dict": laion_names(model), "epoch": 45}, tmp / "laion.pt")
        l_section, l_tensors, _ = text_tower.convert_laion(tmp / "laion.pt", heads=2, layer_norm_eps=1e-5)
        assert l_section == section
        assert set(l_tensors) == set(tensors) and all(torch.equal(l_tensors[k], tensors[k]) for k in tensors)

        # A bare state_dict (no "state_dict" key, no "module." prefix) converts the same.
        bare = {k[len("module."):]: v for k, v in laion_names(model).items()}
        torch.save(bare, tmp / "bare.pt")
        assert text_tower.convert_laion(tmp / "bare.pt", heads=2)[1].keys() == tensors.keys()

        # Package written and readable; checksum matches.
        out = text_tower.write_package(tmp / "pkg", section, tensors, name="t", dtype="f16")
        manifest = json.loads((out / "model.json").read_text())
        assert manifest["text"] == section and manifest["format"] == "gatedxlstm-model"
        assert manifest["weights_sha256"] == hashlib.sha256((out / "weights.safetensors").read_bytes()).hexdigest()
        back = load_file(str(out / "weights.safetensors"))
        assert all(v.dtype == torch.float16 for v in back.values()) and set(back) == set(tensors)


def test_laion_errors():
    model = small_clap()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        sd = laion_names(model)
        sd["module.text_projection.4.weight"] = torch.zeros(8, 8)
        torch.save(sd, tmp / "bad.pt")
        try:
            text_tower.convert_laion(tmp / "bad.pt")
            raise AssertionError("expected an error")
        except ConversionError as e:
            assert "text_projection.4.weight" in str(e)
        sd = laion_names(model)
        sd["module.text_branch.embeddings.position_ids"] = torch.arange(20).flip(0)[None]
        torch.save(sd, tmp / "pos.pt")
        try:
            text_tower.convert_laion(tmp / "pos.pt")
            raise AssertionError("expected an error")
        except ConversionError as e:
            assert "position_ids" in str(e)
        torch.save({"state_dict": {"module.audio_branch.x": torch.zeros(1)}}, tmp / "audio.pt")
        try:
            text_tower.convert_laion(tmp / "audio.pt")
            raise AssertionError("expected an error")
        except ConversionError as e:
            assert "text_branch" in str(e)


def test_plain_bert_sentence_transformers_dir():
    from transformers import BertConfig, BertModel
    torch.manual_seed(1)
    model = BertModel(BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=32, max_position_embeddings=24, type_vocab_size=2)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        d = pathlib.Path(tmp) / "st"
        model.save_pretrained(d)
        (d / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
        (d / "1_Pooling").mkdir()
        (d / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
        (d / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
        (d / "vocab.txt").write_text("\n".join(f"w{i}" for i in range(40)) + "\n")
        section, tensors, files = text_tower.convert_hf(d)
        assert set(tensors) == expected_names(layers=2, pooler=False, projection=False)
        assert section["architecture"] == "bert" and section["pooling"] == "mean"
        assert section["normalize"] and not section["normalize_pooled"] and section["projection"] is None
        assert section["tokenizer"] == {"type": "wordpiece", "vocab": "tokenizer/vocab.txt", "lowercase": True,
                                        "max_length": 128}
        assert set(files) == {"vocab.txt"}

        # Attaching a trained projection (names with or without the prefix).
        p = pathlib.Path(tmp) / "proj.safetensors"
        save_file({"linear1.weight": torch.zeros(24, 16), "linear1.bias": torch.zeros(24),
                   "linear2.weight": torch.zeros(12, 24), "linear2.bias": torch.zeros(12)}, str(p))
        section, tensors, _ = text_tower.convert_hf(d, projection_file=p)
        assert section["projection"] == {"hidden_size": 24, "output_size": 12, "activation": "relu"}
        assert section["normalize_pooled"]
        assert set(tensors) == expected_names(layers=2, pooler=False, projection=True)


def test_real_minilm_names():
    """The real all-MiniLM-L6-v2 package converts to the expected 101 tensors and section."""
    d = text_tower.default_minilm_dir()
    section, tensors, files = text_tower.convert_hf(d)
    assert set(tensors) == expected_names(layers=6, pooler=False, projection=False)
    assert section == {**text_tower.text_section(
        architecture="bert", vocab_size=30522, hidden_size=384, num_layers=6, num_heads=12, intermediate_size=1536,
        max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0, pooling="mean",
        normalize=True, projection=None), "tokenizer": section["tokenizer"]}
    assert section["tokenizer"]["max_length"] == 256 and "vocab.txt" in files


def test_audio_and_text_converted_into_one_package_keep_each_other():
    """Both converters write into the same directory in either order; neither drops the other."""
    import tempfile
    import torch
    from safetensors.torch import load_file
    import clap_audio
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "pkg"
        audio = {"audio_model.audio_encoder.batch_norm.weight": torch.ones(4),
                 "audio_projection.linear1.weight": torch.zeros(2, 2)}
        text = {"text_model.embeddings.word_embeddings.weight": torch.ones(3, 2)}
        clap_audio.write_package(out, {"num_mel_bins": 4}, audio, checksum=False)
        text_tower.write_package(out, {"architecture": "bert"}, text, name="both", checksum=False)
        # converting the audio side again replaces only the audio tensors
        audio2 = {"audio_model.audio_encoder.batch_norm.weight": torch.full((4,), 2.0)}
        clap_audio.write_package(out, {"num_mel_bins": 4}, audio2, checksum=False)
        names = set(load_file(str(out / "weights.safetensors")))
        manifest = json.loads((out / "model.json").read_text())
        assert names == {"audio_model.audio_encoder.batch_norm.weight", "text_model.embeddings.word_embeddings.weight"}
        assert manifest["audio"] == {"num_mel_bins": 4} and manifest["text"] == {"architecture": "bert"}
        assert manifest["name"] == "both"
        assert float(load_file(str(out / "weights.safetensors"))["audio_model.audio_encoder.batch_norm.weight"][0]) == 2.0


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_")]
    for t in tests:
        t()
        print("ok", t.__name__)
    print(f"{len(tests)} tests passed")
