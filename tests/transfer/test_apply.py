"""apply_patterns on models written here (the package knows nothing of them): exact masks in train
mode, identity in eval mode, exact restore on remove, module selection, shape errors."""
import os
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import autodropout as ad
from autodropout.apply.hooks import select_modules
from autodropout.core.errors import UnknownNameError
from autodropout.search_spaces import (
    ConvLayerPattern,
    ConvSpace,
    Pattern,
    TransformerLayerPattern,
    save_patterns,
)

DEVICE = torch.device(os.environ.get("AUTODROPOUT_TEST_DEVICE", "cpu"))


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return x + self.bn2(self.conv2(out))


class TinyResNet(nn.Module):
    """Stem, two residual blocks, pooled linear head; BatchNorm2d outputs are (B, 4, 8, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.layer1 = Block(4)
        self.layer2 = Block(4)
        self.head = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.head(x.mean(dim=(2, 3)))


class TinyTransformerish(nn.Module):
    """Embedding, two (LayerNorm, Linear) stages on (B, T, C) = (B, 6, 16), and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 16)
        self.norm1, self.fc1 = nn.LayerNorm(16), nn.Linear(16, 16)
        self.norm2, self.fc2 = nn.LayerNorm(16), nn.Linear(16, 16)
        self.head = nn.Linear(16, 20)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        x = x + self.fc1(self.norm1(x))
        x = x + self.fc2(self.norm2(x))
        return self.head(x)


def conv_layer(**changes) -> ConvLayerPattern:
    # 8x8 map, 2x2 tiles with pitch 4, repeated 2x2: 16 of 64 pixels dropped wherever the offset is.
    fields = dict(unit="tile", rate=None, size=(2, 2), stride=2, repeat=2, rotate=0, shear_x=0.0, shear_y=0.0,
                  share_c=False, residual=False)
    return ConvLayerPattern(**{**fields, **changes})


def tf_layer(**changes) -> TransformerLayerPattern:
    # Pitch 4, 2 units dropped: half the hidden units are zero, kept ones are doubled.
    fields = dict(query=False, key=False, value=False, attn_output=True, ffn_hidden=False, ffn_output=True,
                  size=2, stride=2, span="all", share_heads=False, noise="bernoulli")
    return TransformerLayerPattern(**{**fields, **changes})


def conv_pattern(n: int = 2) -> Pattern:
    return Pattern("conv", tuple(conv_layer(stride=1 + i % 4) for i in range(n)))


def record(module: nn.Module, log: list) -> torch.utils.hooks.RemovableHandle:
    """Hook registered after apply_patterns: sees the pattern hook's (masked) output."""
    return module.register_forward_hook(lambda m, a, out: log.append(out.detach().clone()))


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)).to(DEVICE)


@pytest.fixture
def resnet() -> TinyResNet:
    torch.manual_seed(0)
    return TinyResNet().to(DEVICE)


def test_train_mode_masks_bn_outputs_exactly(resnet, images):
    reference: list = []
    ref_hook = record(resnet.layer1.bn1, reference)
    resnet.train()
    before = resnet(images)
    ref_hook.remove()

    handle = ad.apply_patterns(resnet, Pattern("conv", (conv_layer(),)), where=nn.BatchNorm2d)
    masked: list = []
    record(resnet.layer1.bn1, masked)  # the first hooked module: its input is unchanged
    after = resnet(images)
    assert not torch.equal(before, after)
    # Train-mode BatchNorm output depends only on the batch, so the ratio is the mask itself.
    ratio = masked[0] / reference[0]
    dropped = masked[0] == 0
    assert torch.allclose(ratio[~dropped], torch.tensor(4 / 3, device=DEVICE), atol=1e-5)
    # Exactly a quarter of every (sample, channel) map is dropped, channels independently.
    assert dropped.sum(dim=(2, 3)).eq(16).all()
    assert not all(torch.equal(dropped[:, 0], dropped[:, c]) for c in range(1, 4))
    assert len(handle.sites) == 4


def test_eval_mode_is_identity(resnet, images):
    resnet.eval()
    before = resnet(images)
    with ad.apply_patterns(resnet, conv_pattern(3), where=nn.BatchNorm2d):
        assert torch.equal(resnet(images), before)


def test_remove_restores_the_model_exactly(resnet, images):
    resnet.train()
    state_keys = list(resnet.state_dict())
    text = repr(resnet)
    torch.manual_seed(1)
    before = resnet(images)
    handle = ad.apply_patterns(resnet, conv_pattern(2), where=nn.BatchNorm2d)
    assert list(resnet.state_dict()) == state_keys and repr(resnet) == text  # hooks only
    assert not torch.equal(resnet(images), before)
    handle.remove()
    handle.remove()  # harmless twice
    torch.manual_seed(1)
    assert torch.equal(resnet(images), before)
    assert all(not m._forward_hooks for m in resnet.modules())
    assert not handle.attached


def test_context_manager_removes_hooks(resnet, images):
    with ad.apply_patterns(resnet, conv_pattern(1), where="layer1.bn2") as handle:
        assert handle.attached
    assert not handle.attached
    assert not resnet.layer1.bn2._forward_hooks


def test_name_patterns_select_in_module_order(resnet):
    handle = ad.apply_patterns(resnet, conv_pattern(4), where="layer*.bn2")
    # 4 sites onto 2 modules by relative depth: sites 1 and 3.
    assert [(s.name, s.site) for s in handle.sites] == [("layer1.bn2", 1), ("layer2.bn2", 3)]
    handle.remove()
    handle = ad.apply_patterns(resnet, conv_pattern(1), where=["layer2.bn1", "layer1.*1"])
    assert [s.name for s in handle.sites] == ["layer1.conv1", "layer1.bn1", "layer2.bn1"]
    assert [s.site for s in handle.sites] == [0, 0, 0]
    handle.remove()


def test_type_selection_and_depth_mapping(resnet):
    handle = ad.apply_patterns(resnet, conv_pattern(2), where=nn.BatchNorm2d)
    assert [s.name for s in handle.sites] == ["layer1.bn1", "layer1.bn2", "layer2.bn1", "layer2.bn2"]
    assert [s.site for s in handle.sites] == [0, 0, 1, 1]
    handle.remove()
    handle = ad.apply_patterns(resnet, conv_pattern(1), where=(nn.Conv2d,))
    assert [s.name for s in handle.sites] == ["stem", "layer1.conv1", "layer1.conv2", "layer2.conv1", "layer2.conv2"]
    handle.remove()


def test_pattern_file_and_rank(resnet, images, tmp_path):
    first, second = conv_pattern(2), Pattern("conv", (conv_layer(size=(1, 1), stride=1, repeat=1),) * 2)
    path = save_patterns(tmp_path / "p.json", [first, second], ConvSpace(2))
    handle = ad.apply_patterns(resnet, str(path), where=nn.BatchNorm2d, rank=2)
    assert all(s.layer == second.layers[0] for s in handle.sites)
    handle.remove()
    with pytest.raises(KeyError, match=r"no pattern of rank 3; ranks in file: \[1, 2\]"):
        ad.apply_patterns(resnet, path, where=nn.BatchNorm2d, rank=3)


def test_a_shipped_name_works_as_in_load_patterns(resnet):
    handle = ad.apply_patterns(resnet, "digits-wrn-lstm", where=nn.BatchNorm2d)
    shipped = ad.load_patterns("digits-wrn-lstm").best  # 3 sites mapped by depth onto the model's BatchNorms
    assert {s.layer for s in handle.sites} <= set(shipped.layers) and handle.sites
    handle.remove()
    with pytest.raises(UnknownNameError, match="no-such-pattern"):
        ad.apply_patterns(resnet, "no-such-pattern", where=nn.BatchNorm2d)


def test_wrong_shape_raises_naming_the_module(resnet, images):
    resnet.train()
    with ad.apply_patterns(resnet, conv_pattern(1), where="head"):
        with pytest.raises(ValueError, match=r"module 'head' \(Linear\) output has shape \(3, 10\); "
                                             r"a conv pattern needs \(B, C, H, W\)"):
            resnet(images)
    transformer = Pattern("transformer", (tf_layer(),))
    with ad.apply_patterns(resnet, transformer, where="layer1.bn1"):
        with pytest.raises(ValueError, match=r"module 'layer1.bn1' \(BatchNorm2d\) output has shape "
                                             r"\(3, 4, 8, 8\); a transformer pattern needs \(B, T, C\)"):
            resnet(images)


def test_non_tensor_output_raises_naming_the_module():
    model = nn.Sequential(nn.LSTM(4, 4, batch_first=True))
    with ad.apply_patterns(model, Pattern("transformer", (tf_layer(),)), where=nn.LSTM):
        with pytest.raises(TypeError, match=r"module '0' \(LSTM\) returns tuple"):
            model(torch.randn(2, 3, 4))


def test_selection_errors(resnet):
    with pytest.raises(ValueError, match=r"where: no module of TinyResNet matches name pattern 'block\*' "
                                         r"\(module names look like: stem, layer1, layer1.conv1"):
        ad.apply_patterns(resnet, conv_pattern(1), where="block*")
    with pytest.raises(ValueError, match="no module of TinyResNet matches LayerNorm"):
        ad.apply_patterns(resnet, conv_pattern(1), where=nn.LayerNorm)
    with pytest.raises(TypeError, match="where: expected an nn.Module subclass"):
        ad.apply_patterns(resnet, conv_pattern(1), where=3)
    with pytest.raises(TypeError, match="where: int is not an nn.Module subclass"):
        select_modules(resnet, (int,))
    with pytest.raises(TypeError, match="model: expected an nn.Module, got str"):
        ad.apply_patterns("resnet", conv_pattern(1), where=nn.BatchNorm2d)
    with pytest.raises(TypeError, match="pattern: expected a Pattern, a PatternSet or a pattern file path"):
        ad.apply_patterns(resnet, [conv_layer()], where=nn.BatchNorm2d)
    # "*" never selects the root module (its output is the model's output, not an activation).
    assert "" not in [n for n, _ in select_modules(resnet, "*")]


def test_transformer_pattern_on_sequence_outputs():
    torch.manual_seed(0)
    model = TinyTransformerish().to(DEVICE).train()
    tokens = torch.randint(20, (2, 6), device=DEVICE)
    off = tf_layer(attn_output=False, ffn_output=False)
    handle = ad.apply_patterns(model, Pattern("transformer", (tf_layer(), off)), where=["fc1", "fc2"])
    assert [(s.name, s.active) for s in handle.sites] == [("fc1", True), ("fc2", False)]
    seen: list = []
    record(model.fc1, seen)
    record(model.fc2, seen)
    model(tokens)
    fc1, fc2 = seen
    zeros = fc1 == 0
    # Half of the 16 units are zero in each sample, the same units at every token ("all" span).
    assert zeros.sum(dim=2).eq(8).all()
    assert torch.equal(zeros, zeros[:, :1].expand_as(zeros))
    # The switched-off layer pattern leaves fc2 alone: its output equals the plain computation.
    x = model.embed(tokens)
    x = x + fc1
    assert torch.allclose(fc2, model.fc2(model.norm2(x)))


def test_bfloat16_activations(resnet, images):
    model = resnet.to(torch.bfloat16).train()
    images = images.to(torch.bfloat16)
    reference: list = []
    hook = record(model.layer2.bn2, reference)
    model(images)
    hook.remove()
    seen: list = []
    with ad.apply_patterns(model, Pattern("conv", (conv_layer(),)), where="layer2.bn2"):
        record(model.layer2.bn2, seen)
        out = model(images)
    assert out.dtype == torch.bfloat16 and seen[0].dtype == torch.bfloat16
    # 16 pixels per map are dropped; bfloat16 BatchNorm outputs may also hold a few exact zeros.
    natural = reference[0] == 0
    assert ((seen[0] == 0).sum(dim=(2, 3)) >= 16).all()
    assert ((seen[0] == 0) & ~natural).sum(dim=(2, 3)).le(16).all()
    kept = seen[0] != 0
    assert torch.allclose(seen[0][kept].float(), reference[0][kept].float() * 4 / 3, rtol=1e-2)


def test_generator_makes_masks_repeatable(resnet, images):
    resnet.train()
    outs = []
    for _ in range(2):
        with ad.apply_patterns(resnet, conv_pattern(2), where=nn.BatchNorm2d,
                               generator=torch.Generator(DEVICE).manual_seed(5)):
            outs.append(resnet(images))
    assert torch.equal(outs[0], outs[1])


def test_docs_example_runs(tmp_path, monkeypatch):
    """The apply_patterns example of docs/transfer.md, on a model the package does not define."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "transfer.md").read_text()
    example = next(block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "apply_patterns(model" in block)
    monkeypatch.chdir(tmp_path)
    save_patterns("patterns.json", [conv_pattern(3)], ConvSpace(3))
    namespace: dict = {}
    exec(compile(example, "docs/transfer.md", "exec"), namespace)
    handle, model = namespace["handle"], namespace["model"]
    assert [(s.name, s.site) for s in handle.sites] == [
        ("layer1.0.bn2", 0), ("layer1.1.bn2", 1), ("layer2.0.bn2", 1), ("layer2.1.bn2", 2)]
    assert not handle.attached and all(not m._forward_hooks for m in model.modules())
    assert namespace["predictions"].shape == (16,)
