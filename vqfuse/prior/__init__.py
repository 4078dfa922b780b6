"""Token priors for multimodal fusion: a transformer over joint sequences of modality tokens,
sampled autoregressively (with a KV cache) or MaskGIT-style, with classifier-free guidance."""

from vqfuse.prior.maskgit import (
    cosine_schedule,
    masked_logits,
    masked_token_loss,
    maskgit_decode,
    maskgit_loss,
    maskgit_sample_joint,
    random_mask,
)
from vqfuse.prior.objectives import next_token_loss
from vqfuse.prior.persist import load_prior, save_prior
from vqfuse.prior.sampling import (
    cfg_logits,
    drop_condition,
    generate,
    null_condition,
    process_logits,
    sample_joint,
    sample_logits,
    top_k_filter,
    top_p_filter,
)
from vqfuse.prior.sequence import PackedSequence, Segment, SequenceLayout
from vqfuse.prior.transformer import KVCache, PriorConfig, PriorTransformer

__all__ = [
    "Segment",
    "PackedSequence",
    "SequenceLayout",
    "PriorConfig",
    "KVCache",
    "PriorTransformer",
    "top_k_filter",
    "top_p_filter",
    "process_logits",
    "sample_logits",
    "cfg_logits",
    "null_condition",
    "drop_condition",
    "generate",
    "sample_joint",
    "next_token_loss",
    "cosine_schedule",
    "random_mask",
    "maskgit_loss",
    "maskgit_decode",
    "masked_logits",
    "masked_token_loss",
    "maskgit_sample_joint",
    "save_prior",
    "load_prior",
]
