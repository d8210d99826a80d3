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


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _block_pair(momentum, seed=0):
    from torch import nn

    torch.manual_seed(seed)
    bn = nn.BatchNorm2d(16, momentum=momentum).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0), bn.bias.uniform_(-1, 1)
    twin = nn.BatchNorm2d(16, momentum=momentum).double()
    twin.load_state_dict(bn.state_dict())
    return bn, twin


@pytest.mark.parametrize("momentum", [0.1, None])
def test_fused_block_is_the_three_modules(one_thread, momentum):
    """bn_relu_maxpool: the same output, gradients, running statistics and batch count as
    pool(relu(bn(x))), over three training steps, then the same eval output."""
    from torch import nn

    from dml_core.kernels.native import library
    from dml_core.models.fused_block import bn_relu_maxpool, fusable

    assert library("bn_relu_pool") is not None, "the native kernel did not build (`make compiler`)"
    fused, plain = _block_pair(momentum)
    pool = nn.MaxPool2d(2)
    for step in range(3):
        x = torch.randn(4, 16, 6, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        assert fusable(xa, fused, pool)
        a = bn_relu_maxpool(xa, fused, pool)
        b = pool(torch.relu(plain(xb)))
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        a.sum().backward(), b.sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(fused.weight.grad, plain.weight.grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(fused.bias.grad, plain.bias.grad, rtol=1e-10, atol=1e-12)
        for name, buf in plain.named_buffers():
            torch.testing.assert_close(dict(fused.named_buffers())[name], buf, rtol=1e-12, atol=0)
    fused.eval(), plain.eval()
    x = torch.randn(4, 16, 6, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    assert not fusable(x, fused, pool)
    torch.testing.assert_close(bn_relu_maxpool(x, fused, pool), pool(torch.relu(plain(x))))


def test_fused_block_runs_only_where_it_applies(one_thread):
    from torch import nn

    from dml_core.models.fused_block import fusable

    bn = nn.BatchNorm2d(8)
    x = torch.randn(2, 8, 4, 4).contiguous(memory_format=torch.channels_last)
    assert fusable(x, bn, nn.MaxPool2d(2))
    assert not fusable(x.contiguous(), bn, nn.MaxPool2d(2))                 # NCHW
    assert not fusable(x, bn, nn.MaxPool2d(3))                              # another window
    assert not fusable(x, bn, nn.MaxPool2d(2, ceil_mode=True))
    assert not fusable(x, nn.BatchNorm2d(8, affine=False), nn.MaxPool2d(2))
    torch.set_num_threads(2)
    assert not fusable(x, bn, nn.MaxPool2d(2))                              # torch's kernels go parallel


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_small_cnn_trains_the_same_fused_or_not(one_thread, dtype):
    """The small CNN's forward (pooled blocks fused) against its modules in sequence: the same
    features and parameter gradients, fp32 and under bf16 autocast."""
    torch.manual_seed(0)
    model = build_embedder("small_cnn", embedding_dim=8, width=16).backbone.to(memory_format=torch.channels_last)
    x = torch.randn(8, 1, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        a = model(x)
    ga = torch.autograd.grad(a.float().sum(), list(model.parameters()))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        b = model.features(x)
    gb = torch.autograd.grad(b.float().sum(), list(model.parameters()))
    if dtype == torch.float32:  # summation order only
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        for p, q in zip(ga, gb):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-4 * q.abs().max().item())
        return
    # bf16: torch rounds y before pooling, the kernel after, so a window whose values tie in
    # bf16 may route its gradient to another position; the gradients agree in direction.
    torch.testing.assert_close(a.float(), b.float(), rtol=5e-2, atol=5e-2)
    for p, q in zip(ga, gb):
        assert torch.nn.functional.cosine_similarity(p.flatten(), q.flatten(), dim=0) > 0.99
