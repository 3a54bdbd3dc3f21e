"""PatchNCE (models/patchnce.py) against a per-patch loop written from the published definition."""

import math

import pytest
import torch

from models.patchnce import (
    DIAGONAL_LOGIT,
    PatchSampleMLP,
    gather_patches,
    l2_normalize,
    patch_nce,
    patch_nce_loss,
    sample_patch_ids,
)


def loop_patch_losses(query: torch.Tensor, key: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B, P) of -log softmax per patch: positive <q_bi, k_bi>, negatives <q_bi, k_bj> for j != i plus the
    published diagonal logit -10, all over the temperature; the keys are constants."""
    key = key.detach()
    batch, patches, _ = query.shape
    rows = []
    for b in range(batch):
        row = []
        for i in range(patches):
            q = query[b, i]
            positive = torch.dot(q, key[b, i]) / temperature
            others = [torch.dot(q, key[b, j]) / temperature for j in range(patches) if j != i]
            others.append(torch.tensor(DIAGONAL_LOGIT / temperature, dtype=query.dtype))
            row.append(torch.logsumexp(torch.stack([positive] + others), dim=0) - positive)
        rows.append(torch.stack(row))
    return torch.stack(rows)


def loop_patch_nce(query: torch.Tensor, key: torch.Tensor, temperature: float) -> torch.Tensor:
    return loop_patch_losses(query, key, temperature).mean()


def unit_features(shape: tuple, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


@pytest.mark.parametrize("batch,patches,dim,temperature", [(1, 7, 5, 0.07), (3, 16, 8, 0.07), (2, 9, 4, 0.5)])
def test_patch_nce_equals_the_loop_values_and_gradients(batch, patches, dim, temperature):
    query = unit_features((batch, patches, dim), 0).requires_grad_(True)
    key = unit_features((batch, patches, dim), 1).requires_grad_(True)
    ours = patch_nce_loss(query, key, temperature).mean()
    (grad_ours,) = torch.autograd.grad(ours, query)
    query_loop = query.detach().clone().requires_grad_(True)
    oracle = loop_patch_nce(query_loop, key, temperature)
    (grad_loop,) = torch.autograd.grad(oracle, query_loop)
    assert abs(float(ours) - float(oracle)) < 1e-5
    assert torch.allclose(grad_ours, grad_loop, atol=1e-5, rtol=0)
    # the keys are constants: no gradient reaches them
    assert torch.autograd.grad(patch_nce_loss(query, key, temperature).sum(), key, allow_unused=True)[0] is None


def test_patch_nce_per_patch_values_and_layer_mean():
    query, key = unit_features((2, 5, 3), 2), unit_features((2, 5, 3), 3)
    per_patch = patch_nce_loss(query, key, 0.07)
    assert per_patch.shape == (2, 5)
    assert torch.allclose(per_patch, loop_patch_losses(query, key, 0.07), atol=1e-10, rtol=0)
    other_q, other_k = unit_features((2, 4, 3), 4), unit_features((2, 4, 3), 5)
    both = patch_nce([query, other_q], [key, other_k], 0.07)
    expected = 0.5 * (loop_patch_nce(query, key, 0.07) + loop_patch_nce(other_q, other_k, 0.07))
    assert abs(float(both) - float(expected)) < 1e-10


def test_identical_features_give_a_low_loss_and_random_ones_about_log_p():
    key = unit_features((1, 64, 32), 6)
    assert float(patch_nce_loss(key.clone(), key, 0.07).mean()) < 0.01
    # unrelated unit vectors: every logit near 0, so the loss is about log(P) (the -10 logit adds ~nothing)
    random_loss = float(patch_nce_loss(unit_features((1, 64, 256), 7), unit_features((1, 64, 256), 8), 1.0).mean())
    assert abs(random_loss - math.log(64)) < 0.05


def test_sample_ids_gather_and_normalise_match_loops():
    ids = sample_patch_ids(20, 6, torch.Generator().manual_seed(0))
    assert ids.shape == (6,) and len(set(ids.tolist())) == 6 and ids.max() < 20
    assert torch.equal(sample_patch_ids(5, 0), torch.arange(5)) and sample_patch_ids(5, 9).shape == (5,)
    feat = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    patches = gather_patches(feat, ids)
    for b in range(2):
        for p, flat in enumerate(ids.tolist()):
            assert torch.equal(patches[b, p], feat[b, :, flat // 5, flat % 5])
    x = torch.randn(4, 7, dtype=torch.float64)
    assert torch.allclose(l2_normalize(x), x / (x.norm(dim=1, keepdim=True) + 1e-7))


def test_heads_are_built_at_construction_with_the_published_names():
    head = PatchSampleMLP([3, 16, 32], num_features=8)
    names = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert names == {
        "mlp_0.0.weight": (8, 3),
        "mlp_0.0.bias": (8,),
        "mlp_0.2.weight": (8, 8),
        "mlp_0.2.bias": (8,),
        "mlp_1.0.weight": (8, 16),
        "mlp_1.0.bias": (8,),
        "mlp_1.2.weight": (8, 8),
        "mlp_1.2.bias": (8,),
        "mlp_2.0.weight": (8, 32),
        "mlp_2.0.bias": (8,),
        "mlp_2.2.weight": (8, 8),
        "mlp_2.2.bias": (8,),
    }
    feats = [torch.randn(2, c, 6, 6) for c in (3, 16, 32)]
    ids = head.sample_ids(feats, 10)
    out = head(feats, ids)
    for i, (o, f) in enumerate(zip(out, feats)):
        mlp = getattr(head, f"mlp_{i}")
        manual = mlp[2](torch.relu(mlp[0](f.flatten(2)[:, :, ids[i]].transpose(1, 2))))
        assert o.shape == (2, 10, 8)
        assert torch.allclose(o, manual / (manual.norm(dim=-1, keepdim=True) + 1e-7), atol=1e-6)
    assert sum(p.numel() for p in PatchSampleMLP([3], use_mlp=False).parameters()) == 0
    with pytest.raises(ValueError, match="layers"):
        head(feats[:2], ids[:2])
