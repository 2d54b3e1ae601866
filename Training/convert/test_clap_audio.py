"""Self-test of Training/convert/clap_audio.py on fake checkpoints with the real names.

- transformers: a small ClapModel and a ClapAudioModelWithProjection saved with save_pretrained are
  converted; the tensors must be the state dict's float audio tensors, and a ClapAudioModelWithProjection
  rebuilt from the package section + tensors must give the same embeddings.
- laion_clap: HTSAT_Swin_Transformer from the laion_clap wheel (installed --no-deps; its unused
  imports torchvision and h5py are stubbed) plus `audio_projection` / `audio_transform` as in
  laion's CLAP, random weights, saved as a DDP checkpoint ({"state_dict": {"module.*": ...}}), at a
  small size and at HTSAT-tiny (paper) size. The converted tensors loaded into transformers'
  ClapAudioModelWithProjection must reproduce laion's own forward (bn0 -> reshape_wav2img ->
  forward_features -> embedding -> audio_projection -> normalize) on log-mel features.

Run: HF_HUB_OFFLINE=1 Training/.venv/bin/python Training/convert/test_clap_audio.py   (or pytest)
"""
import importlib
import importlib.util
import json
import pathlib
import sys
import tempfile
import types

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import clap_audio  # noqa: E402
from clap_audio import ConversionError  # noqa: E402

SMALL = dict(patch_embeds_hidden_size=8, depths=[2, 1, 2, 2], num_attention_heads=[2, 2, 4, 4], window_size=8,
             hidden_size=64, projection_dim=32)


def randomize_(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            # Derived buffers (the STFT/mel kernels, the shifted-window masks) keep their values.
            if not t.is_floating_point() or "spectrogram_extractor" in name or "logmel_extractor" in name \
                    or name.endswith("attn_mask"):
                continue
            if name.endswith("running_var"):
                t.copy_(1 + torch.rand(t.shape, generator=g))
            elif t.dim() <= 1:
                t.copy_((1 if name.endswith("weight") else 0) + 0.1 * torch.randn(t.shape, generator=g))
            else:
                t.copy_(torch.randn(t.shape, generator=g) / t[0].numel() ** 0.5)


def hf_embedding(section, tensors, features, dtype=torch.float32):
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection
    model = ClapAudioModelWithProjection(ClapAudioConfig(**section)).eval().to(dtype)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith(("relative_position_index", "num_batches_tracked")) for k in missing), missing
    with torch.no_grad():
        return torch.nn.functional.normalize(model(input_features=features[:, None].to(dtype)).audio_embeds, dim=-1)


# ---------------------------------------------------------------------------------------------
# transformers


def test_hf_clap_model():
    from transformers import ClapConfig, ClapModel
    text = dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
                max_position_embeddings=20, type_vocab_size=1)
    model = ClapModel(ClapConfig(text_config=text, audio_config=SMALL, projection_dim=32)).eval()
    randomize_(model, 1)
    features = -1 + torch.randn(2, 1001, 64)
    with torch.no_grad():
        expected = model.get_audio_features(input_features=features[:, None])
        expected = getattr(expected, "pooler_output", expected)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        section, tensors = clap_audio.convert_hf(tmp)
    assert section["depths"] == [2, 1, 2, 2] and section["projection_dim"] == 32 and section["window_size"] == 8
    sd = model.state_dict()
    want = {k for k, v in sd.items() if k.startswith(("audio_model.", "audio_projection.")) and v.is_floating_point()}
    assert set(tensors) == want
    assert all(torch.equal(tensors[k], sd[k]) for k in want)
    got = hf_embedding(section, tensors, features)
    assert (got - expected).abs().max() < 1e-6


def test_hf_audio_model_with_projection_and_package_merge():
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection
    model = ClapAudioModelWithProjection(ClapAudioConfig(**SMALL)).eval()
    randomize_(model, 2)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = pathlib.Path(tmp) / "src", pathlib.Path(tmp) / "pkg"
        model.save_pretrained(src)
        section, tensors = clap_audio.convert_hf(src)
        # An existing package (e.g. the text tower's) keeps its tensors and sections.
        out.mkdir()
        from safetensors.torch import save_file
        save_file({"text_model.x": torch.ones(3), "audio_projection.linear1.weight": torch.zeros(1)},
                  str(out / "weights.safetensors"))
        (out / "model.json").write_text(json.dumps({"format": "gatedxlstm-model", "format_version": 1,
                                                    "name": "x", "labels": ["a"], "text": {"k": 1}}))
        clap_audio.write_package(out, section, tensors, dtype="f16", provenance={"audio": {"from": "test"}})
        manifest = json.loads((out / "model.json").read_text())
        assert manifest["text"] == {"k": 1} and manifest["audio"]["depths"] == [2, 1, 2, 2]
        assert len(manifest["weights_sha256"]) == 64
        written = load_file(str(out / "weights.safetensors"))
        assert "text_model.x" in written and written["audio_projection.linear1.weight"].shape == (32, 64)
        assert all(v.dtype == torch.float16 for k, v in written.items() if k.startswith("audio"))


def test_hf_refusals():
    with tempfile.TemporaryDirectory() as tmp:
        try:
            clap_audio.convert_hf(tmp)
            raise AssertionError("expected ConversionError")
        except ConversionError as e:
            assert "config.json" in str(e)
        (pathlib.Path(tmp) / "config.json").write_text(json.dumps({"model_type": "clap_audio_model",
                                                                    "enable_fusion": True}))
        try:
            clap_audio.convert_hf(tmp)
            raise AssertionError("expected ConversionError")
        except ConversionError as e:
            assert "fused" in str(e)


# ---------------------------------------------------------------------------------------------
# laion_clap


def import_laion_htsat():
    """laion_clap.clap_module.htsat without running laion_clap/__init__.py (which pulls in
    training code), its unused imports (torchvision, h5py) stubbed only while it loads."""
    import transformers  # noqa: F401  (decides its optional imports before the stubs exist)
    spec = importlib.util.find_spec("laion_clap")
    if spec is None:
        return None
    if "laion_clap_module.htsat" in sys.modules:
        return sys.modules["laion_clap_module.htsat"]
    stubs = []
    absent = {top for top in ("torchvision", "h5py") if top not in sys.modules and importlib.util.find_spec(top) is None}
    for name in ("torchvision", "torchvision.ops", "torchvision.ops.misc", "h5py"):
        if name.split(".")[0] in absent:
            sys.modules[name] = types.ModuleType(name)
            stubs.append(name)
    if "torchvision.ops.misc" in stubs:
        sys.modules["torchvision.ops.misc"].FrozenBatchNorm2d = type("FrozenBatchNorm2d", (), {})
    try:
        base = pathlib.Path(spec.origin).parent / "clap_module"
        pkg = types.ModuleType("laion_clap_module")
        pkg.__path__ = [str(base)]
        sys.modules["laion_clap_module"] = pkg
        return importlib.import_module("laion_clap_module.htsat")
    finally:
        for name in stubs:
            sys.modules.pop(name, None)


class LaionAudio(torch.nn.Module):
    """The audio half of laion_clap's CLAP (model.py): audio_branch, audio_projection, audio_transform."""

    def __init__(self, htsat, branch, joint=512):
        super().__init__()
        self.audio_branch = branch
        width = branch.num_features
        self.audio_projection = torch.nn.Sequential(torch.nn.Linear(width, joint), torch.nn.ReLU(),
                                                    torch.nn.Linear(joint, joint))
        self.audio_transform = torch.nn.Sequential(torch.nn.Linear(joint, joint))  # dropped by the converter
        self.logit_scale_a = torch.nn.Parameter(torch.ones([]))

    def embed(self, mel):
        """laion's unfused forward from log-mel features [B, 1, T, 64] (after its in-model STFT)."""
        b = self.audio_branch
        x = mel.transpose(1, 3)
        x = b.bn0(x)
        x = x.transpose(1, 3)
        x = b.reshape_wav2img(x)
        latent = b.forward_features(x)["embedding"]
        return torch.nn.functional.normalize(self.audio_projection(latent), dim=-1)


def laion_checkpoint(htsat, sizes, joint, seed, path):
    cfg = types.SimpleNamespace(mel_bins=64, sample_rate=48000, window_size=1024, hop_size=480, fmin=50,
                                fmax=14000, class_num=527, model_name="tiny")
    branch = htsat.HTSAT_Swin_Transformer(spec_size=256, patch_size=4, patch_stride=(4, 4), num_classes=527,
                                          embed_dim=sizes["patch_embeds_hidden_size"], depths=sizes["depths"],
                                          num_heads=sizes["num_attention_heads"], window_size=sizes.get("window_size", 8),
                                          config=cfg, enable_fusion=False)
    model = LaionAudio(htsat, branch, joint).eval()
    randomize_(model, seed)
    state = {"module." + k: v for k, v in model.state_dict().items()}
    state["module.text_branch.embeddings.word_embeddings.weight"] = torch.zeros(4, 4)  # other branches are ignored
    torch.save({"epoch": 1, "state_dict": state}, path)
    return model


def check_laion(sizes, joint, seed, size=None):
    htsat = import_laion_htsat()
    if htsat is None:
        print("laion_clap not installed: laion tests skipped (pip install --no-deps laion-clap torchlibrosa)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "ckpt.pt"
        model = laion_checkpoint(htsat, sizes, joint, seed, path)
        names = set(torch.load(path, weights_only=True)["state_dict"])
        assert any(k.endswith("attn.qkv.weight") for k in names) and any(k.endswith("attn_mask") for k in names)
        if size:
            section, tensors = clap_audio.convert_laion(path, size=size)
        else:
            section, tensors = clap_audio.convert_laion(path, sizes=sizes)
    assert section["projection_dim"] == joint and section["depths"] == sizes["depths"]
    assert not any("qkv" in k or "attn_mask" in k or "tscam" in k or "head." in k for k in tensors)
    # Compared in float64, where both implementations agree to rounding (float32 results differ by
    # float32 noise amplified through the random network).
    features = (-1 + 0.5 * torch.randn(2, 1001, 64, generator=torch.Generator().manual_seed(seed))).double()
    with torch.no_grad():
        expected = model.double().embed(features[:, None])
    got = hf_embedding(section, {k: v.double() for k, v in tensors.items()}, features, dtype=torch.float64)
    err = (got - expected).abs().max().item()
    assert err < 1e-10, err
    print(f"laion {sizes['depths']} -> transformers: {len(tensors)} tensors, max abs err {err:.2e} (float64)")


def test_laion_small():
    check_laion({k: v for k, v in SMALL.items() if k not in ("hidden_size", "projection_dim")}, 32, 3)


def test_laion_htsat_tiny():
    check_laion(clap_audio.LAION_HTSAT["tiny"], 512, 4, size="tiny")


def test_laion_names():
    cases = {
        "module.audio_branch.bn0.running_mean": "audio_model.audio_encoder.batch_norm.running_mean",
        "audio_branch.layers.1.blocks.0.norm1.weight": "audio_model.audio_encoder.layers.1.blocks.0.layernorm_before.weight",
        "audio_branch.layers.1.blocks.0.attn.proj.bias": "audio_model.audio_encoder.layers.1.blocks.0.attention.output.dense.bias",
        "audio_branch.layers.1.blocks.0.mlp.fc2.weight": "audio_model.audio_encoder.layers.1.blocks.0.output.dense.weight",
        "audio_branch.layers.0.downsample.reduction.weight": "audio_model.audio_encoder.layers.0.downsample.reduction.weight",
        "audio_branch.patch_embed.proj.weight": "audio_model.audio_encoder.patch_embed.proj.weight",
        "audio_projection.2.bias": "audio_projection.linear2.bias",
    }
    for src, dst in cases.items():
        assert clap_audio.rename_laion(src.removeprefix("module.")) == dst, (src, clap_audio.rename_laion(src))
    fused = {"audio_branch.fusion_model.local_att.0.weight": torch.zeros(2, 2)}
    try:
        clap_audio.laion_audio_tensors(fused)
        raise AssertionError("expected ConversionError")
    except ConversionError as e:
        assert "fused" in str(e)


if __name__ == "__main__":
    for name, fn in sorted(globals().items()):
        if name.startswith("test_") and callable(fn):
            fn()
            print(f"ok {name}")
