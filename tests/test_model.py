import numpy as np
import pytest
import torch

from procl.model import (
    KeyStepLocalizer,
    NetConfig,
    ProcedureNet,
    SpatialAttention,
    TaskClassifier,
    classification_loss,
    keystep_features,
    pad_videos,
    ranking_loss,
)


def test_attention_is_a_convex_combination_and_identity_for_one_cell():
    torch.manual_seed(0)
    san = SpatialAttention(8)
    y = torch.randn(1, 5, 49, 8)
    f, alpha = san(y)
    assert f.shape == (1, 5, 8) and alpha.shape == (1, 5, 49)
    torch.testing.assert_close(alpha.sum(2), torch.ones(1, 5))
    torch.testing.assert_close(f, torch.einsum("btr,btrd->btd", alpha, y))
    y1 = torch.randn(1, 4, 1, 8)
    torch.testing.assert_close(san(y1)[0], y1[:, :, 0])
    f_mean, a_mean = SpatialAttention(8, enabled=False)(y)
    torch.testing.assert_close(f_mean, y.mean(2))


@pytest.mark.parametrize("T", [1, 2, 7, 8, 9, 33])
def test_localizer_any_length_and_padding_does_not_leak(T):
    torch.manual_seed(0)
    kln = KeyStepLocalizer(6, 10, width=16).eval()
    f = torch.randn(1, T, 6)
    s = kln(f)
    assert s.shape == (1, T, 10)
    # the stride padding is zeros and is cropped away: an explicit zero tail up to the
    # stride gives the same first T rows, so padding never shifts a prediction
    pad = (-T) % 8
    if pad:
        s2 = kln(torch.cat([f, torch.zeros(1, pad, 6)], 1))[:, :T]
        torch.testing.assert_close(s, s2)


def test_keystep_features_weighted_average():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    h = keystep_features(f[None], p[None])
    torch.testing.assert_close(h, torch.tensor([[[1.0, 0.0], [0.5, 1.0]]]), atol=1e-5, rtol=0)


def test_classifier_pooling_weights():
    torch.manual_seed(0)
    tcn = TaskClassifier(4, 3)
    logits, beta = tcn(torch.randn(2, 10, 4), torch.softmax(torch.randn(2, 10, 6), 2))
    assert logits.shape == (2, 3) and beta.shape == (2, 6)
    torch.testing.assert_close(beta.detach().sum(1), torch.ones(2))
    _, uniform = TaskClassifier(4, 3, learnable_pooling=False)(torch.randn(1, 10, 4),
                                                               torch.softmax(torch.randn(1, 10, 6), 2))
    torch.testing.assert_close(uniform, torch.full((1, 6), 1 / 6))


def test_ranking_loss_hand_case():
    s = torch.tensor([[[2.0, 0.5, 1.5], [0.0, 0.0, 0.0]]])
    r = torch.tensor([[0, 2]])
    # frame 0: max(0,1-2+0.5)=0 + max(0,1-2+1.5)=0.5 ; frame 1: 1 + 1 = 2 ; mean = 1.25
    assert float(ranking_loss(s, r)) == pytest.approx(1.25)
    assert float(ranking_loss(torch.tensor([[[5.0, 0.0, 0.0]]]), torch.tensor([[0]]))) == 0.0
    # a batch: each video's mean over its real frames, then the mean over the videos
    batch = torch.tensor([[[2.0, 0.5, 1.5], [0.0, 0.0, 0.0]], [[5.0, 0.0, 0.0], [9.0, -9.0, 9.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    assert float(ranking_loss(batch, torch.tensor([[0, 2], [0, 1]]), mask)) == pytest.approx((1.25 + 0.0) / 2)


def test_network_trains_on_a_toy_problem():
    torch.manual_seed(0)
    net = ProcedureNet(NetConfig(D=4, M=3, n_tasks=2, width=16, dropout=0.0))
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3, weight_decay=1e-4)
    y = torch.randn(1, 12, 5, 4)
    r = torch.tensor([[0] * 4 + [1] * 4 + [2] * 4])
    first = None
    for _ in range(60):
        loss = ranking_loss(net(y).s, r)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first


# ---------------------------------------------------------------- padded batches

# every lever that computes something per video: region centring (median over time), the
# change prior (standardised over the video), centring (mean), the temporal prior (rms and
# relative time), the occupancy term (mean over time)
LEVERS = [dict(), dict(region_center=True, attention_prior=10.0, occupancy=True),
          dict(region_center=True, attention_prior=2.0, center=True, time_weight=1.5, occupancy=True)]
LENGTHS = [5, 13, 8, 20, 1]  # 5 -> 8 and 13 -> 16 frames at the KLN's stride, 20 the longest


def _videos(R: int = 6, D: int = 5, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(T, R, D, generator=g) * 2 + 1 for T in LENGTHS]


@pytest.mark.parametrize("levers", LEVERS)
def test_a_padded_batch_gives_each_video_its_own_outputs(levers):
    torch.manual_seed(0)
    net = ProcedureNet(NetConfig(D=5, M=7, n_tasks=3, width=12, **levers)).eval()
    videos = _videos()
    y, mask = pad_videos(videos)
    assert y.shape == (5, 20, 6, 5) and mask.sum(1).tolist() == LENGTHS
    with torch.no_grad():
        batch = net(y, mask)
        for b, v in enumerate(videos):
            alone = net(v[None]).video(0)
            got = batch.video(b, len(v))
            for name in ("alpha", "f", "x", "s", "p", "logits", "beta"):
                torch.testing.assert_close(getattr(got, name), getattr(alone, name), atol=2e-5, rtol=1e-4,
                                           msg=lambda m: f"video {b} ({len(v)} frames), {name}: {m}")
        padded = ~mask
        for name in ("alpha", "f", "x", "p"):  # padded frames come out as 0
            assert (getattr(batch, name)[padded] == 0).all(), name


@pytest.mark.parametrize("levers", LEVERS[1:])
def test_padded_values_change_nothing(levers):
    """Whatever the padding holds (here noise, inf and NaN) never reaches an output at a real
    frame, a loss or a gradient."""
    torch.manual_seed(0)
    net = ProcedureNet(NetConfig(D=5, M=7, n_tasks=3, width=12, dropout=0.0, **levers))
    y, mask = pad_videos(_videos())
    r = torch.randint(0, 7, mask.shape)
    task = torch.tensor([0, 1, 2, 0, 1])

    def run(y, r):
        net.zero_grad()
        out = net(y, mask)
        loss = ranking_loss(out.s, r, mask) + 0.5 * classification_loss(out.logits, task)
        loss.backward()
        return out, loss.detach(), {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

    out, loss, grads = run(y, r)
    noisy = y.clone()
    noisy[~mask] = torch.randn_like(noisy[~mask]) * 100
    noisy[4, 3, 2, 1], noisy[0, 9, 0, 0] = float("inf"), float("nan")
    r2 = torch.where(mask, r, torch.randint(0, 7, mask.shape))
    out2, loss2, grads2 = run(noisy, r2)
    assert torch.equal(loss, loss2)
    assert grads.keys() == grads2.keys() and all(torch.equal(grads[n], grads2[n]) for n in grads)
    for name in ("alpha", "f", "x", "p", "logits", "beta"):
        assert torch.equal(getattr(out, name), getattr(out2, name)), name
    assert torch.equal(out.s[mask], out2.s[mask])
    # and the losses take each video's real frames only: changing the scores at padded frames
    s = out.s.detach().clone()
    s2 = torch.where(mask[..., None], s, torch.randn_like(s) * 50)
    assert torch.equal(ranking_loss(s, r, mask), ranking_loss(s2, r2, mask))


def test_classification_loss_is_the_batch_mean():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    task = torch.tensor([0, 0, 1])
    each = [float(classification_loss(logits[i : i + 1], task[i : i + 1])) for i in range(3)]
    assert float(classification_loss(logits, task)) == pytest.approx(np.mean(each))


def test_median_over_frames_is_torchs_median():
    """center_regions' median by numpy's sort: the element torch's median picks (the lower
    one of an even count), ties, infinities and NaN included."""
    from procl.model.attention import median_over_frames

    g = torch.Generator().manual_seed(0)
    for T in (1, 2, 3, 10, 11, 100):
        y = torch.randint(-3, 3, (1, T, 5, 4), generator=g).float()  # many ties
        y[0, 0, 0, 0] = float("inf")
        assert torch.equal(median_over_frames(y), y.median(1, keepdim=True).values)
        z = torch.randn(2, T, 3, 4, generator=g, dtype=torch.float64)
        assert torch.equal(median_over_frames(z), z.median(1, keepdim=True).values)
    y[0, 0, 1, 1] = float("nan")
    assert torch.equal(median_over_frames(y).isnan(), y.median(1, keepdim=True).values.isnan())
