"""Bad forward inputs raise a ValueError that names the offending argument, on every model class."""

from __future__ import annotations

import pytest
import torch
from support.configs import SMALL_CONFIGS
from support.inputs import HEAD_IDS, HEADS, input_shape
from support.oracle import make_ours

CFG_NAME = "relu-h32"  # vocab 100, hidden 32, 2 layers, 4 heads, max positions 24, 3 token types
CFG = SMALL_CONFIGS[CFG_NAME]
BATCH, SEQ = 2, 5

pytestmark = pytest.mark.usefixtures("single_thread")


def _ids(head, seq=SEQ):
    shape = input_shape(head, BATCH, seq)
    return torch.randint(1, CFG["vocab_size"], shape, generator=torch.Generator().manual_seed(0))


def _embeds(head, seq=SEQ):
    return torch.randn(*input_shape(head, BATCH, seq), CFG["hidden_size"])


def _grown(head, tensor_fn, extra=1):
    """A tensor for ``head`` whose last dim is ``extra`` longer than the input's."""
    return tensor_fn(input_shape(head, BATCH, SEQ + extra))


def _with(head, value_at, key):
    ids = _ids(head)
    values = torch.zeros_like(ids)
    values.view(-1)[3] = value_at
    return {"input_ids": ids, key: values}


# (case id, builder(head) -> forward kwargs, argument the message must name)
BAD_INPUTS = [
    ("both-ids-and-embeds", lambda h: {"input_ids": _ids(h), "inputs_embeds": _embeds(h)}, "input_ids"),
    ("neither-ids-nor-embeds", lambda h: {"attention_mask": torch.ones(input_shape(h, BATCH, SEQ))}, "input_ids"),
    ("ids-too-long", lambda h: {"input_ids": _ids(h, CFG["max_position_embeddings"] + 1)}, "input_ids"),
    ("embeds-too-long", lambda h: {"inputs_embeds": _embeds(h, CFG["max_position_embeddings"] + 1)}, "inputs_embeds"),
    (
        "negative-token-id",
        lambda h: {"input_ids": _ids(h).index_put_((torch.tensor(0),), torch.tensor(-1))},
        "input_ids",
    ),
    (
        "token-id-equal-to-vocab-size",
        lambda h: {"input_ids": _ids(h).index_put_((torch.tensor(1),), torch.tensor(CFG["vocab_size"]))},
        "input_ids",
    ),
    ("token-type-too-large", lambda h: _with(h, CFG["type_vocab_size"], "token_type_ids"), "token_type_ids"),
    ("token-type-negative", lambda h: _with(h, -1, "token_type_ids"), "token_type_ids"),
    (
        "attention-mask-longer",
        lambda h: {"input_ids": _ids(h), "attention_mask": _grown(h, torch.ones)},
        "attention_mask",
    ),
    (
        "attention-mask-shorter",
        lambda h: {"input_ids": _ids(h), "attention_mask": _grown(h, torch.ones, extra=-2)},
        "attention_mask",
    ),
    (
        "attention-mask-other-batch",
        lambda h: {"input_ids": _ids(h), "attention_mask": torch.ones(input_shape(h, BATCH + 1, SEQ))},
        "attention_mask",
    ),
    (
        "token-type-ids-shape",
        lambda h: {"input_ids": _ids(h), "token_type_ids": _grown(h, lambda s: torch.zeros(s, dtype=torch.long))},
        "token_type_ids",
    ),
    (
        "position-ids-shape",
        lambda h: {"input_ids": _ids(h), "position_ids": _grown(h, lambda s: torch.zeros(s, dtype=torch.long))},
        "position_ids",
    ),
    (
        "attention-mask-with-embeds",
        lambda h: {"inputs_embeds": _embeds(h), "attention_mask": _grown(h, torch.ones)},
        "attention_mask",
    ),
    ("head-mask-too-many-heads", lambda h: {"input_ids": _ids(h), "head_mask": torch.ones(5)}, "head_mask"),
    ("head-mask-too-many-layers", lambda h: {"input_ids": _ids(h), "head_mask": torch.ones(3, 4)}, "head_mask"),
    ("head-mask-transposed", lambda h: {"input_ids": _ids(h), "head_mask": torch.ones(4, 2)}, "head_mask"),
    ("head-mask-3d", lambda h: {"input_ids": _ids(h), "head_mask": torch.ones(2, 4, 1)}, "head_mask"),
]


@pytest.fixture(scope="module")
def models():
    return {head: make_ours(CFG_NAME, head) for head in HEADS}


@pytest.mark.parametrize(("build", "argument"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_bad_input_raises_value_error_naming_the_argument(models, head, build, argument):
    with pytest.raises(ValueError, match=argument):
        models[head](**build(head))


@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_boundary_values_are_accepted(models, head):
    """The checks are not off by one: the largest valid id, type, position and length all work."""
    seq = CFG["max_position_embeddings"]
    ids = _ids(head, seq)
    ids.view(-1)[0] = CFG["vocab_size"] - 1
    ids.view(-1)[1] = 0
    types = torch.full_like(ids, CFG["type_vocab_size"] - 1)
    positions = torch.full_like(ids, seq - 1)
    out = models[head](input_ids=ids, token_type_ids=types, position_ids=positions, attention_mask=torch.ones_like(ids))
    assert torch.isfinite(out.to_tuple()[0]).all()
    embeds_out = models[head](inputs_embeds=_embeds(head, seq), head_mask=torch.ones(4))
    assert torch.isfinite(embeds_out.to_tuple()[0]).all()
