"""The meaning of a continuous label, as a card says it: targets, bins, and bad cards."""
import numpy as np
import pytest
import torch

from dml_core.data import ContinuousLabel, angle_to_unit_vector, read_continuous_label
from dml_core.data.continuous import continuous_entry


def card(**info):
    return {"continuous_label": info}


def test_an_angle_maps_to_unit_vectors_and_bins_equal_arcs():
    angle = read_continuous_label(card(kind="angle", period=360.0, name="angle"), "x/card.json")
    assert angle == ContinuousLabel("angle", period=360.0)
    values = np.array([0.0, 29.9, 30.0, 90.0, 359.9, -10.0, 360.0], dtype=np.float32)
    t = angle.targets(values)
    assert t.dtype == torch.float32 and t.shape == (7, 2)
    torch.testing.assert_close(t, angle_to_unit_vector(torch.from_numpy(values)), rtol=0, atol=0)
    np.testing.assert_allclose(t[3].numpy(), [0.0, 1.0], atol=1e-7)
    assert angle.classes(values, 12).tolist() == [0, 0, 1, 3, 11, 11, 0]
    # Another period: a half turn of a period-2 label is 1.
    half = ContinuousLabel("angle", period=2.0)
    np.testing.assert_allclose(half.targets(np.array([1.0])).numpy(), [[-1.0, 0.0]], atol=1e-7)
    assert half.classes([0.0, 0.5, 1.0, 1.5, 1.99], 4).tolist() == [0, 1, 2, 3, 3]
    with pytest.raises(ValueError, match="one value a row"):
        angle.targets(np.zeros((3, 2), np.float32))


def test_a_linear_label_passes_through_and_bins_by_its_range():
    plain = read_continuous_label(card(kind="linear"), "x/card.json")
    assert plain == ContinuousLabel("linear")
    values = np.array([-5.0, 0.0, 2.5, 5.0], dtype=np.float32)
    t = plain.targets(values)
    assert t.dtype == torch.float32 and torch.equal(t, torch.from_numpy(values))
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert torch.equal(plain.targets(vectors), torch.from_numpy(vectors))
    with pytest.raises(ValueError, match="needs its range"):
        plain.classes(values, 4)
    ranged = plain.with_range_of(values)
    assert (ranged.low, ranged.high) == (-5.0, 5.0)
    assert ranged.classes(values, 4).tolist() == [0, 2, 3, 3]
    # The card's range wins over the values'; values outside it go to the end bins.
    carded = read_continuous_label(card(kind="linear", low=0.0, high=10.0), "x/card.json")
    assert carded.with_range_of(values) == carded
    assert carded.classes([-1.0, 0.0, 4.9, 5.0, 10.0, 12.0], 2).tolist() == [0, 0, 0, 1, 1, 1]
    assert ContinuousLabel("linear", low=1.0, high=1.0).classes([1.0, 1.0], 3).tolist() == [0, 0]


def test_a_card_without_a_kind_is_read_as_plain_values_with_a_warning():
    assert read_continuous_label({"continuous_label": None}, "x/card.json") is None
    with pytest.warns(UserWarning, match="x/card.json: continuous_label has no kind"):
        legacy = read_continuous_label(card(name="angle", low=0.0, high=360.0), "x/card.json")
    assert legacy == ContinuousLabel("linear", low=0.0, high=360.0)
    assert torch.equal(legacy.targets(np.array([90.0])), torch.tensor([90.0]))


@pytest.mark.parametrize(
    "info, match",
    [
        ({"kind": "polar"}, r"x/card.json: continuous_label.kind must be one of angle, linear, got 'polar'"),
        ({"kind": "angle"}, r"x/card.json: continuous_label.kind is angle but no period"),
        ({"kind": "angle", "period": 0}, r"x/card.json: continuous_label.period must be a finite number > 0, got 0"),
        ({"kind": "angle", "period": "360"}, r"continuous_label.period must be a finite number > 0, got '360'"),
        ({"kind": "linear", "low": "a"}, r"x/card.json: continuous_label.low must be a finite number, got 'a'"),
    ],
)
def test_a_bad_card_names_the_field_and_the_card(info, match):
    with pytest.raises(ValueError, match=match):
        read_continuous_label(card(**info), "x/card.json")
    with pytest.raises(ValueError, match="continuous_label must be a mapping"):
        read_continuous_label({"continuous_label": "angle"}, "x/card.json")


def test_a_source_must_say_what_its_continuous_labels_mean():
    values = np.zeros(4, np.float32)
    assert continuous_entry(None, None) is None
    assert continuous_entry(values, {"kind": "linear"}) == {"kind": "linear"}
    with pytest.raises(ValueError, match="need a continuous_info mapping with a kind"):
        continuous_entry(values, {"name": "angle"})
    with pytest.raises(ValueError, match="need a continuous_info mapping with a kind"):
        continuous_entry(values, None)
    with pytest.raises(ValueError, match="no continuous labels"):
        continuous_entry(None, {"kind": "linear"})
    with pytest.raises(ValueError, match="continuous_info: continuous_label.kind must be one of"):
        continuous_entry(values, {"kind": "circle"})
    with pytest.raises(ValueError, match="an angle label is one value a row"):
        continuous_entry(np.zeros((4, 2), np.float32), {"kind": "angle", "period": 360})
