"""The spatially-correlative loss against a slow loop written straight from the paper's definition."""

import itertools
import math

import pytest
import torch

from models.sesim import LAYER_NAMES, SpatialCorrelativeLoss, VGG16Features, sample_patch_ids, window_key_ids


# ----------------------------------------------------------------------------------------------
# The oracle: one query at a time, plain indexing, no gather, no kthvalue.
# ----------------------------------------------------------------------------------------------


def oracle_head(f, weights):
    """Two 1x1 convs with a ReLU, as channel einsums."""
    w1, b1, w2, b2 = weights
    h = torch.einsum("oc,bchw->bohw", w1[:, :, 0, 0], f) + b1.view(1, -1, 1, 1)
    h = torch.relu(h)
    return torch.einsum("oc,bchw->bohw", w2[:, :, 0, 0], h) + b2.view(1, -1, 1, 1)


def oracle_prepare(f, use_norm):
    b, c, h, w = f.shape
    f = f - f.sum(dim=(2, 3), keepdim=True) / (h * w)
    if use_norm:
        return f / f.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
    return f / math.sqrt(c)


def oracle_similarity(f, ids, patch_size, use_norm):
    """(B, Nq, Nk) built one query at a time."""
    b, c, h, w = f.shape
    local = patch_size < h and patch_size < w
    out = []
    for n in range(b):
        rows = []
        for idx in ids.tolist():
            y, x = idx // w, idx % w
            q = f[n, :, y, x]
            if local:
                top = min(max(y - patch_size // 2, 0), h - patch_size)
                left = min(max(x - patch_size // 2, 0), w - patch_size)
                keys = f[n, :, top : top + patch_size, left : left + patch_size].reshape(c, -1)
            else:
                keys = f[n].reshape(c, -1)
            s = (keys * q.view(-1, 1)).sum(0)
            rows.append(s if use_norm else torch.tanh(s / 10))
        out.append(torch.stack(rows))
    return torch.stack(out)


def smooth_l1(d):
    a = d.abs()
    return torch.where(a < 1, 0.5 * d * d, a - 0.5)


def oracle_generator_loss(s_src, s_tgt, mode, use_norm):
    b, nq, nk = s_src.shape
    quarter = nk // 4
    terms = []
    for n in range(b):
        for i in range(nq):
            row_t = s_tgt[n, i]
            threshold = torch.sort(row_t.detach(), descending=True).values[quarter]
            keep = (row_t.detach() >= threshold).float()
            src, tgt = s_src[n, i] * keep, row_t * keep
            if mode == "cos":
                cos = (src * tgt).sum() / (src.norm() * tgt.norm())
                d = 1 - cos
                terms.append(d.abs() if use_norm else smooth_l1(d))
            else:
                scale = nk / quarter
                d = scale * src - scale * tgt
                terms.append((d.abs() if use_norm else smooth_l1(d)).mean())
    return torch.stack(terms).mean()


def oracle_contrastive(s_src, s_tgt, s_oth, temperature):
    b, nq, _ = s_src.shape
    unit = [s / s.norm(dim=-1, keepdim=True) for s in (s_src, s_tgt, s_oth)]
    src, tgt, oth = unit
    terms = []
    for n in range(b):
        for i in range(nq):
            logits = (
                torch.cat([(src[n, i] * tgt[n]).sum(-1), (src[n, i] * oth[n]).sum(-1), (tgt[n, i] * oth[n]).sum(-1)])
                / temperature
            )
            terms.append(torch.logsumexp(logits, 0) - logits[i])
    return torch.stack(terms).mean()


def oracle_loss(src_feats, tgt_feats, oth_feats, ids, *, mode, use_norm, patch_size, heads, T=0.07):
    total = 0
    for layer in range(len(src_feats)):
        maps = [src_feats[layer], tgt_feats[layer]] + ([oth_feats[layer]] if oth_feats else [])
        if heads:
            maps = [oracle_head(m, heads[layer]) for m in maps]
        sims = [oracle_similarity(oracle_prepare(m, use_norm), ids[layer], patch_size, use_norm) for m in maps]
        if oth_feats:
            total = total + oracle_contrastive(*sims, T)
        else:
            total = total + oracle_generator_loss(sims[0], sims[1], mode, use_norm)
    return total / len(src_feats)


# ----------------------------------------------------------------------------------------------

CHANNELS = (6, 10)
SHAPES = {"square": [(8, 8), (6, 6)], "nonsquare": [(6, 11), (5, 7)]}


def make_feats(batch, shapes, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, h, w, generator=g) for c, (h, w) in zip(CHANNELS, shapes)]


@pytest.mark.parametrize(
    "mode,use_norm,local,learned,shape,batch",
    list(
        itertools.product(
            ["cos", "l1", "info"], [False, True], [False, True], [False, True], ["square", "nonsquare"], [1, 4]
        )
    ),
)
def test_module_matches_loop_oracle(mode, use_norm, local, learned, shape, batch):
    torch.manual_seed(0)
    shapes = SHAPES[shape]
    patch_size = 3 if local else 64
    loss_fn = SpatialCorrelativeLoss(
        mode=mode, patch_nums=9, patch_size=patch_size, use_norm=use_norm, learned=learned, in_channels=CHANNELS
    )
    if learned:  # larger weights than the init so the heads matter
        for p in loss_fn.parameters():
            p.data.normal_(0, 0.3)
    src = make_feats(batch, shapes, 1)
    tgt = [t.requires_grad_() for t in make_feats(batch, shapes, 2)]
    oth = make_feats(batch, shapes, 3) if mode == "info" else None
    ids = [sample_patch_ids(h * w, 9, torch.Generator().manual_seed(7 + i)) for i, (h, w) in enumerate(shapes)]

    value = loss_fn(src, tgt, oth, patch_ids=ids)
    grads = torch.autograd.grad(value, tgt + list(loss_fn.parameters()))

    heads = None
    if learned:
        heads = [
            (
                getattr(loss_fn, f"conv_{i}")[0].weight,
                getattr(loss_fn, f"conv_{i}")[0].bias,
                getattr(loss_fn, f"conv_{i}")[2].weight,
                getattr(loss_fn, f"conv_{i}")[2].bias,
            )
            for i in range(2)
        ]
    expected = oracle_loss(src, tgt, oth, ids, mode=mode, use_norm=use_norm, patch_size=patch_size, heads=heads)
    expected_grads = torch.autograd.grad(expected, tgt + list(loss_fn.parameters()))

    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-7)
    # the second head bias has an exactly-zero true gradient (centring removes it): compare each
    # gradient relative to the largest gradient of the case
    scale = max(want.abs().max().item() for want in expected_grads)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("mode,src_batch,tiles", [("info", 1, 2), ("info", 2, 2), ("cos", 1, 3)])
def test_source_batch_dividing_the_target_batch_stands_for_the_repeated_source(mode, src_batch, tiles):
    """The head step's [real_A, real_A] passed as [real_A]: the oracle gets the source concatenated."""
    shapes = SHAPES["nonsquare"]
    loss_fn = SpatialCorrelativeLoss(mode=mode, patch_nums=9, patch_size=3, learned=True, in_channels=CHANNELS)
    for p in loss_fn.parameters():
        p.data.normal_(0, 0.3)
    src = [s.requires_grad_() for s in make_feats(src_batch, shapes, 11)]
    tgt = make_feats(src_batch * tiles, shapes, 12)
    oth = make_feats(src_batch * tiles, shapes, 13) if mode == "info" else None
    ids = [sample_patch_ids(h * w, 9, torch.Generator().manual_seed(i)) for i, (h, w) in enumerate(shapes)]
    value = loss_fn(src, tgt, oth, patch_ids=ids)
    grads = torch.autograd.grad(value, src + list(loss_fn.parameters()))
    heads = [
        tuple(
            getattr(loss_fn, f"conv_{i}")[j].weight if k == 0 else getattr(loss_fn, f"conv_{i}")[j].bias
            for j in (0, 2)
            for k in (0, 1)
        )
        for i in range(2)
    ]
    expected = oracle_loss(
        [torch.cat([s] * tiles) for s in src], tgt, oth, ids, mode=mode, use_norm=False, patch_size=3, heads=heads
    )
    expected_grads = torch.autograd.grad(expected, src + list(loss_fn.parameters()))
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-7)
    scale = max(want.abs().max().item() for want in expected_grads)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * scale)
    with pytest.raises(ValueError, match="divide"):
        loss_fn([s[:1].repeat(3, 1, 1, 1) for s in src], make_feats(4, shapes, 12), oth and make_feats(4, shapes, 13))


def test_window_ids_decode_rows_with_width():
    # a 4 x 10 map: index 23 is row 2, column 3 -> window rows 1..3 (clamped to H - p = 1), cols 2..4
    ids = window_key_ids(torch.tensor([23]), height=4, width=10, patch_size=3)
    rows, cols = ids // 10, ids % 10
    assert sorted(set(rows.tolist()[0])) == [1, 2, 3]
    assert sorted(set(cols.tolist()[0])) == [2, 3, 4]


def test_given_patch_ids_are_used_and_drawn_ids_vary():
    torch.manual_seed(0)
    feats = make_feats(2, SHAPES["square"], 4)
    other = make_feats(2, SHAPES["square"], 5)
    loss_fn = SpatialCorrelativeLoss(patch_nums=5)
    ids = loss_fn.sample_ids(feats)
    assert [len(i) for i in ids] == [5, 5]
    fixed = [loss_fn(feats, other, patch_ids=ids) for _ in range(3)]
    assert all(torch.equal(fixed[0], v) for v in fixed)
    drawn = {loss_fn(feats, other).item() for _ in range(5)}
    assert len(drawn) > 1
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = SpatialCorrelativeLoss(patch_nums=5, generator=g1)(feats, other)
    b = SpatialCorrelativeLoss(patch_nums=5, generator=g2)(feats, other)
    assert torch.equal(a, b)


@pytest.mark.parametrize("patch_nums", [0, -1, 1000])
def test_all_positions_when_patch_nums_nonpositive_or_too_large(patch_nums):
    feats = make_feats(1, SHAPES["nonsquare"], 6)
    other = make_feats(1, SHAPES["nonsquare"], 7)
    loss_fn = SpatialCorrelativeLoss(patch_nums=patch_nums, patch_size=64)
    ids = loss_fn.sample_ids(feats)
    assert [sorted(i.tolist()) for i in ids] == [list(range(66)), list(range(35))]
    every = [torch.arange(66), torch.arange(35)]
    expected = oracle_loss(feats, other, None, every, mode="cos", use_norm=False, patch_size=64, heads=None)
    torch.testing.assert_close(loss_fn(feats, other), expected, rtol=1e-5, atol=1e-7)


def test_map_smaller_than_patch_takes_global_keys():
    feats = make_feats(1, [(4, 4), (2, 3)], 8)
    other = make_feats(1, [(4, 4), (2, 3)], 9)
    ids = [torch.arange(16), torch.arange(6)]
    local = SpatialCorrelativeLoss(patch_size=4)(feats, other, patch_ids=ids)  # p == H: global
    global_ = SpatialCorrelativeLoss(patch_size=64)(feats, other, patch_ids=ids)
    torch.testing.assert_close(local, global_)


def test_identical_inputs_give_zero_and_info_needs_other():
    feats = make_feats(2, SHAPES["square"], 10)
    for mode in ("cos", "l1"):
        assert SpatialCorrelativeLoss(mode=mode, patch_nums=8)(feats, feats).item() == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="other_feats"):
        SpatialCorrelativeLoss(mode="info")(feats, feats)


def test_heads_built_in_constructor_with_reference_names():
    loss_fn = SpatialCorrelativeLoss(learned=True, in_channels=[256, 512, 512])
    shapes = {k: tuple(v.shape) for k, v in loss_fn.state_dict().items()}
    assert shapes == {
        "conv_0.0.weight": (64, 256, 1, 1),
        "conv_0.0.bias": (64,),
        "conv_0.2.weight": (64, 64, 1, 1),
        "conv_0.2.bias": (64,),
        "conv_1.0.weight": (128, 512, 1, 1),
        "conv_1.0.bias": (128,),
        "conv_1.2.weight": (128, 128, 1, 1),
        "conv_1.2.bias": (128,),
        "conv_2.0.weight": (128, 512, 1, 1),
        "conv_2.0.bias": (128,),
        "conv_2.2.weight": (128, 128, 1, 1),
        "conv_2.2.bias": (128,),
    }
    assert all(v.abs().max() == 0 for k, v in loss_fn.state_dict().items() if k.endswith("bias"))
    assert 0.015 < loss_fn.conv_0[0].weight.std().item() < 0.025


# ----------------------------------------------------------------------------------------------
# VGG16Features
# ----------------------------------------------------------------------------------------------


def test_vgg_layers_channels_and_early_stop():
    with pytest.warns(UserWarning, match="random"):
        vgg = VGG16Features(layers=(4, "relu4_1", 9), weights="random")
    assert vgg.out_channels == [256, 512, 512]
    assert vgg.layer_names == ["relu3_1", "relu4_1", "relu4_3"]
    assert len(vgg.features) == 23  # stops after relu4_3, never runs block 5
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    feats = vgg(x)
    assert [tuple(f.shape) for f in feats] == [(2, 256, 8, 12), (2, 512, 4, 6), (2, 512, 4, 6)]
    # index 7 is relu4_1 AFTER its ReLU: recompute it with torchvision's layers directly
    h = ((x + 1) / 2 - vgg.mean) / vgg.std
    for module in list(vgg.features)[:19]:
        h = module(h)
    torch.testing.assert_close(feats[1], h)
    assert feats[1].min() >= 0


def test_vgg_is_frozen_and_passes_gradient_to_input():
    with pytest.warns(UserWarning):
        vgg = VGG16Features(layers=(2,), weights="random")
    vgg.train()
    assert not vgg.training
    assert all(not p.requires_grad for p in vgg.parameters())
    x = torch.zeros(1, 3, 16, 16, requires_grad=True)
    vgg(x)[0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_vgg_one_channel_equals_grey_rgb():
    with pytest.warns(UserWarning):
        vgg = VGG16Features(layers=(1,), weights="random")
    grey = torch.rand(1, 1, 16, 16) * 2 - 1
    torch.testing.assert_close(vgg(grey)[0], vgg(grey.repeat(1, 3, 1, 1))[0])


def test_vgg_rejects_bad_layers():
    for bad in (13, -1, "relu6_1"):
        with pytest.raises(ValueError, match="0-12|choose from"):
            VGG16Features(layers=(bad,), weights="random")
    assert len(LAYER_NAMES) == 13


def test_vgg_weights_file_with_recorded_preprocessing(tmp_path):
    with pytest.warns(UserWarning):
        ref = VGG16Features(layers=(3,), weights="random")
    state = {f"features.{k}": v for k, v in ref.features.state_dict().items()}
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.2, 0.2]
    torch.save({"state_dict": state, "mean": mean, "std": std, "flavour": "caffe"}, tmp_path / "w.pth")
    torch.save(state, tmp_path / "plain.pth")
    custom = VGG16Features(layers=(3,), weights=str(tmp_path / "w.pth"))
    plain = VGG16Features(layers=(3,), weights=str(tmp_path / "plain.pth"))
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    expected = ref.features(((x + 1) / 2 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    torch.testing.assert_close(custom(x)[0], expected)
    torch.testing.assert_close(plain(x)[0], ref(x)[0])


def test_vgg_missing_or_bad_weights_name_the_command(tmp_path, monkeypatch):
    from models.sesim import VGGWeightsError

    with pytest.raises(VGGWeightsError, match="does not exist"):
        VGG16Features(weights=str(tmp_path / "nope.pth"))
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(VGGWeightsError, match="cannot read"):
        VGG16Features(weights=str(tmp_path / "bad.pth"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(VGGWeightsError, match="download_vgg16.py"):
        VGG16Features(weights="imagenet")


def test_loss_on_vgg_features_backpropagates_to_the_image():
    with pytest.warns(UserWarning):
        vgg = VGG16Features(layers=(4, 7, 9), weights="random")
    loss_fn = SpatialCorrelativeLoss(patch_nums=16, patch_size=4, learned=True, in_channels=vgg.out_channels)
    real = torch.rand(1, 3, 64, 64) * 2 - 1
    fake = (torch.rand(1, 3, 64, 64) * 2 - 1).requires_grad_()
    with torch.no_grad():
        src = vgg(real)
    loss = loss_fn(src, vgg(fake))
    loss.backward()
    assert torch.isfinite(loss) and fake.grad.abs().sum() > 0


def test_own_vgg16_layout_equals_torchvision():
    import torchvision

    from models.sesim import vgg16_features

    ours, theirs = vgg16_features(), torchvision.models.vgg16(weights=None).features
    assert [type(m) for m in ours] == [type(m) for m in theirs]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    for a, b in zip(ours, theirs):
        if isinstance(a, torch.nn.Conv2d):
            assert (a.kernel_size, a.padding, a.stride) == (b.kernel_size, b.padding, b.stride)
        if isinstance(a, torch.nn.MaxPool2d):
            assert (a.kernel_size, a.stride) == (b.kernel_size, b.stride)


def test_the_loss_file_works_copied_alone_and_nothing_imports_its_private_names(tmp_path):
    """models/sesim.py copied into an empty folder imports and computes with torch alone; no file of the
    project imports a private (underscored) name from it."""
    import ast
    import shutil
    import subprocess
    import sys

    from helpers import ROOT

    shutil.copy(ROOT / "models" / "sesim.py", tmp_path / "sesim.py")
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]; import torch, sesim; "
        "assert sesim.__file__.startswith(sys.argv[1]); "
        "f = [torch.rand(1, 8, 8, 8)]; g = [torch.rand(1, 8, 8, 8)]; "
        "loss = sesim.SpatialCorrelativeLoss(patch_nums=16, patch_size=4)(f, g); "
        "assert torch.isfinite(loss); "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('models', 'util', 'data', 'inference')]; print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    private = []
    for path in ROOT.rglob("*.py"):
        if ".venv" in path.parts or path.name == "sesim.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "models.sesim":
                private += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert private == []
