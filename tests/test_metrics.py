"""Tests of procl.metrics on small hand-computed cases (expected numbers worked out in comments)."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from procl import ProclError
from procl.metrics import (
    evaluate_localization,
    localization_scores,
    match_states,
    segments_of,
    task_accuracy,
)

B = -1  # background


def a(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_perfect_prediction_with_permuted_state_ids():
    gt = a(0, 0, 1, 1, 2, B, 2)
    pred = a(7, 7, 3, 3, 9, B, 9)  # state 7 = step 0, 3 = step 1, 9 = step 2
    assert match_states(gt, pred) == {7: 0, 3: 1, 9: 2}
    s = localization_scores(gt, pred)
    assert (s["recall"], s["precision"], s["f1"], s["iou"]) == (1.0, 1.0, 1.0, 1.0)
    assert (s["n_gt"], s["n_pred"], s["n_correct"]) == (6, 6, 6)
    assert s["mapping"] == {"3": 1, "7": 0, "9": 2}


def test_unmatched_states_count_against_precision():
    # steps 0, 1; states 0, 1 match them; state 2 lies only on background: overlap 0,
    # so it stays unmatched. correct = 4, n_gt = 4, n_pred = 6.
    # R = 4/4 = 1, P = 4/6 = 2/3, F1 = 2 * (2/3) / (5/3) = 0.8
    gt = a(0, 0, 1, 1, B, B)
    pred = a(0, 0, 1, 1, 2, 2)
    s = localization_scores(gt, pred)
    assert s["mapping"] == {"0": 0, "1": 1}
    assert s["recall"] == 1.0
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(0.8)


def test_more_states_than_steps_only_one_state_per_step():
    # one step, two states splitting it: only one can match. correct = 3 (state 4),
    # R = 3/5, P = 3/5, F1 = 3/5.
    gt = a(0, 0, 0, 0, 0)
    pred = a(4, 4, 4, 5, 5)
    assert match_states(gt, pred) == {4: 0}
    s = localization_scores(gt, pred)
    assert (s["recall"], s["precision"], s["f1"]) == pytest.approx((0.6, 0.6, 0.6))
    # IoU of step 0: its 5 frames vs state 4's 3 frames -> 3/5
    assert s["iou"] == pytest.approx(0.6)


def test_zero_overlap_assignment_is_no_match():
    # The only state never meets a key-step frame: the Hungarian solver still pairs it
    # with step 0, but with overlap 0 that is no match.
    gt = a(0, 0, B, B)
    pred = a(B, B, 3, 3)
    assert match_states(gt, pred) == {}
    s = localization_scores(gt, pred)
    assert (s["recall"], s["precision"], s["f1"], s["iou"]) == (0.0, 0.0, 0.0, 0.0)


def test_all_background_prediction():
    gt = a(0, 1, 1, B)
    pred = a(B, B, B, B)
    s = localization_scores(gt, pred)
    assert s["mapping"] == {}
    assert (s["n_pred"], s["n_correct"], s["n_gt"]) == (0, 0, 3)
    # precision is defined as 0 with no predicted frame; recall 0/3; F1 0; IoU 0
    assert (s["recall"], s["precision"], s["f1"], s["iou"]) == (0.0, 0.0, 0.0, 0.0)


def test_iou_and_scores_hand_case():
    gt = a(0, 0, 0, 1, 1, B)
    pred = a(2, 2, 5, 5, 5, 5)
    # overlap: (2,0)=2, (5,0)=1, (5,1)=2 -> best: 2->0, 5->1 (total 4, versus 1 for 5->0)
    # n_gt = 5, n_pred = 6, correct = 4: R = 4/5, P = 2/3, F1 = (16/15) / (22/15) = 8/11
    # IoU step 0: {0,1,2} vs state 2 {0,1} -> 2/3; step 1: {3,4} vs state 5 {2,3,4,5} -> 2/4
    # mean IoU = (2/3 + 1/2) / 2 = 7/12
    s = localization_scores(gt, pred)
    assert s["mapping"] == {"2": 0, "5": 1}
    assert s["recall"] == pytest.approx(0.8)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(8 / 11)
    assert s["iou"] == pytest.approx(7 / 12)


def test_unmatched_step_has_iou_zero_and_given_mapping_is_used():
    gt = a(0, 0, 1, 1)
    pred = a(3, 3, 3, 3)
    # With the given mapping {3: 1}: correct = 2 (frames 2, 3); IoU step 0 = 0 (unmatched),
    # step 1 = 2/4. mean = 1/4. String keys (as read back from metrics.json) work too.
    for mapping in ({3: 1}, {"3": 1}):
        s = localization_scores(gt, pred, mapping)
        assert s["n_correct"] == 2
        assert s["iou"] == pytest.approx(0.25)
        assert s["mapping"] == {"3": 1}


def test_no_ground_truth_frames_is_undefined():
    s = localization_scores(a(B, B, B), a(0, 1, B))
    assert s["recall"] is None and s["f1"] is None and s["iou"] is None
    assert s["precision"] == 0.0 and s["n_gt"] == 0 and s["n_pred"] == 2


def test_pooled_matching_differs_from_per_video():
    # video A: states agree with steps. video B: states swapped.
    # pooled overlap: (0,0) = 3 + 0, (1,1) = 3 + 0, (1,0) = 0 + 1, (0,1) = 0 + 1
    # -> one matching {0: 0, 1: 1}: correct = 6 of 8 gt frames and 8 predicted frames,
    #    R = P = F1 = 0.75. pooled IoU: step 0 frames A0-2, B0 (4) vs state 0 frames A0-2, B1 (4):
    #    inter 3, union 5 -> 3/5 for each step -> 0.6.
    # per video: each video matches perfectly -> 1.0.
    gt = {"A": a(0, 0, 0, 1, 1, 1), "B": a(0, 1)}
    pred = {"A": a(0, 0, 0, 1, 1, 1), "B": a(1, 0)}
    r = evaluate_localization(gt, pred, {"A": "t", "B": "t"})
    t = r["per_task"]["t"]
    assert t["mapping"] == {"0": 0, "1": 1}
    assert (t["recall"], t["precision"], t["f1"]) == pytest.approx((0.75, 0.75, 0.75))
    assert t["iou"] == pytest.approx(0.6)
    assert t["n_videos"] == 2
    assert t["per_video"]["f1"] == 1.0 and t["per_video"]["iou"] == 1.0
    assert r["f1"] == pytest.approx(0.75)
    assert r["per_video"] == {"recall": 1.0, "precision": 1.0, "f1": 1.0, "iou": 1.0}


def test_task_without_ground_truth_is_excluded_and_counted():
    gt = {
        "a1": a(0, 0, 1, 1),  # task a: perfect -> 1.0
        "b1": a(0, 0, B, B),  # task b: state 0 on step 0 -> R 1, P 2/4 = 0.5, F1 2/3
        "b2": a(B, B),
        "c1": a(B, B, B),  # task c: only background -> undefined
        "d1": None,  # task d: not annotated -> skipped, undefined
    }
    pred = {"a1": a(5, 5, 6, 6), "b1": a(0, 0, 0, 0), "b2": a(B, B), "c1": a(1, 1, 1)}
    task_of = {"a1": "a", "b1": "b", "b2": "b", "c1": "c", "d1": "d"}
    r = evaluate_localization(gt, pred, task_of)
    assert r["n_tasks_without_gt"] == 2 and r["n_tasks"] == 2
    assert r["per_task"]["c"]["f1"] is None and r["per_task"]["c"]["n_videos"] == 1
    assert r["per_task"]["d"]["recall"] is None and r["per_task"]["d"]["n_videos"] == 0
    assert r["per_task"]["b"]["n_videos"] == 2
    # b2 has no gt key-step frame: left out of b's per-video mean, which is b1's alone
    assert r["per_task"]["b"]["per_video"]["n_videos"] == 1
    # unweighted means over tasks a and b only
    assert r["recall"] == pytest.approx(1.0)
    assert r["precision"] == pytest.approx((1.0 + 0.5) / 2)
    assert r["f1"] == pytest.approx((1.0 + 2 / 3) / 2)
    # IoU b: step 0 {0,1} vs state 0 {0,1,2,3} -> 1/2; mean over tasks (1 + 1/2) / 2
    assert r["iou"] == pytest.approx(0.75)
    assert r["n_videos"] == 4
    assert json.loads(json.dumps(r)) == r


def test_means_are_unweighted_over_tasks():
    # task big: 8 gt frames, all right (F1 1). task small: 1 gt frame, predicted background (F1 0).
    gt = {"v1": a(*[0] * 8), "v2": a(0)}
    pred = {"v1": a(*[2] * 8), "v2": a(B)}
    r = evaluate_localization(gt, pred, {"v1": "big", "v2": "small"})
    assert r["f1"] == pytest.approx(0.5)  # frame-weighted pooling would give ~0.94


def test_length_mismatch_names_the_video():
    with pytest.raises(ValueError, match="clip_07"):
        evaluate_localization({"clip_07": a(0, 1, 1)}, {"clip_07": a(0, 1)}, {"clip_07": "t"})
    with pytest.raises(ProclError, match="3 frames"):
        localization_scores(a(0, 1, 1), a(0, 1))


def test_bad_inputs_raise():
    with pytest.raises(ProclError, match="clip_1"):
        evaluate_localization({"clip_1": a(0)}, {}, {"clip_1": "t"})
    with pytest.raises(ProclError, match="-2"):
        match_states(a(0, -2), a(0, 0))
    with pytest.raises(ProclError, match="integers"):
        match_states(np.array([0.5, 1.0]), a(0, 0))
    with pytest.raises(ProclError, match="pred_v"):
        task_accuracy({"pred_v": "x"}, {})


def _brute_force_best(gt: np.ndarray, pred: np.ndarray) -> int:
    """Largest total overlap over every one-to-one partial matching of states to steps."""
    states, steps = sorted(set(pred[pred >= 0])), sorted(set(gt[gt >= 0]))
    overlap = {(s, k): int(((pred == s) & (gt == k)).sum()) for s in states for k in steps}
    slots = steps + [None] * len(states)  # None: the state stays unmatched
    best = 0
    for choice in itertools.permutations(slots, len(states)):
        best = max(best, sum(overlap[s, k] for s, k in zip(states, choice) if k is not None))
    return best


def test_matching_is_maximal_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(150):
        n = int(rng.integers(1, 25))
        gt = rng.integers(-1, int(rng.integers(1, 5)), size=n)
        pred = rng.integers(-1, int(rng.integers(1, 5)), size=n)
        mapping = match_states(gt, pred)
        assert len(set(mapping.values())) == len(mapping)  # one-to-one
        total = sum(int(((pred == s) & (gt == k)).sum()) for s, k in mapping.items())
        assert all(((pred == s) & (gt == k)).any() for s, k in mapping.items())
        assert total == _brute_force_best(gt, pred)
        assert localization_scores(gt, pred)["n_correct"] == total


def test_task_accuracy_and_per_class():
    true = {"v1": "a", "v2": "a", "v3": "b", "v4": "b", "v5": "b"}
    pred = {"v1": "a", "v2": "b", "v3": "b", "v4": "b", "v5": "a"}
    r = task_accuracy(true, pred)
    # right: v1, v3, v4 -> 3/5; class a 1/2; class b 2/3
    assert r["accuracy"] == pytest.approx(0.6)
    assert r["per_class"] == pytest.approx({"a": 0.5, "b": 2 / 3})
    assert r["n_videos"] == 5
    assert r["confusion"] == {"a": {"a": 1, "b": 1}, "b": {"a": 1, "b": 2}}
    assert json.loads(json.dumps(r)) == r
    assert task_accuracy({}, {})["accuracy"] is None


def test_segments_of():
    assert segments_of(a(B, B, 0, 0, 0, 2, B)) == [(-1, 0, 2), (0, 2, 5), (2, 5, 6), (-1, 6, 7)]
    assert segments_of(a(4)) == [(4, 0, 1)]
    assert segments_of(a()) == []
    assert all(type(x) is int for seg in segments_of(a(1, 1, 2)) for x in seg)


# ---------------------------------------------------------------- segmental scores

from procl.metrics import segmental_scores  # noqa: E402


def test_segmental_perfect_and_flicker():
    gt = a(0, 0, 0, B, 1, 1, 1, 1)
    perfect = segmental_scores(gt, a(5, 5, 5, B, 6, 6, 6, 6), {5: 0, 6: 1})
    assert perfect["edit"] == 1.0
    assert perfect["counts"] == {"10": [1 + 1, 0, 0], "25": [2, 0, 0], "50": [2, 0, 0]}
    assert (perfect["n_segments"], perfect["n_gt_segments"]) == (2, 2)
    # flicker inside step 1: predicted segments 0 | 1 2 1 (2 = unmatched state 7) -> labels
    # [0, 1, u, 1] against [0, 1]: 2 insertions, edit = 1 - 2/4 = 0.5.
    flick = segmental_scores(gt, a(5, 5, 5, B, 6, 7, 6, 6), {5: 0, 6: 1})
    assert flick["edit"] == pytest.approx(0.5)
    # F1@50: seg 0 [0,3) IoU 1 -> tp; seg 1 [4,5) IoU 1/4 -> fp; seg u -> fp;
    # seg 1 [6,8) IoU 2/4 = 0.5 >= 0.5 -> tp (gt seg 1 not hit yet). tp 2, fp 2, fn 0.
    assert flick["counts"]["50"] == [2, 2, 0]
    # F1@10: the first 1-segment [4,5) already hits gt seg 1 (IoU 0.25): tp; the later one
    # is then a fp: tp 2, fp 2.
    assert flick["counts"]["10"] == [2, 2, 0]


def test_segmental_background_and_empty():
    # only background on both sides: nothing to edit, nothing to count
    s = segmental_scores(a(B, B), a(B, B), {})
    assert s["edit"] == 1.0 and s["counts"]["50"] == [0, 0, 0]
    # prediction says background everywhere: every gt segment is missed, edit 0
    s = segmental_scores(a(0, 0, 1), a(B, B, B), {})
    assert s["edit"] == 0.0 and s["counts"]["25"] == [0, 0, 2]
    # wrong order: [1, 0] vs [0, 1] is 2 substitutions -> edit 0
    s = segmental_scores(a(0, 0, 1, 1), a(4, 4, 3, 3), {3: 0, 4: 1})
    assert s["edit"] == 0.0 and s["counts"]["10"] == [0, 2, 2]


def test_evaluate_localization_reports_segmental_means():
    gt = {"v1": a(0, 0, 1, 1), "v2": a(0, 0, 1, 1)}
    pred = {"v1": a(3, 3, 4, 4), "v2": a(3, 4, 3, 4)}  # v2 flickers
    r = evaluate_localization(gt, pred, {"v1": "t", "v2": "t"})
    # v1 edit 1; v2 labels [0,1,0,1] vs [0,1]: 2 deletions -> 1 - 2/4 = 0.5; mean 0.75
    assert r["edit"] == pytest.approx(0.75)
    # F1@50 over both videos: v1 tp 2; v2 segs [0,1) IoU 1/2 tp, [1,2) label 1 IoU 1/2 tp,
    # [2,3) label 0 -> gt seg 0 already hit: fp, [3,4) fp. tp 4, fp 2, fn 0:
    # P 4/6, R 1, F1 = 0.8
    assert r["f1_at"]["50"] == pytest.approx(0.8)
    assert r["n_segments"] == pytest.approx(3.0) and r["n_gt_segments"] == pytest.approx(2.0)
    json.dumps(r)
