"""A tiny GGUF causal LM (random weights, byte-level BPE tokenizer) for fast recipe tests.

``write_tiny_gguf(dest)`` writes a 2-layer, 32-wide llama with float32 tensors and a
261-token byte-level "gpt2" tokenizer (256 bytes + 3 specials, like SmolLM2's), with the
SmolLM2 file's other metadata copied when ``source`` is given. The same ``gguf_file=``
loading code path as the real model then runs in seconds instead of a minute (converting
SmolLM2's 49k-token vocabulary alone takes ~10 s). Needs the ``gguf`` package.
"""
from __future__ import annotations

from pathlib import Path


def write_tiny_gguf(dest: Path, *, layers: int = 2, dim: int = 32,
                    ff: int = 64, heads: int = 4, kv_heads: int = 2, seed: int = 0) -> Path:
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(dest), "llama")
    writer.add_block_count(layers)
    writer.add_embedding_length(dim)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(dim // heads)
    writer.add_context_length(256)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_file_type(0)
    writer.add_name("tiny-random-llama")
    # 256 bytes, two merges (transformers' converter wants some), then the specials.
    tokens = _byte_tokens() + ["Ġt", "he", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = len(tokens)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * 258 + [3, 3, 3])
    writer.add_token_merges(["Ġ t", "h e"])
    writer.add_bos_token_id(258)
    writer.add_eos_token_id(260)
    writer.add_pad_token_id(260)
    writer.add_unk_token_id(258)
    writer.add_add_bos_token(False)
    writer.add_add_space_prefix(False)
    rng = np.random.default_rng(seed)
    kv_dim = dim // heads * kv_heads

    def t(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    writer.add_tensor("token_embd.weight", t(vocab, dim))
    writer.add_tensor("output_norm.weight", np.ones(dim, np.float32))
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(dim, np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", t(dim, dim))
        writer.add_tensor(f"blk.{i}.attn_k.weight", t(kv_dim, dim))
        writer.add_tensor(f"blk.{i}.attn_v.weight", t(kv_dim, dim))
        writer.add_tensor(f"blk.{i}.attn_output.weight", t(dim, dim))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(dim, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", t(ff, dim))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", t(ff, dim))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", t(dim, ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(dest)


def _byte_tokens() -> list[str]:
    """GPT-2's byte -> printable-unicode map: the 256 base tokens of a byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]
