import subprocess
import sys

import torch


def test_top_level_api_imports_without_orchestration_packages():
    code = (
        "import sys, dml_core\n"
        "from dml_core import build_loss, build_miner, build_distance, evaluate\n"
        "from dml_core import losses, miners, distances, samplers\n"
        "bad = [m for m in ('prefect', 'ray', 'mlflow', 'dvc', 'sklearn', 'pytorch_metric_learning') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_loss_miner_distance_compose_in_a_training_step():
    from dml_core import build_loss, build_miner

    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    x, y = torch.randn(32, 8), torch.arange(32) % 4
    loss_fn, miner = build_loss("triplet", margin=0.2), build_miner("batch_semihard")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(20):
        emb = torch.nn.functional.normalize(model(x), dim=1)
        loss = loss_fn(emb, y, miner(emb, y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
