import pytest
import torch

from dml_core.models import build_embedder


@pytest.mark.parametrize(
    "name,opts,shape",
    [
        ("small_cnn", {"in_channels": 1, "width": 8}, (4, 1, 28, 28)),
        ("mlp", {"in_features": [1, 28, 28], "hidden": [32]}, (4, 1, 28, 28)),
        ("resnet", {"in_channels": 3, "width": 8, "depths": [1, 1]}, (4, 3, 64, 64)),
    ],
)
@pytest.mark.parametrize("normalize", [True, False])
def test_embedders_shape_norm_and_gradients(name, opts, shape, normalize):
    torch.manual_seed(0)
    model = build_embedder(name, embedding_dim=16, normalize=normalize, **opts)
    out = model(torch.randn(shape))
    assert out.shape == (shape[0], 16)
    norms = out.norm(dim=1)
    if normalize:
        torch.testing.assert_close(norms, torch.ones(shape[0]))
    else:
        assert not torch.allclose(norms, torch.ones(shape[0]))
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_same_seed_same_weights():
    a = build_embedder("small_cnn", embedding_dim=8, width=8) if torch.manual_seed(3) else None
    b = build_embedder("small_cnn", embedding_dim=8, width=8) if torch.manual_seed(3) else None
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_a_bad_embedding_dim_is_refused():
    with pytest.raises(ValueError, match="embedding_dim"):
        build_embedder("small_cnn", embedding_dim=0)


def test_timm_without_the_extra_says_how_to_install():
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"pip install 'dml\[timm\]'"):
            build_embedder("timm")
    else:
        with pytest.raises(ValueError, match="weights_path"):
            build_embedder("timm", architecture="resnet18", weights_path="/nonexistent/w.pt")


def test_global_avg_pool_is_the_mean_and_hands_back_a_gradient_in_the_activations_layout():
    from dml_core.models.pooling import GlobalAvgPool

    x = torch.randn(3, 5, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(GlobalAvgPool()(x), torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))
    assert torch.autograd.gradcheck(GlobalAvgPool(), (x,))
    # The ReLU before the pool saves a channels-last activation; the gradient reaching it must
    # be a broadcast view of the pooled gradient (stride 0 over H and W), not a new NCHW tensor.
    y = torch.randn(2, 8, 4, 4).contiguous(memory_format=torch.channels_last).requires_grad_()
    seen = []
    act = torch.relu(y)
    act.register_hook(lambda g: seen.append(g))
    GlobalAvgPool()(act).sum().backward()
    assert seen[0].stride()[2:] == (0, 0) and not seen[0].is_contiguous()
