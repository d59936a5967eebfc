import numpy as np
import pytest
import torch

from procl.model import (KeyStepLocalizer, NetConfig, ProcedureNet, SpatialAttention, TaskClassifier,
                         keystep_features, ranking_loss)


def test_attention_is_a_convex_combination_and_identity_for_one_cell():
    torch.manual_seed(0)
    san = SpatialAttention(8)
    y = torch.randn(5, 49, 8)
    f, alpha = san(y)
    assert f.shape == (5, 8) and alpha.shape == (5, 49)
    torch.testing.assert_close(alpha.sum(1), torch.ones(5))
    torch.testing.assert_close(f, torch.einsum("tr,trd->td", alpha, y))
    y1 = torch.randn(4, 1, 8)
    torch.testing.assert_close(san(y1)[0], y1[:, 0])
    f_mean, a_mean = SpatialAttention(8, enabled=False)(y)
    torch.testing.assert_close(f_mean, y.mean(1))


@pytest.mark.parametrize("T", [1, 2, 7, 8, 9, 33])
def test_localizer_any_length_and_padding_does_not_leak(T):
    torch.manual_seed(0)
    kln = KeyStepLocalizer(6, 10, width=16).eval()
    f = torch.randn(T, 6)
    s = kln(f)
    assert s.shape == (T, 10)
    # the stride padding is zeros and is cropped away: an explicit zero tail up to the
    # stride gives the same first T rows, so padding never shifts a prediction
    pad = (-T) % 8
    if pad:
        s2 = kln(torch.cat([f, torch.zeros(pad, 6)]))[:T]
        torch.testing.assert_close(s, s2)


def test_keystep_features_weighted_average():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    h = keystep_features(f, p)
    torch.testing.assert_close(h, torch.tensor([[1.0, 0.0], [0.5, 1.0]]), atol=1e-5, rtol=0)


def test_classifier_pooling_weights():
    torch.manual_seed(0)
    tcn = TaskClassifier(4, 3)
    logits, beta = tcn(torch.randn(10, 4), torch.softmax(torch.randn(10, 6), 1))
    assert logits.shape == (3,) and beta.shape == (6,)
    assert float(beta.detach().sum()) == pytest.approx(1.0)
    _, uniform = TaskClassifier(4, 3, learnable_pooling=False)(torch.randn(10, 4), torch.softmax(torch.randn(10, 6), 1))
    torch.testing.assert_close(uniform, torch.full((6,), 1 / 6))


def test_ranking_loss_hand_case():
    s = torch.tensor([[2.0, 0.5, 1.5], [0.0, 0.0, 0.0]])
    r = torch.tensor([0, 2])
    # frame 0: max(0,1-2+0.5)=0 + max(0,1-2+1.5)=0.5 ; frame 1: 1 + 1 = 2 ; mean = 1.25
    assert float(ranking_loss(s, r)) == pytest.approx(1.25)
    assert float(ranking_loss(torch.tensor([[5.0, 0.0, 0.0]]), torch.tensor([0]))) == 0.0


def test_network_trains_on_a_toy_problem():
    torch.manual_seed(0)
    net = ProcedureNet(NetConfig(D=4, M=3, n_tasks=2, width=16, dropout=0.0))
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3, weight_decay=1e-4)
    y = torch.randn(12, 5, 4)
    r = torch.tensor([0] * 4 + [1] * 4 + [2] * 4)
    first = None
    for _ in range(60):
        loss = ranking_loss(net(y).s, r)
        opt.zero_grad(); loss.backward(); opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first
